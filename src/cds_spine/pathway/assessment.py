"""The rules: one Assessment per ESI, regenerative-injection or spine-surgery order.

Pure: no I/O, no clock of its own (`now` is passed in), nothing imported from outside pathway/.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import Enum

from .evidence import ConservativeHistory, Scope, conservative_history
from .findings import Finding, finding, ranks
from .imaging import image_first_findings, image_first_on_record, imaged, imaging_undocumented, spine_studies
from .injections import PriorInjection, prior_injections
from .knowledge import RED_FLAG_NAME_LIMIT, Knowledge
from .observation_rules import ScoresOnRecord, esi_score_findings, readiness_findings
from .orders import ClassifiedOrder
from .reasons import Indication, describe, shorten
from .record import DraftOrder, PatientRecord
from .referrals import Referral, pending_referrals, session_referrals
from .safety import INJECTIONS, anticoagulant_findings, is_red, recent_infections, stopping_findings
from .scores import Reading
from .timing import is_active


class Decision(str, Enum):
    """Whether the conservative-therapy requirement is satisfied."""

    MET = "met"
    NOT_MET = "not-met"
    EXEMPT = "exempt"
    """A surgery order with a red flag: waiting would be unsafe."""
    STOPPED = "stopped"
    """An injection order with a red flag or a recent systemic infection: not judged, it should not go ahead."""


@dataclass(frozen=True)
class DiagnosisOnRecord:
    reference: str
    description: str
    group: str  # "qualifying", "axial" or a red-flag id
    segments: frozenset[str] = frozenset()  # empty: no region
    onset: date | None = None  # its onset, else the day it was recorded or its encounter's; None: no date
    from_text: bool = False  # True: a red flag read from the diagnosis's words (its codes are in no value set)

    def fits(self, segments: frozenset[str]) -> bool:
        return Indication(True, self.segments).fits(segments)

    @property
    def dated(self) -> bool:
        return self.onset is not None

    @property
    def is_red_flag(self) -> bool:
        return self.group not in ("qualifying", "axial")


@dataclass(frozen=True)
class Assessment:
    order: ClassifiedOrder
    order_label: str
    decision: Decision
    required_days: int
    history: ConservativeHistory
    findings: tuple[Finding, ...]
    diagnoses: tuple[DiagnosisOnRecord, ...] = ()
    prior_injections: tuple[PriorInjection, ...] = ()
    pending_referrals: tuple[Referral, ...] = ()
    scores: tuple[Reading, ...] = ()
    """The scores and results the rules read for this order (baseline, before and after the last ESI, HbA1c)."""
    unreadable: tuple[str, ...] = field(default=())
    partly_read: tuple[str, ...] = field(default=())

    @property
    def red_flags(self) -> tuple[DiagnosisOnRecord, ...]:
        return tuple(d for d in self.diagnoses if d.is_red_flag)

    @property
    def lead(self) -> Finding | None:
        """The finding the card leads with: the first that is not a note."""
        return next((f for f in self.findings if f.leads_a_card), None)


def today_of(now: datetime) -> date:
    return now.astimezone(UTC).date() if now.tzinfo else now.date()


def diagnoses_on_record(record: PatientRecord, knowledge: Knowledge, today: date) -> tuple[DiagnosisOnRecord, ...]:
    """Active conditions in the qualifying, axial-pain or red-flag value sets; red flags only while acute."""
    config = knowledge.config.diagnoses
    groups = [(flag.id, flag.valueset, flag.acute_days) for flag in config.red_flags]
    groups += [("qualifying", config.qualifying.valueset, None), ("axial", config.axial.valueset, None)]
    acute = {flag.id: flag.acute_days for flag in config.red_flags}
    found = []
    for condition in record.conditions:
        if not is_active(condition, today):
            continue
        description = describe(condition.codes, condition.text)
        for group, valueset, acute_days in groups:
            membership = knowledge.find(condition.codes, valueset)
            if membership and (acute_days is None or is_red(condition, acute_days, today)):
                found.append(DiagnosisOnRecord(condition.reference, description, group,
                                               knowledge.segments(membership), condition.onset))
        if not knowledge.knows_any(condition.codes):  # the last resort: a red flag named in words
            words = " ".join(filter(None, [condition.text, *(code.display for code in condition.codes)]))
            flag = knowledge.red_flag_words.owner(words) if words else None
            if flag and is_red(condition, acute[flag], today):
                found.append(DiagnosisOnRecord(condition.reference, description, flag, frozenset(),
                                               condition.onset, from_text=True))
    return tuple(found)


def problem_onset(diagnoses: Sequence[DiagnosisOnRecord], segments: frozenset[str]) -> DiagnosisOnRecord | None:
    """The region's spine problem as the record first gives it: its earliest dated radicular, stenosis or axial
    diagnosis that fits the segments (None when none is dated)."""
    dated = [d for d in diagnoses if not d.is_red_flag and d.onset is not None and d.fits(segments)]
    return min(dated, key=lambda d: (d.onset, d.reference)) if dated else None


def has_indication(record: PatientRecord, knowledge: Knowledge, valuesets: Sequence[str],
                   segments: frozenset[str], today: date) -> bool:
    """Is an active condition in one of these value sets, in a region that fits?"""
    for condition in record.conditions:
        if is_active(condition, today):
            for valueset in valuesets:
                membership = knowledge.find(condition.codes, valueset)
                if membership and Indication(True, knowledge.segments(membership)).fits(segments):
                    return True
    return False


def _conservative_findings(knowledge: Knowledge, history: ConservativeHistory, required: int, order_label: str,
                           red_flags: Sequence[DiagnosisOnRecord]) -> tuple[Decision, list[Finding]]:
    if red_flags:
        flag = red_flags[0]
        return Decision.EXEMPT, [finding(knowledge, "red-flag", [flag.reference],
                                          condition=shorten(flag.description, RED_FLAG_NAME_LIMIT))]
    if history.days >= required:
        return Decision.MET, []
    lookback_months = round(knowledge.config.lookback_days / 30.4)
    if not history.evidence:
        return Decision.NOT_MET, [finding(knowledge, "conservative-missing", lookback_months=lookback_months,
                                           order=order_label)]
    return Decision.NOT_MET, [finding(knowledge, "conservative-short",
                                       [reference for e in history.evidence for reference in e.references],
                                       days=history.days, therapy=history.phrase(knowledge), required=required,
                                       order=order_label)]


def _injection_findings(knowledge: Knowledge, order: ClassifiedOrder, prior: Sequence[PriorInjection],
                        today: date) -> list[Finding]:
    rule = knowledge.config.rules.esi
    region = knowledge.config.regions.get(order.region, "")
    same_region = [injection for injection in prior if injection.region == order.region]
    findings = []
    if len(same_region) >= rule.max_sessions_per_region:
        findings.append(finding(knowledge, "esi-limit-exceeded", [r for i in same_region for r in i.references],
                                 region=region, session=len(same_region) + 1, limit=rule.max_sessions_per_region))
    if same_region:
        days_since = (today - same_region[-1].day).days
        if days_since < rule.min_days_between:
            findings.append(finding(knowledge, "esi-too-soon", [same_region[-1].reference], region=region,
                                     days_since=days_since, min_days=rule.min_days_between))
    if order.guidance not in knowledge.config.orders.esi.accepted_guidance:
        findings.append(finding(knowledge, "no-imaging-guidance"))
    if order.approach == "transforaminal" and order.region in rule.non_particulate_regions:
        findings.append(finding(knowledge, "esi-non-particulate", order=knowledge.config.order_label(
            order.category, order.region, order.kind)))
    return findings


def _symptom_findings(knowledge: Knowledge, onset: DiagnosisOnRecord | None, today: date) -> list[Finding]:
    """An ESI before the region's symptoms have lasted the weeks LCD L39240 asks for (by its first record)."""
    minimum = knowledge.config.diagnoses.min_symptom_days
    if onset is None or onset.onset is None or (today - onset.onset).days >= minimum:
        return []
    return [finding(knowledge, "esi-symptoms-recent", [onset.reference], condition=shorten(onset.description),
                    days=(today - onset.onset).days, min_days=minimum)]


def _ordered(knowledge: Knowledge, findings: list[Finding]) -> tuple[Finding, ...]:
    rank = ranks(knowledge, (f.code for f in findings))
    return tuple(sorted(findings, key=lambda f: rank[f.code]))


def _surgery_indication_findings(knowledge: Knowledge, order: ClassifiedOrder, label: str, record: PatientRecord,
                                 segments: frozenset[str], today: date) -> list[Finding]:
    """What the kind of surgery needs in its region is on record, and nothing that contraindicates it."""
    indication = knowledge.config.rules.surgery.indication(order.kind, order.region)
    findings = []
    if not has_indication(record, knowledge, indication.valuesets, segments, today):
        findings.append(finding(knowledge, indication.missing_finding, indication=indication.label, order=label))
    contraindication = next((condition for condition in record.conditions if is_active(condition, today) and any(
        knowledge.find(condition.codes, valueset) for valueset in indication.contraindications)), None)
    if contraindication:
        findings.append(finding(knowledge, "surgery-contraindicated", [contraindication.reference], order=label,
                                condition=shorten(describe(contraindication.codes, contraindication.text))))
    return findings


def order_segments(knowledge: Knowledge, region: str) -> frozenset[str]:
    return frozenset(knowledge.config.region_segments.get(region, ()))


class _RecordFacts:
    """What the record says, worked out once per call and shared by all its orders, so that the work
    of a call grows with its orders plus its record, not with their product."""

    def __init__(self, record: PatientRecord, knowledge: Knowledge, today: date,
                 session_orders: Sequence[DraftOrder]) -> None:
        self.record = record
        self.knowledge = knowledge
        self.today = today
        self.diagnoses = diagnoses_on_record(record, knowledge, today)
        self.red_flags = [d for d in self.diagnoses if d.is_red_flag]
        self.infections = recent_infections(record, knowledge, today)
        self.image_first = image_first_on_record(record, knowledge, today)
        self.studies = spine_studies(record, knowledge, today)
        self.session_referrals = session_referrals(session_orders, knowledge)
        self._histories: dict[Scope, ConservativeHistory] = {}
        self._referrals: dict[Scope, tuple[Referral, ...]] = {}
        self._prior: tuple[PriorInjection, ...] | None = None
        self._scores: ScoresOnRecord | None = None
        self._indication_findings: dict[tuple[str | None, str, frozenset[str]], list[Finding]] = {}

    def history(self, scope: Scope) -> ConservativeHistory:
        if scope not in self._histories:
            self._histories[scope] = conservative_history(self.record, self.knowledge, self.today, scope)
        return self._histories[scope]

    def pending_referrals(self, scope: Scope) -> tuple[Referral, ...]:
        if scope not in self._referrals:
            self._referrals[scope] = pending_referrals(self.record, self.session_referrals, self.knowledge,
                                                       self.history(scope), self.today)
        return self._referrals[scope]

    def prior_injections(self) -> tuple[PriorInjection, ...]:
        if self._prior is None:
            self._prior = prior_injections(self.record, self.knowledge, self.today,
                                           self.knowledge.config.rules.esi.session_window_days)
        return self._prior

    def scores(self) -> ScoresOnRecord:
        if self._scores is None:
            self._scores = ScoresOnRecord(self.record, self.knowledge)
        return self._scores

    def surgery_indication_findings(self, order: ClassifiedOrder, label: str, segments: frozenset[str]
                                    ) -> list[Finding]:
        key = (order.kind, order.region, segments)
        if key not in self._indication_findings:
            self._indication_findings[key] = _surgery_indication_findings(self.knowledge, order, label, self.record,
                                                                          segments, self.today)
        return list(self._indication_findings[key])


def _assess_order(order: ClassifiedOrder, facts: _RecordFacts) -> Assessment:
    knowledge, today = facts.knowledge, facts.today
    config = knowledge.config
    required = config.rules.of(order.category).min_conservative_days
    if order.category == "surgery":
        required = config.rules.surgery.indication(order.kind, order.region).min_conservative_days or required
    label = config.order_label(order.category, order.region, order.kind)
    segments = order_segments(knowledge, order.region)
    onset = problem_onset(facts.diagnoses, segments)
    scope = Scope(segments, required,
                  count_prior_esi=order.category == "surgery" and config.rules.surgery.prior_esi_counts,
                  problem_onset=onset.onset if onset else None)
    history = facts.history(scope)
    if order.category in INJECTIONS and (facts.red_flags or facts.infections):
        decision, findings = Decision.STOPPED, stopping_findings(
            knowledge, label, [(flag.reference, flag.description) for flag in facts.red_flags], facts.infections)
    else:
        decision, findings = _conservative_findings(knowledge, history, required, label, facts.red_flags)
    if order.category in INJECTIONS:
        findings += anticoagulant_findings(knowledge, facts.record, order, label, today)
    if not facts.red_flags and not facts.infections and not imaged(facts.studies, knowledge, order, segments, today):
        findings += image_first_findings(knowledge, facts.image_first, label) if facts.image_first else \
            [imaging_undocumented(knowledge, order, label)]
    prior: tuple[PriorInjection, ...] = ()
    readings: list[Reading] = []
    if order.category == "esi":
        findings += _symptom_findings(knowledge, onset, today)
        prior = facts.prior_injections()
        findings += _injection_findings(knowledge, order, prior, today)
        if not any(d.group == "qualifying" and d.fits(segments) for d in facts.diagnoses):
            findings.append(finding(knowledge, "no-qualifying-diagnosis", order=label))
        score_findings, readings = esi_score_findings(
            knowledge, facts.scores(), [i for i in prior if i.region == order.region],
            config.regions.get(order.region, ""), today)
        findings += score_findings
        prior = tuple(i for i in prior if i.region == order.region)
    elif order.category == "regenerative":
        prior = tuple(i for i in facts.prior_injections()
                      if Indication(True, order_segments(knowledge, i.region)).fits(segments))
        findings.append(finding(knowledge, "regenerative-investigational"))
        if config.rules.regenerative.prior_esi_required and not prior and \
                order.approach not in config.rules.regenerative.no_prior_esi_for:
            findings.append(finding(knowledge, "regenerative-before-esi", order=label))
    elif not facts.red_flags:
        findings += facts.surgery_indication_findings(order, label, segments)
        if order.kind in config.rules.surgery.readiness.kinds:
            readiness, readings = readiness_findings(knowledge, facts.record, today)
            findings += readiness
    return Assessment(
        order=order, order_label=label, decision=decision, required_days=required, history=history,
        findings=_ordered(knowledge, findings), diagnoses=facts.diagnoses,
        prior_injections=prior,
        pending_referrals=facts.pending_referrals(scope) if decision is Decision.NOT_MET else (),
        scores=tuple(readings), unreadable=facts.record.unreadable, partly_read=facts.record.partly_read,
    )


def assess(orders: Sequence[ClassifiedOrder], record: PatientRecord, knowledge: Knowledge, now: datetime,
           session_orders: Sequence[DraftOrder] = ()) -> list[Assessment]:
    """One Assessment per classified order in scope; `session_orders` are all draft orders of the session."""
    facts = _RecordFacts(record, knowledge, today_of(now), session_orders)
    return [_assess_order(order, facts) for order in orders]
