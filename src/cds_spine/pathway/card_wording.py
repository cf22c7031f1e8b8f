"""The schema of the wording sections of cards/pathway.yaml: the card's detail, suggestions and override reasons,
the patient-view card and the pathway timeline."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, HttpUrl, model_validator

from .rule_parameters import Strict


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
    red_flag_from_text: str
    prior_esi_line: str
    diagnosis_line: str
    unreadable: str
    partly_read: str
    counted_kind: str
    partly_read_entry: str
    out_of_scale: str
    unknown_day: str
    entry_kinds: dict[str, str] = Field(min_length=1)
    undated: str
    rule: str
    finding_line: str


class Referral(Strict):
    system: str
    code: str
    display: str
    text: str


class OrderCode(Strict):
    code: str = Field(min_length=1)
    display: str = Field(min_length=1)


class SuggestedOrder(Strict):
    """An order a card suggests in place of the draft order (an urgent MRI of the order's region)."""

    label: str = Field(min_length=1)
    description: str = Field(min_length=1)
    priority: Literal["routine", "urgent", "asap", "stat"]
    system: str = Field(min_length=1)
    codes: dict[str, OrderCode] = Field(min_length=1)
    """By the draft order's region; `any` for every region. A region with neither gets no suggestion."""
    text: str = Field(min_length=1)
    replaces_order: bool = False
    """True: the suggestion also removes the draft order (the injection should not go ahead)."""

    def code_for(self, region: str) -> OrderCode | None:
        return self.codes.get(region) or self.codes.get("any")


class Suggestions(Strict):
    replace_label: str
    replace_delete_description: str
    add_label: str
    create_description: str
    referral: Referral
    orders: dict[str, SuggestedOrder] = {}


class OverrideReason(Strict):
    code: str = Field(min_length=1)
    display: str = Field(min_length=1)
    standard: str | None = None
    """The code of `standard_system` that means the same, where one fits."""
    guideline_supported: bool
    """The guideline itself makes this exception (the report cards' share of supported overrides)."""
    own_finding: bool = False
    """Offered only on the cards of the findings that name it (`findings.<code>.override_reasons`)."""


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
    order_joiner: str = Field(min_length=1)
    """Between the orders one card speaks for (orders that share a finding)."""
    therapy_days: str
    """The therapy of the longest episode, in days ({days}): any mix, or drugs."""
    therapy_visits: str
    """The same, when it is visits of one modality alone, as a clinician counts them ({count}, {label}, {weeks})."""
    therapy_visits_one_day: str
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
    red_flag_stop: str
    """An injection: not before urgent evaluation of the red flag."""
    infection_stop: str
    """An injection: not while a systemic infection lasts."""
    not_indicated: str
    limit_reached: str
    too_soon: str
    symptoms_recent: str
    """ESI: before the spine problem has lasted the weeks of symptoms an ESI needs ({next}: the first day)."""
    poor_response: str
    """ESI: the last one in the region gave too little relief."""
    image_first: str
    """ESI: MRI or CT of the region first (a flag for imaging first, none on record)."""
    esi_name: str
    regenerative_name: str
    surgery_name: str
    esi_first: str
    """Regenerative injection: the pathway places it after an ESI, and none is on record."""
    regenerative_met: str
    """Regenerative injection, where `met` would stand: investigational, not a next step a payer covers."""
    standing_heading: str
    standing_line: str
    missing: str
    injections_line: str

    def criteria(self) -> tuple[str, ...]:
        return (self.met, self.not_met, self.exempt, self.red_flag_stop, self.infection_stop, self.not_indicated,
                self.limit_reached, self.too_soon, self.esi_first, self.symptoms_recent, self.poor_response,
                self.image_first, self.regenerative_met)


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
    threshold_reached: str
    """The day a threshold was reached ({day})."""
    threshold_ahead: str
    """A threshold not reached yet: the day it would be if the therapy of the longest episode goes on ({day})."""
    threshold_missed: str
    """A threshold the longest episode ended before ({end})."""
    injections_heading: str
    no_injections: str
    scores_heading: str
    no_scores: str
    table_heading: str
    no_spine_data: str
