"""The schema of cards/pathway.yaml: every section as a strict pydantic model, checked when the knowledge loads
(unknown fields, missing wording, summaries that could not fit on a card)."""
from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field, HttpUrl, model_validator

from .rule_parameters import Observations, Rules, Strict
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


class Modality(Group):
    # True: counts only when its reason is a spine condition (occupational therapy is mostly for other things).
    needs_spine_reason: bool = False


class MedicationGroup(Group):
    ingredients: tuple[str, ...] = Field(min_length=1)


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
    counted_for_other_condition: str
    counted_for_other_region: str


class DiagnosisGroup(Strict):
    valueset: str
    label: str


class Diagnoses(Strict):
    qualifying: DiagnosisGroup
    axial: DiagnosisGroup
    red_flags: tuple[Group, ...] = Field(min_length=1)


FindingCode = Literal[
    "conservative-missing", "conservative-short", "esi-limit-exceeded", "esi-too-soon", "esi-poor-response",
    "regenerative-before-esi", "red-flag", "regenerative-investigational", "no-imaging-guidance", "no-qualifying-diagnosis", "no-surgery-indication", "fusion-smoker",
    "fusion-hba1c", "esi-response-documented", "esi-response-undocumented", "esi-baseline-undocumented",
    "criteria-met",
]
Severity = Literal["info", "warning", "critical", "note"]
"""A `note` never leads a card: it is a line of the card's detail when there is a card, and in the audit."""
PATIENT_SUMMARY = "patient-summary"
"""The patient-view card's topic; every finding code is the topic of the order cards it leads."""


class FindingWording(Strict):
    severity: Severity
    summary: str = Field(min_length=1)


class Detail(Strict):
    found_heading: str
    nothing_found: str
    procedure_line: str
    medication_line: str
    episode: str
    missing: str
    not_counted_heading: str
    not_counted_line: str
    not_counted_once: str
    not_counted_more: str
    not_counted_limit: int = Field(ge=1)
    also_heading: str
    on_record_heading: str
    score_line: str
    pending_referral: str
    red_flag_line: str
    prior_esi_line: str
    diagnosis_line: str
    unreadable: str
    partly_read: str
    undated: str
    rule: str


class Referral(Strict):
    system: str
    code: str
    display: str
    text: str


class Suggestions(Strict):
    replace_label: str
    replace_delete_description: str
    add_label: str
    create_description: str
    referral: Referral


class OverrideReason(Strict):
    code: str = Field(min_length=1)
    display: str = Field(min_length=1)
    standard: str | None = None
    """The code of `standard_system` that means the same, where one fits."""
    guideline_supported: bool
    """The guideline itself makes this exception (the report cards' share of supported overrides)."""


class OverrideReasons(Strict):
    system: str = Field(min_length=1)
    standard_system: str = Field(min_length=1)
    """The CDS Hooks 3.0 ballot's override-reason code system (from AHRQ's CDS Innovation Collaborative)."""
    reasons: tuple[OverrideReason, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def one_reason_per_standard_code(self) -> OverrideReasons:
        standard = [reason.standard for reason in self.reasons if reason.standard]
        if len(standard) != len(set(standard)):
            raise ValueError(f"two reasons share a standard code ({sorted(standard)}): feedback in the standard "
                             f"system could not be read back as one reason")
        return self

    def canonical(self, system: str | None, code: str | None) -> tuple[str | None, str | None]:
        """A feedback's reason as this service's coding, whichever of the two codings the EHR sent back."""
        if system == self.standard_system:
            for reason in self.reasons:
                if reason.standard == code:
                    return self.system, reason.code
        return system, code


class CardWording(Strict):
    source_label: str = Field(min_length=1)
    source_url: HttpUrl
    smart_link_label: str = Field(min_length=1)
    annotation_description: str = Field(min_length=1)
    """The system action that records the assessment on the order (CDS_SPINE_ANNOTATE_ORDERS)."""
    pathway: str
    detail: Detail
    suggestions: Suggestions
    override_reasons: OverrideReasons


class PatientView(Strict):
    """The patient-view card: where ESI and surgery stand by the rules that need no order."""

    summary: str
    red_flag: str
    red_flag_severity: Literal["warning", "critical"]
    met: str
    not_met: str
    exempt: str
    not_indicated: str
    limit_reached: str
    too_soon: str
    esi_name: str
    regenerative_name: str
    surgery_name: str
    esi_first: str
    """Regenerative injection: the pathway places it after an ESI, and none is on record."""
    standing_heading: str
    standing_line: str
    missing: str
    injections_line: str

    def criteria(self) -> tuple[str, ...]:
        return (self.met, self.not_met, self.exempt, self.not_indicated, self.limit_reached, self.too_soon,
                self.esi_first)


class Timeline(Strict):
    """The pathway timeline's headings and labels (the SMART app)."""

    title: str
    order_heading: str
    standing_heading: str
    diagnoses_heading: str
    red_flag_label: str
    no_region: str
    therapy_heading: str
    counted: str
    not_counted: str
    episode: str
    no_episode: str
    threshold: str
    injections_heading: str
    no_injections: str
    scores_heading: str
    no_scores: str
    table_heading: str
    no_spine_data: str


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
                      indication=max((i.label for i in self.rules.surgery.indications.values()), key=len),
                      measure=max((score.label for score in self.observations.scores), key=len))
        response = self.rules.esi.response
        values["shortfall"] = max((template.format(value=values["value"]) for template in
                                   (response.shortfall_percent, response.shortfall_points)), key=len)
        criteria = {f"patient_view.{name}": template for name, template in zip(
            ("met", "not_met", "exempt", "not_indicated", "limit_reached", "too_soon", "esi_first"), view.criteria(),
            strict=True)}
        longest = max((WORDING.format(template, **values) for template in criteria.values()
                       if not ({name for _, name, _, _ in WORDING.parse(template) if name} - set(values))), key=len)
        values.update(esi=longest, surgery=longest)
        templates = {f"findings.{code}.summary": wording.summary for code, wording in self.findings.items()}
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
                **self.observations.valuesets()}
        for kind, indication in self.rules.surgery.indications.items():
            refs.update({f"rules.surgery.indications.{kind}.valuesets[{i}]": valueset
                         for i, valueset in enumerate(indication.valuesets)})
        for path, groups in (("conservative.modalities", self.conservative.modalities),
                             ("conservative.medications", self.conservative.medications),
                             ("conservative.not_counted", self.conservative.not_counted),
                             ("diagnoses.red_flags", self.diagnoses.red_flags)):
            refs.update({f"{path}[{i}].valueset": group.valueset for i, group in enumerate(groups)})
        return refs
