"""Evidence of conservative therapy toward one order: which record entries count, for how long, and why
the others do not.

Visits (Procedures, completed referrals) count one by one. Medications count as courses: the orders
and statements of one ingredient, renewed while the earlier one runs or within the renewal gap, are one
course from the first to the last one's end (cards/pathway.yaml `medication_courses`). An entry counts
only when it is for the spine, or its reason is not known, and not for another spinal region
(pathway/reasons.py).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from .config import Group, Modality
from .courses import Course, MedicationUse, courses
from .knowledge import OPIOID, Knowledge
from .reasons import Indication, Indications, describe
from .record import (
    Code,
    MedicationEntry,
    PatientRecord,
    ProcedureEntry,
    ServiceRequestEntry,
)
from .timing import (
    MEDICATION_STATUSES_TAKEN,
    PROCEDURE_STATUSES_DONE,
    Window,
    medication_days,
    procedure_days,
    referral_days,
)
from .wording import WORDING

ESI_CATEGORY = "esi"


@dataclass(frozen=True)
class Evidence:
    """Record entries that count as conservative therapy: one visit, or one medication course (its orders),
    with its days in the lookback window (inclusive)."""

    category: str
    label: str
    references: tuple[str, ...]
    description: str
    start: date
    end: date
    is_medication: bool = False

    @property
    def reference(self) -> str:
        return self.references[0]


@dataclass(frozen=True)
class NotCounted:
    """Entries recognised but not counted, one per drug or modality and reason."""

    references: tuple[str, ...]
    description: str
    reason: str
    start: date
    end: date


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

    def phrase(self, knowledge: Knowledge) -> str:
        """The longest episode's therapy as a clinician counts it: visits of one modality by their number and
        weeks, anything else by its days."""
        wording = knowledge.config.card
        longest = self.longest
        items = [e for e in self.evidence if longest and longest.start <= e.start and e.end <= longest.end]
        labels = {item.label for item in items}
        if not longest or not items or len(labels) != 1 or any(item.is_medication for item in items):
            return WORDING.format(wording.therapy_days, days=self.days)
        weeks = (longest.days - 1) // 7
        return WORDING.format(wording.therapy_visits if weeks else wording.therapy_visits_one_day, count=len(items),
                              label=labels.pop().lower(), weeks=weeks)


@dataclass(frozen=True)
class Scope:
    """What the evidence is read toward: the order's spinal segments (empty: any) and required days."""

    segments: frozenset[str]
    required_days: int
    count_prior_esi: bool
    problem_onset: date | None = None
    """When the spine problem was first recorded: therapy counts from `therapy_before_onset_days` before it."""


class _NotCountedList:
    """Not-counted entries, merged per description and reason."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str], NotCounted] = {}

    def add(self, references: Sequence[str], description: str, reason: str, start: date, end: date) -> None:
        key = (description, reason)
        known = self._items.get(key)
        if known:
            references = (*known.references, *references)
            start, end = min(start, known.start), max(end, known.end)
        self._items[key] = NotCounted(tuple(references), description, reason, start, end)

    def items(self) -> tuple[NotCounted, ...]:
        return tuple(sorted(self._items.values(), key=lambda item: (item.start, item.description)))


class _Reader:
    """Sorts record entries into counting evidence and entries recognised but not counted."""

    def __init__(self, record: PatientRecord, knowledge: Knowledge, window: Window, today: date,
                 scope: Scope) -> None:
        self.knowledge = knowledge
        self.config = knowledge.config
        self.window = window
        self.today = today
        self.scope = scope
        self.indications = Indications(record, knowledge)
        onset = scope.problem_onset
        self.since = onset - timedelta(days=self.config.diagnoses.therapy_before_onset_days) if onset else None
        self.evidence: list[Evidence] = []
        self.not_counted = _NotCountedList()
        self.uses: list[MedicationUse] = []

    def _region_label(self, segments: frozenset[str]) -> str:
        region = next((name for name, covered in self.config.region_segments.items()
                       if frozenset(covered) == segments), "")
        return self.config.regions.get(region, "/".join(sorted(segments)))

    def why_not(self, indication: Indication, group: Group | None = None) -> str | None:
        """Why an entry of this group with this indication does not count toward the order; None when it does."""
        reasons = self.config.reasons
        if indication.spine is False:
            return WORDING.format(reasons.for_other_condition, condition=indication.condition)
        if not indication.fits(self.scope.segments):
            return WORDING.format(reasons.for_other_region, region=self._region_label(indication.segments))
        if group and group.needs_spine_reason and not indication.spine:
            return reasons.not_for_spine
        if group and group.needs_pain_reason and not (indication.spine or indication.pain):
            return reasons.not_for_pain
        return None

    def counted_days(self, references: Sequence[str], description: str, start: date, end: date
                     ) -> tuple[date, date] | None:
        """The days of an item within the lookback window and from shortly before the problem began; an item of
        the window wholly before that is listed as not counted, saying why."""
        clipped = self.window.clip(start, end)
        if not clipped or self.since is None or clipped[0] >= self.since:
            return clipped
        if clipped[1] < self.since:
            onset = self.scope.problem_onset
            assert onset is not None  # self.since is set from it
            self.not_counted.add(references, description, WORDING.format(
                self.config.reasons.before_problem, date=onset.isoformat()), *clipped)
            return None
        return self.since, clipped[1]

    def visit(self, group: Group, reference: str, description: str, days: tuple[date, date],
              indication: Indication) -> None:
        clipped = self.counted_days((reference,), group.label, *days)
        if not clipped:
            return
        why_not = self.why_not(indication, group)
        if why_not:
            self.not_counted.add((reference,), group.label, why_not, *clipped)
        else:
            self.evidence.append(Evidence(group.id, group.label, (reference,), description, *clipped))

    def _modality(self, codes: Sequence[Code]) -> Modality | None:
        return next((group for group in self.config.conservative.modalities
                     if self.knowledge.find(codes, group.valueset)), None)

    def recognised_only(self, reference: str, codes: Sequence[Code], description: str,
                        days: tuple[date, date] | None, indication: Indication) -> None:
        """Passive measures and generic codes: listed as not counted, unless they are for something else."""
        clipped = self.window.clip(*days) if days else None
        if not clipped or indication.spine is False:
            return
        for group in self.config.conservative.not_counted:
            if self.knowledge.find(codes, group.valueset):
                self.not_counted.add((reference,), description, group.label, *clipped)
                return

    def procedure(self, entry: ProcedureEntry) -> None:
        if entry.status not in PROCEDURE_STATUSES_DONE:
            return
        if self.knowledge.find(entry.codes, self.config.conservative.referrals.valueset):
            return  # the act of referring: a referral (pending_referrals), not therapy
        days = procedure_days(entry, self.today)
        if not days or not self.window.clip(*days):
            return  # nothing of it in the lookback window: it counts for nothing, whatever it is
        description = describe(entry.codes, entry.text)
        indication = self.indications.of(entry.reasons, entry.body_sites, days[0])
        group = self._modality(entry.codes)
        esi = self.knowledge.find(entry.codes, self.config.orders.esi.valueset)
        if group:
            self.visit(group, entry.reference, description, days, indication)
        elif esi and self.scope.count_prior_esi and entry.status == "completed":
            clipped = self.counted_days((entry.reference,), description, *days)
            if clipped and Indication(True, self.knowledge.segments(esi)).fits(self.scope.segments):
                self.evidence.append(Evidence(ESI_CATEGORY, self.config.rules.surgery.prior_esi_label,
                                              (entry.reference,), description, *clipped))
        else:
            self.recognised_only(entry.reference, entry.codes, description, days, indication)

    def referral(self, entry: ServiceRequestEntry) -> None:
        if entry.status != "completed":
            return
        days = referral_days(entry, self.today)
        if not days or not self.window.clip(*days):
            return  # as a procedure
        description = describe(entry.codes, entry.text)
        indication = self.indications.of(entry.reasons, entry.body_sites, days[0])
        group = self._modality(entry.codes)
        if group:
            self.visit(group, entry.reference, description, days, indication)
        else:
            self.recognised_only(entry.reference, entry.codes, description, days, indication)

    def medication(self, entry: MedicationEntry) -> None:
        if entry.status not in MEDICATION_STATUSES_TAKEN or entry.intent in self.config.medication_courses.not_taken_intents:
            return
        knowledge = self.knowledge
        conservative = self.config.conservative
        texts = " ".join(filter(None, [entry.text, *(code.display for code in entry.codes)]))
        is_opioid = bool(knowledge.find(entry.codes, conservative.opioids.valueset) or knowledge.mentions_opioid(texts))
        group, membership = None, None
        if not is_opioid:
            group, membership = next(((g, m) for g in conservative.medications
                                      if (m := knowledge.find(entry.codes, g.valueset))), (None, None))
            if group is None and not knowledge.knows_any(entry.codes):
                group = knowledge.medication_group_by_text(texts)
            if group is None:
                return
        days = medication_days(entry, self.today, knowledge)
        if not days:
            return
        indication = self.indications.of(entry.reasons, (), days[0])
        systemic = not membership or membership.attributes.get("route") != "topical"
        description = describe(entry.codes, entry.text)
        names = knowledge.ingredients(texts) if group else frozenset()
        ingredient = (group.id if group else OPIOID, names or description)
        self.uses.append(MedicationUse(entry, group, ingredient, description, *days, indication, systemic,
                                       stated_end=entry.stated_end is not None))

    def medication_courses(self) -> None:
        by_ingredient: dict[tuple[Any, ...], list[MedicationUse]] = {}
        for use in self.uses:
            by_ingredient.setdefault(use.ingredient, []).append(use)
        gaps = self.config.medication_courses
        for uses in by_ingredient.values():
            for course in courses(uses, gaps.renewal_gap_days, gaps.refill_gap_days):
                self.course(course)

    def course(self, course: Course) -> None:
        clipped = self.counted_days(course.references, course.description, course.start, course.end)
        if not clipped:
            return
        indication = course.indication()
        group = course.uses[0].group
        if group is None:
            if indication.spine is not False:
                self.not_counted.add(course.references, course.description, self.config.conservative.opioids.label,
                                     *clipped)
            return
        why_not = self.why_not(indication, group)
        description = course.description
        if why_not and group.counts_for_any_condition and self._long_term_systemic(course, clipped):
            why_not = None
            reasons = self.config.reasons
            description = WORDING.format(reasons.counted_for_other_condition, description=description,
                                         condition=indication.condition) if indication.condition else WORDING.format(
                reasons.counted_for_other_region, description=description,
                region=self._region_label(indication.segments))
        if why_not:
            self.not_counted.add(course.references, course.description, why_not, *clipped)
        else:
            self.evidence.append(Evidence(group.id, group.label, course.references, description, *clipped,
                                          is_medication=True))

    def _long_term_systemic(self, course: Course, clipped: tuple[date, date]) -> bool:
        """A systemic drug taken for another condition, or for another spinal region, for at least the required
        days: the class has been tried, whatever it was taken for."""
        return (self.config.medication_courses.other_condition_long_term_counts
                and all(use.systemic for use in course.uses)
                and (clipped[1] - clipped[0]).days + 1 >= self.scope.required_days)


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


def conservative_history(record: PatientRecord, knowledge: Knowledge, today: date, scope: Scope
                         ) -> ConservativeHistory:
    window = Window.lookback(today, knowledge.config.lookback_days)
    reader = _Reader(record, knowledge, window, today, scope)
    for procedure in record.procedures:
        reader.procedure(procedure)
    for referral in record.service_requests:
        reader.referral(referral)
    for medication in record.medications:
        reader.medication(medication)
    reader.medication_courses()
    evidence = tuple(sorted(reader.evidence, key=lambda e: (e.start, e.reference)))
    return ConservativeHistory(evidence, reader.not_counted.items(),
                               longest_episode(evidence, knowledge.config.episode_gap_days))
