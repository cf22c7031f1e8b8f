"""Code systems as records write them: cards/code-systems.yaml, plus a site's local systems.

Every spelling of a system's URI (OIDs, older URLs, a trailing slash, http or https, a bare OID) reads as
its canonical URI; a site's local system reads as the standard one it maps to; ICD codes compare without
their dots; a code that does not look like a code of the system it is filed under is read under the
standard system it does look like. What the file says is data: no system is named in Python.
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..yamlio import load_yaml

OID_PREFIX = "urn:oid:"


class CodeSystemError(Exception):
    """A code-systems file is invalid; the message names the file and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StandardSystem(_Strict):
    name: str = Field(min_length=1)
    spellings: tuple[str, ...] = ()
    ignore_dots: bool = False
    pattern: str | None = None

    @field_validator("pattern")
    @classmethod
    def pattern_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value


class LocalCode(_Strict):
    system: str = Field(min_length=1)
    code: str = Field(min_length=1)
    display: str | None = None


class SiteCodeSystems(_Strict):
    """What a site adds: local systems read as standard ones, systems no rule reads, and its own codes for
    what no standard code names (the Neck Disability Index, an EHR's flowsheet rows), by value set."""

    local: dict[str, str] = {}
    not_read: tuple[str, ...] = ()
    codes: dict[str, tuple[LocalCode, ...]] = {}


class CodeSystemsFile(SiteCodeSystems):
    systems: dict[str, StandardSystem] = Field(min_length=1)

    @model_validator(mode="after")
    def local_systems_map_to_standard_ones(self) -> CodeSystemsFile:
        _check_targets(self.local, self.systems)
        return self


def _check_targets(local: Mapping[str, str], systems: Mapping[str, StandardSystem]) -> None:
    unknown = sorted({target for target in local.values() if target not in systems})
    if unknown:
        raise ValueError(f"local: {unknown} are not standard systems of cards/code-systems.yaml "
                         f"({', '.join(sorted(systems))})")


def spellings_of(uri: str) -> Iterator[str]:
    """The ways records write one URI: as given, with or without a trailing slash, http or https, and an
    OID with or without `urn:oid:`."""
    stem = uri.rstrip("/")
    variants = {stem}
    if stem.startswith(("http://", "https://")):
        rest = stem.split("://", 1)[1]
        variants |= {f"http://{rest}", f"https://{rest}"}
    variants |= {f"{variant}/" for variant in variants if not variant.startswith(OID_PREFIX)}
    if stem.startswith(OID_PREFIX):
        variants.add(stem[len(OID_PREFIX):])
    yield from sorted(variants)


class CodeSystems:
    """Immutable after load: raw system URI -> canonical standard URI, and how each compares codes."""

    def __init__(self, config: CodeSystemsFile, site: SiteCodeSystems | None = None) -> None:
        self.config = config
        self.site = site or SiteCodeSystems()
        local = {**config.local, **(site.local if site else {})}
        canonical: dict[str, str] = {}
        for uri, system in config.systems.items():
            for spelling in (uri, *system.spellings):
                canonical.update(dict.fromkeys(spellings_of(spelling), uri))
        for uri, target in local.items():
            canonical.update(dict.fromkeys(spellings_of(uri), target))
        self._canonical = MappingProxyType(canonical)
        self.codes = MappingProxyType({valueset: (*config.codes.get(valueset, ()), *self.site.codes.get(valueset, ()))
                                       for valueset in {*config.codes, *self.site.codes}})
        """Codes added to value sets (cards' own, then the site's): local codes for what has no standard one."""
        not_read = (*config.not_read, *(site.not_read if site else ()),
                    *(code.system for codes in self.codes.values() for code in codes))
        self.known = frozenset(canonical) | frozenset(s for uri in not_read for s in spellings_of(uri))
        """Every raw spelling of a system the service knows, read or not (the others are unplaced)."""
        self.local = MappingProxyType(local)
        self._dotless = frozenset(uri for uri, system in config.systems.items() if system.ignore_dots)
        self._patterns = {uri: re.compile(system.pattern) for uri, system in config.systems.items() if system.pattern}

    def canonical(self, system: str) -> str:
        """The standard URI a raw system URI stands for (itself when it is not known)."""
        return self._canonical.get(system, system)

    def spellings(self, canonical: str) -> frozenset[str]:
        """Every raw URI that reads as this standard system (local systems mapped to it included)."""
        return frozenset(raw for raw, uri in self._canonical.items() if uri == canonical)

    def normalize(self, canonical: str, code: str) -> str:
        code = code.strip()
        return code.replace(".", "").upper() if canonical in self._dotless else code

    def code_spellings(self, canonical: str, code: str) -> frozenset[str]:
        """How records write a value-set code: as listed, and without its dot where dots are ignored."""
        return frozenset({code, self.normalize(canonical, code)})

    def read(self, system: str, code: str) -> tuple[str, str]:
        """(canonical system, normalized code) a coding stands for; a code that does not fit its system's
        pattern but fits another standard system's is read under that one."""
        canonical = self.canonical(system)
        normalized = self.normalize(canonical, code)
        pattern = self._patterns.get(canonical)
        if pattern is not None and not pattern.match(normalized):
            for other, other_pattern in self._patterns.items():
                if other != canonical and other_pattern.match(self.normalize(other, code)):
                    return other, self.normalize(other, code)
        return canonical, normalized

    def misfiled_under(self, canonical: str, code: str) -> frozenset[str]:
        """Standard systems a code of `canonical` may be misfiled under: those whose pattern it does not fit."""
        return frozenset(other for other, pattern in self._patterns.items()
                         if other != canonical and not pattern.match(self.normalize(other, code)))


def _read_yaml(path: Path, error: type[Exception]) -> object:
    try:
        return load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise error(f"{path}: cannot read: {exc}") from None


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(part) for part in error['loc']) or '(top level)'}: {error['msg']}"
                     for error in exc.errors())


def _only_local_codes(site: SiteCodeSystems, config: CodeSystemsFile) -> None:
    """A site adds its own codes for what no standard code names; a standard code (or a local system's code that
    reads as one) in a value set would change the pathway for every patient who has it (M54.16 among the red
    flags waives the conservative requirement for every radiculopathy): refused, named."""
    local = {**config.local, **site.local}
    standard = [f"{valueset}: {code.system}|{code.code}" for valueset, codes in site.codes.items() for code in codes
                if code.system in config.systems or local.get(code.system) in config.systems]
    if standard:
        raise ValueError(f"codes: {'; '.join(standard)}: a standard code; value sets take standard codes from their "
                         f"sources (cards/valuesets); a site adds only codes of its own local systems")


def load_code_systems(path: Path, site_path: Path | None = None) -> CodeSystems:
    """cards/code-systems.yaml and, when given, the site's file of local systems."""
    try:
        config = CodeSystemsFile.model_validate(_read_yaml(path, CodeSystemError))
    except ValidationError as exc:
        raise CodeSystemError(f"{path}: {_problems(exc)}") from None
    site = None
    if site_path is not None:
        try:
            site = SiteCodeSystems.model_validate(_read_yaml(site_path, CodeSystemError) or {})
            _check_targets(site.local, config.systems)
            _only_local_codes(site, config)
        except ValidationError as exc:
            raise CodeSystemError(f"{site_path}: {_problems(exc)}") from None
        except ValueError as exc:
            raise CodeSystemError(f"{site_path}: {exc}") from None
    return CodeSystems(config, site)
