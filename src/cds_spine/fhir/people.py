"""Who ordered, and where: the ordering user's name and the site (organization) of the encounter, for the
audit's clinician and site strata.

Never needed for a decision, so read from prefetch only (the order services advertise the `user` and
`encounter` templates): the FHIR server is not asked, which would put requests on the ordering path for a
display name. What the EHR does not send stays unknown; the audit then shows the reference.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .prefetch import read_prefetch_value

USER_TOKEN = "{{context.userId}}"
ENCOUNTER_TOKEN = "{{context.encounterId}}"
# Prefetch key -> template, advertised by the order services.
ORDERER_QUERIES = {
    "user": USER_TOKEN,
    "encounter": f"Encounter?_id={ENCOUNTER_TOKEN}&_include=Encounter:service-provider",
}
NAME_LIMIT = 256


@dataclass(frozen=True)
class Orderer:
    name: str | None = None
    site: str | None = None


KEPT_TYPES = ("Practitioner", "PractitionerRole", "Organization", "Encounter")


def _kept(resource: Any) -> bool:
    return resource.get("resourceType") in KEPT_TYPES


def _resources(key: str, prefetch: Mapping[str, Any]) -> list[dict[str, Any]]:
    value = read_prefetch_value(prefetch[key], _kept) if key in prefetch else None
    return list(value.resources) if value and value.supplied else []


def _human_name(names: Any) -> str | None:
    for name in names if isinstance(names, list) else ():
        if not isinstance(name, dict):
            continue
        text = name.get("text")
        if isinstance(text, str) and text.strip():
            return text.strip()
        parts = [p for p in (*(name.get("prefix") or ()), *(name.get("given") or ()), name.get("family"))
                 if isinstance(p, str) and p.strip()]
        if parts:
            return " ".join(parts)
    return None


def _display(reference: Any, by_reference: Mapping[str, dict[str, Any]],
             read: Callable[[dict[str, Any]], str | None]) -> str | None:
    if not isinstance(reference, dict):
        return None
    target = by_reference.get(reference.get("reference") or "")
    found = read(target) if target else None
    display = reference.get("display")
    return found or (display.strip() if isinstance(display, str) and display.strip() else None)


def _organization_name(resource: dict[str, Any]) -> str | None:
    name = resource.get("name")
    return name.strip() if isinstance(name, str) and name.strip() else None


def read_orderer(user_id: str, encounter_id: str | None, resources: list[dict[str, Any]]) -> Orderer:
    """The user's name (Practitioner, or the PractitionerRole's practitioner) and the site (the encounter's
    serviceProvider, else the role's organization), from the resources found."""
    by_reference = {f"{r.get('resourceType')}/{r.get('id')}": r for r in resources if isinstance(r, dict)}
    user = by_reference.get(user_id)
    name = site = None
    if user and user.get("resourceType") == "Practitioner":
        name = _human_name(user.get("name"))
    elif user:
        name = _display(user.get("practitioner"), by_reference, lambda p: _human_name(p.get("name")))
        site = _display(user.get("organization"), by_reference, _organization_name)
    encounter = by_reference.get(f"Encounter/{encounter_id}") if encounter_id else None
    if encounter:
        site = _display(encounter.get("serviceProvider"), by_reference, _organization_name) or site
    return Orderer(name[:NAME_LIMIT] if name else None, site[:NAME_LIMIT] if site else None)


def find_orderer(user_id: str, encounter_id: str | None, prefetch: Mapping[str, Any] | None) -> Orderer:
    prefetch = prefetch or {}
    return read_orderer(user_id, encounter_id, _resources("user", prefetch) + _resources("encounter", prefetch))
