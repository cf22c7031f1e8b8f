"""Where a call's CPU work runs: on the event loop when the call is small, in a worker thread when it is large.

A hop to the thread pool costs about 0.3 ms on 2 cores (measured: removing the two hops of a 10-resource call took
it from 3.3 to 2.5 ms in process), more than parsing and assessing a small call takes. A large call still goes to a
worker thread, so that one huge record never holds the loop for long (the interpreter's switch interval lets the
loop answer /healthz and other calls between slices of it). At the bound, 256 KiB (about 170 resources of the
benchmark's patients), parsing and assessing holds the loop 2.2 ms (p50; 3 ms at most over 200 calls); the hops it
saves a 100-resource call are 0.5 ms of its 4.8. Blocking I/O (the audit store) always goes to a thread."""
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
