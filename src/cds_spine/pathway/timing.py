"""When a record entry happened, in days: a condition active on a day, the days of a visit, a referral or a
medication, and the lookback window they are clipped to."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from .knowledge import Knowledge
from .record import (
    ConditionEntry,
    MedicationEntry,
    Period,
    ProcedureEntry,
    ServiceRequestEntry,
)

ACTIVE_CLINICAL_STATUSES = frozenset({"active", "recurrence", "relapse"})
DISCARDED_VERIFICATION = frozenset({"refuted", "entered-in-error"})
MEDICATION_STATUSES_TAKEN = frozenset({"active", "completed", "stopped"})
PROCEDURE_STATUSES_DONE = frozenset({"completed", "in-progress"})


@dataclass(frozen=True)
class Window:
    start: date
    end: date

    @classmethod
    def lookback(cls, today: date, days: int) -> Window:
        return cls(today - timedelta(days=days), today)

    def clip(self, start: date, end: date) -> tuple[date, date] | None:
        if end < self.start or start > self.end:
            return None
        return max(start, self.start), min(end, self.end)


def is_active(condition: ConditionEntry, today: date) -> bool:
    """Active on `today`. A record read as of an earlier day (a retrospective audit) shows today's status:
    a condition that began after that day was not active yet, one that abated after it still was."""
    if condition.verification_status in DISCARDED_VERIFICATION:
        return False
    if condition.onset is not None and condition.onset > today:
        return False
    if condition.abatement is not None:
        return condition.abatement > today
    if condition.clinical_status is None:
        return not condition.abated
    return condition.clinical_status in ACTIVE_CLINICAL_STATUSES


def _days(period: Period | None, today: date, still_going: bool) -> tuple[date, date] | None:
    if period is None or (period.start is None and period.end is None):
        return None
    start = period.start or period.end
    assert start is not None
    end = period.end or (today if still_going else start)
    return (start, end) if end >= start else (end, start)


def procedure_days(entry: ProcedureEntry, today: date) -> tuple[date, date] | None:
    return _days(entry.performed, today, still_going=entry.status == "in-progress")


def referral_days(entry: ServiceRequestEntry, today: date) -> tuple[date, date] | None:
    return _days(entry.occurrence, today, still_going=False) or _days(
        Period(entry.authored_on, entry.authored_on), today, still_going=False)


def medication_days(entry: MedicationEntry, today: date, knowledge: Knowledge) -> tuple[date, date] | None:
    """From its start to the end the record states; an active one with no stated end is still taken today
    (unless it is an acute course); any other lasts its first day."""
    start = entry.start or entry.stated_end
    if start is None:
        return None
    if entry.stated_end is not None:
        return (start, entry.stated_end) if entry.stated_end >= start else (entry.stated_end, start)
    ongoing = knowledge.config.medication_courses.active_without_end_is_ongoing and entry.status == "active" \
        and entry.course_type != "acute"
    return start, max(start, today) if ongoing else start
