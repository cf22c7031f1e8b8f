"""Raw FHIR JSON -> the pathway's PatientRecord and DraftOrders.

One pass over the raw resources keeps those whose codes fall in a value set (or, for medications,
whose text names a known ingredient, or that name their drug by reference), every Medication (the drugs
references point to) and every Encounter (the date of a diagnosis recorded without one); only those are
validated (fhir/resources.py), whatever their FHIR generation (fhir/generations.py reads DSTU2 and STU3
shapes as R4). A malformed resource that no rule reads cannot fail the request; a kept one whose
malformed elements no rule needs is read without them. Draft orders are read leniently, whatever FHIR
version the EHR speaks (DSTU2 MedicationOrder, STU3 ProcedureRequest, R4 ...).
"""
from __future__ import annotations

import calendar
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from pydantic import ValidationError

from ..jsonio import ARRAYS, OBJECTS
from ..pathway.knowledge import Knowledge
from ..pathway.record import (
    Code,
    ConditionEntry,
    DraftOrder,
    MedicationEntry,
    PatientRecord,
    Period,
    ProcedureEntry,
    Reason,
    ServiceRequestEntry,
)
from .generations import READ_AS, as_r4
from .resources import (
    MODELS,
    Condition,
    Encounter,
    Medication,
    MedicationRequest,
    MedicationStatement,
    Procedure,
    ServiceRequest,
)

log = logging.getLogger(__name__)
MEDICATION_TYPES = frozenset({"MedicationStatement", "MedicationRequest", "MedicationOrder"})
RECORD_TYPES = frozenset(MODELS) | frozenset(READ_AS)
"""The resource types the rules read, in every FHIR generation."""
ALWAYS_KEPT = frozenset({"Medication", "Encounter"})
# Elements without which a resource says nothing the rules can use: a resource whose one of these fails
# validation is left out; any other failing element is left out of the resource instead.
ESSENTIAL_ELEMENTS = frozenset({"resourceType", "code", "status", "medicationCodeableConcept", "medicationReference"})
DAYS_PER_UNIT = {"s": 1 / 86400, "min": 1 / 1440, "h": 1 / 24, "d": 1, "day": 1, "days": 1, "wk": 7, "week": 7,
                 "weeks": 7, "mo": 30, "month": 30, "months": 30, "a": 365, "year": 365, "years": 365}


# --- lenient reading of raw JSON -------------------------------------------------------------------

def _concepts(value: Any) -> list[dict]:
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, dict)]
    return []


def raw_codes(*concepts: Any) -> tuple[Code, ...]:
    """Codings of CodeableConcept-shaped values, skipping anything malformed (e.g. `coding: [{}]`)."""
    codes = []
    for value in concepts:
        for concept in _concepts(value):
            coding = concept.get("coding")
            for item in coding if isinstance(coding, list) else []:
                if isinstance(item, dict) and isinstance(item.get("system"), str) and isinstance(item.get("code"), str):
                    display = item.get("display")
                    codes.append(Code(item["system"], item["code"], display if isinstance(display, str) else None))
    return tuple(codes)


def raw_text(*concepts: Any) -> str | None:
    for value in concepts:
        for concept in _concepts(value):
            if isinstance(concept.get("text"), str) and concept["text"].strip():
                return concept["text"]
    return None


def _medication_concept(resource: dict) -> tuple[Any, Any]:
    reference = resource.get("medicationReference")
    return resource.get("medicationCodeableConcept"), reference if isinstance(reference, dict) else None


def read_draft_orders(resources: Iterable[dict]) -> list[DraftOrder]:
    """The draft orders (resources with a resourceType), whatever their type or FHIR version."""
    orders = []
    for resource in resources:
        resource_id = resource.get("id")
        reference = f"{resource['resourceType']}/{resource_id}" if isinstance(resource_id, str) else None
        medication, _ = _medication_concept(resource)
        status = resource.get("status")
        orders.append(DraftOrder(reference, raw_codes(resource.get("code"), medication),
                                 raw_text(resource.get("code"), medication),
                                 status if isinstance(status, str) else None))
    return orders


def _medication_names(concept: Any, reference: Any) -> Iterator[str]:
    """The free text that may name a medication: the concept's text and displays, the reference's display."""
    if concept.__class__ in OBJECTS:
        yield concept.get("text")
        coding = concept.get("coding")
        for item in coding if coding.__class__ in ARRAYS else ():
            if item.__class__ in OBJECTS:
                yield item.get("display")
    if reference.__class__ in OBJECTS:
        yield reference.get("display")


def relevance_filter(knowledge: Knowledge, unplaced: Callable[[str], None] | None = None
                     ) -> Callable[[dict], bool]:
    """The one-pass filter: does any rule read this resource? It runs on every resource of every call
    (plain or lazy JSON objects alike), so it is a closure over plain dictionaries. `unplaced` is told the
    code systems of every code the rules would read whose systems the service cannot place (none of its
    codings under a standard, local or known-but-unread system)."""
    systems_by_code = knowledge.systems_by_raw_code
    known_systems = knowledge.code_systems.known
    mentions_medication = knowledge.mentions_medication

    def is_relevant(resource: dict) -> bool:
        resource_type = resource.get("resourceType")
        if resource_type in ALWAYS_KEPT:
            return True
        is_medication = resource_type in MEDICATION_TYPES
        if is_medication:
            concept = resource.get("medicationCodeableConcept")
            if concept is None and resource.get("medicationReference").__class__ in OBJECTS:
                return True
        elif resource_type in RECORD_TYPES:
            concept = resource.get("code")
        else:
            return False
        if concept.__class__ in OBJECTS:
            coding = concept.get("coding")
            placed = False
            strangers = None
            for item in coding if coding.__class__ in ARRAYS else ():
                if item.__class__ in OBJECTS:
                    code = item.get("code")
                    system = item.get("system")
                    if system.__class__ is not str:
                        continue
                    systems = systems_by_code.get(code) if code.__class__ is str else None
                    if systems is not None and system in systems:
                        return True
                    if system in known_systems:
                        placed = True
                    elif unplaced is not None:
                        strangers = (*strangers, system) if strangers else (system,)
            if strangers and not placed:
                for system in strangers:
                    unplaced(system)
        if is_medication:
            for name in _medication_names(concept, resource.get("medicationReference")):
                if name.__class__ is str and mentions_medication(name):
                    return True
        return False

    return is_relevant


# --- validated models -> domain entries ---------------------------------------------------------

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


def referenced_id(reference: str | None) -> str | None:
    """The id a reference points to, whatever its form: `Type/id`, an absolute URL (with or without
    `_history`), `urn:uuid:id`; None for a contained (`#id`) or empty reference."""
    if not reference or reference.startswith("#"):
        return None
    if reference.startswith("urn:"):
        return reference.rsplit(":", 1)[-1] or None
    parts = reference.split("?", 1)[0].rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[:parts.index("_history")]
    return parts[-1] or None


def _reasons(model: Any) -> tuple[Reason, ...]:
    reasons = [Reason(codes=_codes(concept), text=concept.text) for concept in model.reasonCode]
    reasons += [Reason(text=ref.display, condition_id=referenced_id(ref.reference))
                for ref in model.reasonReference if ref.reference or ref.display]
    return tuple(reasons)


def _condition(model: Condition, reference: str, encounters: _EncounterDays) -> ConditionEntry:
    """Its onset, else the day it was recorded, else the first day of its encounter (an encounter diagnosis
    has no date of its own); None when none of them can be had (the card says "date unknown")."""
    onset = _instant_or_period(model.onsetDateTime, model.onsetPeriod)
    day = onset.start if onset else _day(model.recordedDate)
    if day is None:
        day = encounters.day_of(model.id, referenced_id(model.encounter.reference) if model.encounter else None)
    abated = model.abatementBoolean is True or any(getattr(model, f"abatement{kind}") is not None
                                                    for kind in ("DateTime", "Age", "Period", "Range", "String"))
    abatement = _instant_or_period(model.abatementDateTime, model.abatementPeriod)
    return ConditionEntry(reference, _codes(model.code), model.code.text if model.code else None,
                          _status(model.clinicalStatus), _status(model.verificationStatus), day, abated,
                          (abatement.end or abatement.start) if abatement else None)


def _procedure(model: Procedure, reference: str) -> ProcedureEntry:
    return ProcedureEntry(reference, _codes(model.code), model.code.text if model.code else None, model.status,
                          _instant_or_period(model.performedDateTime, model.performedPeriod),
                          _reasons(model), _all_codes(model.bodySite))


def _drug(model: MedicationStatement | MedicationRequest, medications: dict[str, Medication]
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


def _medication_statement(model: MedicationStatement, reference: str, medications: dict) -> MedicationEntry:
    codes, text = _drug(model, medications)
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
    if quantity and dose and per_day and _same_unit(quantity, dose):
        return quantity.value / (dose.value * per_day) * fills
    if repeat and repeat.count and per_day:
        return repeat.count / per_day
    return None


def _medication_request(model: MedicationRequest, reference: str, medications: dict) -> MedicationEntry:
    codes, text = _drug(model, medications)
    dosage = model.dosageInstruction[0] if model.dosageInstruction else None
    repeat = dosage.timing.repeat if dosage and dosage.timing else None
    bounds = repeat.boundsPeriod if repeat else None
    start = _day(bounds.start) if bounds and bounds.start else _day(model.authoredOn)
    stated_end = _day(bounds.end, end=True) if bounds and bounds.end else None
    days = _supply_days(model)
    if stated_end is None and days and start:
        stated_end = start + timedelta(days=max(1, math.ceil(days)) - 1)
    validity = model.dispenseRequest.validityPeriod if model.dispenseRequest else None
    if stated_end is None and validity is not None and validity.end:
        stated_end = _day(validity.end, end=True)
    return MedicationEntry(reference, codes, text, model.status, start=start, stated_end=stated_end,
                           course_type=_status(model.courseOfTherapyType), reasons=_reasons(model))


def _service_request(model: ServiceRequest, reference: str) -> ServiceRequestEntry:
    return ServiceRequestEntry(reference, _codes(model.code), model.code.text if model.code else None, model.status,
                               _instant_or_period(model.occurrenceDateTime, model.occurrencePeriod),
                               _day(model.authoredOn), _reasons(model), _all_codes(model.bodySite))


BUILDERS = {
    "Condition": _condition,
    "Procedure": _procedure,
    "MedicationStatement": _medication_statement,
    "MedicationRequest": _medication_request,
    "ServiceRequest": _service_request,
}


class _EncounterDays:
    """The first day of each Encounter among the kept resources, read only when a diagnosis asks. A diagnosis
    finds its encounter by its own `encounter`, or by the encounter that lists it (`Encounter.diagnosis`)."""

    def __init__(self, resources: Iterable[dict]) -> None:
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


def _undated_condition(resource: dict) -> bool:
    return resource.get("resourceType") == "Condition" and not any(
        element in resource for element in ("onsetDateTime", "onsetPeriod", "recordedDate", "assertedDate",
                                             "dateRecorded"))


def unresolved_encounters(resources: Iterable[dict]) -> list[str]:
    """Ids of the Encounters that kept Conditions without a date of their own name but that are not among
    the resources: their period is the diagnosis's date, so the service fetches them when it can."""
    resources = list(resources)
    present = {r.get("id") for r in resources if r.get("resourceType") == "Encounter"}
    wanted = []
    for resource in resources:
        encounter = resource.get("encounter") if _undated_condition(resource) else None
        reference = encounter.get("reference") if isinstance(encounter, dict) else None
        encounter_id = referenced_id(reference) if isinstance(reference, str) else None
        if encounter_id and encounter_id not in present and encounter_id not in wanted:
            wanted.append(encounter_id)
    return wanted


def _medications(resources: Iterable[dict]) -> dict[str, Medication]:
    """The Medication resources among the kept ones, by id (one that fails validation is left out)."""
    found = {}
    for resource in resources:
        if resource.get("resourceType") == "Medication" and isinstance(resource.get("id"), str):
            try:
                found[resource["id"]] = Medication.model_validate(resource)
            except ValidationError:
                log.warning("left out a Medication that failed FHIR R4 validation")
    return found


def unresolved_medications(resources: Iterable[dict]) -> list[str]:
    """Ids of the Medications that kept MedicationRequests and MedicationStatements name by reference but
    that are neither contained nor among the resources: the service must fetch them."""
    resources = list(resources)
    present = {r.get("id") for r in resources if r.get("resourceType") == "Medication"}
    wanted = []
    for resource in resources:
        if resource.get("resourceType") not in MEDICATION_TYPES or resource.get("medicationCodeableConcept"):
            continue
        reference = resource.get("medicationReference")
        medication_id = referenced_id(reference.get("reference")) if isinstance(reference, dict) and isinstance(
            reference.get("reference"), str) else None
        if medication_id and medication_id not in present and medication_id not in wanted:
            wanted.append(medication_id)
    return wanted


def _one_version_each(resources: list[dict]) -> list[tuple[int, dict]]:
    """One resource per type and id, in record order. When two differ, the newer (meta.lastUpdated) is
    read, else the greater in canonical JSON: the choice never depends on the order they came in."""
    chosen: dict[tuple[str, str], tuple[int, dict]] = {}
    for index, resource in enumerate(resources):
        if resource["resourceType"] not in RECORD_TYPES:
            continue
        key = (resource["resourceType"], str(resource.get("id", f"#{index}")))
        known = chosen.get(key)
        if known is None or (known[1] != resource and _version_rank(resource) > _version_rank(known[1])):
            chosen[key] = (known[0] if known else index, resource)
    return sorted(chosen.values(), key=lambda item: item[0])


def _version_rank(resource: dict) -> tuple[str, bytes]:
    meta = resource.get("meta")
    updated = meta.get("lastUpdated") if isinstance(meta, dict) else None
    return (updated if isinstance(updated, str) else "", orjson.dumps(resource, option=orjson.OPT_SORT_KEYS))


def _validate(resource: dict) -> tuple[Any, tuple[str, ...]]:
    """The resource (in its R4 shape) as its model, and the elements left out because they failed
    validation; raises ValidationError when an essential element fails."""
    model = MODELS[resource["resourceType"]]
    try:
        return model.model_validate(resource), ()
    except ValidationError as exc:
        failed = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
        if not failed or failed & ESSENTIAL_ELEMENTS:
            raise
        left_out = tuple(sorted(failed))
        return model.model_validate({k: v for k, v in resource.items() if k not in failed}), left_out


def build_record(relevant: Iterable[dict], knowledge: Knowledge) -> PatientRecord:
    """Resources the one-pass filter kept (relevance_filter), in their R4 shape, validated and typed;
    duplicates (same type and id, e.g. on two pages) are read once. One whose essential elements fail
    validation is left out and named; one whose other elements fail is read without them and named."""
    relevant = list(relevant)
    medications = _medications(relevant)
    encounter_days = _EncounterDays(relevant)
    entries: dict[str, list] = {name: [] for name in MODELS}
    unreadable, partly_read = [], []
    for index, resource in _one_version_each(relevant):
        written_as = resource["resourceType"]  # the reference keeps the type the record has (MedicationOrder)
        reference = f"{written_as}/{resource.get('id', f'#{index}')}"
        try:
            read = as_r4(resource)
            resource_type = read["resourceType"]
            model, left_out = _validate(read)
            build = BUILDERS[resource_type]
            if resource_type in MEDICATION_TYPES:
                entry = build(model, reference, medications)
            elif resource_type == "Condition":
                entry = build(model, reference, encounter_days)
            else:
                entry = build(model, reference)
            entries[resource_type].append(entry)
        except (ValidationError, ValueError):  # ValueError: a valid-looking date that does not exist
            unreadable.append(reference)
            log.warning("left out a %s that failed FHIR validation", written_as)
            continue
        if left_out:
            partly_read.append(f"{reference} ({', '.join(left_out)})")
            log.warning("read a %s without elements that failed FHIR validation: %s", written_as, ", ".join(left_out))
    return PatientRecord(
        conditions=tuple(entries["Condition"]),
        procedures=tuple(entries["Procedure"]),
        medications=tuple(entries["MedicationStatement"] + entries["MedicationRequest"]),
        service_requests=tuple(entries["ServiceRequest"]),
        unreadable=tuple(unreadable),
        partly_read=tuple(partly_read),
    )
