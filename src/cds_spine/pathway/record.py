"""The patient's record as the pathway sees it: plain, typed, already validated facts.

The fhir package fills these from raw FHIR JSON; the pathway never sees JSON.
Dates are calendar days in UTC; a missing date is None.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date


@dataclass(frozen=True)
class Code:
    system: str
    code: str
    display: str | None = None


@dataclass(frozen=True)
class Period:
    """Inclusive calendar days; `end` None means open (still going)."""

    start: date | None
    end: date | None


@dataclass(frozen=True)
class ConditionEntry:
    reference: str
    codes: tuple[Code, ...]
    text: str | None
    clinical_status: str | None
    verification_status: str | None
    onset: date | None
    abated: bool


@dataclass(frozen=True)
class ProcedureEntry:
    reference: str
    codes: tuple[Code, ...]
    text: str | None
    status: str | None
    performed: Period | None


@dataclass(frozen=True)
class MedicationEntry:
    """A MedicationStatement or a MedicationRequest."""

    reference: str
    codes: tuple[Code, ...]
    text: str | None
    status: str | None
    effective: Period | None = None  # MedicationStatement.effective[x]
    authored_on: date | None = None  # MedicationRequest.authoredOn
    supply_days: int | None = None  # MedicationRequest.dispenseRequest.expectedSupplyDuration, in days
    repeats: int = 0  # MedicationRequest.dispenseRequest.numberOfRepeatsAllowed
    validity: Period | None = None  # MedicationRequest.dispenseRequest.validityPeriod

    @property
    def resource_type(self) -> str:
        return self.reference.split("/", 1)[0]


@dataclass(frozen=True)
class ServiceRequestEntry:
    reference: str
    codes: tuple[Code, ...]
    text: str | None
    status: str | None
    occurrence: Period | None
    authored_on: date | None


@dataclass(frozen=True)
class PatientRecord:
    conditions: tuple[ConditionEntry, ...] = ()
    procedures: tuple[ProcedureEntry, ...] = ()
    medications: tuple[MedicationEntry, ...] = ()
    service_requests: tuple[ServiceRequestEntry, ...] = ()
    unreadable: tuple[str, ...] = field(default=())
    """References of relevant resources that failed FHIR validation and were left out."""


@dataclass(frozen=True)
class DraftOrder:
    """An order from context.draftOrders, read leniently (any FHIR version)."""

    reference: str  # "ServiceRequest/esi-1"
    codes: tuple[Code, ...]
    text: str | None
    status: str | None
