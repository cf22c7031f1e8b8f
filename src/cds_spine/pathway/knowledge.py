"""Clinical knowledge, loaded once at start-up from cards/: pathway.yaml, code-systems.yaml (with a site's
local code systems) and valuesets/*.json.

A bad file stops the service with a KnowledgeError that names the file and the field.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal, get_args

import simdjson
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from ..yamlio import load_yaml
from .codesystems import CodeSystemError, CodeSystems, load_code_systems
from .config import PATIENT_SUMMARY, FindingCode, MedicationGroup, PathwayConfig
from .ingredients import IngredientNames
from .record import Code

ATTRIBUTE_EXTENSION = "https://cds-spine.org/fhir/StructureDefinition/code-attribute"
CONDITION_DISPLAY_LIMIT = 40
RED_FLAG_NAME_LIMIT = 120
"""A red flag's name is kept to this (its finding's short summary keeps it whole on the card where it fits)."""
OPIOID = "opioid"


class KnowledgeError(Exception):
    """The clinical knowledge in cards/ is invalid; the message names the file and field."""



@dataclass(frozen=True)
class Membership:
    """A code's place in one value set, with the attributes the pathway reads (region, guidance, kind)."""

    valueset: str
    display: str | None
    attributes: Mapping[str, str]


class Knowledge:
    """Immutable after load: the pathway configuration, the code systems, and an index (canonical system,
    normalized code) -> memberships."""

    def __init__(self, config: PathwayConfig, valuesets: Mapping[str, list[tuple[Code, Mapping[str, str]]]],
                 version: str, code_systems: CodeSystems, topics: CardTopics) -> None:
        self.config = config
        self.topics = topics
        self.version = version
        self.code_systems = code_systems
        self.valueset_ids = frozenset(valuesets)
        self.valueset_codes = {valueset_id: tuple(code for code, _ in entries)
                               for valueset_id, entries in valuesets.items()}
        """Each value set's codes, as cards/ writes them (a FHIR search for exactly those codes)."""
        index: dict[tuple[str, str], list[Membership]] = {}
        for valueset_id, entries in valuesets.items():
            for code, attributes in entries:
                key = code_systems.read(code.system, code.code)
                index.setdefault(key, []).append(Membership(valueset_id, code.display, MappingProxyType(attributes)))
        self._index = {key: tuple(found) for key, found in index.items()}
        self.systems_by_raw_code = self._raw_code_index(code for entries in valuesets.values() for code, _ in entries)
        """Code as records write it -> every raw system URI it may be filed under (for the one pass over raw
        JSON): its system's spellings and local systems, and those of systems it may be misfiled under."""
        self._mentions_cache: dict[str, bool] = {}
        self._memberships_cache: dict[tuple[str, str], tuple[Membership, ...]] = {}
        self._medication_groups = {group.id: group for group in config.conservative.medications}
        owners = {name: group.id for group in config.conservative.medications for name in group.ingredients}
        self._medication_names = IngredientNames(owners)
        self._opioid_names = IngredientNames({name: OPIOID for name in config.conservative.opioids.ingredients})
        self.anticoagulant_names = IngredientNames({name: drug.label for drug in config.anticoagulation.drugs
                                                    for name in drug.ingredients})
        """Anticoagulant and antiplatelet ingredients -> the drug's label."""
        immunosuppressants = config.image_first.immunosuppressants
        self.immunosuppressant_names = IngredientNames({name: immunosuppressants.label
                                                        for name in immunosuppressants.ingredients})
        self._any_names = IngredientNames({**owners, **{name: OPIOID for name in config.conservative.opioids.ingredients},
                                           **{name: drug.label for drug in config.anticoagulation.drugs
                                              for name in drug.ingredients},
                                           **{name: immunosuppressants.label for name in immunosuppressants.ingredients}})
        self.red_flag_words = IngredientNames({word: flag.id for flag in config.diagnoses.red_flags
                                               for word in flag.text})
        """Words that mark a red flag in a diagnosis's text -> the red flag's id (the last resort)."""
        self.image_first_words = IngredientNames({word: flag.id for flag in config.image_first.flags
                                                  for word in flag.text})
        self._not_a_flag_words = IngredientNames({word: "unless" for word in config.image_first.text_unless})
        self._diagnosis_words_cache: dict[str, bool] = {}
        diagnoses = config.diagnoses
        self._diagnosis_valuesets = (diagnoses.qualifying.valueset, diagnoses.axial.valueset,
                                     *(flag.valueset for flag in diagnoses.red_flags))

    def observation_codes(self) -> list[tuple[str, str]]:
        """(system, code) of every Observation code a rule reads (cards/pathway.yaml `observations`)."""
        return sorted({(code.system, code.code) for valueset in self.config.observations.read()
                       for code in self.valueset_codes[valueset]})

    def imaging_codes(self) -> list[tuple[str, str]]:
        """(system, code) of every spine imaging study (cards/pathway.yaml `imaging.valueset`)."""
        return sorted({(code.system, code.code) for code in self.valueset_codes[self.config.imaging.valueset]})

    def imaging_modalities(self) -> list[tuple[str, str]]:
        """(system, code) of the modalities that make an ImagingStudy MRI or CT (`imaging.modality_valueset`)."""
        return sorted({(code.system, code.code)
                       for code in self.valueset_codes[self.config.imaging.modality_valueset]})

    def memberships(self, system: str | None, code: str | None) -> tuple[Membership, ...]:
        """Cached by (system, code) as written: a record repeats the same codes, and reading one (spelling,
        dots, misfiling) costs more than the lookup."""
        if not system or not code:
            return ()
        key = (system, code)
        found = self._memberships_cache.get(key)
        if found is None:
            if len(self._memberships_cache) > 100_000:
                self._memberships_cache.clear()
            found = self._memberships_cache[key] = self._index.get(self.code_systems.read(system, code), ())
        return found

    def find(self, codes: Iterable[Code], valueset: str) -> Membership | None:
        """The first of `codes` that is in `valueset`."""
        for code in codes:
            for membership in self.memberships(code.system, code.code):
                if membership.valueset == valueset:
                    return membership
        return None

    def knows_any(self, codes: Iterable[Code]) -> bool:
        return any(self.memberships(code.system, code.code) for code in codes)

    def _raw_code_index(self, codes: Iterable[Code]) -> dict[str, frozenset[str]]:
        """Each way a value-set code is written -> every raw system URI under which a record's coding of it may be
        in a value set. Worked out as standard systems first, then each distinct set of them spelt out once (the
        codes share a handful; spelling each code's out made start-up 0.05 s slower)."""
        systems = self.code_systems
        standard: dict[str, set[str]] = {}
        for system, code in {(code.system, code.code) for code in codes}:
            canonical = systems.canonical(system)
            readings = (canonical, *systems.misfiled_under(canonical, code))
            for spelling in systems.code_spellings(canonical, code):
                standard.setdefault(spelling, set()).update(readings)
        spelt: dict[frozenset[str], frozenset[str]] = {}
        index = {}
        for spelling, read_as in standard.items():
            key = frozenset(read_as)
            if key not in spelt:
                spelt[key] = frozenset(raw for system in key for raw in (*systems.spellings(system), system))
            index[spelling] = spelt[key]
        return index

    def medication_group_by_text(self, text: str) -> MedicationGroup | None:
        """The group of a product named in free text, when every ingredient it names counts: RxNorm names
        list ingredients separated by " / " (a cough product with acetaminophen and dextromethorphan does
        not count as acetaminophen)."""
        owners = [self._medication_names.owner(part) for part in text.split(" / ")]
        if not owners or owners[0] is None or None in owners:
            return None
        return self._medication_groups[owners[0]]

    def ingredients(self, text: str) -> frozenset[str]:
        """The counting ingredients a text names (renewals of one ingredient join one course)."""
        return frozenset(name for name, _ in self._medication_names.found(text))

    def spine_diagnosis(self, codes: Iterable[Code]) -> Membership | None:
        """The first of `codes` in a spine diagnosis value set (qualifying, axial pain or a red flag)."""
        codes = tuple(codes)
        return next((found for valueset in self._diagnosis_valuesets
                     if (found := self.find(codes, valueset))), None)

    def segments(self, membership: Membership | None) -> frozenset[str]:
        """The spinal segments a code's region covers; empty when it names no region (any region)."""
        region = membership.attributes.get("region") if membership else None
        return frozenset(self.config.region_segments.get(region, ())) if region else frozenset()

    def mentions_opioid(self, text: str) -> bool:
        return self._opioid_names.owner(text) is not None

    def image_first_by_text(self, text: str) -> str | None:
        """The image-first flag a diagnosis's text names, unless the text says it is not one (benign, in situ)."""
        flag = self.image_first_words.owner(text)
        return flag if flag and self._not_a_flag_words.owner(text) is None else None

    def mentions_diagnosis_words(self, text: str) -> bool:
        """Does a diagnosis's text name a red flag or an image-first flag? (the one-pass filter keeps it)"""
        found = self._diagnosis_words_cache.get(text)
        if found is None:
            if len(self._diagnosis_words_cache) > 100_000:
                self._diagnosis_words_cache.clear()
            found = self._diagnosis_words_cache[text] = bool(text) and (
                self.red_flag_words.owner(text) is not None or self.image_first_by_text(text) is not None)
        return found

    def mentions_medication(self, text: str) -> bool:
        """Does the text name any ingredient the pathway knows (counting, opioid or anticoagulant)? Cached by
        text: a record repeats the same few medication names."""
        found = self._mentions_cache.get(text)
        if found is None:
            if len(self._mentions_cache) > 100_000:
                self._mentions_cache.clear()
            found = self._mentions_cache[text] = bool(text) and self._any_names.owner(text) is not None
        return found


def knowledge_version(cards_dir: Path, site_code_systems: Path | None = None) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in cards_dir.rglob("*") if p.is_file()):
        digest.update(path.relative_to(cards_dir).as_posix().encode())
        digest.update(path.read_bytes())
    if site_code_systems is not None:
        digest.update(b"\0site code systems\0" + site_code_systems.read_bytes())
    return digest.hexdigest()[:16]


def _load_config(path: Path) -> PathwayConfig:
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise KnowledgeError(f"{path}: cannot read: {exc}") from exc
    try:
        return PathwayConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(top level)'}: {error['msg']}"
            for error in exc.errors())
        raise KnowledgeError(f"{path}: {problems}") from None


class _Read(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Part(_Read):
    url: str
    valueCode: str | None = None  # noqa: N815 - FHIR's name


class _Extension(_Read):
    url: str
    extension: tuple[_Part, ...] = ()


class _Contains(_Read):
    system: str | None = None
    code: str | None = None
    display: str | None = None
    extension: tuple[_Extension, ...] = ()


class _Expansion(_Read):
    contains: tuple[_Contains, ...] = ()


class _Concept(_Read):
    code: str
    display: str


class _CodeSystem(_Read):
    resourceType: Literal["CodeSystem"]  # noqa: N815
    url: str
    status: Literal["draft", "active", "retired", "unknown"]
    concept: tuple[_Concept, ...] = ()


@dataclass(frozen=True)
class CardTopics:
    """cards/card-topics.json: what a card is about, as its source.topic (a code per finding and one for the
    patient-view card), so that an EHR recognises a card, and an override of it, on later calls."""

    system: str
    displays: Mapping[str, str]


def _load_topics(path: Path) -> CardTopics:
    try:
        code_system = _CodeSystem.model_validate(simdjson.loads(path.read_bytes()))
    except (OSError, ValueError, RuntimeError, ValidationError) as exc:
        raise KnowledgeError(f"{path}: not a valid FHIR R4 CodeSystem: {exc}") from None
    displays = {concept.code: concept.display for concept in code_system.concept}
    missing = sorted({*get_args(FindingCode), PATIENT_SUMMARY} - set(displays))
    if missing:
        raise KnowledgeError(f"{path}: concept: no topic for {', '.join(missing)}")
    return CardTopics(code_system.url, MappingProxyType(displays))


class _ValueSet(_Read):
    """The elements of a FHIR R4 ValueSet the index reads (a full FHIR model costs most of the start-up; the
    files are checked against fhir.resources' ValueSet by the tests, since they are published knowledge)."""

    resourceType: Literal["ValueSet"]  # noqa: N815
    id: str
    status: Literal["draft", "active", "retired", "unknown"]
    expansion: _Expansion | None = None


def _attributes(entry: _Contains) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for extension in entry.extension:
        if extension.url == ATTRIBUTE_EXTENSION:
            parts = {part.url: part.valueCode for part in extension.extension}
            name, value = parts.get("name"), parts.get("value")
            if name is not None and value is not None:
                attributes[name] = value
    return attributes


def _load_valueset(path: Path) -> list[tuple[Code, Mapping[str, str]]]:
    try:
        valueset = _ValueSet.model_validate(simdjson.loads(path.read_bytes()))
    except (OSError, ValueError, RuntimeError, ValidationError) as exc:
        raise KnowledgeError(f"{path}: not a valid FHIR R4 ValueSet: {exc}") from None
    if valueset.id != path.stem:
        raise KnowledgeError(f"{path}: id {valueset.id!r} must equal the file name {path.stem!r}")
    if not valueset.expansion or not valueset.expansion.contains:
        raise KnowledgeError(f"{path}: expansion.contains is empty")
    entries: list[tuple[Code, Mapping[str, str]]] = []
    for i, entry in enumerate(valueset.expansion.contains):
        if not entry.system or not entry.code:
            raise KnowledgeError(f"{path}: expansion.contains[{i}] needs system and code")
        entries.append((Code(entry.system, entry.code, entry.display), _attributes(entry)))
    return entries


def load_knowledge(cards_dir: Path, site_code_systems: Path | None = None) -> Knowledge:
    """cards/ and, when given, the site's file of local code systems (CDS_SPINE_LOCAL_CODE_SYSTEMS)."""
    config = _load_config(cards_dir / "pathway.yaml")
    try:
        code_systems = load_code_systems(cards_dir / "code-systems.yaml", site_code_systems)
    except CodeSystemError as exc:
        raise KnowledgeError(str(exc)) from None
    valuesets = {path.stem: _load_valueset(path) for path in sorted((cards_dir / "valuesets").glob("*.json"))}
    for valueset_id, codes in code_systems.codes.items():
        if valueset_id not in valuesets:
            raise KnowledgeError(f"{site_code_systems or cards_dir / 'code-systems.yaml'}: codes: no value set "
                                 f"{valueset_id!r} in {cards_dir / 'valuesets'}")
        valuesets[valueset_id] = [*valuesets[valueset_id],
                                  *((Code(code.system, code.code, code.display), {}) for code in codes)]
    for field_path, valueset_id in config.referenced_valuesets().items():
        if valueset_id not in valuesets:
            raise KnowledgeError(f"{cards_dir / 'pathway.yaml'}: {field_path}: no value set {valueset_id!r} "
                                 f"in {cards_dir / 'valuesets'}")
    return Knowledge(config, valuesets, knowledge_version(cards_dir, site_code_systems), code_systems,
                     _load_topics(cards_dir / "card-topics.json"))
