"""Evidence of conservative therapy: which record entries count, their dates, and episodes."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from .knowledge import Knowledge
from .record import (
    Code, ConditionEntry, DraftOrder, MedicationEntry, PatientRecord, Period, ProcedureEntry, ServiceRequestEntry,
)

PROCEDURE_STATUSES_DONE = frozenset({"completed", "in-progress"})
MEDICATION_STATUSES_TAKEN = frozenset({"active", "completed", "stopped"})
ACTIVE_CLINICAL_STATUSES = frozenset({"active", "recurrence", "relapse"})
DISCARDED_VERIFICATION = frozenset({"refuted", "entered-in-error"})
ESI_CATEGORY = "esi"


@dataclass(frozen=True)
class Evidence:
    """One record entry that counts as conservative therapy, with its days (inclusive)."""

    category: str
    label: str
    reference: str
    description: str
    start: date
    end: date
    is_medication: bool = False


@dataclass(frozen=True)
class NotCounted:
    reference: str
    description: str
    reason: str


@dataclass(frozen=True)
class Episode:
    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


@dataclass(frozen=True)
class ConservativeHistory:
    evidence: tuple[Evidence, ...]
    not_counted: tuple[NotCounted, ...]
    longest: Episode | None

    @property
    def days(self) -> int:
        return self.longest.days if self.longest else 0


@dataclass(frozen=True)
class PriorInjection:
    reference: str
    day: date
    region: str


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


def describe(codes: Sequence[Code], text: str | None) -> str:
    return text or next((code.display for code in codes if code.display), None) or (
        codes[0].code if codes else "unnamed entry")


def is_active(condition: ConditionEntry) -> bool:
    if condition.verification_status in DISCARDED_VERIFICATION:
        return False
    if condition.clinical_status is None:
        return not condition.abated
    return condition.clinical_status in ACTIVE_CLINICAL_STATUSES


def _days(period: Period | None, today: date, still_going: bool) -> tuple[date, date] | None:
    if period is None or (period.start is None and period.end is None):
        return None
    start = period.start or period.end
    end = period.end or (today if still_going else start)
    return (start, end) if end >= start else (end, start)


def procedure_days(entry: ProcedureEntry, today: date) -> tuple[date, date] | None:
    return _days(entry.performed, today, still_going=entry.status == "in-progress")


def referral_days(entry: ServiceRequestEntry, today: date) -> tuple[date, date] | None:
    return _days(entry.occurrence, today, still_going=False) or _days(
        Period(entry.authored_on, entry.authored_on), today, still_going=False)


def medication_days(entry: MedicationEntry, today: date) -> tuple[date, date] | None:
    if entry.resource_type == "MedicationStatement":
        return _days(entry.effective, today, still_going=entry.status == "active")
    if entry.authored_on and entry.supply_days:
        return entry.authored_on, entry.authored_on + timedelta(days=entry.supply_days * (entry.repeats + 1) - 1)
    return _days(entry.validity, today, still_going=False) or _days(
        Period(entry.authored_on, entry.authored_on), today, still_going=False)


class _Reader:
    """Sorts record entries into counting evidence and entries recognised but not counted."""

    def __init__(self, knowledge: Knowledge, window: Window, today: date, count_prior_esi: bool) -> None:
        self.knowledge = knowledge
        self.window = window
        self.today = today
        self.count_prior_esi = count_prior_esi
        self.evidence: list[Evidence] = []
        self.not_counted: list[NotCounted] = []

    def add(self, category: str, label: str, reference: str, description: str,
            days: tuple[date, date] | None, is_medication: bool = False) -> None:
        clipped = self.window.clip(*days) if days else None
        if clipped:
            self.evidence.append(Evidence(category, label, reference, description, *clipped, is_medication))

    def modality(self, codes: Sequence[Code]):
        return next((group for group in self.knowledge.config.conservative.modalities
                     if self.knowledge.find(codes, group.valueset)), None)

    def reject_if_not_counted(self, reference: str, codes: Sequence[Code], description: str,
                              days: tuple[date, date] | None) -> None:
        if not days or not self.window.clip(*days):
            return
        for group in self.knowledge.config.conservative.not_counted:
            if self.knowledge.find(codes, group.valueset):
                self.not_counted.append(NotCounted(reference, description, group.label))
                return

    def procedure(self, entry: ProcedureEntry) -> None:
        if entry.status not in PROCEDURE_STATUSES_DONE:
            return
        description = describe(entry.codes, entry.text)
        days = procedure_days(entry, self.today)
        group = self.modality(entry.codes)
        if group:
            self.add(group.id, group.label, entry.reference, description, days)
        elif self.count_prior_esi and entry.status == "completed" and self.knowledge.find(
                entry.codes, self.knowledge.config.orders.esi.valueset):
            self.add(ESI_CATEGORY, self.knowledge.config.rules.surgery.prior_esi_label, entry.reference,
                     description, days)
        else:
            self.reject_if_not_counted(entry.reference, entry.codes, description, days)

    def referral(self, entry: ServiceRequestEntry) -> None:
        if entry.status != "completed":
            return
        description = describe(entry.codes, entry.text)
        days = referral_days(entry, self.today)
        group = self.modality(entry.codes)
        if group:
            self.add(group.id, group.label, entry.reference, description, days)
        else:
            self.reject_if_not_counted(entry.reference, entry.codes, description, days)

    def medication(self, entry: MedicationEntry) -> None:
        if entry.status not in MEDICATION_STATUSES_TAKEN:
            return
        knowledge = self.knowledge
        description = describe(entry.codes, entry.text)
        days = medication_days(entry, self.today)
        texts = " ".join(filter(None, [entry.text, *(code.display for code in entry.codes)]))
        opioids = knowledge.config.conservative.opioids
        if knowledge.find(entry.codes, opioids.valueset) or knowledge.mentions_opioid(texts):
            if days and self.window.clip(*days):
                self.not_counted.append(NotCounted(entry.reference, description, opioids.label))
            return
        group = next((group for group in knowledge.config.conservative.medications
                      if knowledge.find(entry.codes, group.valueset)), None)
        if group is None and not knowledge.knows_any(entry.codes):
            group = knowledge.medication_group_by_text(texts)
        if group:
            self.add(group.id, group.label, entry.reference, description, days, is_medication=True)


def longest_episode(evidence: Iterable[Evidence], gap_days: int) -> Episode | None:
    """Merge intervals into episodes, bridging gaps of at most `gap_days` days between them."""
    episodes: list[Episode] = []
    for item in sorted(evidence, key=lambda e: (e.start, e.end)):
        last = episodes[-1] if episodes else None
        if last and (item.start - last.end).days - 1 <= gap_days:
            episodes[-1] = Episode(last.start, max(last.end, item.end))
        else:
            episodes.append(Episode(item.start, item.end))
    return max(episodes, key=lambda e: (e.days, e.end), default=None)


def conservative_history(record: PatientRecord, knowledge: Knowledge, today: date,
                         count_prior_esi: bool) -> ConservativeHistory:
    window = Window.lookback(today, knowledge.config.lookback_days)
    reader = _Reader(knowledge, window, today, count_prior_esi)
    for procedure in record.procedures:
        reader.procedure(procedure)
    for referral in record.service_requests:
        reader.referral(referral)
    for medication in record.medications:
        reader.medication(medication)
    evidence = tuple(sorted(reader.evidence, key=lambda e: (e.start, e.reference)))
    return ConservativeHistory(evidence, tuple(reader.not_counted),
                               longest_episode(evidence, knowledge.config.episode_gap_days))


def prior_injections(record: PatientRecord, knowledge: Knowledge, today: date, window_days: int
                     ) -> tuple[PriorInjection, ...]:
    """Completed ESIs within the window, oldest first."""
    window = Window.lookback(today, window_days)
    found = []
    for entry in record.procedures:
        membership = knowledge.find(entry.codes, knowledge.config.orders.esi.valueset)
        days = procedure_days(entry, today) if membership and entry.status == "completed" else None
        if days and window.clip(*days):
            found.append(PriorInjection(entry.reference, days[0], membership.attributes.get("region", "unspecified")))
    return tuple(sorted(found, key=lambda injection: injection.day))


def pending_referrals(record: PatientRecord, session_orders: Sequence[DraftOrder], knowledge: Knowledge
                      ) -> tuple[str, ...]:
    """Physical therapy referrals ordered but not done: in this ordering session, or active in the record."""
    valueset = knowledge.config.conservative.referral_valueset
    drafts = [order.reference for order in session_orders if knowledge.find(order.codes, valueset)]
    active = [entry.reference for entry in record.service_requests
              if entry.status in ("active", "on-hold", "draft") and knowledge.find(entry.codes, valueset)]
    return tuple(drafts + active)
