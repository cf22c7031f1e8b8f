"""Issue 35: a call's CPU work runs where it costs least. A small call is parsed and assessed on the event loop (a
hop to the thread pool cost more than the work); a large one in a worker thread, in one hop, so that one huge record
never holds the loop. Over HTTP, with the parser, the prefetch reader and the record reader watched."""
from __future__ import annotations

import asyncio

import orjson
from support import ORDER_SIGN, call, day, hook_request, procedure

from cds_spine.cdshooks import answers, offload, routes
from cds_spine.cdshooks.offload import INLINE_BYTES

WATCHED = ((routes, "parse_call"), (answers, "from_prefetch_alone"), (answers, "build_record"))
"""The call's CPU work: parsing the body, reading prefetch (the relevance pass), reading the record."""


def where_the_work_ran(client, monkeypatch, request: dict) -> tuple[list[tuple[str, str]], int]:
    """(step, event loop or worker thread) of each watched step, in order; and the hops to the thread pool for CPU
    work."""
    seen: list[tuple[str, str]] = []
    hops = 0
    hop = offload.run_in_threadpool

    async def counted(work):
        nonlocal hops
        hops += 1
        return await hop(work)

    def watch(module, name):
        step = getattr(module, name)

        def watched(*args, **kwargs):
            try:
                asyncio.get_running_loop()
                where = "event loop"
            except RuntimeError:
                where = "worker thread"
            seen.append((name, where))
            return step(*args, **kwargs)

        monkeypatch.setattr(module, name, watched)

    for module, name in WATCHED:
        watch(module, name)
    monkeypatch.setattr(offload, "run_in_threadpool", counted)
    assert call(client, ORDER_SIGN, request).status_code == 200
    return seen, hops


def test_a_small_call_is_parsed_read_and_assessed_on_the_event_loop(client, monkeypatch):
    request = hook_request("order-sign")
    assert len(orjson.dumps(request)) < INLINE_BYTES
    assert where_the_work_ran(client, monkeypatch, request) == ([(name, "event loop") for _, name in WATCHED], 0)


def test_a_large_call_is_parsed_read_and_assessed_in_one_worker_thread(client, monkeypatch):
    visits = [procedure("97110", day(-40 - i), rid=f"pt-{i}") for i in range(INLINE_BYTES // 300)]  # ~345 B each
    request = hook_request("order-sign", procedures=visits)
    assert len(orjson.dumps(request)) > INLINE_BYTES
    assert where_the_work_ran(client, monkeypatch, request) == ([(name, "worker thread") for _, name in WATCHED], 1)
