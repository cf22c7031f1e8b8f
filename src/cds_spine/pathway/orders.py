"""Classify draft orders: an ESI (with region and imaging guidance), a regenerative injection (region) or spine
surgery (kind, region)."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from .knowledge import Knowledge
from .record import Code, DraftOrder

UNSPECIFIED = "unspecified"


@dataclass(frozen=True)
class ClassifiedOrder:
    order: DraftOrder
    category: Literal["esi", "regenerative", "surgery"]
    code: Code
    region: str
    guidance: str | None = None  # ESI only
    kind: str | None = None  # surgery only

    @property
    def reference(self) -> str | None:
        return self.order.reference


def classify(order: DraftOrder, knowledge: Knowledge) -> ClassifiedOrder | None:
    """The order's category from its codes; None when it is neither an ESI nor spine surgery."""
    orders = knowledge.config.orders
    for code in order.codes:
        for membership in knowledge.memberships(code.system, code.code):
            attributes = membership.attributes
            if membership.valueset == orders.esi.valueset:
                return ClassifiedOrder(order, "esi", code, attributes.get("region", UNSPECIFIED),
                                       guidance=attributes.get("guidance", UNSPECIFIED))
            if membership.valueset == orders.surgery.valueset:
                return ClassifiedOrder(order, "surgery", code, attributes.get("region", UNSPECIFIED),
                                       kind=attributes.get("kind", UNSPECIFIED))
            if membership.valueset == orders.regenerative.valueset:
                region = attributes.get("region", UNSPECIFIED)
                if attributes.get("site") == "any":  # PRP into a knee is outside the pathway
                    spine = knowledge.find(order.body_sites, knowledge.config.reasons.body_site_valueset) \
                        or knowledge.spine_diagnosis(order.reasons)
                    if spine is None:
                        return None
                    region = spine.attributes.get("region", UNSPECIFIED)
                return ClassifiedOrder(order, "regenerative", code, region)
    return None


def classify_all(orders: Iterable[DraftOrder], knowledge: Knowledge) -> list[ClassifiedOrder]:
    return [found for found in (classify(order, knowledge) for order in orders) if found]
