"""Prior epidural steroid injections: the completed ESIs of a window, with their regions."""
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
    reference: str
    day: date
    region: str



def prior_injections(record: PatientRecord, knowledge: Knowledge, today: date, window_days: int
                     ) -> tuple[PriorInjection, ...]:
    """Completed ESIs within the window, oldest first."""
    window = Window.lookback(today, window_days)
    found = []
    for entry in record.procedures:
        membership = knowledge.find(entry.codes, knowledge.config.orders.esi.valueset)
        days = procedure_days(entry, today) if membership and entry.status == "completed" else None
        if membership and days and window.clip(*days):
            found.append(PriorInjection(entry.reference, days[0], membership.attributes.get("region", "unspecified")))
    return tuple(sorted(found, key=lambda injection: injection.day))
