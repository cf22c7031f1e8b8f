"""References between resources: the id a reference points to, and the resources a record names but does not
hold (the Medications of orders that name their drug by reference, the Encounters of undated diagnoses), which
the service fetches when it can."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .relevance import MEDICATION_TYPES


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


def _undated_condition(resource: dict[str, Any]) -> bool:
    return resource.get("resourceType") == "Condition" and not any(
        element in resource for element in ("onsetDateTime", "onsetPeriod", "recordedDate", "assertedDate",
                                             "dateRecorded"))


def unresolved_encounters(resources: Iterable[dict[str, Any]]) -> list[str]:
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


def unresolved_medications(resources: Iterable[dict[str, Any]]) -> list[str]:
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
