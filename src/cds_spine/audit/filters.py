"""Which orders a report counts and which calls the decisions list shows: the same filter in Python (a bulk
run's rows) and in SQL (the audit store)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, not_, or_
from sqlalchemy.orm import aliased

from ..service_ids import ORDER_SIGN
from . import tables
from .measure import Component, MeasureDefinition
from .orders import UNKNOWN, OrderRow


@dataclass(frozen=True)
class Filters:
    """Which orders a report counts, and which calls the decisions list shows.

    By default the order-sign calls that carried an ESI or surgery order: order-select previews
    (`service`) and calls without such orders (`with_orders`) are kept apart. `decision` (the
    conservative-therapy decision), `kind`, `region` and `component` (an order that does not meet that
    measure component) select orders; `clinician` and `site`, calls; `overridden`, orders (or calls)
    with a card whose latest feedback is an override (or none)."""

    service: str | None = ORDER_SIGN
    """None: every service."""
    with_orders: bool = True
    decision: str | None = None
    clinician: str | None = None
    kind: str | None = None
    region: tuple[str, ...] | None = None
    """The regions that read as one (PathwayConfig.same_region: lumbar-sacral and lumbar)."""
    site: str | None = None
    component: Component | None = None
    overridden: bool | None = None
    knowledge: str | None = None
    """The version of cards/ that evaluated the order (/healthz's knowledgeVersion)."""

    def admits(self, row: OrderRow) -> bool:
        site = row.site or UNKNOWN
        return ((self.service is None or row.service_id == self.service)
                and all(wanted is None or value == wanted for value, wanted in (
                    (row.decision, self.decision), (row.clinician, self.clinician), (row.kind, self.kind),
                    (site, self.site), (row.knowledge_version, self.knowledge)))
                and (self.region is None or row.region in self.region)
                and (self.component is None or row.outcomes.get(self.component.id) == "not-met")
                and (self.overridden is None or (row.outcome == "overridden") == self.overridden))

    def conditions(self, measure: MeasureDefinition) -> list[Any]:
        c, a = tables.calls, tables.assessments
        found = []
        if self.service:
            found.append(c.c.service_id == self.service)
        if self.clinician:
            found.append(c.c.user_id == self.clinician)
        if self.site:
            found.append(c.c.site.is_(None) if self.site == UNKNOWN else c.c.site == self.site)
        if self.knowledge:
            found.append(c.c.knowledge_version == self.knowledge)
        order = [a.c.call_id == c.c.id]
        order += [column == value for column, value in ((a.c.decision, self.decision), (a.c.category, self.kind))
                  if value]
        if self.region:
            order.append(a.c.region.in_(self.region))
        if self.component:
            order.append(_not_met(self.component, measure))
        if self.with_orders or len(order) > 1:
            found.append(exists().where(*order))
        if self.overridden is not None:
            found.append(_overridden() if self.overridden else ~_overridden())
        return found


def _not_met(component: Component, measure: MeasureDefinition) -> ColumnElement[bool]:
    """SQL: the assessment does not meet the component (as MeasureDefinition.outcomes decides)."""
    a = tables.assessments
    applies = [a.c.decision.is_not(None), a.c.decision.not_in(component.excluded_by or ("",))]
    if component.kinds:
        applies.append(a.c.category.in_(component.kinds))
    if component.combines:
        return and_(*applies, or_(*(_not_met(measure.component(part), measure) for part in component.combines)))
    return and_(*applies, or_(*(a.c.finding_codes.like(f"% {code} %") for code in sorted(component.not_met_by))))


def _overridden() -> ColumnElement[bool]:
    """SQL: the call has a card whose latest feedback is an override."""
    c, k, f = tables.calls, tables.cards, tables.feedback
    later = aliased(f)
    return exists().where(k.c.call_id == c.c.id, f.c.card_uuid == k.c.uuid, f.c.call_id == c.c.id,
                          f.c.outcome == "overridden",
                          not_(exists().where(later.c.card_uuid == f.c.card_uuid, later.c.call_id == c.c.id,
                                              later.c.outcome_timestamp > f.c.outcome_timestamp)))


