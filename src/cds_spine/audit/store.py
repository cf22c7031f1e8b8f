"""The audit store interface, and the in-memory store used until the database-backed one lands.

Services record what happened through this interface only, so the database store (SQLAlchemy,
SQLite by default, PostgreSQL in production) replaces the in-memory one without touching callers.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from threading import Lock
from typing import Protocol


@dataclass(frozen=True)
class FeedbackEvent:
    service_id: str
    card: str
    outcome: str
    accepted_suggestions: tuple[str, ...]
    override_system: str | None
    override_code: str | None
    override_comment: str | None
    outcome_timestamp: datetime
    received_at: datetime

    @property
    def identity(self) -> tuple[str, str, datetime]:
        """The same feedback twice (same card, outcome and timestamp) is one event."""
        return self.card, self.outcome, self.outcome_timestamp


class AuditStore(Protocol):
    def record_feedback(self, events: Sequence[FeedbackEvent]) -> None: ...

    def feedback(self) -> list[FeedbackEvent]: ...


class MemoryAuditStore:
    """Keeps feedback for the life of the process; not durable (the database store is)."""

    def __init__(self) -> None:
        self._events: dict[tuple[str, str, datetime], FeedbackEvent] = {}
        self._lock = Lock()

    def record_feedback(self, events: Sequence[FeedbackEvent]) -> None:
        with self._lock:
            for event in events:
                self._events.setdefault(event.identity, event)

    def feedback(self) -> list[FeedbackEvent]:
        with self._lock:
            return list(self._events.values())
