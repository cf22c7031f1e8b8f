"""Draft orders read leniently, whatever FHIR version the EHR speaks (DSTU2 MedicationOrder, STU3
ProcedureRequest, R4 ...): the codes and text of their raw JSON."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..pathway.record import (
    Code,
    DraftOrder,
)


def _concepts(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, dict)]
    return []


def raw_codes(*concepts: Any) -> tuple[Code, ...]:
    """Codings of CodeableConcept-shaped values, skipping anything malformed (e.g. `coding: [{}]`)."""
    codes = []
    for value in concepts:
        for concept in _concepts(value):
            coding = concept.get("coding")
            for item in coding if isinstance(coding, list) else []:
                if isinstance(item, dict) and isinstance(item.get("system"), str) and isinstance(item.get("code"), str):
                    display = item.get("display")
                    codes.append(Code(item["system"], item["code"], display if isinstance(display, str) else None))
    return tuple(codes)


def raw_text(*concepts: Any) -> str | None:
    for value in concepts:
        for concept in _concepts(value):
            text = concept.get("text")
            if isinstance(text, str) and text.strip():
                return text
    return None


def _references(value: Any) -> tuple[str, ...]:
    return tuple(item["reference"] for item in _concepts(value) if isinstance(item.get("reference"), str))


def _medication_concept(resource: dict[str, Any]) -> tuple[Any, Any]:
    reference = resource.get("medicationReference")
    return resource.get("medicationCodeableConcept"), reference if isinstance(reference, dict) else None


def read_draft_orders(resources: Iterable[dict[str, Any]]) -> list[DraftOrder]:
    """The draft orders (resources with a resourceType), whatever their type or FHIR version."""
    orders = []
    for resource in resources:
        resource_id = resource.get("id")
        reference = f"{resource['resourceType']}/{resource_id}" if isinstance(resource_id, str) else None
        medication, _ = _medication_concept(resource)
        status = resource.get("status")
        orders.append(DraftOrder(reference, raw_codes(resource.get("code"), medication),
                                 raw_text(resource.get("code"), medication),
                                 status if isinstance(status, str) else None, raw_codes(resource.get("bodySite")),
                                 raw_codes(resource.get("reasonCode"), resource.get("reasonCodeableConcept")),
                                 _references(resource.get("reasonReference"))))
    return orders
