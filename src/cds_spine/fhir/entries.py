"""Validated FHIR R4 models -> the pathway's entries: each resource's codes, status, dates and reasons, read as a
spine clinician reads them (partial dates, a medication order's days from its dosage or supply, a diagnosis
dated by its encounter)."""
from __future__ import annotations

import calendar
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from ..pathway.record import (
    Code,
    ConditionEntry,
    ImagingSeriesEntry,
    Measurement,
    MedicationEntry,
    ObservationEntry,
    Period,
    ProcedureEntry,
    Reason,
    ReportEntry,
    ServiceRequestEntry,
    StudyEntry,
)
from .references import referenced_id
from .resources import (
    READABLE_YEARS,
    Condition,
    DiagnosticReport,
    Encounter,
    ImagingStudy,
    Medication,
    MedicationRequest,
    MedicationStatement,
    Observation,
    Procedure,
    ServiceRequest,
)

DAYS_PER_UNIT = {"s": 1 / 86400, "min": 1 / 1440, "h": 1 / 24, "d": 1, "day": 1, "days": 1, "wk": 7, "week": 7,
                 "weeks": 7, "mo": 30, "month": 30, "months": 30, "a": 365, "year": 365, "years": 365}


def _day(value: str | None, *, end: bool = False) -> date | None:
    """A FHIR date or dateTime (possibly partial, e.g. '2026-03') as a UTC calendar day."""
    if value is None:
        return None
    if len(value) == 4:
        return date(int(value), 12, 31) if end else date(int(value), 1, 1)
    if len(value) == 7:
        year, month = int(value[:4]), int(value[5:7])
        return date(year, month, calendar.monthrange(year, month)[1] if end else 1)
    if len(value) == 10:
        return date.fromisoformat(value)
    return datetime.fromisoformat(value).astimezone(UTC).date()


def _period(period: Any) -> Period | None:
    if period is None:
        return None
    return Period(_day(period.start), _day(period.end, end=True))


def _instant_or_period(instant: Any, period: Any) -> Period | None:
    if instant is not None:
        day = _day(instant)
        return Period(day, _day(instant, end=True))
    return _period(period)


def _codes(concept: Any) -> tuple[Code, ...]:
    if concept is None:
        return ()
    return tuple(Code(c.system, c.code, c.display) for c in concept.coding or () if c.system and c.code)


def _all_codes(concepts: Iterable[Any]) -> tuple[Code, ...]:
    return tuple(code for concept in concepts for code in _codes(concept))


def _status(concept: Any) -> str | None:
    codes = _codes(concept)
    return codes[0].code if codes else None


def _reasons(model: Any) -> tuple[Reason, ...]:
    reasons = [Reason(codes=_codes(concept), text=concept.text) for concept in model.reasonCode]
    reasons += [Reason(text=ref.display, condition_id=referenced_id(ref.reference))
                for ref in model.reasonReference if ref.reference or ref.display]
    return tuple(reasons)


def _condition(model: Condition, reference: str, referents: Referents) -> ConditionEntry:
    """Its onset, else the day it was recorded, else the first day of its encounter (an encounter diagnosis
    has no date of its own); None when none of them can be had (the card says "date unknown")."""
    onset = _instant_or_period(model.onsetDateTime, model.onsetPeriod)
    day = onset.start if onset else _day(model.recordedDate)
    if day is None:
        day = referents.encounters.day_of(model.id, referenced_id(model.encounter.reference) if model.encounter else None)
    abated = model.abatementBoolean is True or any(getattr(model, f"abatement{kind}") is not None
                                                    for kind in ("DateTime", "Age", "Period", "Range", "String"))
    abatement = _instant_or_period(model.abatementDateTime, model.abatementPeriod)
    return ConditionEntry(reference, _codes(model.code), model.code.text if model.code else None,
                          _status(model.clinicalStatus), _status(model.verificationStatus), day, abated,
                          (abatement.end or abatement.start) if abatement else None)


def _procedure(model: Procedure, reference: str, _: Referents) -> ProcedureEntry:
    return ProcedureEntry(reference, _codes(model.code), model.code.text if model.code else None, model.status,
                          _instant_or_period(model.performedDateTime, model.performedPeriod),
                          _reasons(model), _all_codes(model.bodySite))


def _drug(model: MedicationStatement | MedicationRequest, medications: Mapping[str, Medication]
          ) -> tuple[tuple[Code, ...], str | None]:
    """The drug's codes and name: the concept, else the Medication the reference points to (contained,
    or among the resources), else the reference's display."""
    concept = model.medicationCodeableConcept
    reference = model.medicationReference
    if concept is None and reference is not None:
        medication = _contained_medication(model, reference.reference) or medications.get(
            referenced_id(reference.reference) or "")
        concept = medication.code if medication else None
    codes = _codes(concept)
    text = concept.text if concept is not None and concept.text else None
    return codes, text or (reference.display if reference else None)


def _contained_medication(model: Any, reference: str | None) -> Medication | None:
    if not reference or not reference.startswith("#"):
        return None
    for resource in model.contained:
        if resource.get("resourceType") == "Medication" and resource.get("id") == reference[1:]:
            return Medication.model_validate(resource)
    return None


def _medication_statement(model: MedicationStatement, reference: str, referents: Referents) -> MedicationEntry:
    codes, text = _drug(model, referents.medications)
    effective = _instant_or_period(model.effectiveDateTime, model.effectivePeriod)
    start = (effective.start or effective.end) if effective else None
    stated_end = effective.end if effective and model.effectivePeriod is not None else None
    return MedicationEntry(reference, codes, text, model.status, start=start, stated_end=stated_end,
                           reasons=_reasons(model))


def _days_of(duration: Any) -> float | None:
    if duration is None or duration.value is None:
        return None
    per_unit = DAYS_PER_UNIT.get((duration.code or duration.unit or "d").lower())
    return float(duration.value) * per_unit if per_unit else None


def _times_per_day(repeat: Any) -> float | None:
    if repeat is None or not repeat.frequency or not repeat.period:
        return None
    period_days = repeat.period * DAYS_PER_UNIT.get((repeat.periodUnit or "").lower(), 0)
    return repeat.frequency / period_days if period_days else None


def _same_unit(a: Any, b: Any) -> bool:
    unit_a, unit_b = (a.code or a.unit or "").lower(), (b.code or b.unit or "").lower()
    return not unit_a or not unit_b or unit_a == unit_b


def _supply_days(model: MedicationRequest) -> float | None:
    """How many days the order lasts, from what the record states: dosage bounds, the supply duration, the
    quantity over the daily dose, or the number of doses; None when it states none of them."""
    dosage = model.dosageInstruction[0] if model.dosageInstruction else None
    repeat = dosage.timing.repeat if dosage and dosage.timing else None
    bounds = _days_of(repeat.boundsDuration) if repeat else None
    if bounds:
        return bounds
    dispense = model.dispenseRequest
    fills = 1 + ((dispense.numberOfRepeatsAllowed or 0) if dispense else 0)
    supply = _days_of(dispense.expectedSupplyDuration) if dispense else None
    if supply:
        return supply * fills
    per_day = _times_per_day(repeat)
    dose = next((d.doseQuantity for d in dosage.doseAndRate if d.doseQuantity and d.doseQuantity.value),
                None) if dosage else None
    quantity = dispense.quantity if dispense and dispense.quantity and dispense.quantity.value else None
    if quantity and quantity.value and dose and dose.value and per_day and _same_unit(quantity, dose):
        return float(quantity.value) / (float(dose.value) * per_day) * fills
    if repeat and repeat.count and per_day:
        return repeat.count / per_day
    return None


def _medication_request(model: MedicationRequest, reference: str, referents: Referents) -> MedicationEntry:
    codes, text = _drug(model, referents.medications)
    dosage = model.dosageInstruction[0] if model.dosageInstruction else None
    repeat = dosage.timing.repeat if dosage and dosage.timing else None
    bounds = repeat.boundsPeriod if repeat else None
    start = _day(bounds.start) if bounds and bounds.start else _day(model.authoredOn)
    stated_end = _day(bounds.end, end=True) if bounds and bounds.end else None
    days = _supply_days(model)
    if stated_end is None and days and start:
        stated_end = start + timedelta(days=max(1, math.ceil(days)) - 1)
        if stated_end.year not in READABLE_YEARS:
            raise ValueError("a supply that lasts past the years a record can be read in")
    validity = model.dispenseRequest.validityPeriod if model.dispenseRequest else None
    if stated_end is None and validity is not None and validity.end:
        stated_end = _day(validity.end, end=True)
    return MedicationEntry(reference, codes, text, model.status, start=start, stated_end=stated_end,
                           course_type=_status(model.courseOfTherapyType), reasons=_reasons(model),
                           intent=model.intent)


def _service_request(model: ServiceRequest, reference: str, _: Referents) -> ServiceRequestEntry:
    return ServiceRequestEntry(reference, _codes(model.code), model.code.text if model.code else None, model.status,
                               _instant_or_period(model.occurrenceDateTime, model.occurrencePeriod),
                               _day(model.authoredOn), _reasons(model), _all_codes(model.bodySite))


def _measurement(valued: Any) -> Measurement:
    quantity = valued.valueQuantity
    value = quantity.value if quantity is not None else valued.valueInteger
    answer = valued.valueCodeableConcept
    units = tuple(unit for unit in (quantity.code, quantity.unit) if unit) if quantity is not None else ()
    return Measurement(_codes(valued.code), float(value) if value is not None else None, _codes(answer),
                       valued.valueString or (answer.text if answer is not None else None), units)


def _observation(model: Observation, reference: str, _: Referents) -> ObservationEntry:
    """Read leniently: a value as a quantity, an integer, an answer code or text; components as measurements
    of their own (a panel of scores); the day it was observed, else the day it was issued."""
    effective = _instant_or_period(model.effectiveDateTime or model.effectiveInstant, model.effectivePeriod)
    day = (effective.end or effective.start) if effective else _day(model.issued)
    return ObservationEntry(reference, model.status, day,
                            (_measurement(model), *(_measurement(part) for part in model.component)))


def _diagnostic_report(model: DiagnosticReport, reference: str, _: Referents) -> ReportEntry:
    effective = _instant_or_period(model.effectiveDateTime, model.effectivePeriod)
    day = (effective.start or effective.end) if effective else _day(model.issued)
    return ReportEntry(reference, _codes(model.code), model.status, day)


def _coded(coding: Any) -> tuple[Code, ...]:
    return (Code(coding.system, coding.code, coding.display),) if coding and coding.system and coding.code else ()


def _imaging_study(model: ImagingStudy, reference: str, _: Referents) -> StudyEntry:
    study_modalities = tuple(code for coding in model.modality for code in _coded(coding))
    series = tuple(ImagingSeriesEntry(_coded(item.modality) or study_modalities, _coded(item.bodySite))
                   for item in model.series)
    return StudyEntry(reference, _all_codes(model.procedureCode), model.status, _day(model.started), series)


Entry = (ConditionEntry | ProcedureEntry | MedicationEntry | ServiceRequestEntry | ObservationEntry | ReportEntry
         | StudyEntry)
BUILDERS: dict[str, Callable[[Any, str, Referents], Entry]] = {
    "Condition": _condition,
    "Procedure": _procedure,
    "MedicationStatement": _medication_statement,
    "MedicationRequest": _medication_request,
    "ServiceRequest": _service_request,
    "Observation": _observation,
    "DiagnosticReport": _diagnostic_report,
    "ImagingStudy": _imaging_study,
}


class EncounterDays:
    """The first day of each Encounter among the kept resources, read only when a diagnosis asks. A diagnosis
    finds its encounter by its own `encounter`, or by the encounter that lists it (`Encounter.diagnosis`)."""

    def __init__(self, resources: Iterable[dict[str, Any]]) -> None:
        self._raw = {r["id"]: r for r in resources
                     if r.get("resourceType") == "Encounter" and isinstance(r.get("id"), str)}
        self._listing: dict[str, str] = {}
        for encounter_id, encounter in self._raw.items():
            diagnoses = encounter.get("diagnosis")
            for diagnosis in diagnoses if isinstance(diagnoses, list) else ():
                condition = diagnosis.get("condition") if isinstance(diagnosis, dict) else None
                reference = condition.get("reference") if isinstance(condition, dict) else None
                condition_id = referenced_id(reference) if isinstance(reference, str) else None
                if condition_id:
                    self._listing.setdefault(condition_id, encounter_id)
        self._days: dict[str, date | None] = {}

    def day_of(self, condition_id: str | None, encounter_id: str | None) -> date | None:
        if encounter_id is None or encounter_id not in self._raw:
            encounter_id = self._listing.get(condition_id) if condition_id else None
        if encounter_id is None:
            return None
        if encounter_id not in self._days:
            try:
                period = Encounter.model_validate(self._raw[encounter_id]).period
                self._days[encounter_id] = _day(period.start) or _day(period.end) if period else None
            except (ValidationError, ValueError):
                self._days[encounter_id] = None
        return self._days[encounter_id]


@dataclass(frozen=True)
class Referents:
    """What an entry may point to among the record's other resources: the Medications its drug reference
    names, the Encounter that dates it."""

    medications: Mapping[str, Medication]
    encounters: EncounterDays
