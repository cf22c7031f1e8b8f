"""Requests to the CDS services refused before they became calls (a JWT that failed a check, a request the
service could not read, a browser origin not allowed), counted in memory per minute, service, status and
reason, and written to the audit store in batches: what an EHR integration met, for the dashboard, at one
small write per few seconds whatever the rate of refusals. Labels are bounded: the service id (or `other`),
the status, and a one-word reason."""
from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime

Key = tuple[datetime, str, int, str]
FLUSH_SECONDS = 5.0
MAX_KEYS = 10_000
"""Distinct counts kept between two writes; past it, refusals are counted under the minute's `other` reason."""


class RefusalTally:
    def __init__(self) -> None:
        self._counts: Counter[Key] = Counter()
        self._lock = threading.Lock()

    def count(self, service: str, status: int, reason: str, at: datetime | None = None) -> None:
        minute = (at or datetime.now(UTC)).replace(second=0, microsecond=0)
        key = (minute, service[:64], status, reason[:64])
        with self._lock:
            if key not in self._counts and len(self._counts) >= MAX_KEYS:
                key = (minute, "other", status, "other")
            self._counts[key] += 1

    def drain(self) -> dict[Key, int]:
        """The counts since the last drain, which start again from zero."""
        with self._lock:
            counts, self._counts = dict(self._counts), Counter()
        return counts
