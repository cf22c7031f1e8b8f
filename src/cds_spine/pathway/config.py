"""The schema of cards/pathway.yaml: every section as a strict pydantic model, checked when the knowledge loads
(unknown fields, missing wording, summaries that could not fit on a card)."""
from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field, model_validator

from .card_wording import CardWording, PatientView, Timeline
from .rule_parameters import Anticoagulation, Citation, ImageFirst, Observations, Rules, SpineImaging, Strict
from .wording import PLACEHOLDER_WORST_CASE, SUMMARY_LIMIT, WORDING


class OrderKind(Strict):
    valueset: str
    label: str
    accepted_guidance: tuple[str, ...] = ()


class Orders(Strict):
    esi: OrderKind
    regenerative: OrderKind
    surgery: OrderKind


class Group(Strict):
    id: str
    label: str
    valueset: str
    needs_spine_reason: bool = False
    """Counts only when its reason is a spine condition (occupational therapy is mostly for other things)."""
    needs_pain_reason: bool = False
    """Counts only when its reason is a spine condition or pain (an antidepressant, a gabapentinoid or
    psychotherapy is often for something else: depression, diabetic neuropathy)."""


class Modality(Group):
    """A therapy recorded as a visit (a Procedure or a completed referral)."""


class MedicationGroup(Group):
    ingredients: tuple[str, ...] = Field(min_length=1)
    counts_for_any_condition: bool = False
    """A systemic analgesic taken long-term counts whatever it was taken for: the class has been tried."""


class Opioids(Strict):
    label: str
    valueset: str
    ingredients: tuple[str, ...] = Field(min_length=1)


class Referrals(Strict):
    valueset: str
    pending_days: int = Field(ge=0)


class Conservative(Strict):
    modalities: tuple[Modality, ...] = Field(min_length=1)
    medications: tuple[MedicationGroup, ...] = Field(min_length=1)
    opioids: Opioids
    not_counted: tuple[Group, ...] = ()
    referrals: Referrals


class MedicationCourses(Strict):
    active_without_end_is_ongoing: bool
    renewal_gap_days: int = Field(ge=0)
    refill_gap_days: int = Field(ge=0)
    not_taken_intents: tuple[str, ...]
    """MedicationRequest intents that are permission or a proposal to prescribe, not a drug supplied."""
    """After a prescription whose record states how long it lasts: a later one continues its course only when it
    starts within this many days of its end (renewal_gap_days is for prescriptions with no stated end)."""
    other_condition_long_term_counts: bool


class Reasons(Strict):
    attribution_days: int = Field(ge=0)
    attribution_valueset: str
    body_site_valueset: str
    nonspecific_valueset: str
    for_other_condition: str
    unnamed_condition: str
    for_other_region: str
    not_for_spine: str
    not_for_pain: str
    before_problem: str
    counted_for_other_condition: str
    counted_for_other_region: str


class DiagnosisGroup(Strict):
    valueset: str
    label: str


class RedFlag(Group):
    text: tuple[str, ...] = ()
    """Words that mark the red flag in a diagnosis's text when no code of any value set does (the last resort)."""
    acute_days: int | None = Field(default=None, ge=1)
    """A red flag whose onset is older than this is history, not a red flag (a paraplegia of many years); None:
    red as long as it is active. A red flag whose record gives no date stays red (the safe reading)."""


class RecentCondition(Strict):
    """A condition that counts only while recent (a systemic infection before an injection)."""

    label: str = Field(min_length=1)
    valueset: str
    within_days: int = Field(ge=1)


class Diagnoses(Strict):
    qualifying: DiagnosisGroup
    axial: DiagnosisGroup
    therapy_before_onset_days: int = Field(ge=0)
    min_symptom_days: int = Field(ge=0)
    red_flags: tuple[RedFlag, ...] = Field(min_length=1)
    systemic_infection: RecentCondition
    """A contraindication to any injection (not a red flag: it waives nothing at a surgery order)."""


FindingCode = Literal[
    "conservative-missing", "conservative-short", "esi-limit-exceeded", "esi-too-soon", "esi-poor-response",
    "regenerative-before-esi", "red-flag-injection", "injection-contraindicated", "anticoagulant",
    "anticoagulant-long-term", "image-first", "surgery-contraindicated", "fusion-without-instability", "red-flag",
    "regenerative-investigational", "no-imaging-guidance", "esi-non-particulate", "no-qualifying-diagnosis",
    "no-surgery-indication", "imaging-undocumented", "fusion-smoker", "fusion-hba1c", "esi-response-documented", "esi-response-undocumented",
    "esi-baseline-undocumented", "criteria-met", "esi-symptoms-recent",
]
Severity = Literal["info", "warning", "critical", "note"]
"""A `note` never leads a card: it is a line of the card's detail when there is a card, and in the audit."""
PATIENT_SUMMARY = "patient-summary"
"""The patient-view card's topic; every finding code is the topic of the order cards it leads."""


class FindingLine(Strict):
    """A line of the card's detail whenever the card shows the finding, with its source."""

    title: str = Field(min_length=1)
    text: str = Field(min_length=1)
    source: Citation


class FindingWording(Strict):
    severity: Severity
    summary: str = Field(min_length=1)
    short_summary: str | None = None
    """The words a card carries instead when the summary would reach the card's limit (a long diagnosis name):
    shorter around the name, so that a red flag's name is never cut."""
    line: FindingLine | None = None
    suggest: tuple[str, ...] = ()
    """The orders (`card.suggestions.orders`) a card this finding leads suggests, instead of a referral to
    conservative therapy; none: the referral where conservative therapy is not met."""
    override_reasons: tuple[str, ...] = ()
    """The override reasons (codes of `card.override_reasons.reasons`) a card this finding leads offers; none:
    every reason not kept for a finding of its own."""
    outranks: tuple[FindingCode, ...] = ()
    """Findings this one leads a card before, although they are more severe (the card keeps their indicator)."""


class PathwayConfig(Strict):
    title: str
    version: str
    lookback_days: int = Field(ge=1)
    episode_gap_days: int = Field(ge=0)
    orders: Orders
    regions: dict[str, str]
    region_segments: dict[str, tuple[str, ...]]
    medication_courses: MedicationCourses
    reasons: Reasons
    surgery_kinds: dict[str, str]
    conservative: Conservative
    diagnoses: Diagnoses
    anticoagulation: Anticoagulation
    image_first: ImageFirst
    imaging: SpineImaging
    observations: Observations
    rules: Rules
    findings: dict[FindingCode, FindingWording]
    card: CardWording
    patient_view: PatientView
    timeline: Timeline

    @model_validator(mode="after")
    def every_finding_is_worded(self) -> PathwayConfig:
        missing = set(get_args(FindingCode)) - set(self.findings)
        if missing:
            raise ValueError(f"findings: missing wording for {sorted(missing)}")
        return self

    @model_validator(mode="after")
    def suggestions_and_reasons_exist(self) -> PathwayConfig:
        orders = self.card.suggestions.orders
        reasons = {reason.code for reason in self.card.override_reasons.reasons}
        for code, wording in self.findings.items():
            unknown = sorted(set(wording.suggest) - set(orders))
            if unknown:
                raise ValueError(f"findings.{code}.suggest: no order {unknown[0]!r} in card.suggestions.orders")
            unknown = sorted(set(wording.override_reasons) - reasons)
            if unknown:
                raise ValueError(f"findings.{code}.override_reasons: no reason {unknown[0]!r} in "
                                 f"card.override_reasons.reasons")
        return self

    @model_validator(mode="after")
    def every_region_has_segments(self) -> PathwayConfig:
        missing = set(self.regions) - set(self.region_segments)
        if missing:
            raise ValueError(f"region_segments: no segments for region(s) {sorted(missing)}")
        missing = set(self.surgery_kinds) - set(self.rules.surgery.indications)
        if missing:
            raise ValueError(f"rules.surgery.indications: no indication for surgery kind(s) {sorted(missing)}")
        unknown = set(self.rules.surgery.readiness.kinds) - set(self.surgery_kinds)
        if unknown:
            raise ValueError(f"rules.surgery.readiness.kinds: unknown surgery kind(s) {sorted(unknown)}")
        return self

    @model_validator(mode="after")
    def summaries_fit_on_a_card(self) -> PathwayConfig:
        view = self.patient_view
        values = dict(PLACEHOLDER_WORST_CASE, order=self.longest_order_label(),
                      region=max(self.regions.values(), key=len),
                      indication=max((i.label for found in self.rules.surgery.indications.values() for i in found),
                                     key=len),
                      measure=max((score.label for score in self.observations.scores), key=len),
                      drug=max((drug.label for drug in self.anticoagulation.drugs), key=len),
                      hold=max((hold for drug in self.anticoagulation.drugs for hold in drug.hold.values()), key=len),
                      risk=max(self.anticoagulation.risk_labels.values(), key=len))
        card = self.card
        values["therapy"] = max([WORDING.format(card.therapy_days, days=365), *(
            WORDING.format(card.therapy_visits, count=99, label=modality.label.lower(), weeks=52)
            for modality in self.conservative.modalities)], key=len)
        response = self.rules.esi.response
        values["shortfall"] = max((template.format(value=values["value"], relief=values["relief"]) for template in
                                   (response.shortfall_percent, response.shortfall_points)), key=len)
        criteria = {f"patient_view.{name}": template for name, template in zip(
            ("met", "not_met", "exempt", "red_flag_stop", "infection_stop", "not_indicated", "limit_reached",
             "too_soon", "esi_first", "symptoms_recent", "poor_response", "image_first", "regenerative_met"),
            view.criteria(),
            strict=True)}
        longest = max((WORDING.format(template, **values) for name, template in criteria.items()
                       if name != "patient_view.regenerative_met"  # the detail's line only, never the summary's
                       and not ({field for _, field, _, _ in WORDING.parse(template) if field} - set(values))), key=len)
        values.update(esi=longest, surgery=longest)
        templates = {f"findings.{code}.summary": wording.summary for code, wording in self.findings.items()}
        templates.update({f"findings.{code}.short_summary": wording.short_summary
                          for code, wording in self.findings.items() if wording.short_summary})
        templates.update(criteria)
        templates["patient_view.summary"] = view.summary
        templates["patient_view.red_flag"] = view.red_flag
        for field_name, template in templates.items():
            unknown = {name for _, name, _, _ in WORDING.parse(template) if name} - set(values)
            if unknown:
                raise ValueError(f"{field_name}: unknown placeholder(s) {sorted(unknown)}")
            longest = WORDING.format(template, **values)
            if len(longest) >= SUMMARY_LIMIT:
                raise ValueError(f"{field_name}: can reach {len(longest)} characters; a summary must stay "
                                 f"under {SUMMARY_LIMIT}")
        return self

    def same_region(self, region: str) -> tuple[str, ...]:
        """The regions a reader takes for this one: those with its words ("lumbar": an ESI's lumbar-sacral and a
        surgery's lumbar), so that a filter on either finds both."""
        label = self.regions.get(region)
        return tuple(sorted(code for code, words in self.regions.items() if words and words == label)) or (region,)

    def region_choices(self) -> list[dict[str, str]]:
        """One choice per region's words, for a filter: its first code and its words."""
        first: dict[str, str] = {}
        for code in sorted(self.regions):
            first.setdefault(self.regions[code] or code, code)
        return [{"code": code, "label": label} for label, code in sorted(first.items())]

    def order_label(self, category: str, region: str, kind: str | None = None) -> str:
        template = getattr(self.orders, category).label
        label = template.format(region=self.regions.get(region, ""), kind=self.surgery_kinds.get(kind or "", ""))
        return " ".join(label.split())

    def longest_order_label(self) -> str:
        labels = [self.order_label(category, region) for region in self.regions for category in ("esi", "regenerative")]
        labels += [self.order_label("surgery", region, kind) for region in self.regions for kind in self.surgery_kinds]
        return max(labels, key=len)

    def referenced_valuesets(self) -> dict[str, str]:
        """Field path -> value set id, for every value set this file names."""
        refs = {"orders.esi.valueset": self.orders.esi.valueset,
                "orders.regenerative.valueset": self.orders.regenerative.valueset,
                "orders.surgery.valueset": self.orders.surgery.valueset,
                "conservative.opioids.valueset": self.conservative.opioids.valueset,
                "conservative.referrals.valueset": self.conservative.referrals.valueset,
                "reasons.attribution_valueset": self.reasons.attribution_valueset,
                "reasons.body_site_valueset": self.reasons.body_site_valueset,
                "reasons.nonspecific_valueset": self.reasons.nonspecific_valueset,
                "diagnoses.qualifying.valueset": self.diagnoses.qualifying.valueset,
                "diagnoses.axial.valueset": self.diagnoses.axial.valueset,
                "diagnoses.systemic_infection.valueset": self.diagnoses.systemic_infection.valueset,
                "anticoagulation.long_term_use_valueset": self.anticoagulation.long_term_use_valueset,
                "imaging.valueset": self.imaging.valueset,
                "imaging.modality_valueset": self.imaging.modality_valueset,
                "imaging.body_site_valueset": self.imaging.body_site_valueset,
                **self.observations.valuesets()}
        for kind, found in self.rules.surgery.indications.items():
            for n, indication in enumerate(found):
                refs.update({f"rules.surgery.indications.{kind}[{n}].valuesets[{i}]": valueset
                             for i, valueset in enumerate(indication.valuesets + indication.contraindications)})
        for path, groups in (("conservative.modalities", self.conservative.modalities),
                             ("conservative.medications", self.conservative.medications),
                             ("conservative.not_counted", self.conservative.not_counted),
                             ("diagnoses.red_flags", self.diagnoses.red_flags)):
            refs.update({f"{path}[{i}].valueset": group.valueset for i, group in enumerate(groups)})
        refs.update({f"image_first.flags[{i}].valueset": flag.valueset for i, flag in enumerate(self.image_first.flags)})
        return refs
