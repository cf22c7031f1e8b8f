"""Narrow FHIR R4 models: exactly the elements the pathway reads, validated strictly.

Why not the fhir.resources R4B models on this path: they validate every element of a resource and
cost about 150 µs per resource on our machines; these compiled models cost about 2 µs, which is what
keeps a 5,000-resource call within 1.5 times the cost of decoding its JSON (bench/results.md).
Elements are checked against the R4 rules that matter here (required elements, code and dateTime
syntax); elements no rule reads are ignored, so a malformed one cannot fail the request. Older
generations reach these models in their R4 shape (fhir/generations.py).
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, NonNegativeInt, StringConstraints

READABLE_YEARS = range(1800, 2400)
"""The years a date in a patient's record can be read in. A date outside (0001-01-01, 9999-12-31: a placeholder
or a typo) is an element that cannot be read, named on the card, never a reason to fail the call (date
arithmetic near year 1 or 9999 overflows). MIMIC-IV shifts its real dates into the 2100s and 2200s."""


def _readable_year(value: str) -> str:
    if int(value[:4]) not in READABLE_YEARS:
        raise ValueError(f"a year outside {READABLE_YEARS.start}-{READABLE_YEARS.stop - 1}")
    return value


# R4 primitive syntax (http://hl7.org/fhir/R4/datatypes.html), in the years a record can be read in.
DateTime = Annotated[str, StringConstraints(
    pattern=r"^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])"
            r"(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]{1,9})?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]"
            r"|14:00)))?)?)?$"), AfterValidator(_readable_year)]
Code = Annotated[str, StringConstraints(pattern=r"^[^\s]+( [^\s]+)*$")]
Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9\-.]{1,64}$")]


class _Element(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Coding(_Element):
    system: str | None = None
    code: Code | None = None
    display: str | None = None


class CodeableConcept(_Element):
    coding: list[Coding] = Field(default_factory=list)
    text: str | None = None


class Reference(_Element):
    reference: str | None = None
    display: str | None = None


class Period(_Element):
    start: DateTime | None = None
    end: DateTime | None = None


class Quantity(_Element):
    value: float | None = None
    unit: str | None = None
    code: Code | None = None


Duration = Quantity  # R4: a Duration is a Quantity of time


class DispenseRequest(_Element):
    numberOfRepeatsAllowed: NonNegativeInt | None = None
    quantity: Quantity | None = None
    expectedSupplyDuration: Duration | None = None
    validityPeriod: Period | None = None


class Repeat(_Element):
    boundsDuration: Duration | None = None
    boundsPeriod: Period | None = None
    count: NonNegativeInt | None = None
    frequency: NonNegativeInt | None = None
    period: float | None = None
    periodUnit: Code | None = None


class Timing(_Element):
    repeat: Repeat | None = None


class DoseAndRate(_Element):
    doseQuantity: Quantity | None = None


class Dosage(_Element):
    timing: Timing | None = None
    doseAndRate: list[DoseAndRate] = Field(default_factory=list)


class Medication(_Element):
    resourceType: Literal["Medication"]
    id: Id | None = None
    code: CodeableConcept | None = None


class _Resource(_Element):
    id: Id | None = None
    subject: Reference


class _Reasoned(_Resource):
    reasonCode: list[CodeableConcept] = Field(default_factory=list)
    reasonReference: list[Reference] = Field(default_factory=list)


class Condition(_Resource):
    resourceType: Literal["Condition"]
    clinicalStatus: CodeableConcept | None = None
    verificationStatus: CodeableConcept | None = None
    code: CodeableConcept | None = None
    onsetDateTime: DateTime | None = None
    onsetPeriod: Period | None = None
    abatementDateTime: DateTime | None = None
    abatementAge: Any = None
    abatementPeriod: Period | None = None
    abatementRange: Any = None
    abatementString: str | None = None
    abatementBoolean: bool | None = None  # STU3 and DSTU2
    recordedDate: DateTime | None = None
    encounter: Reference | None = None


class Procedure(_Reasoned):
    resourceType: Literal["Procedure"]
    status: Code
    code: CodeableConcept | None = None
    performedDateTime: DateTime | None = None
    performedPeriod: Period | None = None
    bodySite: list[CodeableConcept] = Field(default_factory=list)


class _MedicationUse(_Reasoned):
    status: Code
    medicationCodeableConcept: CodeableConcept | None = None
    medicationReference: Reference | None = None
    contained: list[dict[str, Any]] = Field(default_factory=list)


class MedicationStatement(_MedicationUse):
    resourceType: Literal["MedicationStatement"]
    effectiveDateTime: DateTime | None = None
    effectivePeriod: Period | None = None


class MedicationRequest(_MedicationUse):
    resourceType: Literal["MedicationRequest"]
    intent: Code | None = None  # required by R4, absent before it (MedicationOrder); a `plan` is not a supply
    authoredOn: DateTime | None = None
    courseOfTherapyType: CodeableConcept | None = None
    dosageInstruction: list[Dosage] = Field(default_factory=list)
    dispenseRequest: DispenseRequest | None = None


class ServiceRequest(_Reasoned):
    resourceType: Literal["ServiceRequest"]
    status: Code
    intent: Code | None = None  # required by R4, absent before it (DSTU2 ProcedureRequest), read by no rule
    code: CodeableConcept | None = None
    occurrenceDateTime: DateTime | None = None
    occurrencePeriod: Period | None = None
    authoredOn: DateTime | None = None
    bodySite: list[CodeableConcept] = Field(default_factory=list)


class _Valued(_Element):
    """An Observation's value, or one of its components': every form a score or a result comes in."""

    code: CodeableConcept | None = None
    valueQuantity: Quantity | None = None
    valueInteger: int | None = None
    valueCodeableConcept: CodeableConcept | None = None
    valueString: str | None = None


class Observation(_Resource, _Valued):
    resourceType: Literal["Observation"]
    status: Code
    effectiveDateTime: DateTime | None = None
    effectivePeriod: Period | None = None
    effectiveInstant: DateTime | None = None
    issued: DateTime | None = None
    component: list[_Valued] = Field(default_factory=list)


class DiagnosticReport(_Resource):
    """A report of imaging (MRI or CT of the spine): what was imaged and when."""

    resourceType: Literal["DiagnosticReport"]
    status: Code
    code: CodeableConcept
    effectiveDateTime: DateTime | None = None
    effectivePeriod: Period | None = None
    issued: DateTime | None = None


class ImagingSeries(_Element):
    modality: Coding | None = None
    bodySite: Coding | None = None


class ImagingStudy(_Resource):
    """A study of images (R4; STU3's and R5's read in this shape): what was imaged, with which modality, and when.
    STU3 has no status."""

    resourceType: Literal["ImagingStudy"]
    status: Code | None = None
    started: DateTime | None = None
    modality: list[Coding] = Field(default_factory=list)
    procedureCode: list[CodeableConcept] = Field(default_factory=list)
    series: list[ImagingSeries] = Field(default_factory=list)


MODELS: dict[str, type[_Resource]] = {
    get_args(model.model_fields["resourceType"].annotation)[0]: model
    for model in (Condition, Procedure, MedicationStatement, MedicationRequest, ServiceRequest, Observation,
                  DiagnosticReport, ImagingStudy)
}

class Encounter(_Element):
    """Only its period: the date of a diagnosis recorded with no date of its own."""

    resourceType: Literal["Encounter"]
    period: Period | None = None
