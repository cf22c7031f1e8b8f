"""Adherence and override tallies over a stream of orders: the same numbers for the CLI, the /audit endpoints,
the dashboard and the MeasureReport. Adherence is the Measure in cards/measure.json (see audit/measure.py):
each component met, not met or excluded (a red flag), and overall. The override rate is cards overridden over
cards shown; a card's outcome is its latest feedback."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from ..pathway import Knowledge
from ..service_ids import ORDER_SIGN
from .filters import Filters
from .measure import MeasureDefinition
from .orders import ORDER_SERVICES, Grouping, OrderRow, Orders, ReportPeriod


class ClinicianLabels:
    """Each clinician's label: their name and reference once any of their orders carried the name."""

    def __init__(self) -> None:
        self._labels: dict[str, str] = {}

    def note(self, row: OrderRow) -> None:
        key = row.stratum("clinician")
        if row.clinician_name or key not in self._labels:
            self._labels[key] = row.clinician_label

    def of(self, key: str) -> str:
        return self._labels.get(key, key)



@dataclass
class Counts:
    """One measure component's populations."""

    denominator: int = 0
    excluded: int = 0
    numerator: int = 0

    @property
    def rate(self) -> float | None:
        scored = self.denominator - self.excluded
        return round(self.numerator / scored, 4) if scored else None

    def as_dict(self) -> dict[str, Any]:
        return {"denominator": self.denominator, "excluded": self.excluded, "numerator": self.numerator,
                "rate": self.rate}


@dataclass
class Tally:
    measure: MeasureDefinition
    orders: int = 0
    met: int = 0
    not_met: int = 0
    exempt: int = 0
    stopped: int = 0
    cards: int = 0
    accepted: int = 0
    overridden: int = 0
    components: dict[str, Counts] = field(default_factory=dict)
    rows: list[OrderRow] = field(default_factory=list)
    """Kept only when `keep_rows` (for subject lists)."""
    keep_rows: bool = False

    def __post_init__(self) -> None:
        self.components = {component.id: Counts() for component in self.measure.components}

    def add(self, row: OrderRow) -> None:
        self.orders += 1
        self.met += row.decision == "met"
        self.not_met += row.decision == "not-met"
        self.exempt += row.decision == "exempt"
        self.stopped += row.decision == "stopped"
        self.cards += row.card_uuid is not None
        self.accepted += row.outcome == "accepted"
        self.overridden += row.outcome == "overridden"
        for component_id, outcome in row.outcomes.items():
            counts = self.components[component_id]
            counts.denominator += 1
            counts.excluded += outcome == "excluded"
            counts.numerator += outcome == "met"
        if self.keep_rows:
            self.rows.append(row)

    def as_dict(self) -> dict[str, Any]:
        overall = self.components[self.measure.components[0].id]
        return {
            "orders": self.orders, "met": self.met, "notMet": self.not_met, "exempt": self.exempt, "stopped": self.stopped,
            "excluded": overall.excluded, "adherent": overall.numerator, "adherenceRate": overall.rate,
            "cards": self.cards, "accepted": self.accepted, "overridden": self.overridden,
            "overrideRate": round(self.overridden / self.cards, 4) if self.cards else None,
            "components": {component_id: counts.as_dict() for component_id, counts in self.components.items()},
        }


def tally_of(tallies: dict[str, Tally], group: str, measure: MeasureDefinition) -> Tally:
    """The group's tally, made when the group is first met: once per group, never once per row (a Tally makes a
    Counts per measure component; `setdefault(group, Tally(...))` made one for every row and threw it away)."""
    found = tallies.get(group)
    if found is None:
        found = tallies[group] = Tally(measure)
    return found


def _tallies(rows: Iterator[OrderRow], measure: MeasureDefinition, filters: Filters, by: str) -> dict[str, Tally]:
    tallies: dict[str, Tally] = {}
    for row in rows:
        if filters.admits(row):
            tally_of(tallies, row.stratum(by), measure).add(row)
    return tallies


def grouped(orders: Orders, period: ReportPeriod, by: Grouping, measure: MeasureDefinition, filters: Filters = Filters(),
            progress: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """One row per group: the measure's populations and rates, and the overrides. Clinicians are labelled
    with their names where the EHR gave them."""
    services = ORDER_SERVICES if by == "service" else (ORDER_SIGN,)
    if by == "service":
        filters = Filters(**{**filters.__dict__, "service": None})
    labels = ClinicianLabels()
    rows = orders.rows(period, measure, services, progress)

    def labelled() -> Iterator[OrderRow]:
        for row in rows:
            labels.note(row)
            yield row

    return _group_rows(_tallies(labelled(), measure, filters, by), labels, by)


def _group_rows(tallies: dict[str, Tally], labels: ClinicianLabels, by: str) -> list[dict[str, Any]]:
    return [{"group": group, "label": labels.of(group) if by == "clinician" else group, **tallies[group].as_dict()}
            for group in sorted(tallies)]


def summary(orders: Orders, period: ReportPeriod, measure: MeasureDefinition, filters: Filters = Filters()) -> dict[str, Any]:
    """The period's totals; `calls`, `callsByStatus` and `traffic` (calls by service and status, feedback by
    service and outcome) count everything the EHRs sent in the period, unfiltered."""
    tally = Tally(measure)
    for row in _filtered(orders, period, measure, filters):
        tally.add(row)
    return {"period": period.as_dict(), **orders.traffic(period).as_dict(), **tally.as_dict()}


def _filtered(orders: Orders, period: ReportPeriod, measure: MeasureDefinition, filters: Filters) -> Iterator[OrderRow]:
    return (row for row in orders.rows(period, measure) if filters.admits(row))


def _reason_displays(knowledge: Knowledge) -> dict[str, str]:
    return {r.code: r.display for r in knowledge.config.card.override_reasons.reasons}


def override_reasons(orders: Orders, period: ReportPeriod, measure: MeasureDefinition, knowledge: Knowledge,
                     filters: Filters = Filters()) -> list[dict[str, Any]]:
    """Overridden cards of the period by reason (a card counts once, by its latest feedback)."""
    displays = _reason_displays(knowledge)
    counts: dict[str | None, list[int]] = {}
    for row in _filtered(orders, period, measure, filters):
        if row.outcome == "overridden":
            entry = counts.setdefault(row.override_code, [0, 0])
            entry[0] += 1
            entry[1] += bool(row.override_comment)
    return sorted(({"code": code, "display": displays.get(code, code) if code else "No reason given",
                    "count": count, "withComment": comments} for code, (count, comments) in counts.items()),
                  key=lambda item: (-item["count"], item["display"]))


def override_comments(orders: Orders, period: ReportPeriod, measure: MeasureDefinition, knowledge: Knowledge,
                      page: int, page_size: int, filters: Filters = Filters()) -> dict[str, Any]:
    """Every overridden card of the period (latest feedback), newest override first, with its reason and
    comment, for reading them side by side."""
    displays = _reason_displays(knowledge)
    overridden = sorted((row for row in _filtered(orders, period, measure, filters) if row.outcome == "overridden"),
                        key=lambda row: (row.feedback_at, row.call_id), reverse=True)
    items = [{"decision": row.call_id, "overriddenAt": row.feedback_at.isoformat() if row.feedback_at else None,
              "orderedAt": row.received_at.isoformat(), "clinician": row.clinician,
              "clinicianLabel": row.clinician_label, "site": row.site, "kind": row.kind, "region": row.region,
              "conservativeDecision": row.decision,
              "reason": displays.get(row.override_code, row.override_code) if row.override_code else None,
              "comment": row.override_comment}
             for row in overridden[(page - 1) * page_size:page * page_size]]
    return {"period": period.as_dict(), "page": page, "pageSize": page_size, "total": len(overridden),
            "items": items}


class Scoring:
    """The Measure scored over a stream of orders: in all, per stratum of every stratifier (which are also
    the report's groupings), with clinicians' labels; one pass, for the live audit and a bulk run alike."""

    def __init__(self, measure: MeasureDefinition, keep_rows: bool = False) -> None:
        self.measure = measure
        self.tally = Tally(measure, keep_rows=keep_rows)
        self.strata: dict[str, dict[str, Tally]] = {stratifier.id: {} for stratifier in measure.stratifiers}
        self.labels = ClinicianLabels()
        self.first: date | None = None
        self.last: date | None = None

    def add(self, row: OrderRow) -> None:
        self.tally.add(row)
        for stratifier_id, tallies in self.strata.items():
            tally_of(tallies, row.stratum(stratifier_id), self.measure).add(row)
        self.labels.note(row)
        day = row.received_at.date()
        self.first = min(self.first or day, day)
        self.last = max(self.last or day, day)

    def grouped(self, by: str) -> list[dict[str, Any]]:
        """As `grouped`, for a grouping that is a stratifier."""
        return _group_rows(self.strata[by], self.labels, by)
