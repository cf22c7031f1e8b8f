"""Where a call's CPU work runs: on the event loop when the call is small, in a worker thread when it is large.

A call whose prefetch holds what it reads (most calls) has one step of CPU work: parsing the body, reading prefetch
(the relevance pass) and assessing (routes.call_service, CallAnswerer.answer_from_prefetch). A hop to the thread
pool costs about 0.3 ms on 2 cores in process (more over HTTP on this VM: about 0.8 ms), more than that step takes
for a small call. A large call's step goes to a worker thread in one hop, so that one huge record never holds the
loop for long (the interpreter's switch interval lets the loop answer /healthz and other calls between slices of
it). At the bound, 256 KiB (about 165 resources of the benchmark's patients), the step holds the loop about 1.6 ms
(160 resources, in process). A call whose prefetch lacks something reads what prefetch holds in that step, once;
the FHIR server's answer completes it, and the assessment runs as a step of its own where the first ran. Blocking
I/O (the audit store) always goes to a thread."""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from starlette.concurrency import run_in_threadpool

T = TypeVar("T")

INLINE_BYTES = 256 * 1024
"""A call whose body is smaller runs its CPU work on the event loop (up to about 170 resources: 2 to 3 ms)."""


def runs_inline(body_bytes: int) -> bool:
    return body_bytes < INLINE_BYTES


async def cpu_work(inline: bool, work: Callable[[], T]) -> T:
    return work() if inline else await run_in_threadpool(work)
