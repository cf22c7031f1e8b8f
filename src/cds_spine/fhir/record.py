"""Raw FHIR JSON -> the pathway's PatientRecord: the resources the one-pass filter kept (fhir/relevance.py), in
their R4 shape whatever their FHIR generation (fhir/generations.py), validated (fhir/resources.py) and read
(fhir/entries.py). A kept resource whose malformed elements no rule needs is read without them."""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import orjson
from pydantic import ValidationError

from ..pathway.card_wording import Detail
from ..pathway.knowledge import Knowledge
from ..pathway.record import (
    ObservationEntry,
    PatientRecord,
)
from ..pathway.scores import number
from ..pathway.wording import WORDING
from .entries import BUILDERS, EncounterDays, Referents
from .generations import as_r4
from .relevance import RECORD_TYPES
from .resources import (
    MODELS,
    Medication,
)

log = logging.getLogger(__name__)
# Elements without which a resource says nothing the rules can use: a resource whose one of these fails
# validation is left out; any other failing element is left out of the resource instead.
ESSENTIAL_ELEMENTS = frozenset({"resourceType", "code", "status", "medicationCodeableConcept", "medicationReference"})


def _medications(resources: Iterable[dict[str, Any]]) -> dict[str, Medication]:
    """The Medication resources among the kept ones, by id (one that fails validation is left out)."""
    found = {}
    for resource in resources:
        if resource.get("resourceType") == "Medication" and isinstance(resource.get("id"), str):
            try:
                found[resource["id"]] = Medication.model_validate(resource)
            except ValidationError:
                log.warning("left out a Medication that failed FHIR R4 validation")
    return found


def _one_version_each(resources: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """One resource per type and id, in record order. When two differ, the newer (meta.lastUpdated) is
    read, else the greater in canonical JSON: the choice never depends on the order they came in."""
    chosen: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
    for index, resource in enumerate(resources):
        if resource["resourceType"] not in RECORD_TYPES:
            continue
        key = (resource["resourceType"], str(resource.get("id", f"#{index}")))
        known = chosen.get(key)
        if known is None or (known[1] != resource and _version_rank(resource) > _version_rank(known[1])):
            chosen[key] = (known[0] if known else index, resource)
    return sorted(chosen.values(), key=lambda item: item[0])


def _version_rank(resource: dict[str, Any]) -> tuple[str, bytes]:
    meta = resource.get("meta")
    updated = meta.get("lastUpdated") if isinstance(meta, dict) else None
    return (updated if isinstance(updated, str) else "", orjson.dumps(resource, option=orjson.OPT_SORT_KEYS))


def _validate(resource: dict[str, Any]) -> tuple[Any, tuple[str, ...]]:
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


def _kind(wording: Detail, written_as: str) -> str:
    """What an entry is, in the card's words (cards/pathway.yaml `entry_kinds`): "a prescription"."""
    return wording.entry_kinds.get(written_as, written_as)


def build_record(relevant: Iterable[dict[str, Any]], knowledge: Knowledge) -> PatientRecord:
    """Resources the one-pass filter kept (relevance_filter), in their R4 shape, validated and typed;
    duplicates (same type and id, e.g. on two pages) are read once. One whose essential elements fail
    validation is left out and named; one whose other elements fail is read without them and named."""
    relevant = list(relevant)
    referents = Referents(_medications(relevant), EncounterDays(relevant))
    entries: dict[str, list[Any]] = {name: [] for name in MODELS}
    unreadable, partly_read = [], []
    wording = knowledge.config.card.detail
    for index, resource in _one_version_each(relevant):
        written_as = resource["resourceType"]  # the reference keeps the type the record has (MedicationOrder)
        reference = f"{written_as}/{resource.get('id', f'#{index}')}"
        try:
            read = as_r4(resource)
            resource_type = read["resourceType"]
            model, left_out = _validate(read)
            entry = BUILDERS[resource_type](model, reference, referents)
            entries[resource_type].append(entry)
        except (ValidationError, ValueError, OverflowError) as exc:  # a valid-looking date that does not exist,
            # or a course of days (a supply of 1e6 years, a quantity over a tiny dose) that no calendar holds
            unreadable.append(_kind(wording, written_as))
            log.warning("left out a %s that failed FHIR validation: %s", written_as, _failed_elements(exc))
            continue
        if left_out:
            partly_read.append(WORDING.format(wording.partly_read_entry, kind=_kind(wording, written_as),
                                              elements=", ".join(left_out)))
            log.warning("read a %s without elements that failed FHIR validation: %s", written_as, ", ".join(left_out))
    observations = [_within_scales(observation, knowledge, partly_read) for observation in entries["Observation"]]
    return PatientRecord(
        conditions=tuple(entries["Condition"]),
        procedures=tuple(entries["Procedure"]),
        medications=tuple(entries["MedicationStatement"] + entries["MedicationRequest"]),
        service_requests=tuple(entries["ServiceRequest"]),
        observations=tuple(observations),
        reports=tuple(entries["DiagnosticReport"]),
        studies=tuple(entries["ImagingStudy"]),
        unreadable=tuple(unreadable),
        partly_read=tuple(partly_read),
    )


def _failed_elements(exc: Exception) -> str:
    """Where validation failed (for the IT team's log; never a value, which may be patient data)."""
    if isinstance(exc, ValidationError):
        return ", ".join(dict.fromkeys(".".join(str(part) for part in error["loc"]) for error in exc.errors()))
    return type(exc).__name__


def _within_scales(observation: ObservationEntry, knowledge: Knowledge, partly_read: list[str]) -> ObservationEntry:
    """The Observation without a score's value outside its scale (pain -1 or 11/10, a PROMIS score of 1e70): a
    typo or a unit mistake read as a value would make a response to an ESI out of nothing. Each is named in
    `partly_read`."""
    config = knowledge.config.observations
    kept = []
    for measurement in observation.measurements:
        score = next((s for s in (*config.scores, config.hba1c) if knowledge.find(measurement.codes, s.valueset)),
                     None) if measurement.value is not None else None
        if score is not None and measurement.value is not None and not score.holds(measurement.value):
            wording = knowledge.config.card.detail
            partly_read.append(WORDING.format(
                wording.out_of_scale, label=score.label, value=f"{measurement.value:g}",
                date=observation.day.isoformat() if observation.day else wording.unknown_day,
                low=number(score.scale[0]), high=number(score.scale[1])))
            log.warning("read an Observation without a %s value outside its scale", score.label)
            continue
        kept.append(measurement)
    return observation if len(kept) == len(observation.measurements) else replace(observation, measurements=tuple(kept))
