"""Reading searchset Bundles in one pass: the kept resources, and any OperationOutcome among them."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..jsonio import ARRAYS, OBJECTS, materialize

Keep = Callable[[dict[str, Any]], bool]
"""Which resources the decision reads (the one-pass relevance filter); only those are kept."""


def kept_entries(bundle: Any, keep: Keep) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(kept resources, OperationOutcomes) of a Bundle, as plain dicts, in one pass over its entries.
    The Bundle may be lazy (jsonio.parse): then only the kept resources are ever made into Python
    objects, which is what keeps a large prefetch cheap (bench/results.md)."""
    entries = bundle.get("entry")
    kept: list[dict[str, Any]] = []
    outcomes: list[dict[str, Any]] = []
    entry: Any
    resource: Any
    for entry in entries if entries.__class__ in ARRAYS else ():
        resource = entry.get("resource") if entry.__class__ in OBJECTS else None
        if resource.__class__ in OBJECTS:
            if resource.get("resourceType") == "OperationOutcome":
                outcomes.append(materialize(resource))
            elif keep(resource):
                kept.append(materialize(resource))
    return kept, outcomes
