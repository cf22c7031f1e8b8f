"""Reading searchset Bundles in one pass: the kept resources, and any OperationOutcome among them."""
from __future__ import annotations

from collections.abc import Callable

Keep = Callable[[dict], bool]
"""Which resources the decision reads (the one-pass relevance filter); only those are kept."""


def kept_entries(bundle: dict, keep: Keep) -> tuple[list[dict], list[dict]]:
    """(kept resources, OperationOutcomes) of a Bundle, in one pass over its entries. One pass matters:
    a large prefetch no longer fits in the CPU caches, and every walk over it costs (bench/results.md)."""
    entries = bundle.get("entry")
    kept: list[dict] = []
    outcomes: list[dict] = []
    for entry in entries if entries.__class__ is list else ():
        resource = entry.get("resource") if entry.__class__ is dict else None
        if resource.__class__ is dict:
            if resource.get("resourceType") == "OperationOutcome":
                outcomes.append(resource)
            elif keep(resource):
                kept.append(resource)
    return kept, outcomes
