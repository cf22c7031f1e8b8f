"""Other FHIR generations (DSTU2, STU3; R5 for an ImagingStudy) of the resources the rules read, in their R4 shape.

EHRs still serve DSTU2 and STU3 endpoints, and records carry resources written under them; imaging systems
already write R5's ImagingStudy. Each rule
below moves one element the rules read to where R4 keeps it, so one strict R4 reader (fhir/resources.py)
reads every generation; nothing else of a resource changes, and an R4 resource passes through untouched.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

CLINICAL_STATUS = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION_STATUS = "http://terminology.hl7.org/CodeSystem/condition-ver-status"

# The R4 resource type each older one is read as.
READ_AS = {"MedicationOrder": "MedicationRequest", "ProcedureRequest": "ServiceRequest"}

# Status codes of older generations that R4 spells otherwise (codes R4 shares are not listed).
PROCEDURE_STATUS = {"aborted": "stopped", "suspended": "on-hold"}
REQUEST_STATUS = {  # STU3 and DSTU2 ProcedureRequest -> R4 ServiceRequest
    "suspended": "on-hold", "cancelled": "revoked", "proposed": "draft", "requested": "active",
    "received": "active", "accepted": "active", "in-progress": "active", "rejected": "revoked", "aborted": "revoked",
}
STATEMENT_NOT_TAKEN = "not-taken"


def _concept(system: str, code: Any) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def _move(resource: dict[str, Any], old: str, new: str, wrap: Callable[[Any], Any] = lambda value: value) -> None:
    """Move `old` to `new` (wrapped) unless the resource already has `new`."""
    if old in resource:
        value = resource.pop(old)
        resource.setdefault(new, wrap(value))


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, dict) else value


def _reasons(resource: dict[str, Any], concept: str, reference: str) -> None:
    """DSTU2 `reason[x]` / `reasonForUse[x]` (one each) -> R4 reasonCode / reasonReference (lists)."""
    _move(resource, concept, "reasonCode", _as_list)
    _move(resource, reference, "reasonReference", _as_list)
    if isinstance(resource.get("reasonReference"), dict):
        resource["reasonReference"] = [resource["reasonReference"]]


def _dosages(resource: dict[str, Any]) -> None:
    """STU3/DSTU2 Dosage.dose[x] -> R4 Dosage.doseAndRate[].dose[x]."""
    dosages = resource.get("dosageInstruction")
    if not isinstance(dosages, list):
        return
    read = []
    for dosage in dosages:
        if isinstance(dosage, dict) and "doseQuantity" in dosage and "doseAndRate" not in dosage:
            dosage = dict(dosage)
            dosage["doseAndRate"] = [{"doseQuantity": dosage.pop("doseQuantity")}]
        read.append(dosage)
    resource["dosageInstruction"] = read


def _status(resource: dict[str, Any], mapping: dict[str, str]) -> None:
    status = resource.get("status")
    if isinstance(status, str) and status in mapping:
        resource["status"] = mapping[status]


def _condition(resource: dict[str, Any]) -> None:
    for element, system in (("clinicalStatus", CLINICAL_STATUS), ("verificationStatus", VERIFICATION_STATUS)):
        if isinstance(resource.get(element), str):  # STU3 and DSTU2: a bare code
            resource[element] = _concept(system, resource[element])
    _move(resource, "assertedDate", "recordedDate")  # STU3
    _move(resource, "dateRecorded", "recordedDate")  # DSTU2


def _procedure(resource: dict[str, Any]) -> None:
    if resource.pop("notDone", None) is True or resource.pop("notPerformed", None) is True:  # STU3, DSTU2
        resource["status"] = "not-done"
    _status(resource, PROCEDURE_STATUS)
    _reasons(resource, "reasonCodeableConcept", "reasonReference")


def _medication_statement(resource: dict[str, Any]) -> None:
    taken = resource.pop("taken", None)  # STU3: y | n | unk | na
    if taken == "n" or resource.pop("wasNotTaken", None) is True:  # DSTU2
        resource["status"] = STATEMENT_NOT_TAKEN
    _reasons(resource, "reasonForUseCodeableConcept", "reasonForUseReference")


def _medication_request(resource: dict[str, Any]) -> None:
    _move(resource, "dateWritten", "authoredOn")  # DSTU2 MedicationOrder
    _reasons(resource, "reasonCodeableConcept", "reasonReference")
    _dosages(resource)


def _service_request(resource: dict[str, Any]) -> None:
    _status(resource, REQUEST_STATUS)
    _move(resource, "orderedOn", "authoredOn")  # DSTU2 ProcedureRequest
    _move(resource, "scheduledDateTime", "occurrenceDateTime")
    _move(resource, "scheduledPeriod", "occurrencePeriod")
    _reasons(resource, "reasonCodeableConcept", "reasonReference")


def _first_coding(concept: Any) -> Any:
    """R5 writes a CodeableConcept (or a CodeableReference's `concept`) where R4 has a Coding: its first coding."""
    if isinstance(concept, dict) and isinstance(concept.get("concept"), dict):
        concept = concept["concept"]
    if isinstance(concept, dict) and "coding" in concept:
        codings = concept["coding"]
        return codings[0] if isinstance(codings, list) and codings else None
    return concept


def _imaging_study(resource: dict[str, Any]) -> None:
    _move(resource, "modalityList", "modality")  # STU3
    modalities = resource.get("modality")
    if isinstance(modalities, list):  # R5: CodeableConcepts
        resource["modality"] = [coding for coding in map(_first_coding, modalities) if coding is not None]
    series = resource.get("series")
    if isinstance(series, list):
        resource["series"] = [{**item, "modality": _first_coding(item.get("modality")),
                               "bodySite": _first_coding(item.get("bodySite"))} if isinstance(item, dict) else item
                              for item in series]


def _as_it_comes(resource: dict[str, Any]) -> None:
    """Observation and DiagnosticReport: the elements the rules read have kept their names since DSTU2."""


READERS: dict[str, Callable[[dict[str, Any]], None]] = {
    "Condition": _condition,
    "Procedure": _procedure,
    "MedicationStatement": _medication_statement,
    "MedicationRequest": _medication_request,
    "ServiceRequest": _service_request,
    "Observation": _as_it_comes,
    "DiagnosticReport": _as_it_comes,
    "ImagingStudy": _imaging_study,
}


def as_r4(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource in its R4 shape (a shallow copy: the resource itself is left as it came)."""
    resource_type = READ_AS.get(resource["resourceType"], resource["resourceType"])
    read = {**resource, "resourceType": resource_type}
    _move(read, "patient", "subject")  # DSTU2 Condition, MedicationOrder, MedicationStatement
    READERS[resource_type](read)
    return read
