"""The rules: one Assessment per ESI or spine-surgery order, and a summary for patient-view.

Pure: no I/O, no clock of its own (`now` is passed in), nothing imported from outside pathway/.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import Enum

from .evidence import ConservativeHistory, Scope, conservative_history
from .findings import SEVERITY_RANK, Finding, finding
from .injections import PriorInjection, prior_injections
from .knowledge import CONDITION_DISPLAY_LIMIT, Knowledge
from .observation_rules import ScoresOnRecord, esi_score_findings, readiness_findings
from .orders import ClassifiedOrder
from .reasons import Indication, describe
from .record import DraftOrder, PatientRecord
from .referrals import Referral, pending_referrals, session_referrals
from .scores import Reading
from .timing import is_active


class Decision(str, Enum):
    """Whether the conservative-therapy requirement is satisfied."""

    MET = "met"
    NOT_MET = "not-met"
    EXEMPT = "exempt"


class Criteria(str, Enum):
    """For patient-view: where the patient stands for an ESI or for spine surgery today."""

    MET = "met"
    NOT_MET = "not-met"
    EXEMPT = "exempt"
    NOT_INDICATED = "not-indicated"
    LIMIT_REACHED = "limit-reached"
    """ESI: the most injections a region allows in the window are done."""
    TOO_SOON = "too-soon"
    """ESI: the last injection in a region was too recent."""
    ESI_FIRST = "esi-first"
    """Regenerative injection: the pathway places it after an ESI, and none is on record."""


@dataclass(frozen=True)
class DiagnosisOnRecord:
    reference: str
    description: str
    group: str  # "qualifying", "axial" or a red-flag id
    segments: frozenset[str] = frozenset()  # empty: no region
    dated: bool = True  # False: the record gives no date (no onset, recorded date or encounter)

    def fits(self, segments: frozenset[str]) -> bool:
        return Indication(True, self.segments).fits(segments)

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


@dataclass(frozen=True)
class RegionInjections:
    """The completed ESIs of one region in the window, against the frequency and interval rules."""

    region: str
    injections: tuple[PriorInjection, ...]
    limit: int
    min_days_between: int
    today: date

    @property
    def limit_reached(self) -> bool:
        return len(self.injections) >= self.limit

    @property
    def days_since(self) -> int:
        return (self.today - self.injections[-1].day).days

    @property
    def next_day(self) -> date:
        """The first day another injection in this region keeps the interval rule."""
        return self.injections[-1].day + timedelta(days=self.min_days_between)

    @property
    def too_soon(self) -> bool:
        return self.days_since < self.min_days_between


@dataclass(frozen=True)
class PatientSummary:
    """For patient-view: the conservative therapy on record and where ESI and surgery stand, by the
    order-independent rules: red flags, indications, days of therapy, and ESIs per region."""

    diagnoses: tuple[DiagnosisOnRecord, ...]
    history: ConservativeHistory
    surgery_days: int
    esi: Criteria
    surgery: Criteria
    injections: tuple[RegionInjections, ...] = ()
    """Regions with completed ESIs in the window, oldest injection first."""
    blocking: RegionInjections | None = None
    """The region whose injections set `esi` to LIMIT_REACHED or TOO_SOON."""
    esi_required: int = 0
    surgery_required: int = 0
    regenerative: Criteria = Criteria.NOT_MET

    @property
    def red_flags(self) -> tuple[DiagnosisOnRecord, ...]:
        return tuple(d for d in self.diagnoses if d.is_red_flag)


def today_of(now: datetime) -> date:
    return now.astimezone(UTC).date() if now.tzinfo else now.date()


def shorten(text: str, limit: int = CONDITION_DISPLAY_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def diagnoses_on_record(record: PatientRecord, knowledge: Knowledge, today: date) -> tuple[DiagnosisOnRecord, ...]:
    """Active conditions in the qualifying, axial-pain or red-flag value sets."""
    config = knowledge.config.diagnoses
    groups = [(flag.id, flag.valueset) for flag in config.red_flags]
    groups += [("qualifying", config.qualifying.valueset), ("axial", config.axial.valueset)]
    found = []
    for condition in record.conditions:
        if not is_active(condition, today):
            continue
        for group, valueset in groups:
            membership = knowledge.find(condition.codes, valueset)
            if membership:
                found.append(DiagnosisOnRecord(condition.reference, describe(condition.codes, condition.text), group,
                                               knowledge.segments(membership), condition.onset is not None))
    return tuple(found)


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
                                          condition=shorten(flag.description))]
    if history.days >= required:
        return Decision.MET, []
    lookback_months = round(knowledge.config.lookback_days / 30.4)
    if not history.evidence:
        return Decision.NOT_MET, [finding(knowledge, "conservative-missing", lookback_months=lookback_months,
                                           order=order_label)]
    return Decision.NOT_MET, [finding(knowledge, "conservative-short",
                                       [reference for e in history.evidence for reference in e.references],
                                       days=history.days, required=required, order=order_label)]


def _injection_findings(knowledge: Knowledge, order: ClassifiedOrder, prior: Sequence[PriorInjection],
                        today: date) -> list[Finding]:
    rule = knowledge.config.rules.esi
    region = knowledge.config.regions.get(order.region, "")
    same_region = [injection for injection in prior if injection.region == order.region]
    findings = []
    if len(same_region) >= rule.max_sessions_per_region:
        findings.append(finding(knowledge, "esi-limit-exceeded", [i.reference for i in same_region],
                                 region=region, session=len(same_region) + 1, limit=rule.max_sessions_per_region))
    if same_region:
        days_since = (today - same_region[-1].day).days
        if days_since < rule.min_days_between:
            findings.append(finding(knowledge, "esi-too-soon", [same_region[-1].reference], region=region,
                                     days_since=days_since, min_days=rule.min_days_between))
    if order.guidance not in knowledge.config.orders.esi.accepted_guidance:
        findings.append(finding(knowledge, "no-imaging-guidance"))
    return findings


def _ordered(knowledge: Knowledge, findings: list[Finding]) -> tuple[Finding, ...]:
    position = {code: i for i, code in enumerate(knowledge.config.findings)}
    return tuple(sorted(findings, key=lambda f: (SEVERITY_RANK[f.severity], position[f.code])))


def _surgery_indicationfinding(knowledge: Knowledge, order: ClassifiedOrder, record: PatientRecord,
                                segments: frozenset[str], today: date) -> list[Finding]:
    indications = knowledge.config.rules.surgery.indications
    indication = indications.get(order.kind or "") or indications["unspecified"]
    if has_indication(record, knowledge, indication.valuesets, segments, today):
        return []
    return [finding(knowledge, "no-surgery-indication", indication=indication.label)]


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
        self.session_referrals = session_referrals(session_orders, knowledge)
        self._histories: dict[Scope, ConservativeHistory] = {}
        self._referrals: dict[Scope, tuple[Referral, ...]] = {}
        self._prior: tuple[PriorInjection, ...] | None = None
        self._scores: ScoresOnRecord | None = None
        self._indication_findings: dict[tuple[str | None, frozenset[str]], list[Finding]] = {}

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

    def surgery_indication_findings(self, order: ClassifiedOrder, segments: frozenset[str]) -> list[Finding]:
        key = (order.kind, segments)
        if key not in self._indication_findings:
            self._indication_findings[key] = _surgery_indicationfinding(self.knowledge, order, self.record,
                                                                         segments, self.today)
        return list(self._indication_findings[key])


def _assess_order(order: ClassifiedOrder, facts: _RecordFacts) -> Assessment:
    knowledge, today = facts.knowledge, facts.today
    config = knowledge.config
    required = config.rules.of(order.category).min_conservative_days
    label = config.order_label(order.category, order.region, order.kind)
    segments = order_segments(knowledge, order.region)
    scope = Scope(segments, required,
                  count_prior_esi=order.category == "surgery" and config.rules.surgery.prior_esi_counts)
    history = facts.history(scope)
    decision, findings = _conservative_findings(knowledge, history, required, label, facts.red_flags)
    prior: tuple[PriorInjection, ...] = ()
    readings: list[Reading] = []
    if order.category == "esi":
        prior = facts.prior_injections()
        findings += _injection_findings(knowledge, order, prior, today)
        if not any(d.group == "qualifying" and d.fits(segments) for d in facts.diagnoses):
            findings.append(finding(knowledge, "no-qualifying-diagnosis"))
        score_findings, readings = esi_score_findings(
            knowledge, facts.scores(), [i for i in prior if i.region == order.region],
            config.regions.get(order.region, ""), today)
        findings += score_findings
        prior = tuple(i for i in prior if i.region == order.region)
    elif order.category == "regenerative":
        prior = tuple(i for i in facts.prior_injections()
                      if Indication(True, order_segments(knowledge, i.region)).fits(segments))
        findings.append(finding(knowledge, "regenerative-investigational"))
        if config.rules.regenerative.prior_esi_required and not prior:
            findings.append(finding(knowledge, "regenerative-before-esi", order=label))
    elif not facts.red_flags:
        findings += facts.surgery_indication_findings(order, segments)
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


def summarize_patient(record: PatientRecord, knowledge: Knowledge, now: datetime) -> PatientSummary | None:
    """None when the patient has no active spine diagnosis (qualifying, axial pain or red flag). The order-
    independent rules apply as on an order: no ESI without a qualifying diagnosis, no surgery without one
    of its indications; a red flag waives the conservative requirement."""
    today = today_of(now)
    diagnoses = diagnoses_on_record(record, knowledge, today)
    if not diagnoses:
        return None
    rules = knowledge.config.rules
    exempt = any(d.is_red_flag for d in diagnoses)
    history = conservative_history(record, knowledge, today, Scope(frozenset(), rules.esi.min_conservative_days,
                                                                     count_prior_esi=False))
    surgery_days = conservative_history(record, knowledge, today, Scope(
        frozenset(), rules.surgery.min_conservative_days, count_prior_esi=rules.surgery.prior_esi_counts)).days
    qualifying = [d for d in diagnoses if d.group == "qualifying"]
    surgery_indicated = has_indication(record, knowledge, sorted({valueset for indication in
                                       rules.surgery.indications.values() for valueset in indication.valuesets}),
                                       frozenset(), today)
    injections = injections_by_region(record, knowledge, today)
    # A region at its limit, or injected too recently, blocks an ESI there: the first such region where a
    # qualifying diagnosis is.
    blocking = next((region for region in injections if (region.limit_reached or region.too_soon) and any(
        d.fits(order_segments(knowledge, region.region)) for d in qualifying)), None)

    def criteria(days: int, required: int, indicated: bool) -> Criteria:
        if exempt:
            return Criteria.EXEMPT
        if not indicated:
            return Criteria.NOT_INDICATED
        return Criteria.MET if days >= required else Criteria.NOT_MET

    esi = criteria(history.days, rules.esi.min_conservative_days, bool(qualifying))
    if blocking and esi is not Criteria.NOT_INDICATED:
        esi = Criteria.LIMIT_REACHED if blocking.limit_reached else Criteria.TOO_SOON
    regenerative = criteria(history.days, rules.regenerative.min_conservative_days, True)
    if regenerative is Criteria.MET and rules.regenerative.prior_esi_required and not injections:
        regenerative = Criteria.ESI_FIRST
    return PatientSummary(diagnoses, history, surgery_days, esi,
                          criteria(surgery_days, rules.surgery.min_conservative_days, surgery_indicated),
                          injections, blocking if esi in (Criteria.LIMIT_REACHED, Criteria.TOO_SOON) else None,
                          rules.esi.min_conservative_days, rules.surgery.min_conservative_days, regenerative)


def injections_by_region(record: PatientRecord, knowledge: Knowledge, today: date) -> tuple[RegionInjections, ...]:
    """Completed ESIs in the session window, grouped by region, in the order each region was first injected."""
    rule = knowledge.config.rules.esi
    by_region: dict[str, list[PriorInjection]] = {}
    for injection in prior_injections(record, knowledge, today, rule.session_window_days):
        by_region.setdefault(injection.region, []).append(injection)
    return tuple(RegionInjections(region, tuple(found), rule.max_sessions_per_region, rule.min_days_between, today)
                 for region, found in by_region.items())
