"""Prior epidural steroid injections: the completed ESI sessions of a window, with their regions. A session is
a day and a region, as LCD L39240 counts them: the lines of one session (bilateral, several levels, an add-on
code such as 64484 with its 64483) are one injection, not several."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from .knowledge import Knowledge
from .record import (
    PatientRecord,
)
from .timing import Window, procedure_days


@dataclass(frozen=True)
class PriorInjection:
    """One session: its day, its region and the record's lines of it."""

    references: tuple[str, ...]
    day: date
    region: str

    @property
    def reference(self) -> str:
        return self.references[0]


def prior_injections(record: PatientRecord, knowledge: Knowledge, today: date, window_days: int
                     ) -> tuple[PriorInjection, ...]:
    """Completed ESI sessions within the window, oldest first."""
    window = Window.lookback(today, window_days)
    sessions: dict[tuple[date, str], list[str]] = {}
    for entry in record.procedures:
        membership = knowledge.find(entry.codes, knowledge.config.orders.esi.valueset)
        days = procedure_days(entry, today) if membership and entry.status == "completed" else None
        if membership and days and window.clip(*days):
            sessions.setdefault((days[0], membership.attributes.get("region", "unspecified")), []).append(entry.reference)
    return tuple(PriorInjection(tuple(references), day, region)
                 for (day, region), references in sorted(sessions.items()))
