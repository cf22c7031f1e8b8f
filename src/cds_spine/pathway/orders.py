"""Classify draft orders: an ESI (with region and imaging guidance), a regenerative injection (region) or spine
surgery (kind, region)."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from .knowledge import Knowledge, Membership
from .record import Code, DraftOrder, PatientRecord

UNSPECIFIED = "unspecified"


@dataclass(frozen=True)
class ClassifiedOrder:
    order: DraftOrder
    category: Literal["esi", "regenerative", "surgery"]
    code: Code
    region: str
    guidance: str | None = None  # ESI only
    approach: str | None = None  # ESI: interlaminar or transforaminal; regenerative: intradiscal
    kind: str | None = None  # surgery only

    @property
    def reference(self) -> str | None:
        return self.order.reference


def _any_site(order: DraftOrder, knowledge: Knowledge) -> bool:
    """Whether one of the order's codes is a regenerative injection for any site (PRP)."""
    valueset = knowledge.config.orders.regenerative.valueset
    return any(membership.valueset == valueset and membership.attributes.get("site") == "any"
               for code in order.codes for membership in knowledge.memberships(code.system, code.code))


def awaits_its_reason(order: DraftOrder, knowledge: Knowledge) -> bool:
    """An injection for any site whose only link to the spine may be a Condition it references: it is in the
    pathway or not once the record is read (classify with the record)."""
    return bool(order.reason_references) and classify(order, knowledge) is None and _any_site(order, knowledge)


def _referenced_spine_diagnosis(order: DraftOrder, knowledge: Knowledge, record: PatientRecord | None
                                ) -> Membership | None:
    if record is None or not order.reason_references:
        return None
    # "Condition/c1", a full URL or a urn:uuid: the Condition's id is the last segment
    wanted = {reference.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1] for reference in order.reason_references}
    codes = [code for condition in record.conditions if condition.id in wanted for code in condition.codes]
    return knowledge.spine_diagnosis(codes)


def classify(order: DraftOrder, knowledge: Knowledge, record: PatientRecord | None = None,
             placed: str | None = None) -> ClassifiedOrder | None:
    """The order's category from its codes; None when it is neither an ESI nor spine surgery. An injection
    for any site is in the pathway when its body site, its reason code or (given the record) a Condition it
    references is the spine, or when a card already `placed` it in a spinal region (the pathway timeline,
    which has the card's order code and region, not the order)."""
    orders = knowledge.config.orders
    for code in order.codes:
        for membership in knowledge.memberships(code.system, code.code):
            attributes = membership.attributes
            if membership.valueset == orders.esi.valueset:
                return ClassifiedOrder(order, "esi", code, attributes.get("region", UNSPECIFIED),
                                       guidance=attributes.get("guidance", UNSPECIFIED),
                                       approach=attributes.get("approach"))
            if membership.valueset == orders.surgery.valueset:
                return ClassifiedOrder(order, "surgery", code, attributes.get("region", UNSPECIFIED),
                                       kind=attributes.get("kind", UNSPECIFIED))
            if membership.valueset == orders.regenerative.valueset:
                region = attributes.get("region", UNSPECIFIED)
                if attributes.get("site") == "any":  # PRP into a knee is outside the pathway
                    spine = knowledge.find(order.body_sites, knowledge.config.reasons.body_site_valueset) \
                        or knowledge.spine_diagnosis(order.reasons) \
                        or _referenced_spine_diagnosis(order, knowledge, record)
                    if spine is None and placed not in knowledge.config.regions:
                        return None
                    region = spine.attributes.get("region", UNSPECIFIED) if spine else str(placed)
                return ClassifiedOrder(order, "regenerative", code, region, approach=attributes.get("approach"))
    return None


def classify_all(orders: Iterable[DraftOrder], knowledge: Knowledge, record: PatientRecord | None = None
                 ) -> list[ClassifiedOrder]:
    return [found for found in (classify(order, knowledge, record) for order in orders) if found]
