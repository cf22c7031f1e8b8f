"""Where the patient stands, for patient-view and the timeline: the rules that need no order (red flags,
indications, days of therapy, ESIs per region), in the same terms as the order cards.

Pure: no I/O, no clock of its own (`now` is passed in), nothing imported from outside pathway/.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import Enum

from .assessment import (
    Assessment,
    Decision,
    DiagnosisOnRecord,
    assess,
    diagnoses_on_record,
    has_indication,
    order_segments,
    problem_onset,
    today_of,
)
from .evidence import ConservativeHistory, Scope, conservative_history
from .injections import PriorInjection, prior_injections
from .knowledge import Knowledge
from .orders import ClassifiedOrder
from .record import DraftOrder, PatientRecord
from .safety import ConditionOnRecord, recent_infections


class Criteria(str, Enum):
    """For patient-view: where the patient stands for an ESI or for spine surgery today."""

    MET = "met"
    NOT_MET = "not-met"
    EXEMPT = "exempt"
    RED_FLAG_STOP = "red-flag-stop"
    """An injection: not before urgent evaluation of the red flag."""
    INFECTION_STOP = "infection-stop"
    """An injection: not while a recent systemic infection lasts."""
    NOT_INDICATED = "not-indicated"
    LIMIT_REACHED = "limit-reached"
    """ESI: the most injections a region allows in the window are done."""
    TOO_SOON = "too-soon"
    """ESI: the last injection in a region was too recent."""
    ESI_FIRST = "esi-first"
    """Regenerative injection: the pathway places it after an ESI, and none is on record."""
    SYMPTOMS_RECENT = "symptoms-recent"
    """ESI: the spine problem was first recorded less than the weeks of symptoms an ESI needs ago."""
    POOR_RESPONSE = "poor-response"
    """ESI: the last one in the region gave too little relief."""
    IMAGE_FIRST = "image-first"
    """ESI: a flag for imaging first, and no MRI or CT of the region on record."""


ESI_FINDING_CRITERIA = {"esi-limit-exceeded": Criteria.LIMIT_REACHED, "esi-too-soon": Criteria.TOO_SOON,
                        "image-first": Criteria.IMAGE_FIRST, "esi-poor-response": Criteria.POOR_RESPONSE}
"""The order card's findings that keep an ESI from "criteria met", worst first (the stops come before them)."""


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
    esi_from: date | None = None
    """With SYMPTOMS_RECENT: the first day the symptoms have lasted the weeks an ESI needs."""
    esi_region: str | None = None
    """The region an ESI order card would speak of (the one whose standing `esi` is)."""

    @property
    def red_flags(self) -> tuple[DiagnosisOnRecord, ...]:
        return tuple(d for d in self.diagnoses if d.is_red_flag)


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
    infections = recent_infections(record, knowledge, today)
    first = problem_onset(diagnoses, frozenset())
    onset = first.onset if first else None
    history = conservative_history(record, knowledge, today, Scope(frozenset(), rules.esi.min_conservative_days,
                                                                     count_prior_esi=False, problem_onset=onset))
    surgery_days = conservative_history(record, knowledge, today, Scope(
        frozenset(), rules.surgery.min_conservative_days, count_prior_esi=rules.surgery.prior_esi_counts,
        problem_onset=onset)).days
    qualifying = [d for d in diagnoses if d.group == "qualifying"]
    surgery_indicated = has_indication(record, knowledge, sorted({valueset for found in
                                       rules.surgery.indications.values() for valueset in found[-1].valuesets}),
                                       frozenset(), today)
    injections = injections_by_region(record, knowledge, today)
    blocking = None  # the region whose injections keep the ESI waiting (its limit or interval), if that is it

    def criteria(days: int, required: int, indicated: bool) -> Criteria:
        if exempt:
            return Criteria.EXEMPT
        if not indicated:
            return Criteria.NOT_INDICATED
        return Criteria.MET if days >= required else Criteria.NOT_MET

    esi, esi_region, esi_from = criteria(history.days, rules.esi.min_conservative_days, bool(qualifying)), None, None
    if esi is Criteria.MET or esi is Criteria.NOT_MET:
        # As the order card of an ESI in each region of a radicular or stenosis diagnosis would say it: the
        # region that stands worst is the one patient-view speaks of, with its own days of therapy.
        standing = max((_esi_standing(assessment, today, knowledge) for assessment in assess(
            [order for region, order in representative_esis(knowledge).items()
             if any(d.fits(order_segments(knowledge, region)) for d in qualifying)], record, knowledge, now)),
            key=lambda found: ESI_RANK.index(found[0]), default=None)
        if standing:
            esi, assessment, esi_from = standing
            history, esi_region = assessment.history, assessment.order.region
            if esi in (Criteria.LIMIT_REACHED, Criteria.TOO_SOON):
                blocking = next((region for region in injections if region.region == esi_region), None)
    regenerative = criteria(history.days, rules.regenerative.min_conservative_days, True)
    if regenerative is Criteria.MET and rules.regenerative.prior_esi_required and not injections:
        regenerative = Criteria.ESI_FIRST
    stop = _injection_stop(exempt, infections)
    if stop:
        esi = regenerative = stop
    return PatientSummary(diagnoses, history, surgery_days, esi,
                          criteria(surgery_days, rules.surgery.min_conservative_days, surgery_indicated),
                          injections, blocking if esi in (Criteria.LIMIT_REACHED, Criteria.TOO_SOON) else None,
                          rules.esi.min_conservative_days, rules.surgery.min_conservative_days, regenerative,
                          esi_from if esi is Criteria.SYMPTOMS_RECENT else None, esi_region)


ESI_RANK = (Criteria.MET, Criteria.NOT_MET, Criteria.SYMPTOMS_RECENT, Criteria.POOR_RESPONSE, Criteria.IMAGE_FIRST,
            Criteria.TOO_SOON, Criteria.LIMIT_REACHED)
"""Where an ESI can stand in a region, from best to worst."""


def representative_esis(knowledge: Knowledge) -> dict[str, ClassifiedOrder]:
    """One image-guided ESI order per region of the ESI value set: the order patient-view assesses for it."""
    esi = knowledge.config.orders.esi
    found: dict[str, ClassifiedOrder] = {}
    for code in knowledge.valueset_codes[esi.valueset]:
        membership = knowledge.find([code], esi.valueset)
        region = membership.attributes.get("region") if membership else None
        if membership and region and region not in found and membership.attributes.get("guidance") in esi.accepted_guidance:
            found[region] = ClassifiedOrder(DraftOrder(None, (code,), None, "draft"), "esi", code, region,
                                            membership.attributes.get("guidance"), membership.attributes.get("approach"))
    return found


def _esi_standing(assessment: Assessment, today: date, knowledge: Knowledge
                  ) -> tuple[Criteria, Assessment, date | None]:
    """Where an ESI stands by its order card: the worst finding that keeps it from "criteria met", else the
    therapy, else the weeks of symptoms (with the day they are reached)."""
    codes = {found.code for found in assessment.findings}
    worst = next((ESI_FINDING_CRITERIA[code] for code in ESI_FINDING_CRITERIA if code in codes), None)
    symptoms = next((found for found in assessment.findings if found.code == "esi-symptoms-recent"), None)
    symptoms_from = today + timedelta(days=knowledge.config.diagnoses.min_symptom_days - int(
        dict(symptoms.facts)["days"])) if symptoms else None
    if worst is not None:
        return worst, assessment, None
    therapy_done = today + timedelta(days=max(0, assessment.required_days - assessment.history.days))
    if symptoms_from and symptoms_from > therapy_done:  # the later of the two says when
        return Criteria.SYMPTOMS_RECENT, assessment, symptoms_from
    return (Criteria.NOT_MET if assessment.decision is Decision.NOT_MET else Criteria.MET), assessment, None


def _injection_stop(red_flag: bool, infections: Sequence[ConditionOnRecord]) -> Criteria | None:
    """Where every injection stands when something stops the needle, as the order card says it."""
    if red_flag:
        return Criteria.RED_FLAG_STOP
    return Criteria.INFECTION_STOP if infections else None


def injections_by_region(record: PatientRecord, knowledge: Knowledge, today: date) -> tuple[RegionInjections, ...]:
    """Completed ESIs in the session window, grouped by region, in the order each region was first injected."""
    rule = knowledge.config.rules.esi
    by_region: dict[str, list[PriorInjection]] = {}
    for injection in prior_injections(record, knowledge, today, rule.session_window_days):
        by_region.setdefault(injection.region, []).append(injection)
    return tuple(RegionInjections(region, tuple(found), rule.max_sessions_per_region, rule.min_days_between, today)
                 for region, found in by_region.items())
