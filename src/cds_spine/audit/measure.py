"""The pathway measure, as data: cards/measure.json, a FHIR R4 Measure (proportion scoring) whose groups are
the components of adherence. Each group says, in extensions, which order kinds it applies to (and which
findings make it apply, for a component of repeat ESIs only), which findings mean it is not met, which decisions exclude an order from its denominator, and (for the overall
group) which components it combines. This module reads those and scores one assessed order.
"""
from __future__ import annotations

import functools
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import simdjson
from fhir.resources.R4B.measure import Measure
from pydantic import ValidationError

from ..pathway import Decision, Knowledge, KnowledgeError

EXTENSION = "https://cds-spine.org/fhir/StructureDefinition/"
ORDER_KIND = EXTENSION + "measure-component-order-kind"
NOT_MET_BY = EXTENSION + "measure-component-not-met-by"
EXCLUDED_BY = EXTENSION + "measure-component-excluded-by"
APPLIES_WITH = EXTENSION + "measure-component-applies-with"
COMBINES = EXTENSION + "measure-component-combines"
POPULATIONS = ("initial-population", "denominator", "denominator-exclusion", "numerator")
STRATIFIERS = ("order-kind", "region", "clinician", "site", "month")
"""The strata the audit can compute."""
MEASURE_FILE = "measure.json"
Outcome = Literal["met", "not-met", "excluded"]


class MeasureError(KnowledgeError):
    """cards/measure.json is invalid; the message names the file and the group."""


@dataclass(frozen=True)
class Component:
    id: str
    title: str
    kinds: frozenset[str]
    """Order kinds it applies to; empty: every kind."""
    not_met_by: frozenset[str]
    excluded_by: frozenset[str]
    combines: tuple[str, ...]
    applies_with: frozenset[str] = frozenset()
    """Findings of which an order needs one for the component to apply (a repeat ESI's response); empty: any."""

    def applies(self, kind: str, findings: Collection[str] = ()) -> bool:
        return ((not self.kinds or kind in self.kinds)
                and (not self.applies_with or bool(self.applies_with & set(findings))))


@dataclass(frozen=True)
class Stratifier:
    id: str
    code: dict[str, Any]
    """As the Measure writes it, for MeasureReport.group.stratifier.code."""


@dataclass(frozen=True)
class MeasureDefinition:
    resource: dict[str, Any]
    """The Measure as published (GET /audit/measure)."""
    components: tuple[Component, ...]
    """In the Measure's group order; the overall group first."""
    stratifiers: tuple[Stratifier, ...]

    @property
    def canonical(self) -> str:
        return f"{self.resource['url']}|{self.resource['version']}"

    def stratifier_code(self, stratifier_id: str) -> dict[str, Any]:
        return next(s.code for s in self.stratifiers if s.id == stratifier_id)

    def component(self, component_id: str) -> Component:
        return next(c for c in self.components if c.id == component_id)

    def outcomes(self, kind: str, decision: str, findings: Collection[str]) -> dict[str, Outcome]:
        """Each component that applies to the order: met, not met, or excluded from its denominator."""
        found: dict[str, Outcome] = {}
        for component in sorted(self.components, key=lambda c: bool(c.combines)):  # combined ones last
            if not component.applies(kind, findings):
                continue
            if decision in component.excluded_by:
                found[component.id] = "excluded"
            elif component.combines:
                found[component.id] = "not-met" if any(found.get(part) == "not-met"
                                                        for part in component.combines) else "met"
            else:
                found[component.id] = "not-met" if component.not_met_by & set(findings) else "met"
        return found


def _values(element: Any, url: str) -> list[str]:
    return [e.valueCode for e in element.extension or () if e.url == url]


def _code(concept: Any) -> str | None:
    return concept.coding[0].code if concept and concept.coding else None


@functools.lru_cache(maxsize=8)
def _parsed(content: bytes) -> tuple[dict[str, Any], Measure]:
    """The file's JSON and its FHIR validation, once per content in a process (validating the Measure is most of
    the cost of starting an app; the checks against the knowledge below run every time)."""
    raw = simdjson.loads(content)
    return raw, Measure.model_validate(raw)


def load_measure(cards_dir: Path, knowledge: Knowledge) -> MeasureDefinition:
    """The Measure in cards/, checked against the pathway's findings, order kinds and decisions."""
    path = cards_dir / MEASURE_FILE
    finding_codes, order_kinds = knowledge.config.findings, type(knowledge.config.orders).model_fields
    decisions = [d.value for d in Decision]
    try:
        raw, measure = _parsed(path.read_bytes())
    except (OSError, ValueError, RuntimeError, ValidationError) as exc:
        raise MeasureError(f"{path}: not a valid FHIR R4 Measure: {exc}") from None
    if not measure.url or not measure.version:
        raise MeasureError(f"{path}: url and version are required (MeasureReports reference them)")
    components: list[Component] = []
    stratifiers: dict[str, Stratifier] = {}
    for index, group in enumerate(measure.group or ()):
        where = f"{path}: group[{index}]"
        component_id = _code(group.code)
        if not component_id:
            raise MeasureError(f"{where}: code.coding[0].code names the component and is required")
        codes = {_code(p.code) for p in group.population or ()}
        if codes != set(POPULATIONS):
            raise MeasureError(f"{where} ({component_id}): populations must be {', '.join(POPULATIONS)}")
        component = Component(component_id, (group.code.text if group.code else None) or component_id, frozenset(_values(group, ORDER_KIND)),
                              frozenset(_values(group, NOT_MET_BY)), frozenset(_values(group, EXCLUDED_BY)),
                              tuple(_values(group, COMBINES)), frozenset(_values(group, APPLIES_WITH)))
        for label, values, allowed in (("order kind", component.kinds, order_kinds),
                                       ("finding", component.not_met_by | component.applies_with, finding_codes),
                                       ("decision", component.excluded_by, decisions)):
            unknown = sorted(set(values) - set(allowed))
            if unknown:
                raise MeasureError(f"{where} ({component_id}): unknown {label} {unknown[0]!r}")
        if bool(component.combines) == bool(component.not_met_by):
            raise MeasureError(f"{where} ({component_id}): a component either lists the findings that fail it "
                               f"or combines other components")
        components.append(component)
        for position, stratifier in enumerate(group.stratifier or ()):
            stratifier_id = _code(stratifier.code)
            if stratifier_id not in STRATIFIERS:
                raise MeasureError(f"{where} ({component_id}): stratifier code {stratifier_id!r} is not one of "
                                   f"{', '.join(STRATIFIERS)}")
            stratifiers.setdefault(stratifier_id, Stratifier(stratifier_id,
                                                             raw["group"][index]["stratifier"][position]["code"]))
    ids = [c.id for c in components]
    if len(set(ids)) != len(ids) or not components:
        raise MeasureError(f"{path}: groups must have distinct component codes, at least one")
    for component in components:
        unknown = sorted(set(component.combines) - set(ids))
        if unknown:
            raise MeasureError(f"{path}: group {component.id} combines unknown component {unknown[0]!r}")
    return MeasureDefinition(raw, tuple(components), tuple(stratifiers.values()))
