"""Issue 35: a call's work runs where it costs least. A small call is parsed and assessed on the event loop (a hop to
the thread pool cost more than the work), and recorded in one hop; a large one is parsed, assessed and recorded in one
hop, so that one huge record never holds the loop. Over HTTP, with each step and every hop to the thread pool
watched."""
from __future__ import annotations

import asyncio

import orjson
import pytest
from support import ORDER_SIGN, call, day, hook_request, procedure

from cds_spine.audit.store import SqlAuditStore
from cds_spine.cdshooks import answers, offload, routes
from cds_spine.cdshooks.offload import INLINE_BYTES

CPU_WORK = ((routes, "parse_call"), (answers, "from_prefetch_alone"), (answers, "build_record"))
"""The call's CPU work: parsing the body, reading prefetch (the relevance pass), reading the record."""
STORE_WORK = ((SqlAuditStore, "record_call"),)


def where_the_work_ran(client, monkeypatch, request: dict) -> tuple[list[tuple[str, str]], int]:
    """(step, event loop or worker thread) of each watched step, in order; and the hops to the thread pool."""
    seen: list[tuple[str, str]] = []
    hops = 0

    def watch(owner, name):
        step = getattr(owner, name)

        def watched(*args, **kwargs):
            try:
                asyncio.get_running_loop()
                where = "event loop"
            except RuntimeError:
                where = "worker thread"
            seen.append((name, where))
            return step(*args, **kwargs)

        monkeypatch.setattr(owner, name, watched)

    def count_hops(module):
        hop = module.run_in_threadpool

        async def counted(work, *args):
            nonlocal hops
            hops += 1
            return await hop(work, *args)

        monkeypatch.setattr(module, "run_in_threadpool", counted)

    for owner, name in CPU_WORK + STORE_WORK:
        watch(owner, name)
    count_hops(offload)
    count_hops(routes)
    assert call(client, ORDER_SIGN, request).status_code == 200
    return seen, hops


@pytest.mark.parametrize("size", ["small", "large"])
def test_a_call_is_answered_and_recorded_in_one_hop_its_cpu_work_in_a_thread_only_when_large(client, monkeypatch,
                                                                                               size):
    visits = [procedure("97110", day(-40 - i), rid=f"pt-{i}") for i in range(INLINE_BYTES // 300)]  # ~345 B each
    request = hook_request("order-sign", procedures=visits if size == "large" else [])
    assert (len(orjson.dumps(request)) > INLINE_BYTES) == (size == "large")
    cpu = "worker thread" if size == "large" else "event loop"
    assert where_the_work_ran(client, monkeypatch, request) == (
        [(name, cpu) for _, name in CPU_WORK] + [(name, "worker thread") for _, name in STORE_WORK], 1)
