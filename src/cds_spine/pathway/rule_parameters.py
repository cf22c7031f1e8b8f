"""The parameters of the rules in cards/pathway.yaml: each rule's thresholds, windows and source, and the
scores and results the rules read from Observations."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, HttpUrl


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


class EsiRule(Strict):
    min_conservative_days: int = Field(ge=0)
    max_sessions_per_region: int = Field(ge=1)
    session_window_days: int = Field(ge=1)
    min_days_between: int = Field(ge=0)
    baseline_days: int = Field(ge=0)
    response: EsiResponse
    rule: str
    source: Citation


class Indication(Strict):
    label: str = Field(min_length=1)
    valuesets: tuple[str, ...] = Field(min_length=1)


class Readiness(Strict):
    """Elective fusion: nicotine-free status and a controlled HbA1c first."""

    kinds: tuple[str, ...] = Field(min_length=1)
    smoking_status_days: int = Field(ge=1)
    hba1c_days: int = Field(ge=1)
    max_hba1c: float = Field(gt=0)
    source: Citation


class SurgeryRule(Strict):
    min_conservative_days: int = Field(ge=0)
    prior_esi_counts: bool
    prior_esi_label: str = Field(min_length=1)
    indications: dict[str, Indication]
    readiness: Readiness
    rule: str
    source: Citation


class RegenerativeRule(Strict):
    """Platelet-rich plasma and cell-based injections: the pathway's third step, after ESI."""

    min_conservative_days: int = Field(ge=0)
    prior_esi_required: bool
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


class SmokingStatus(Strict):
    valueset: str
    """The Observation codes that record a smoking status."""
    current: str
    """The answers that mean the patient smokes now."""
    cotinine: str
    """Cotinine results: a positive one means nicotine use."""
    positive: str
    """The answers that make a result positive."""


class Observations(Strict):
    """The scores and results the rules read, each a value set of Observation codes."""

    pain: Score
    function: Score
    hba1c: Score
    smoking: SmokingStatus
    unread_statuses: tuple[str, ...]
    joiner: str
    """Between two score labels ("pain and disability index")."""

    def valuesets(self) -> dict[str, str]:
        return {"observations.pain.valueset": self.pain.valueset,
                "observations.function.valueset": self.function.valueset,
                "observations.hba1c.valueset": self.hba1c.valueset,
                "observations.smoking.valueset": self.smoking.valueset,
                "observations.smoking.current": self.smoking.current,
                "observations.smoking.cotinine": self.smoking.cotinine,
                "observations.smoking.positive": self.smoking.positive}
