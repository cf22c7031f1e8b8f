"""Issue 35: a call's CPU work runs where it costs least. A small call is parsed and assessed on the event loop (a
hop to the thread pool cost more than the work); a large one in a worker thread, so that one huge record never
holds the loop. Over HTTP, with the record reader watched."""
from __future__ import annotations

import asyncio

import orjson
from support import ORDER_SIGN, call, day, hook_request, procedure

from cds_spine.cdshooks import answers
from cds_spine.cdshooks.offload import INLINE_BYTES


def where_the_record_was_read(client, monkeypatch, request: dict) -> list[str]:
    seen: list[str] = []
    read = answers.build_record

    def watched(resources, knowledge):
        try:
            asyncio.get_running_loop()
            seen.append("event loop")
        except RuntimeError:
            seen.append("worker thread")
        return read(resources, knowledge)

    monkeypatch.setattr(answers, "build_record", watched)
    assert call(client, ORDER_SIGN, request).status_code == 200
    return seen


def test_a_small_call_is_assessed_on_the_event_loop(client, monkeypatch):
    request = hook_request("order-sign")
    assert len(orjson.dumps(request)) < INLINE_BYTES
    assert where_the_record_was_read(client, monkeypatch, request) == ["event loop"]


def test_a_large_call_is_assessed_in_a_worker_thread(client, monkeypatch):
    visits = [procedure("97110", day(-40 - i), rid=f"pt-{i}") for i in range(INLINE_BYTES // 300)]  # ~345 B each
    request = hook_request("order-sign", procedures=visits)
    assert len(orjson.dumps(request)) > INLINE_BYTES
    assert where_the_record_was_read(client, monkeypatch, request) == ["worker thread"]
