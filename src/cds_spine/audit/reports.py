"""Adherence and override reports: the same numbers for the CLI, the /audit endpoints, the dashboard and
the FHIR MeasureReport.

Orders are counted where the decision is made, at order-sign (order-select previews the same order),
once per hookInstance and order; calls that ended in 412 evaluated nothing. `--by service` shows each
order service on its own. Adherence is the Measure in cards/measure.json (see audit/measure.py): each
component met, not met or excluded (a red flag), and overall. The override rate is cards overridden over
cards shown; a card's outcome is its latest feedback.
"""
from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal, Protocol

from fhir.resources.R4B.measurereport import MeasureReport
from sqlalchemy import Engine, and_, exists, func, not_, or_, select
from sqlalchemy.orm import aliased

from ..pathway import Knowledge
from ..service_ids import ORDER_SELECT, ORDER_SIGN
from . import tables
from .measure import Component, MeasureDefinition, Outcome

ORDER_SERVICES = (ORDER_SELECT, ORDER_SIGN)
GROUPINGS = ("month", "clinician", "order-kind", "region", "site", "service")
Grouping = Literal["month", "clinician", "order-kind", "region", "site", "service"]
POPULATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/measure-population"
DECISION_IDENTIFIER = "https://cds-spine.org/fhir/NamingSystem/audit-decision"
UNKNOWN = "(unknown)"
DECISION_VALUES = ("met", "not-met", "exempt")
ORDER_KINDS = ("esi", "surgery")


@dataclass(frozen=True)
class Period:
    """Inclusive calendar days in UTC; None is open."""

    since: date | None = None
    until: date | None = None

    def conditions(self, column=tables.calls.c.received_at) -> list:
        found = []
        if self.since:
            found.append(column >= datetime.combine(self.since, time(), UTC))
        if self.until:
            found.append(column < datetime.combine(self.until + timedelta(days=1), time(), UTC))
        return found

    def as_dict(self) -> dict:
        return {"since": self.since.isoformat() if self.since else None,
                "until": self.until.isoformat() if self.until else None}


@dataclass
class OrderRow:
    call_id: str
    assessment_id: int
    service_id: str
    received_at: datetime
    clinician: str | None
    clinician_name: str | None
    site: str | None
    kind: str
    region: str
    decision: str
    outcomes: dict[str, Outcome]
    """Per measure component that applies."""
    card_uuid: str | None
    outcome: str | None = None
    """The card's latest feedback, its override reason and comment, and when."""
    override_code: str | None = None
    override_comment: str | None = None
    feedback_at: datetime | None = None

    @property
    def clinician_label(self) -> str:
        """The clinician's name and reference, or the reference alone."""
        reference = self.clinician or UNKNOWN
        return f"{self.clinician_name} ({reference})" if self.clinician_name else reference

    def stratum(self, stratifier: str) -> str:
        """The row's value for a measure stratifier or a report grouping."""
        if stratifier == "month":
            return self.received_at.strftime("%Y-%m")
        if stratifier == "clinician":
            return self.clinician or UNKNOWN
        if stratifier == "order-kind":
            return self.kind
        if stratifier == "region":
            return self.region
        if stratifier == "site":
            return self.site or UNKNOWN
        return self.service_id


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


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


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
    region: str | None = None
    site: str | None = None
    component: Component | None = None
    overridden: bool | None = None

    def admits(self, row: OrderRow) -> bool:
        site = row.site or UNKNOWN
        return ((self.service is None or row.service_id == self.service)
                and all(wanted is None or value == wanted for value, wanted in (
                    (row.decision, self.decision), (row.clinician, self.clinician), (row.kind, self.kind),
                    (row.region, self.region), (site, self.site)))
                and (self.component is None or row.outcomes.get(self.component.id) == "not-met")
                and (self.overridden is None or (row.outcome == "overridden") == self.overridden))

    def conditions(self, measure: MeasureDefinition) -> list:
        c, a = tables.calls, tables.assessments
        found = []
        if self.service:
            found.append(c.c.service_id == self.service)
        if self.clinician:
            found.append(c.c.user_id == self.clinician)
        if self.site:
            found.append(c.c.site.is_(None) if self.site == UNKNOWN else c.c.site == self.site)
        order = [a.c.call_id == c.c.id]
        order += [column == value for column, value in ((a.c.decision, self.decision), (a.c.category, self.kind),
                                                        (a.c.region, self.region)) if value]
        if self.component:
            order.append(_not_met(self.component, measure))
        if self.with_orders or len(order) > 1:
            found.append(exists().where(*order))
        if self.overridden is not None:
            found.append(_overridden() if self.overridden else ~_overridden())
        return found


def _not_met(component: Component, measure: MeasureDefinition):
    """SQL: the assessment does not meet the component (as MeasureDefinition.outcomes decides)."""
    a = tables.assessments
    applies = [a.c.decision.is_not(None), a.c.decision.not_in(component.excluded_by or ("",))]
    if component.kinds:
        applies.append(a.c.category.in_(component.kinds))
    if component.combines:
        return and_(*applies, or_(*(_not_met(measure.component(part), measure) for part in component.combines)))
    return and_(*applies, or_(*(a.c.finding_codes.like(f"% {code} %") for code in sorted(component.not_met_by))))


def _overridden():
    """SQL: the call has a card whose latest feedback is an override."""
    c, k, f = tables.calls, tables.cards, tables.feedback
    later = aliased(f)
    return exists().where(k.c.call_id == c.c.id, f.c.card_uuid == k.c.uuid, f.c.outcome == "overridden",
                          not_(exists().where(later.c.card_uuid == f.c.card_uuid,
                                              later.c.outcome_timestamp > f.c.outcome_timestamp)))


def count_orders(engine: Engine, period: Period, services: Sequence[str]) -> int:
    query = (select(func.count()).select_from(tables.assessments.join(tables.calls))
             .where(tables.calls.c.status == 200, tables.assessments.c.decision.is_not(None),
                    tables.calls.c.service_id.in_(services), *period.conditions()))
    with engine.connect() as connection:
        return connection.scalar(query) or 0


def _sent_again(connection, period: Period, services: Sequence[str]) -> set[tuple[str, str]]:
    """(service, hookInstance) of the calls of the period that were sent more than once."""
    c = tables.calls
    query = (select(c.c.service_id, c.c.hook_instance).where(c.c.status == 200, c.c.service_id.in_(services),
                                                            *period.conditions())
             .group_by(c.c.service_id, c.c.hook_instance).having(func.count() > 1))
    return {(record.service_id, record.hook_instance) for record in connection.execute(query)}


def order_rows(engine: Engine, period: Period, measure: MeasureDefinition, services: Sequence[str] = (ORDER_SIGN,),
               progress: Callable[[int], None] | None = None) -> Iterator[OrderRow]:
    """Each evaluated order once (per service, hookInstance and order), as first evaluated, with the latest
    feedback on any of its cards: an EHR that sends a hookInstance again (a re-sign, a retry) shows the
    order again, and the clinician's answer to the later card is the order's. Orders of calls sent once are
    streamed; those of calls sent again are merged and come last."""
    a, c, k, f = tables.assessments, tables.calls, tables.cards, tables.feedback
    query = (select(a.c.id, a.c.order_reference, a.c.category, a.c.region, a.c.decision, a.c.finding_codes,
                    c.c.id.label("call_id"), c.c.service_id, c.c.hook_instance, c.c.received_at, c.c.user_id,
                    c.c.user_display, c.c.site, k.c.uuid, f.c.outcome, f.c.override_code, f.c.override_comment,
                    f.c.outcome_timestamp)
             .select_from(a.join(c).outerjoin(k, k.c.assessment_id == a.c.id).outerjoin(f, f.c.card_uuid == k.c.uuid))
             .where(c.c.status == 200, a.c.decision.is_not(None), c.c.service_id.in_(services), *period.conditions())
             .order_by(c.c.received_at, a.c.id, f.c.outcome_timestamp))
    merged: dict[tuple, OrderRow] = {}
    current: OrderRow | None = None
    streamed = False  # current is yielded when the next order begins (it is not merged with another)
    current_id = None
    with engine.connect() as connection:
        sent_again = _sent_again(connection, period, services)
        for record in connection.execution_options(yield_per=1000).execute(query):
            if record.id != current_id:
                if progress:
                    progress(1)
                if current is not None and streamed:
                    yield current
                key = (record.service_id, record.hook_instance, record.order_reference or f"#{record.id}")
                current_id = record.id
                current = merged.get(key) or OrderRow(
                    record.call_id, record.id, record.service_id, _as_utc(record.received_at), record.user_id,
                    record.user_display, record.site, record.category, record.region, record.decision,
                    measure.outcomes(record.category, record.decision, record.finding_codes.split()),
                    record.uuid)
                streamed = (record.service_id, record.hook_instance) not in sent_again
                if not streamed:
                    merged[key] = current
            if record.outcome and (current.feedback_at is None or _as_utc(record.outcome_timestamp) >= current.feedback_at):
                current.outcome, current.override_code = record.outcome, record.override_code
                current.override_comment = record.override_comment
                current.feedback_at = _as_utc(record.outcome_timestamp)
    if current is not None and streamed:
        yield current
    yield from merged.values()


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

    def as_dict(self) -> dict:
        return {"denominator": self.denominator, "excluded": self.excluded, "numerator": self.numerator,
                "rate": self.rate}


@dataclass
class Tally:
    measure: MeasureDefinition
    orders: int = 0
    met: int = 0
    not_met: int = 0
    exempt: int = 0
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

    def as_dict(self) -> dict:
        overall = self.components[self.measure.components[0].id]
        return {
            "orders": self.orders, "met": self.met, "notMet": self.not_met, "exempt": self.exempt,
            "excluded": overall.excluded, "adherent": overall.numerator, "adherenceRate": overall.rate,
            "cards": self.cards, "accepted": self.accepted, "overridden": self.overridden,
            "overrideRate": round(self.overridden / self.cards, 4) if self.cards else None,
            "components": {component_id: counts.as_dict() for component_id, counts in self.components.items()},
        }


def _tallies(rows: Iterator[OrderRow], measure: MeasureDefinition, filters: Filters, by: str) -> dict[str, Tally]:
    tallies: dict[str, Tally] = {}
    for row in rows:
        if filters.admits(row):
            group = row.stratum(by)
            if group not in tallies:
                tallies[group] = Tally(measure)
            tallies[group].add(row)
    return tallies


@dataclass(frozen=True)
class Traffic:
    """What the EHRs sent in the period, whatever it was: every call recorded, by service and status (patient-
    view and previews included, 412s too), every feedback, by service and outcome, and the requests refused
    before they became calls, by service, status and reason."""

    calls: Mapping[tuple[str, int], int]
    feedback: Mapping[tuple[str, str], int]
    refusals: Mapping[tuple[str, int, str], int]

    def as_dict(self) -> dict:
        statuses: Counter = Counter()
        for (_, status), count in self.calls.items():
            statuses[str(status)] += count
        return {"calls": sum(self.calls.values()), "callsByStatus": dict(sorted(statuses.items())),
                "traffic": {"calls": [{"service": service, "status": status, "count": count}
                                      for (service, status), count in sorted(self.calls.items())],
                            "feedback": [{"service": service, "outcome": outcome, "count": count}
                                         for (service, outcome), count in sorted(self.feedback.items())],
                            "refusals": [{"service": service, "status": status, "reason": reason, "count": count}
                                         for (service, status, reason), count in sorted(self.refusals.items())]}}


class Orders(Protocol):
    """Where a report's orders come from: the audit store (StoredOrders) or a bulk run's rows
    (bulk.outputs.RunOrders)."""

    def rows(self, period: Period, measure: MeasureDefinition, services: Sequence[str] = (ORDER_SIGN,),
             progress: Callable[[int], None] | None = None) -> Iterator[OrderRow]: ...

    def traffic(self, period: Period) -> Traffic: ...


@dataclass(frozen=True)
class StoredOrders:
    engine: Engine

    def rows(self, period: Period, measure: MeasureDefinition, services: Sequence[str] = (ORDER_SIGN,),
             progress: Callable[[int], None] | None = None) -> Iterator[OrderRow]:
        return order_rows(self.engine, period, measure, services, progress)

    def traffic(self, period: Period) -> Traffic:
        c, f, r = tables.calls, tables.feedback, tables.refusals
        with self.engine.connect() as connection:
            calls = connection.execute(select(c.c.service_id, c.c.status, func.count()).where(*period.conditions())
                                       .group_by(c.c.service_id, c.c.status)).all()
            feedback = connection.execute(select(f.c.service_id, f.c.outcome, func.count())
                                          .where(*period.conditions(f.c.received_at))
                                          .group_by(f.c.service_id, f.c.outcome)).all()
            refused = connection.execute(select(r.c.service, r.c.status, r.c.reason, func.sum(r.c.count))
                                         .where(*period.conditions(r.c.minute))
                                         .group_by(r.c.service, r.c.status, r.c.reason)).all()
        return Traffic({(service, status): count for service, status, count in calls},
                       {(service, outcome): count for service, outcome, count in feedback},
                       {(service, status, reason): int(count) for service, status, reason, count in refused})


def grouped(orders: Orders, period: Period, by: Grouping, measure: MeasureDefinition, filters: Filters = Filters(),
            progress: Callable[[int], None] | None = None) -> list[dict]:
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


def _group_rows(tallies: dict[str, Tally], labels: ClinicianLabels, by: str) -> list[dict]:
    return [{"group": group, "label": labels.of(group) if by == "clinician" else group, **tallies[group].as_dict()}
            for group in sorted(tallies)]


def summary(orders: Orders, period: Period, measure: MeasureDefinition, filters: Filters = Filters()) -> dict:
    """The period's totals; `calls`, `callsByStatus` and `traffic` (calls by service and status, feedback by
    service and outcome) count everything the EHRs sent in the period, unfiltered."""
    tally = Tally(measure)
    for row in _filtered(orders, period, measure, filters):
        tally.add(row)
    return {"period": period.as_dict(), **orders.traffic(period).as_dict(), **tally.as_dict()}


def _filtered(orders: Orders, period: Period, measure: MeasureDefinition, filters: Filters) -> Iterator[OrderRow]:
    return (row for row in orders.rows(period, measure) if filters.admits(row))


def _reason_displays(knowledge: Knowledge) -> dict[str, str]:
    return {r.code: r.display for r in knowledge.config.card.override_reasons.reasons}


def override_reasons(orders: Orders, period: Period, measure: MeasureDefinition, knowledge: Knowledge,
                     filters: Filters = Filters()) -> list[dict]:
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


def override_comments(orders: Orders, period: Period, measure: MeasureDefinition, knowledge: Knowledge,
                      page: int, page_size: int, filters: Filters = Filters()) -> dict:
    """Every overridden card of the period (latest feedback), newest override first, with its reason and
    comment, for reading them side by side."""
    displays = _reason_displays(knowledge)
    overridden = sorted((row for row in _filtered(orders, period, measure, filters) if row.outcome == "overridden"),
                        key=lambda row: (row.feedback_at, row.call_id), reverse=True)
    items = [{"decision": row.call_id, "overriddenAt": row.feedback_at.isoformat(),
              "orderedAt": row.received_at.isoformat(), "clinician": row.clinician,
              "clinicianLabel": row.clinician_label, "site": row.site, "kind": row.kind, "region": row.region,
              "conservativeDecision": row.decision,
              "reason": displays.get(row.override_code, row.override_code) if row.override_code else None,
              "comment": row.override_comment}
             for row in overridden[(page - 1) * page_size:page * page_size]]
    return {"period": period.as_dict(), "page": page, "pageSize": page_size, "total": len(overridden),
            "items": items}


def _order_json(row, measure: MeasureDefinition, with_evidence: bool) -> dict:
    codes = [finding["code"] for finding in row.findings]
    item = {"reference": row.order_reference, "category": row.category, "region": row.region,
            "detail": row.detail, "codes": row.codes, "decision": row.decision,
            "components": measure.outcomes(row.category, row.decision, codes) if row.decision else {},
            "conservativeDays": row.conservative_days, "requiredDays": row.required_days,
            "findings": row.findings if with_evidence else codes}
    if with_evidence:
        item["evidence"] = row.evidence
    return item


def _call_json(call, orders: list[dict], cards: list[dict]) -> dict:
    return {"id": call.id, "receivedAt": _as_utc(call.received_at).isoformat(), "service": call.service_id,
            "hook": call.hook, "hookInstance": call.hook_instance, "clinician": call.user_id,
            "clinicianName": call.user_display, "site": call.site,
            "patient": call.patient, "encounter": call.encounter_id, "status": call.status, "problem": call.problem,
            "latencyMs": round(call.latency_ms, 1), "dataSource": call.data_source,
            "fetchedKeys": call.fetched_keys, "knowledgeVersion": call.knowledge_version,
            "orders": orders, "cards": cards}


def _latest_outcomes(connection, card_uuids: list[str]) -> dict[str, str]:
    f = tables.feedback
    latest = {}
    for card_uuid, outcome in connection.execute(select(f.c.card_uuid, f.c.outcome).where(
            f.c.card_uuid.in_(card_uuids)).order_by(f.c.outcome_timestamp)):
        latest[card_uuid] = outcome
    return latest


def decisions(engine: Engine, period: Period, measure: MeasureDefinition, page: int, page_size: int,
              filters: Filters = Filters()) -> dict:
    """Calls, newest first, with their orders (components, finding codes), cards, and whether a card's
    latest feedback is an override."""
    c, a, k = tables.calls, tables.assessments, tables.cards
    where = [*period.conditions(), *filters.conditions(measure)]
    with engine.connect() as connection:
        total = connection.scalar(select(func.count()).select_from(c).where(*where)) or 0
        page_calls = connection.execute(select(c).where(*where).order_by(c.c.received_at.desc(), c.c.id)
                                        .limit(page_size).offset((page - 1) * page_size)).all()
        ids = [call.id for call in page_calls]
        orders = connection.execute(select(a).where(a.c.call_id.in_(ids)).order_by(a.c.id)).all()
        cards = connection.execute(select(k).where(k.c.call_id.in_(ids))).all()
        latest = _latest_outcomes(connection, [card.uuid for card in cards])
    items = [{**_call_json(call, [_order_json(o, measure, False) for o in orders if o.call_id == call.id],
                           [{"uuid": card.uuid, "indicator": card.indicator, "summary": card.summary,
                             "outcome": latest.get(card.uuid)} for card in cards if card.call_id == call.id]),
              "overridden": any(latest.get(card.uuid) == "overridden" for card in cards if card.call_id == call.id)}
             for call in page_calls]
    return {"period": period.as_dict(), "page": page, "pageSize": page_size, "total": total, "items": items}


def decision(engine: Engine, measure: MeasureDefinition, call_id: str) -> dict | None:
    """One call in full: orders with components, findings and evidence, cards, and the feedback on each."""
    c, a, k, f = tables.calls, tables.assessments, tables.cards, tables.feedback
    with engine.connect() as connection:
        call = connection.execute(select(c).where(c.c.id == call_id)).first()
        if call is None:
            return None
        orders = connection.execute(select(a).where(a.c.call_id == call_id).order_by(a.c.id)).all()
        cards = connection.execute(select(k).where(k.c.call_id == call_id)).all()
        feedback = connection.execute(select(f).where(f.c.card_uuid.in_([card.uuid for card in cards]))
                                      .order_by(f.c.outcome_timestamp)).all()
    card_items = [{"uuid": card.uuid, "indicator": card.indicator, "summary": card.summary,
                   "suggestions": card.suggestion_uuids, "feedback": [
                       {"outcome": fb.outcome, "acceptedSuggestions": fb.accepted_suggestions,
                        "overrideReason": fb.override_code, "comment": fb.override_comment,
                        "outcomeTimestamp": _as_utc(fb.outcome_timestamp).isoformat()}
                       for fb in feedback if fb.card_uuid == card.uuid]} for card in cards]
    return _call_json(call, [_order_json(o, measure, True) for o in orders], card_items)


def _concept(system: str, code: str) -> dict:
    return {"coding": [{"system": system, "code": code}]}


def _populations(counts: Counts, initial: int, subjects: dict[str, str] | None = None) -> list[dict]:
    found = []
    for code, count in (("initial-population", initial), ("denominator", counts.denominator),
                        ("denominator-exclusion", counts.excluded), ("numerator", counts.numerator)):
        population = {"code": _concept(POPULATION_SYSTEM, code), "count": count}
        if subjects is not None:
            population["subjectResults"] = {"reference": f"#{subjects[code]}"}
        found.append(population)
    return found


def _score(counts: Counts) -> dict:
    return {"measureScore": {"value": counts.rate}} if counts.rate is not None else {}


def _subject_list(list_id: str, title: str, rows: list[OrderRow], identifier_system: str) -> dict:
    """A contained List of the orders behind one count: each names the audit decision (GET
    /audit/decisions/{id}) or, in a bulk run, the Procedure, and in its display the order."""
    return {"resourceType": "List", "id": list_id, "status": "current", "mode": "snapshot", "title": title,
            "entry": [{"item": {"identifier": {"system": identifier_system, "value": row.call_id},
                                "display": f"{row.kind} {row.region} {row.received_at.date().isoformat()} "
                                           f"order {row.assessment_id}"}} for row in rows]}


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
            tallies.setdefault(row.stratum(stratifier_id), Tally(self.measure)).add(row)
        self.labels.note(row)
        day = row.received_at.date()
        self.first = min(self.first or day, day)
        self.last = max(self.last or day, day)

    def grouped(self, by: str) -> list[dict]:
        """As `grouped`, for a grouping that is a stratifier."""
        return _group_rows(self.strata[by], self.labels, by)

    def measure_report(self, start: date, end: date, now: datetime, identifier_system: str = DECISION_IDENTIFIER
                       ) -> dict:
        """The Measure scored as a FHIR R4 MeasureReport (summary, or subject-list with the orders behind each
        group's counts when rows were kept), one group per component, stratified; validated with
        fhir.resources."""
        measure, tally, subject_list = self.measure, self.tally, self.tally.keep_rows
        contained, groups = [], []
        for index, component in enumerate(measure.components):
            counts = tally.components[component.id]
            subjects = None
            if subject_list:
                members = {"initial-population": tally.rows,
                           "denominator": [r for r in tally.rows if component.id in r.outcomes],
                           "denominator-exclusion": [r for r in tally.rows
                                                     if r.outcomes.get(component.id) == "excluded"],
                           "numerator": [r for r in tally.rows if r.outcomes.get(component.id) == "met"]}
                subjects = {code: f"g{index}-{code}" for code in members}
                contained += [_subject_list(subjects[code], f"{component.title}: {code}", rows, identifier_system)
                              for code, rows in members.items()]
            group = {"id": component.id, "code": measure.resource["group"][index]["code"],
                     "population": _populations(counts, tally.orders, subjects), **_score(counts)}
            stratifiers = []
            for stratifier in measure.stratifiers:
                stratum = [{"value": {"text": self.labels.of(value) if stratifier.id == "clinician" else value},
                            "population": _populations(part.components[component.id], part.orders),
                            **_score(part.components[component.id])}
                           for value, part in sorted(self.strata[stratifier.id].items())]
                stratifiers.append({"code": [measure.stratifier_code(stratifier.id)], "stratum": stratum})
            group["stratifier"] = stratifiers
            groups.append(group)
        report = {"resourceType": "MeasureReport", "status": "complete",
                  "type": "subject-list" if subject_list else "summary", "measure": measure.canonical,
                  "date": now.isoformat(), "period": {"start": start.isoformat(), "end": end.isoformat()},
                  "improvementNotation": measure.resource["improvementNotation"], "group": groups}
        if contained:
            report = {"resourceType": "MeasureReport", "contained": contained,
                      **{key: value for key, value in report.items() if key != "resourceType"}}
        MeasureReport.model_validate(report)
        return report


def measure_report(engine: Engine, measure: MeasureDefinition, start: date, end: date, now: datetime,
                   subject_list: bool = False) -> dict:
    """The audit store's orders of a period, scored as a FHIR R4 MeasureReport (Scoring.measure_report)."""
    scoring = Scoring(measure, keep_rows=subject_list)
    for row in order_rows(engine, Period(start, end), measure):
        scoring.add(row)
    return scoring.measure_report(start, end, now)


def access_log(engine: Engine, period: Period, user: str | None, page: int, page_size: int) -> dict:
    """The record of audit reads, newest first."""
    r = tables.audit_reads
    where = period.conditions(r.c.at)
    if user:
        where.append(r.c.user_name == user)
    with engine.connect() as connection:
        total = connection.scalar(select(func.count()).select_from(r).where(*where)) or 0
        found = connection.execute(select(r).where(*where).order_by(r.c.at.desc(), r.c.id.desc())
                                   .limit(page_size).offset((page - 1) * page_size)).all()
    return {"period": period.as_dict(), "page": page, "pageSize": page_size, "total": total,
            "items": [{"at": _as_utc(read.at).isoformat(), "user": read.user_name, "role": read.role,
                       "method": read.method, "path": read.path, "query": read.query} for read in found]}


def flat(row: dict) -> dict:
    flat = {key: value for key, value in row.items() if key != "components"}
    for component_id, counts in row.get("components", {}).items():
        flat.update({f"{component_id} {name}": value for name, value in counts.items()})
    return flat


def rows_as_csv(rows: list[dict]) -> str:
    """Report rows as CSV, each component's populations and rate in columns of their own."""
    buffer = io.StringIO()
    flat_rows = [flat(row) for row in rows]
    if flat_rows:
        writer = csv.DictWriter(buffer, fieldnames=list(flat_rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(flat_rows)
    return buffer.getvalue()

