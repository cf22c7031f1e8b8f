"""Clinical knowledge, loaded once at start-up from cards/: pathway.yaml, code-systems.yaml (with a site's
local code systems) and valuesets/*.json.

A bad file stops the service with a KnowledgeError that names the file and the field.
"""
from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import simdjson
import yaml
from fhir.resources.R4B.valueset import ValueSet
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError, model_validator

from .codesystems import CodeSystemError, CodeSystems, load_code_systems
from .record import Code

ATTRIBUTE_EXTENSION = "https://cds-spine.org/fhir/StructureDefinition/code-attribute"
SUMMARY_LIMIT = 140
# Longest value each placeholder can take when a card is rendered (free text is shortened to this).
PLACEHOLDER_WORST_CASE = {
    "days": "365", "required": "365", "lookback_months": "12", "session": "99", "limit": "99",
    "days_since": "365", "min_days": "365", "condition": "x" * 40, "missing": "365", "count": "99",
    "next": "2099-12-31",
}
CONDITION_DISPLAY_LIMIT = 40
OPIOID = "opioid"


class KnowledgeError(Exception):
    """The clinical knowledge in cards/ is invalid; the message names the file and field."""


class Wording(string.Formatter):
    """str.format for card wording, plus plurals: `{days} {days:day|days}` reads "1 day", "12 days"."""

    def format_field(self, value, format_spec: str) -> str:
        if "|" in format_spec:
            singular, plural = format_spec.split("|", 1)
            return singular if str(value) == "1" else plural
        return super().format_field(value, format_spec)


WORDING = Wording()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OrderKind(_Strict):
    valueset: str
    label: str
    accepted_guidance: tuple[str, ...] = ()


class Orders(_Strict):
    esi: OrderKind
    surgery: OrderKind


class Group(_Strict):
    id: str
    label: str
    valueset: str


class Modality(Group):
    # True: counts only when its reason is a spine condition (occupational therapy is mostly for other things).
    needs_spine_reason: bool = False


class MedicationGroup(Group):
    ingredients: tuple[str, ...] = Field(min_length=1)


class Opioids(_Strict):
    label: str
    valueset: str
    ingredients: tuple[str, ...] = Field(min_length=1)


class Referrals(_Strict):
    valueset: str
    pending_days: int = Field(ge=0)


class Conservative(_Strict):
    modalities: tuple[Modality, ...] = Field(min_length=1)
    medications: tuple[MedicationGroup, ...] = Field(min_length=1)
    opioids: Opioids
    not_counted: tuple[Group, ...] = ()
    referrals: Referrals


class MedicationCourses(_Strict):
    active_without_end_is_ongoing: bool
    renewal_gap_days: int = Field(ge=0)
    other_condition_long_term_counts: bool


class Reasons(_Strict):
    attribution_days: int = Field(ge=0)
    attribution_valueset: str
    body_site_valueset: str
    nonspecific_valueset: str
    for_other_condition: str
    unnamed_condition: str
    for_other_region: str
    not_for_spine: str
    counted_for_other_condition: str
    counted_for_other_region: str


class DiagnosisGroup(_Strict):
    valueset: str
    label: str


class Diagnoses(_Strict):
    qualifying: DiagnosisGroup
    axial: DiagnosisGroup
    red_flags: tuple[Group, ...] = Field(min_length=1)


class Source(_Strict):
    label: str = Field(min_length=1)
    url: HttpUrl


class EsiRule(_Strict):
    min_conservative_days: int = Field(ge=0)
    max_sessions_per_region: int = Field(ge=1)
    session_window_days: int = Field(ge=1)
    min_days_between: int = Field(ge=0)
    rule: str
    source: Source


class Indication(_Strict):
    label: str = Field(min_length=1)
    valuesets: tuple[str, ...] = Field(min_length=1)


class SurgeryRule(_Strict):
    min_conservative_days: int = Field(ge=0)
    prior_esi_counts: bool
    prior_esi_label: str = Field(min_length=1)
    indications: dict[str, Indication]
    rule: str
    source: Source


class Rules(_Strict):
    esi: EsiRule
    surgery: SurgeryRule


FindingCode = Literal[
    "conservative-missing", "conservative-short", "esi-limit-exceeded", "esi-too-soon", "red-flag",
    "no-imaging-guidance", "no-qualifying-diagnosis", "no-surgery-indication", "criteria-met",
]


class FindingWording(_Strict):
    severity: Literal["info", "warning", "critical"]
    summary: str = Field(min_length=1)


class Detail(_Strict):
    found_heading: str
    nothing_found: str
    procedure_line: str
    medication_line: str
    episode: str
    missing: str
    not_counted_heading: str
    not_counted_line: str
    not_counted_once: str
    not_counted_more: str
    not_counted_limit: int = Field(ge=1)
    also_heading: str
    on_record_heading: str
    pending_referral: str
    red_flag_line: str
    prior_esi_line: str
    diagnosis_line: str
    unreadable: str
    partly_read: str
    undated: str
    rule: str


class Referral(_Strict):
    system: str
    code: str
    display: str
    text: str


class Suggestions(_Strict):
    replace_label: str
    replace_delete_description: str
    add_label: str
    create_description: str
    referral: Referral


class OverrideReason(_Strict):
    code: str = Field(min_length=1)
    display: str = Field(min_length=1)


class OverrideReasons(_Strict):
    system: str = Field(min_length=1)
    reasons: tuple[OverrideReason, ...] = Field(min_length=1)


class CardWording(_Strict):
    source_label: str = Field(min_length=1)
    source_url: HttpUrl
    smart_link_label: str = Field(min_length=1)
    pathway: str
    detail: Detail
    suggestions: Suggestions
    override_reasons: OverrideReasons


class PatientView(_Strict):
    """The patient-view card: where ESI and surgery stand by the rules that need no order."""

    summary: str
    red_flag: str
    red_flag_severity: Literal["warning", "critical"]
    met: str
    not_met: str
    exempt: str
    not_indicated: str
    limit_reached: str
    too_soon: str
    esi_name: str
    surgery_name: str
    standing_heading: str
    standing_line: str
    missing: str
    injections_line: str

    def criteria(self) -> tuple[str, ...]:
        return (self.met, self.not_met, self.exempt, self.not_indicated, self.limit_reached, self.too_soon)


class PathwayConfig(_Strict):
    title: str
    version: str
    lookback_days: int = Field(ge=1)
    episode_gap_days: int = Field(ge=0)
    orders: Orders
    regions: dict[str, str]
    region_segments: dict[str, tuple[str, ...]]
    medication_courses: MedicationCourses
    reasons: Reasons
    surgery_kinds: dict[str, str]
    conservative: Conservative
    diagnoses: Diagnoses
    rules: Rules
    findings: dict[FindingCode, FindingWording]
    card: CardWording
    patient_view: PatientView

    @model_validator(mode="after")
    def every_finding_is_worded(self) -> PathwayConfig:
        missing = set(FindingCode.__args__) - set(self.findings)
        if missing:
            raise ValueError(f"findings: missing wording for {sorted(missing)}")
        return self

    @model_validator(mode="after")
    def every_region_has_segments(self) -> PathwayConfig:
        missing = set(self.regions) - set(self.region_segments)
        if missing:
            raise ValueError(f"region_segments: no segments for region(s) {sorted(missing)}")
        missing = set(self.surgery_kinds) - set(self.rules.surgery.indications)
        if missing:
            raise ValueError(f"rules.surgery.indications: no indication for surgery kind(s) {sorted(missing)}")
        return self

    @model_validator(mode="after")
    def summaries_fit_on_a_card(self) -> PathwayConfig:
        view = self.patient_view
        values = dict(PLACEHOLDER_WORST_CASE, order=self.longest_order_label(),
                      region=max(self.regions.values(), key=len),
                      indication=max((i.label for i in self.rules.surgery.indications.values()), key=len))
        criteria = {f"patient_view.{name}": template for name, template in zip(
            ("met", "not_met", "exempt", "not_indicated", "limit_reached", "too_soon"), view.criteria(), strict=True)}
        longest = max((WORDING.format(template, **values) for template in criteria.values()
                       if not ({name for _, name, _, _ in WORDING.parse(template) if name} - set(values))), key=len)
        values.update(esi=longest, surgery=longest)
        templates = {f"findings.{code}.summary": wording.summary for code, wording in self.findings.items()}
        templates.update(criteria)
        templates["patient_view.summary"] = view.summary
        templates["patient_view.red_flag"] = view.red_flag
        for field_name, template in templates.items():
            unknown = {name for _, name, _, _ in WORDING.parse(template) if name} - set(values)
            if unknown:
                raise ValueError(f"{field_name}: unknown placeholder(s) {sorted(unknown)}")
            longest = WORDING.format(template, **values)
            if len(longest) >= SUMMARY_LIMIT:
                raise ValueError(f"{field_name}: can reach {len(longest)} characters; a summary must stay "
                                 f"under {SUMMARY_LIMIT}")
        return self

    def order_label(self, category: str, region: str, kind: str | None = None) -> str:
        template = self.orders.esi.label if category == "esi" else self.orders.surgery.label
        label = template.format(region=self.regions.get(region, ""), kind=self.surgery_kinds.get(kind or "", ""))
        return " ".join(label.split())

    def longest_order_label(self) -> str:
        labels = [self.order_label("esi", region) for region in self.regions]
        labels += [self.order_label("surgery", region, kind) for region in self.regions for kind in self.surgery_kinds]
        return max(labels, key=len)

    def referenced_valuesets(self) -> dict[str, str]:
        """Field path -> value set id, for every value set this file names."""
        refs = {"orders.esi.valueset": self.orders.esi.valueset,
                "orders.surgery.valueset": self.orders.surgery.valueset,
                "conservative.opioids.valueset": self.conservative.opioids.valueset,
                "conservative.referrals.valueset": self.conservative.referrals.valueset,
                "reasons.attribution_valueset": self.reasons.attribution_valueset,
                "reasons.body_site_valueset": self.reasons.body_site_valueset,
                "reasons.nonspecific_valueset": self.reasons.nonspecific_valueset,
                "diagnoses.qualifying.valueset": self.diagnoses.qualifying.valueset,
                "diagnoses.axial.valueset": self.diagnoses.axial.valueset}
        for kind, indication in self.rules.surgery.indications.items():
            refs.update({f"rules.surgery.indications.{kind}.valuesets[{i}]": valueset
                         for i, valueset in enumerate(indication.valuesets)})
        for path, groups in (("conservative.modalities", self.conservative.modalities),
                             ("conservative.medications", self.conservative.medications),
                             ("conservative.not_counted", self.conservative.not_counted),
                             ("diagnoses.red_flags", self.diagnoses.red_flags)):
            refs.update({f"{path}[{i}].valueset": group.valueset for i, group in enumerate(groups)})
        return refs


@dataclass(frozen=True)
class Membership:
    """A code's place in one value set, with the attributes the pathway reads (region, guidance, kind)."""

    valueset: str
    display: str | None
    attributes: Mapping[str, str]


WORD = re.compile(r"[a-z]+")


class IngredientNames:
    """Finds ingredient names as whole words in free text (case-insensitive), fast: one tokenization,
    then set lookups (a regex alternation of every name costs several times more per text)."""

    def __init__(self, names_to_owner: Mapping[str, str]) -> None:
        self._by_first_word: dict[str, list[tuple[str, str]]] = {}
        for name, owner in names_to_owner.items():
            lowered = name.lower()
            self._by_first_word.setdefault(lowered.split()[0], []).append((lowered, owner))

    def found(self, text: str) -> Iterable[tuple[str, str]]:
        """(name, owner) of every name in the text, in the order they appear."""
        words = WORD.findall(text.lower())
        padded = f" {' '.join(words)} "
        for word in words:
            for name, owner in self._by_first_word.get(word, ()):
                if " " not in name or f" {name} " in padded:
                    yield name, owner

    def owner(self, text: str) -> str | None:
        """The owner (group id) of the first name found in the text, or None."""
        return next((owner for _, owner in self.found(text)), None)


class Knowledge:
    """Immutable after load: the pathway configuration, the code systems, and an index (canonical system,
    normalized code) -> memberships."""

    def __init__(self, config: PathwayConfig, valuesets: Mapping[str, list[tuple[Code, Mapping[str, str]]]],
                 version: str, code_systems: CodeSystems) -> None:
        self.config = config
        self.version = version
        self.code_systems = code_systems
        self.valueset_ids = frozenset(valuesets)
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
        self._any_names = IngredientNames({**owners, **{name: OPIOID for name in config.conservative.opioids.ingredients}})
        diagnoses = config.diagnoses
        self._diagnosis_valuesets = (diagnoses.qualifying.valueset, diagnoses.axial.valueset,
                                     *(flag.valueset for flag in diagnoses.red_flags))

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
        systems = self.code_systems
        spellings_of_system: dict[str, frozenset[str]] = {}
        found: dict[str, set[str]] = {}
        for code in codes:
            canonical = systems.canonical(code.system)
            for system in (canonical, *systems.misfiled_under(canonical, code.code)):
                if system not in spellings_of_system:
                    spellings_of_system[system] = systems.spellings(system) | {system}
                for spelling in systems.code_spellings(canonical, code.code):
                    found.setdefault(spelling, set()).update(spellings_of_system[system])
        return {code: frozenset(raw_systems) for code, raw_systems in found.items()}

    def medication_group_by_text(self, text: str) -> MedicationGroup | None:
        """The group of a product named in free text, when every ingredient it names counts: RxNorm names
        list ingredients separated by " / " (a cough product with acetaminophen and dextromethorphan does
        not count as acetaminophen)."""
        owners = [self._medication_names.owner(part) for part in text.split(" / ")]
        if not owners or None in owners:
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

    def mentions_medication(self, text: str) -> bool:
        """Does the text name any ingredient the pathway knows (counting or opioid)? Cached by text: a
        record repeats the same few medication names."""
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
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise KnowledgeError(f"{path}: cannot read: {exc}") from exc
    try:
        return PathwayConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(top level)'}: {error['msg']}"
            for error in exc.errors())
        raise KnowledgeError(f"{path}: {problems}") from None


def _attributes(entry) -> dict[str, str]:
    attributes = {}
    for extension in entry.extension or ():
        if extension.url == ATTRIBUTE_EXTENSION:
            parts = {part.url: part.valueCode for part in extension.extension or ()}
            attributes[parts["name"]] = parts["value"]
    return attributes


def _load_valueset(path: Path) -> list[tuple[Code, Mapping[str, str]]]:
    try:
        valueset = ValueSet.model_validate(simdjson.loads(path.read_bytes()))
    except (OSError, ValueError, RuntimeError, ValidationError) as exc:
        raise KnowledgeError(f"{path}: not a valid FHIR R4 ValueSet: {exc}") from None
    if valueset.id != path.stem:
        raise KnowledgeError(f"{path}: id {valueset.id!r} must equal the file name {path.stem!r}")
    if not valueset.expansion or not valueset.expansion.contains:
        raise KnowledgeError(f"{path}: expansion.contains is empty")
    entries = []
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
    for field_path, valueset_id in config.referenced_valuesets().items():
        if valueset_id not in valuesets:
            raise KnowledgeError(f"{cards_dir / 'pathway.yaml'}: {field_path}: no value set {valueset_id!r} "
                                 f"in {cards_dir / 'valuesets'}")
    return Knowledge(config, valuesets, knowledge_version(cards_dir, site_code_systems), code_systems)
