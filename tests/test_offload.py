"""Issue 35: a call's work runs where it costs least. A small call is parsed and assessed on the event loop (a hop to
the thread pool cost more than the work), and recorded in one hop; a large one is parsed, assessed and recorded in one
hop, so that one huge record never holds the loop. Over HTTP, with each step and every hop to the thread pool
watched."""
from __future__ import annotations

import asyncio

import orjson
import pytest
from support import ORDER_SIGN, authorization, bundle, call, day, hook_request, procedure

from cds_spine.appstate import state_of
from cds_spine.audit.store import SqlAuditStore
from cds_spine.cdshooks import answers, offload, routes
from cds_spine.cdshooks.offload import INLINE_BYTES
from cds_spine.cdshooks.routes import HookState

CPU_WORK = ((routes, "parse_call"), (answers, "read_prefetch"), (answers, "build_record"))
"""The call's CPU work: parsing the body, reading prefetch (the relevance pass), reading the record."""
STORE_WORK = ((SqlAuditStore, "record_call"),)
VISITS = [procedure("97110", day(-40 - i), rid=f"pt-{i}") for i in range(INLINE_BYTES // 300)]  # ~345 B each
"""Enough physical therapy visits to make a call large."""


def running_on() -> str:
    try:
        asyncio.get_running_loop()
        return "event loop"
    except RuntimeError:
        return "worker thread"


def where_the_work_ran(client, monkeypatch, request: dict) -> tuple[list[tuple[str, str]], int]:
    """(step, event loop or worker thread) of each watched step, in order; and the hops to the thread pool."""
    seen: list[tuple[str, str]] = []
    hops = 0

    def watch(owner, name):
        step = getattr(owner, name)

        def watched(*args, **kwargs):
            seen.append((name, running_on()))
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
    request = hook_request("order-sign", procedures=VISITS if size == "large" else [])
    assert (len(orjson.dumps(request)) > INLINE_BYTES) == (size == "large")
    cpu = "worker thread" if size == "large" else "event loop"
    assert where_the_work_ran(client, monkeypatch, request) == (
        [(name, cpu) for _, name in CPU_WORK] + [(name, "worker thread") for _, name in STORE_WORK], 1)


def test_a_large_call_the_fhir_server_completes_reads_its_prefetch_once_in_a_thread(client, monkeypatch, httpx_mock):
    """Prefetch that cannot answer alone (here, a next page) is read once, where the call's CPU work runs: never
    again when the FHIR server has completed it, and never on the event loop."""
    page_two = "https://ehr.example.org/fhir/Procedure?patient=p1&page=2"
    request = {**hook_request("order-sign", procedures=VISITS), "fhirServer": "https://ehr.example.org/fhir",
               "fhirAuthorization": authorization()}
    request["prefetch"]["procedures"]["link"] = [{"relation": "next", "url": page_two}]
    httpx_mock.add_response(url=page_two, json=bundle(procedure("97110", day(-10), rid="pt-page-two")))
    answerer = state_of(client.app, HookState).answerer
    keep, filtered = answerer.relevant, []

    def watched_keep(resource):
        filtered.append((resource.get("id"), running_on()))
        return keep(resource)

    monkeypatch.setattr(answerer, "relevant", watched_keep)
    seen, hops = where_the_work_ran(client, monkeypatch, request)
    assert seen == [("parse_call", "worker thread"), ("read_prefetch", "worker thread"),
                    ("build_record", "worker thread"), ("record_call", "worker thread")]
    assert hops == 3  # the first step and the store's, as any large call; and the step again, completed
    prefetched = [(rid, where) for rid, where in filtered if rid.startswith("pt-") and rid != "pt-page-two"]
    assert sorted(prefetched) == sorted((visit["id"], "worker thread") for visit in VISITS)
    assert ("pt-page-two", "event loop") in filtered  # what the FHIR server sent is filtered as it arrives
