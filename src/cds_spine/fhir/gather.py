"""Raw FHIR JSON -> the pathway's PatientRecord and DraftOrders.

One pass over the raw resources keeps those whose codes fall in a value set (or, for medications,
whose text names a known ingredient); only those are validated (fhir/resources.py). A malformed
resource that no rule reads cannot fail the request. Draft orders are read leniently,
whatever FHIR version the EHR speaks (DSTU2 MedicationOrder, STU3 ProcedureRequest, R4 ...).
"""
from __future__ import annotations

import calendar
import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, timezone
from typing import Any

from pydantic import ValidationError

from ..jsonio import ARRAYS, OBJECTS
from ..pathway.knowledge import Knowledge
from ..pathway.record import (
    Code, ConditionEntry, DraftOrder, MedicationEntry, PatientRecord, Period, ProcedureEntry, ServiceRequestEntry,
)

from .resources import (
    MODELS, Condition, MedicationRequest, MedicationStatement, Procedure, ServiceRequest,
)

log = logging.getLogger(__name__)
MEDICATION_TYPES = frozenset({"MedicationStatement", "MedicationRequest"})
DAYS_PER_UNIT = {"d": 1, "day": 1, "days": 1, "wk": 7, "week": 7, "weeks": 7, "mo": 30, "month": 30,
                 "months": 30, "a": 365, "year": 365, "years": 365}


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


def read_draft_orders(draft_orders: Any) -> list[DraftOrder]:
    """Every resource in the draftOrders Bundle, whatever its type or FHIR version; junk is skipped."""
    entries = draft_orders.get("entry") if isinstance(draft_orders, dict) else None
    orders = []
    for entry in entries if isinstance(entries, list) else []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            continue
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


def relevance_filter(knowledge: Knowledge) -> Callable[[dict], bool]:
    """The one-pass filter: does any rule read this resource? It runs on every resource of every call
    (plain or lazy JSON objects alike), so it is a closure over plain dictionaries."""
    systems_by_code = knowledge.systems_by_raw_code
    mentions_medication = knowledge.mentions_medication

    def is_relevant(resource: dict) -> bool:
        resource_type = resource.get("resourceType")
        is_medication = resource_type in MEDICATION_TYPES
        if is_medication:
            concept = resource.get("medicationCodeableConcept")
        elif resource_type in MODELS:
            concept = resource.get("code")
        else:
            return False
        if concept.__class__ in OBJECTS:
            coding = concept.get("coding")
            for item in coding if coding.__class__ in ARRAYS else ():
                if item.__class__ in OBJECTS:
                    code = item.get("code")
                    systems = systems_by_code.get(code) if code.__class__ is str else None
                    if systems is not None and item.get("system") in systems:
                        return True
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
    return datetime.fromisoformat(value).astimezone(timezone.utc).date()


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


def _status(concept: Any) -> str | None:
    codes = _codes(concept)
    return codes[0].code if codes else None


def _reference(resource: Any, index: int) -> str:
    return f"{resource.resourceType}/{resource.id or f'#{index}'}"


def _condition(model: Condition, reference: str) -> ConditionEntry:
    onset = _instant_or_period(model.onsetDateTime, model.onsetPeriod)
    abated = any(getattr(model, f"abatement{kind}") is not None
                 for kind in ("DateTime", "Age", "Period", "Range", "String"))
    return ConditionEntry(reference, _codes(model.code), model.code.text if model.code else None,
                          _status(model.clinicalStatus), _status(model.verificationStatus),
                          onset.start if onset else _day(model.recordedDate), abated)


def _procedure(model: Procedure, reference: str) -> ProcedureEntry:
    return ProcedureEntry(reference, _codes(model.code), model.code.text if model.code else None, model.status,
                          _instant_or_period(model.performedDateTime, model.performedPeriod))


def _medication_text(model: MedicationStatement | MedicationRequest) -> str | None:
    concept = model.medicationCodeableConcept
    if concept is not None and concept.text:
        return concept.text
    return model.medicationReference.display if model.medicationReference else None


def _medication_statement(model: MedicationStatement, reference: str) -> MedicationEntry:
    return MedicationEntry(reference, _codes(model.medicationCodeableConcept), _medication_text(model), model.status,
                           effective=_instant_or_period(model.effectiveDateTime, model.effectivePeriod))


def _supply_days(duration: Any) -> int | None:
    if duration is None or duration.value is None:
        return None
    per_unit = DAYS_PER_UNIT.get((duration.code or duration.unit or "d").lower())
    return max(1, round(float(duration.value) * per_unit)) if per_unit else None


def _medication_request(model: MedicationRequest, reference: str) -> MedicationEntry:
    dispense = model.dispenseRequest
    return MedicationEntry(
        reference, _codes(model.medicationCodeableConcept), _medication_text(model), model.status,
        authored_on=_day(model.authoredOn),
        supply_days=_supply_days(dispense.expectedSupplyDuration) if dispense else None,
        repeats=(dispense.numberOfRepeatsAllowed or 0) if dispense else 0,
        validity=_period(dispense.validityPeriod) if dispense else None,
    )


def _service_request(model: ServiceRequest, reference: str) -> ServiceRequestEntry:
    return ServiceRequestEntry(reference, _codes(model.code), model.code.text if model.code else None, model.status,
                               _instant_or_period(model.occurrenceDateTime, model.occurrencePeriod),
                               _day(model.authoredOn))


BUILDERS = {
    "Condition": _condition,
    "Procedure": _procedure,
    "MedicationStatement": _medication_statement,
    "MedicationRequest": _medication_request,
    "ServiceRequest": _service_request,
}


def build_record(relevant: Iterable[dict], knowledge: Knowledge) -> PatientRecord:
    """Resources the one-pass filter kept (relevance_filter), validated and typed; duplicates (same type and
    id, e.g. on two pages) are read once; one that fails validation is left out and named."""
    seen: set[tuple[str, str]] = set()
    entries: dict[str, list] = {name: [] for name in MODELS}
    unreadable = []
    for index, resource in enumerate(relevant):
        resource_type = resource["resourceType"]
        key = (resource_type, str(resource.get("id", f"#{index}")))
        if key in seen:
            continue
        seen.add(key)
        try:
            model = MODELS[resource_type].model_validate(resource)
            entries[resource_type].append(BUILDERS[resource_type](model, _reference(model, index)))
        except (ValidationError, ValueError):  # ValueError: a valid-looking date that does not exist
            unreadable.append(f"{resource_type}/{key[1]}")
            log.warning("left out a %s that failed FHIR R4 validation", resource_type)
    return PatientRecord(
        conditions=tuple(entries["Condition"]),
        procedures=tuple(entries["Procedure"]),
        medications=tuple(entries["MedicationStatement"] + entries["MedicationRequest"]),
        service_requests=tuple(entries["ServiceRequest"]),
        unreadable=tuple(unreadable),
    )
