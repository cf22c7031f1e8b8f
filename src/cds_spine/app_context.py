"""The appContext of the pathway timeline's `smart` link: what the card was about, written by the cards
(cdshooks) and read back by the app (smart) from the EHR's token response. The EHR hands it back as it
was given, but it crosses the EHR and the browser: the app reads it as untrusted input."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class OrderCode(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    system: str = Field(min_length=1, max_length=512)
    code: str = Field(min_length=1, max_length=128)


class AppContext(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    hook: str = Field(min_length=1, max_length=64)
    patient: str | None = Field(default=None, max_length=64)
    """The patient the card was shown for: the app refuses a launch whose token names another (a link copied
    from one patient's card into another's chart)."""
    draftOrder: str | None = Field(default=None, max_length=256)
    """The draft order the card was about (`ServiceRequest/id`); none on a patient-view card."""
    code: OrderCode | None = None
    """That order's code: the app assesses the same order, which the FHIR server does not hold while it is a
    draft."""
    region: str | None = Field(default=None, max_length=32)
    """The spinal region the card placed the order in: an injection for any site (PRP) is in the pathway only
    by its link to the spine, which the code alone does not carry."""
