"""The patient's record as the pathway sees it: plain, typed, already validated facts.

The fhir package fills these from raw FHIR JSON; the pathway never sees JSON.
Dates are calendar days in UTC; a missing date is None.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import cached_property


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
class Reason:
    """Why an item was done or prescribed: a reasonCode, or a reasonReference (`condition_id` is the id of
    the resource it points to, read from any reference form: `Condition/x`, a full URL, `urn:uuid:x`)."""

    codes: tuple[Code, ...] = ()
    text: str | None = None
    condition_id: str | None = None


@dataclass(frozen=True)
class ConditionEntry:
    reference: str
    codes: tuple[Code, ...]
    text: str | None
    clinical_status: str | None
    verification_status: str | None
    onset: date | None
    """Its onset, else the day it was recorded, else its encounter's first day; None: not known."""
    abated: bool
    abatement: date | None = None

    @property
    def id(self) -> str:
        return self.reference.split("/", 1)[1]


@dataclass(frozen=True)
class ProcedureEntry:
    reference: str
    codes: tuple[Code, ...]
    text: str | None
    status: str | None
    performed: Period | None
    reasons: tuple[Reason, ...] = ()
    body_sites: tuple[Code, ...] = ()


@dataclass(frozen=True)
class MedicationEntry:
    """A MedicationStatement or a MedicationRequest, its drug resolved (a medicationReference reads the
    Medication's code). `start` is when it was started or written; `stated_end` the last day the record
    gives (validity period, dosage bounds, supply duration, or quantity over the daily dose), else None."""

    reference: str
    codes: tuple[Code, ...]
    text: str | None
    status: str | None
    start: date | None = None
    stated_end: date | None = None
    course_type: str | None = None  # MedicationRequest.courseOfTherapyType: acute, continuous, seasonal
    reasons: tuple[Reason, ...] = ()
    intent: str | None = None
    """MedicationRequest.intent: a `plan` is a GP system's authorisation to prescribe, its `order`s the issues."""


@dataclass(frozen=True)
class ServiceRequestEntry:
    reference: str
    codes: tuple[Code, ...]
    text: str | None
    status: str | None
    occurrence: Period | None
    authored_on: date | None
    reasons: tuple[Reason, ...] = ()
    body_sites: tuple[Code, ...] = ()


@dataclass(frozen=True)
class Measurement:
    """What an Observation, or one of its components, measured: its codes and its value (a number with its
    unit's codes as written, an answer code, or text)."""

    codes: tuple[Code, ...]
    value: float | None = None
    answer: tuple[Code, ...] = ()
    text: str | None = None
    units: tuple[str, ...] = ()


@dataclass(frozen=True)
class ObservationEntry:
    """A score or a result. `day`: when it was observed (effective), else when it was issued; `measurements`:
    the Observation's own code and value first, then each component's."""

    reference: str
    status: str | None
    day: date | None
    measurements: tuple[Measurement, ...]


@dataclass(frozen=True)
class ReportEntry:
    """A DiagnosticReport (spine imaging): its codes, status and the day of the study (else of the report)."""

    reference: str
    codes: tuple[Code, ...]
    status: str | None
    day: date | None


@dataclass(frozen=True)
class ImagingSeriesEntry:
    """A series of an ImagingStudy: its modality (the study's when it names none) and body site."""

    modality: tuple[Code, ...]
    body_site: tuple[Code, ...]


@dataclass(frozen=True)
class StudyEntry:
    """An ImagingStudy: its procedure codes, status (None in STU3), the day it started and its series."""

    reference: str
    codes: tuple[Code, ...]
    status: str | None
    day: date | None
    series: tuple[ImagingSeriesEntry, ...]


@dataclass(frozen=True)
class PatientRecord:
    conditions: tuple[ConditionEntry, ...] = ()
    procedures: tuple[ProcedureEntry, ...] = ()
    medications: tuple[MedicationEntry, ...] = ()
    service_requests: tuple[ServiceRequestEntry, ...] = ()
    observations: tuple[ObservationEntry, ...] = ()
    reports: tuple[ReportEntry, ...] = ()
    studies: tuple[StudyEntry, ...] = ()
    unreadable: tuple[str, ...] = field(default=())
    """Relevant resources that failed FHIR validation and were left out, by what they are to a clinician ("a
    prescription"; `card.detail.entry_kinds`): never a resource id."""
    partly_read: tuple[str, ...] = field(default=())
    """Relevant resources read without elements that failed validation, in the card's words: "a diagnosis without
    onsetDateTime", "pain 11 on 2026-05-01 (outside 0-10)"."""

    def condition(self, condition_id: str | None) -> ConditionEntry | None:
        return self._conditions_by_id.get(condition_id) if condition_id else None

    @cached_property
    def _conditions_by_id(self) -> dict[str, ConditionEntry]:
        return {condition.id: condition for condition in self.conditions}


@dataclass(frozen=True)
class DraftOrder:
    """An order from context.draftOrders, read leniently (any FHIR version)."""

    reference: str | None  # "ServiceRequest/esi-1"; None: the EHR sent the order without an id
    codes: tuple[Code, ...]
    text: str | None
    status: str | None
    body_sites: tuple[Code, ...] = ()
    reasons: tuple[Code, ...] = ()
    """Its reasonCode codings (a code for any site, such as PRP's, is in the pathway only for the spine)."""
    reason_references: tuple[str, ...] = ()
    """Its reasonReference targets ("Condition/c1"): the spine link of an order that names its reason by a
    Condition of the record rather than by a code."""
