"""Medication courses: the orders and statements of one ingredient, renewed while the earlier one runs or within
the renewal gap, are one course from the first to the last one's end (cards/pathway.yaml `medication_courses`)."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from .config import MedicationGroup
from .reasons import Indication, union_segments
from .record import (
    MedicationEntry,
)


@dataclass
class MedicationUse:
    """One medication entry, read: what it is, its days, and what it treats."""

    entry: MedicationEntry
    group: MedicationGroup | None  # None: an opioid
    ingredient: tuple[Any, ...]  # renewals of one ingredient join one course
    description: str
    start: date
    end: date
    indication: Indication
    systemic: bool
    stated_end: bool
    """The record states how long it lasts (a supply, dosage bounds, a validity or an end), not only when it began."""


@dataclass
class Course:
    uses: list[MedicationUse] = field(default_factory=list)

    @property
    def start(self) -> date:
        return self.uses[0].start

    @property
    def end(self) -> date:
        return max(use.end for use in self.uses)

    def renewed_by(self, use: MedicationUse, renewal_gap_days: int, refill_gap_days: int) -> bool:
        """Whether `use` continues the course: it starts while the course runs, or within the gap after its end
        (the refill gap when the record states how long the last prescription lasted, else the renewal gap)."""
        last = max(self.uses, key=lambda u: u.end)
        return (use.start - self.end).days <= (refill_gap_days if last.stated_end else renewal_gap_days)

    @property
    def references(self) -> tuple[str, ...]:
        return tuple(use.entry.reference for use in self.uses)

    @property
    def description(self) -> str:
        return self.uses[-1].description

    def indication(self) -> Indication:
        """Stated by any of its entries for the spine; else stated by all for another condition; else what
        the course followed when it began."""
        stated_spine = [use.indication for use in self.uses if use.indication.explicit and use.indication.spine]
        if stated_spine:
            return Indication(True, union_segments(i.segments for i in stated_spine),
                              condition=stated_spine[0].condition, explicit=True)
        unstated = [use.indication for use in self.uses if not use.indication.explicit]
        return unstated[0] if unstated else self.uses[0].indication


def courses(uses: Iterable[MedicationUse], renewal_gap_days: int, refill_gap_days: int) -> list[Course]:
    """Join uses (of one ingredient) into courses (Course.renewed_by)."""
    found: list[Course] = []
    for use in sorted(uses, key=lambda u: (u.start, u.end)):
        if found and found[-1].renewed_by(use, renewal_gap_days, refill_gap_days):
            found[-1].uses.append(use)
        else:
            found.append(Course([use]))
    return found
