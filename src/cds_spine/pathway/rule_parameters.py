"""The parameters of the rules in cards/pathway.yaml: each rule's thresholds, windows and source, and the
scores and results the rules read from Observations."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator


class Strict(BaseModel):
    """Every section of cards/pathway.yaml: unknown fields refused, immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Citation(Strict):
    label: str = Field(min_length=1)
    url: HttpUrl


class EsiResponse(Strict):
    """The response to the last ESI in a region: the score closest before it against the latest one within the
    window after it."""

    before_days: int = Field(ge=0)
    after_min_days: int = Field(ge=0)
    after_max_days: int = Field(ge=1)
    min_percent: float = Field(gt=0, le=100)
    shortfall_percent: str = Field(min_length=1)
    """How a poor response on a percent scale ends the warning ({relief}: the relief in percent; {value}:
    `min_percent`)."""
    shortfall_points: str = Field(min_length=1)
    """How a poor response on a T-score ends the warning ({relief}: the points better; {value}: the score's
    `min_points`)."""


class EsiRule(Strict):
    min_conservative_days: int = Field(ge=0)
    max_sessions_per_region: int = Field(ge=1)
    session_window_days: int = Field(ge=1)
    min_days_between: int = Field(ge=0)
    non_particulate_regions: tuple[str, ...] = ()
    baseline_days: int = Field(ge=0)
    response: EsiResponse
    rule: str
    source: Citation


class Indication(Strict):
    """What a kind of surgery needs, in the regions it applies to (the first of a kind's list whose regions hold the
    order's region)."""

    regions: tuple[str, ...] = ()
    """The order regions it applies to; empty: any."""
    label: str = Field(min_length=1)
    valuesets: tuple[str, ...] = Field(min_length=1)
    min_conservative_days: int | None = Field(default=None, ge=0)
    """The conservative care this indication needs (spondylolisthesis: 3 months); None: the surgery rule's."""
    missing_finding: Literal["no-surgery-indication", "fusion-without-instability"] = "no-surgery-indication"
    """The finding when no diagnosis of `valuesets` is on record."""
    contraindications: tuple[str, ...] = ()
    """Value sets of labelled contraindications (stenosis before a lumbar disc arthroplasty)."""

    def applies(self, region: str) -> bool:
        return not self.regions or region in self.regions


class Readiness(Strict):
    """Elective fusion: nicotine-free status and a controlled HbA1c first."""

    kinds: tuple[str, ...] = Field(min_length=1)
    smoking_status_days: int = Field(ge=1)
    hba1c_days: int = Field(ge=1)
    max_hba1c: float = Field(gt=0)
    max_cotinine: float = Field(gt=0)
    """A cotinine level above it (in `observations.smoking.level_units`) means nicotine use."""
    source: Citation


class SurgeryRule(Strict):
    min_conservative_days: int = Field(ge=0)
    prior_esi_counts: bool
    prior_esi_label: str = Field(min_length=1)
    indications: dict[str, tuple[Indication, ...]]

    def indication(self, kind: str | None, region: str) -> Indication:
        """The indication of the order's kind (unspecified when unknown) for its region."""
        found = self.indications.get(kind or "") or self.indications["unspecified"]
        return next((indication for indication in found if indication.applies(region)), found[-1])
    readiness: Readiness
    rule: str
    source: Citation


class RegenerativeRule(Strict):
    """Platelet-rich plasma and cell-based injections: the pathway's third step, after ESI."""

    min_conservative_days: int = Field(ge=0)
    prior_esi_required: bool
    no_prior_esi_for: tuple[str, ...] = ()
    """Approaches (the order code's `approach`) that need no ESI first: the pain they treat is not one an ESI
    treats."""
    rule: str
    source: Citation


class Rules(Strict):
    esi: EsiRule
    regenerative: RegenerativeRule
    surgery: SurgeryRule

    def of(self, category: str) -> EsiRule | RegenerativeRule | SurgeryRule:
        """The rule for an order category (esi, regenerative, surgery)."""
        rule: EsiRule | RegenerativeRule | SurgeryRule = getattr(self, category)
        return rule


class Score(Strict):
    label: str = Field(min_length=1)
    valueset: str
    unit: str
    scale: tuple[float, float]
    """The lowest and highest value the score can take: a value outside is not read, and the card names it."""

    @field_validator("scale")
    @classmethod
    def lowest_first(cls, scale: tuple[float, float]) -> tuple[float, float]:
        if scale[0] >= scale[1]:
            raise ValueError(f"the lowest value ({scale[0]:g}) must come first, below the highest ({scale[1]:g})")
        return scale

    def holds(self, value: float) -> bool:
        return self.scale[0] <= value <= self.scale[1]


class PatientScore(Score):
    """A pain or function score: the ESI baseline asks for one of each kind; the response to the last ESI is
    judged on each. Percent scales by the ESI rule's `min_percent`; T-scores by `min_points` in the better
    direction."""

    kind: Literal["pain", "function"]
    better: Literal["lower", "higher"] = "lower"
    min_points: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def higher_is_better_needs_points(self) -> PatientScore:
        if self.better == "higher" and self.min_points is None:
            raise ValueError("a score where higher is better is judged in points: set min_points")
        return self


class SmokingStatus(Strict):
    valueset: str
    """The Observation codes that record a smoking status."""
    current: str
    """The answers that mean the patient smokes now."""
    cotinine: str
    """Qualitative cotinine results: a positive one means nicotine use."""
    positive: str
    """The answers that make a result positive."""
    cotinine_level: str
    """Quantitative cotinine results: above the readiness limit means nicotine use."""
    level_units: tuple[str, ...] = Field(min_length=1)
    """The units (as written, UCUM code or text) in which a cotinine level is compared with the limit."""


class Observations(Strict):
    """The scores and results the rules read, each a value set of Observation codes."""

    scores: tuple[PatientScore, ...] = Field(min_length=1)
    hba1c: Score
    smoking: SmokingStatus
    unread_statuses: tuple[str, ...]
    joiner: str
    """Between two kinds of score ("pain and function")."""

    @model_validator(mode="after")
    def both_kinds(self) -> Observations:
        missing = {"pain", "function"} - {score.kind for score in self.scores}
        if missing:
            raise ValueError(f"scores: no score of kind {sorted(missing)}")
        return self

    def valuesets(self) -> dict[str, str]:
        return {**{f"observations.scores[{i}].valueset": score.valueset for i, score in enumerate(self.scores)},
                "observations.hba1c.valueset": self.hba1c.valueset,
                "observations.smoking.valueset": self.smoking.valueset,
                "observations.smoking.current": self.smoking.current,
                "observations.smoking.cotinine": self.smoking.cotinine,
                "observations.smoking.positive": self.smoking.positive,
                "observations.smoking.cotinine_level": self.smoking.cotinine_level}

    def read(self) -> tuple[str, ...]:
        """The value sets of the Observation codes the rules read (not the answers)."""
        return (*(score.valueset for score in self.scores), self.hba1c.valueset, self.smoking.valueset,
                self.smoking.cotinine, self.smoking.cotinine_level)


BleedingRisk = Literal["intermediate", "high"]


class Anticoagulant(Strict):
    label: str = Field(min_length=1)
    ingredients: tuple[str, ...] = Field(min_length=1)
    """Matched as whole words in the medication's text and code displays."""
    washout_days: int = Field(ge=0)
    """Taken within this many days before the order still counts (the longest hold interval)."""
    hold: dict[BleedingRisk, str]


class Anticoagulation(Strict):
    """Anticoagulants and antiplatelets before an injection: the hold interval by the procedure's bleeding risk."""

    long_term_use_valueset: str
    risk_by_approach: dict[str, BleedingRisk]
    risk_by_region: dict[str, BleedingRisk]
    default_risk: BleedingRisk
    risk_labels: dict[BleedingRisk, str]
    drugs: tuple[Anticoagulant, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def every_drug_has_every_risk(self) -> Anticoagulation:
        for drug in self.drugs:
            missing = sorted(set(self.risk_labels) - set(drug.hold))
            if missing:
                raise ValueError(f"anticoagulation.drugs ({drug.label}): no hold interval for {missing[0]}")
        return self

    def risk(self, approach: str | None, region: str) -> BleedingRisk:
        """The higher of the approach's and the region's class."""
        classes = [self.risk_by_approach.get(approach or "", self.default_risk),
                   self.risk_by_region.get(region, self.default_risk)]
        return "high" if "high" in classes else "intermediate"


class ImageFirstFlag(Strict):
    """A finding that calls for MRI or CT before an injection or surgery (cancer history, weight loss, fever...)."""

    id: str = Field(min_length=1)
    label: str = Field(min_length=1)
    valueset: str
    within_days: int | None = Field(default=None, ge=1)
    """Counts when it began at most this many days ago, resolved or not; None: while active."""
    any_status: bool = False
    """True: counts whatever its clinical status (a cancer in remission is still a history of cancer)."""
    text: tuple[str, ...] = ()
    """Words that mark it in a diagnosis's text when no code of any value set does (the last resort)."""


class Immunosuppressants(Strict):
    label: str = Field(min_length=1)
    ingredients: tuple[str, ...] = Field(min_length=1)
    within_days: int = Field(ge=0)
    """Taken this many days before the order at most (an active order with no end is taken today)."""


class SpineImaging(Strict):
    """MRI, CT or CT myelography of the spine on record: a Procedure, a DiagnosticReport or an ImagingStudy."""

    valueset: str
    """Codes of a study of the spine (a region each, or none: then the record's body site gives it)."""
    modality_valueset: str
    """DICOM modalities of an ImagingStudy's series that make it MRI or CT."""
    body_site_valueset: str
    """Body sites of a series (or of a Procedure) that place the study in a spinal region."""
    months: dict[Literal["esi", "regenerative", "surgery"], int]
    """A study of the order's region at most this many months old counts (eviCore: 24 before an ESI, 6 before
    surgery)."""


class ImageFirst(Strict):
    """NICE NG59, ACP 2017, NASS: these findings call for imaging before an injection or spine surgery."""

    flags: tuple[ImageFirstFlag, ...] = Field(min_length=1)
    immunosuppressants: Immunosuppressants
    text_unless: tuple[str, ...] = ()
    """A diagnosis text with one of these is not read as a flag (benign, in situ, family history, ruled out)."""
    read_from_text: str = Field(min_length=1)
    """How a flag read from a diagnosis's text is named on the card ({condition})."""
