"""Which raw resources any rule reads: one pass over the raw JSON keeps those whose codes fall in a value set (or,
for medications, whose text names a known ingredient, or that name their drug by reference), every Medication
(the drugs references point to) and every Encounter (the date of a diagnosis recorded without one); only those
are ever validated. A malformed resource that no rule reads cannot fail the request."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ..jsonio import ARRAYS, OBJECTS, materialize, optional_member
from ..pathway.knowledge import Knowledge
from .generations import READ_AS
from .resources import (
    MODELS,
)

MEDICATION_TYPES = frozenset({"MedicationStatement", "MedicationRequest", "MedicationOrder"})
RECORD_TYPES = frozenset(MODELS) | frozenset(READ_AS)
"""The resource types the rules read, in every FHIR generation."""
ALWAYS_KEPT = frozenset({"Medication", "Encounter"})


def _medication_names(concept: Any, reference: Any) -> Iterator[str]:
    """The free text that may name a medication (or a diagnosis): the concept's text and displays, the
    reference's display."""
    if concept.__class__ in OBJECTS:
        yield concept.get("text")
        coding = concept.get("coding")
        for item in coding if coding.__class__ in ARRAYS else ():
            if item.__class__ in OBJECTS:
                yield item.get("display")
    if reference.__class__ in OBJECTS:
        yield reference.get("display")


def _as_concept(value: Any) -> Any:
    """An ImagingStudy series' body site as a CodeableConcept, whether written as a Coding (R4, STU3), a
    CodeableConcept or a CodeableReference (R5)."""
    if value.__class__ not in OBJECTS:
        return None
    if value.get("concept").__class__ in OBJECTS:
        return value["concept"]
    return value if "coding" in value else {"coding": [value]}


def _imaging_concepts(resource: dict[str, Any]) -> Iterator[Any]:
    """The concepts that make an ImagingStudy one of the spine: its procedure codes and its series' body sites."""
    codes = resource.get("procedureCode")
    yield from codes if codes.__class__ in ARRAYS else ()
    series = resource.get("series")
    item: Any
    for item in series if series.__class__ in ARRAYS else ():
        if item.__class__ in OBJECTS:
            yield _as_concept(item.get("bodySite"))


def relevance_filter(knowledge: Knowledge, unplaced: Callable[[str], None] | None = None
                     ) -> Callable[[dict[str, Any]], bool]:
    """The one-pass filter: does any rule read this resource? It runs on every resource of every call
    (plain or lazy JSON objects alike), so it is a closure over plain dictionaries. A lazy resource's concept is
    made a plain dict once (cheaper than its many lazy reads), and members most resources lack are asked for
    through `optional_member` (a lazy get of an absent member costs 30 times a present one). `unplaced` is told the
    code systems of every code the rules would read whose systems the service cannot place (none of its
    codings under a standard, local or known-but-unread system)."""
    systems_by_code = knowledge.systems_by_raw_code
    known_systems = knowledge.code_systems.known
    mentions_medication = knowledge.mentions_medication
    mentions_diagnosis_words = knowledge.mentions_diagnosis_words

    def in_a_value_set(concept: Any) -> bool:
        if concept.__class__ not in OBJECTS:
            return False
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
        return False

    def is_relevant(resource: dict[str, Any]) -> bool:
        resource_type = resource.get("resourceType")
        if resource_type in ALWAYS_KEPT:
            return True
        is_medication = resource_type in MEDICATION_TYPES
        if is_medication:
            concept = materialize(resource.get("medicationCodeableConcept"))
            if concept is None and optional_member(resource, "medicationReference").__class__ in OBJECTS:
                return True
        elif resource_type == "ImagingStudy":
            return any(in_a_value_set(concept) for concept in _imaging_concepts(resource))
        elif resource_type in RECORD_TYPES:
            concept = materialize(resource.get("code"))
        else:
            return False
        if in_a_value_set(concept):
            return True
        if resource_type == "Observation":  # a panel whose components are the scores (PEG: pain, interference)
            components = optional_member(resource, "component")
            component: Any
            for component in components if components.__class__ in ARRAYS else ():
                if component.__class__ in OBJECTS and in_a_value_set(component.get("code")):
                    return True
        if is_medication:
            for name in _medication_names(concept, optional_member(resource, "medicationReference")):
                if name.__class__ is str and mentions_medication(name):
                    return True
        elif resource_type == "Condition":  # a red flag or cancer named only in words (the last resort)
            for name in _medication_names(concept, None):
                if name.__class__ is str and mentions_diagnosis_words(name):
                    return True
        return False

    return is_relevant
