"""Adherence and override reports: the same numbers for the CLI, the /audit endpoints and the dashboard.

Orders are counted where the decision is made, at order-sign (order-select previews the same order),
once per hookInstance and order; calls that ended in 412 evaluated nothing. `--by service` shows each
order service on its own. An order is adherent when its conservative-therapy requirement was met or
exempt (red flag). The override rate is cards overridden over cards shown; a card's outcome is its
latest feedback.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Literal

from fhir.resources.R4B.measurereport import MeasureReport
from sqlalchemy import Engine, exists, func, select

from ..pathway import Knowledge
from . import tables

ORDER_SIGN = "spine-pathway-order-sign"
ORDER_SERVICES = ("spine-pathway-order-select", ORDER_SIGN)
GROUPINGS = ("month", "clinician", "order-type", "service")
Grouping = Literal["month", "clinician", "order-type", "service"]
MEASURE_URL = "https://cds-spine.org/fhir/Measure/conservative-therapy-before-esi-and-spine-surgery"
POPULATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/measure-population"


@dataclass(frozen=True)
class Period:
    """Inclusive calendar days in UTC; None is open."""

    since: date | None = None
    until: date | None = None

    def conditions(self) -> list:
        found = []
        if self.since:
            found.append(tables.calls.c.received_at >= datetime.combine(self.since, time(), timezone.utc))
        if self.until:
            found.append(tables.calls.c.received_at < datetime.combine(self.until + timedelta(days=1), time(),
                                                                        timezone.utc))
        return found

    def as_dict(self) -> dict:
        return {"since": self.since.isoformat() if self.since else None,
                "until": self.until.isoformat() if self.until else None}


@dataclass
class OrderRow:
    service_id: str
    received_at: datetime
    clinician: str | None
    category: str
    decision: str
    card_uuid: str | None
    outcome: str | None  # the card's latest feedback


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def count_orders(engine: Engine, period: Period, services: Sequence[str]) -> int:
    query = (select(func.count()).select_from(tables.assessments.join(tables.calls))
             .where(tables.calls.c.status == 200, tables.assessments.c.decision.is_not(None),
                    tables.calls.c.service_id.in_(services), *period.conditions()))
    with engine.connect() as connection:
        return connection.scalar(query) or 0


def order_rows(engine: Engine, period: Period, services: Sequence[str] = (ORDER_SIGN,),
               progress: Callable[[int], None] | None = None) -> Iterator[OrderRow]:
    """Each evaluated order once (per service, hookInstance and order), with its card's latest outcome."""
    a, c, k, f = tables.assessments, tables.calls, tables.cards, tables.feedback
    query = (select(a.c.id, a.c.order_reference, a.c.category, a.c.decision, c.c.service_id, c.c.hook_instance,
                    c.c.received_at, c.c.user_id, k.c.uuid, f.c.outcome)
             .select_from(a.join(c).outerjoin(k, k.c.assessment_id == a.c.id).outerjoin(f, f.c.card_uuid == k.c.uuid))
             .where(c.c.status == 200, a.c.decision.is_not(None), c.c.service_id.in_(services), *period.conditions())
             .order_by(c.c.received_at, a.c.id, f.c.outcome_timestamp))
    seen: set[tuple] = set()
    current: OrderRow | None = None
    current_id = None
    with engine.connect() as connection:
        for record in connection.execution_options(yield_per=1000).execute(query):
            if record.id != current_id:
                if progress:
                    progress(1)
                if current is not None:
                    yield current
                key = (record.service_id, record.hook_instance, record.order_reference or f"#{record.id}")
                current_id = record.id
                current = None if key in seen else OrderRow(record.service_id, _as_utc(record.received_at),
                                                            record.user_id, record.category, record.decision,
                                                            record.uuid, None)
                seen.add(key)
            if current is not None and record.outcome:
                current.outcome = record.outcome
    if current is not None:
        yield current


@dataclass
class Tally:
    orders: int = 0
    met: int = 0
    not_met: int = 0
    exempt: int = 0
    cards: int = 0
    accepted: int = 0
    overridden: int = 0

    def add(self, row: OrderRow) -> None:
        self.orders += 1
        self.met += row.decision == "met"
        self.not_met += row.decision == "not-met"
        self.exempt += row.decision == "exempt"
        self.cards += row.card_uuid is not None
        self.accepted += row.outcome == "accepted"
        self.overridden += row.outcome == "overridden"

    def as_dict(self) -> dict:
        return {
            "orders": self.orders, "met": self.met, "notMet": self.not_met, "exempt": self.exempt,
            "adherenceRate": round((self.met + self.exempt) / self.orders, 4) if self.orders else None,
            "cards": self.cards, "accepted": self.accepted, "overridden": self.overridden,
            "overrideRate": round(self.overridden / self.cards, 4) if self.cards else None,
        }


def _group_of(row: OrderRow, by: Grouping) -> str:
    if by == "month":
        return row.received_at.strftime("%Y-%m")
    if by == "clinician":
        return row.clinician or "(unknown)"
    if by == "order-type":
        return row.category
    return row.service_id


def grouped(engine: Engine, period: Period, by: Grouping,
            progress: Callable[[int], None] | None = None) -> list[dict]:
    services = ORDER_SERVICES if by == "service" else (ORDER_SIGN,)
    tallies: dict[str, Tally] = {}
    for row in order_rows(engine, period, services, progress):
        tallies.setdefault(_group_of(row, by), Tally()).add(row)
    return [{"group": group, **tallies[group].as_dict()} for group in sorted(tallies)]


def summary(engine: Engine, period: Period) -> dict:
    tally = Tally()
    for row in order_rows(engine, period):
        tally.add(row)
    with engine.connect() as connection:
        statuses = dict(connection.execute(select(tables.calls.c.status, func.count())
                                           .where(*period.conditions()).group_by(tables.calls.c.status)).all())
    return {"period": period.as_dict(), "calls": sum(statuses.values()),
            "callsByStatus": {str(status): count for status, count in sorted(statuses.items())}, **tally.as_dict()}


def override_reasons(engine: Engine, period: Period, knowledge: Knowledge) -> list[dict]:
    """Overridden cards of the period by reason (a card counts once, by its latest feedback)."""
    f, k, c = tables.feedback, tables.cards, tables.calls
    query = (select(f.c.card_uuid, f.c.outcome, f.c.override_code, f.c.override_comment)
             .select_from(f.join(k, k.c.uuid == f.c.card_uuid).join(c, c.c.id == k.c.call_id))
             .where(c.c.service_id == ORDER_SIGN, *period.conditions()).order_by(f.c.outcome_timestamp))
    latest: dict[str, tuple] = {}
    with engine.connect() as connection:
        for record in connection.execute(query):
            latest[record.card_uuid] = (record.outcome, record.override_code, record.override_comment)
    displays = {r.code: r.display for r in knowledge.config.card.override_reasons.reasons}
    counts: dict[str | None, list[int]] = {}
    for outcome, code, comment in latest.values():
        if outcome == "overridden":
            entry = counts.setdefault(code, [0, 0])
            entry[0] += 1
            entry[1] += bool(comment)
    return sorted(({"code": code, "display": displays.get(code, code) if code else "No reason given",
                    "count": count, "withComment": comments} for code, (count, comments) in counts.items()),
                  key=lambda item: (-item["count"], item["display"]))


def _order_json(row, with_evidence: bool) -> dict:
    item = {"reference": row.order_reference, "category": row.category, "region": row.region,
            "detail": row.detail, "codes": row.codes, "decision": row.decision,
            "conservativeDays": row.conservative_days, "requiredDays": row.required_days,
            "findings": row.findings if with_evidence else [finding["code"] for finding in row.findings]}
    if with_evidence:
        item["evidence"] = row.evidence
    return item


def _call_json(call, orders: list[dict], cards: list[dict]) -> dict:
    return {"id": call.id, "receivedAt": _as_utc(call.received_at).isoformat(), "service": call.service_id,
            "hook": call.hook, "hookInstance": call.hook_instance, "clinician": call.user_id,
            "patient": call.patient, "encounter": call.encounter_id, "status": call.status, "problem": call.problem,
            "latencyMs": round(call.latency_ms, 1), "dataSource": call.data_source,
            "fetchedKeys": call.fetched_keys, "knowledgeVersion": call.knowledge_version,
            "orders": orders, "cards": cards}


DECISION_VALUES = ("met", "not-met", "exempt")
ORDER_KINDS = ("esi", "surgery")


@dataclass(frozen=True)
class DecisionFilters:
    """Which calls the decisions list shows. By default the order-sign calls that carried an ESI or surgery
    order: order-select previews (`service`) and calls without such orders (`with_orders`) are kept apart.
    `decision`, `kind` and `region` select calls with an order so assessed; `overridden`, calls with a card
    overridden in any feedback (or none)."""

    service: str | None = ORDER_SIGN
    """None: every service."""
    with_orders: bool = True
    decision: str | None = None
    clinician: str | None = None
    kind: str | None = None
    region: str | None = None
    overridden: bool | None = None

    def conditions(self) -> list:
        c, a, k, f = tables.calls, tables.assessments, tables.cards, tables.feedback
        found = []
        if self.service:
            found.append(c.c.service_id == self.service)
        if self.clinician:
            found.append(c.c.user_id == self.clinician)
        order = [a.c.call_id == c.c.id]
        order += [column == value for column, value in ((a.c.decision, self.decision), (a.c.category, self.kind),
                                                        (a.c.region, self.region)) if value]
        if self.with_orders or len(order) > 1:
            found.append(exists().where(*order))
        if self.overridden is not None:
            overridden = exists().where(k.c.call_id == c.c.id, f.c.card_uuid == k.c.uuid, f.c.outcome == "overridden")
            found.append(overridden if self.overridden else ~overridden)
        return found


def decisions(engine: Engine, period: Period, page: int, page_size: int,
              filters: DecisionFilters = DecisionFilters()) -> dict:
    """Calls, newest first, with their orders (finding codes), cards, and whether a card was overridden."""
    c, a, k, f = tables.calls, tables.assessments, tables.cards, tables.feedback
    where = [*period.conditions(), *filters.conditions()]
    with engine.connect() as connection:
        total = connection.scalar(select(func.count()).select_from(c).where(*where)) or 0
        page_calls = connection.execute(select(c).where(*where).order_by(c.c.received_at.desc(), c.c.id)
                                        .limit(page_size).offset((page - 1) * page_size)).all()
        ids = [call.id for call in page_calls]
        orders = connection.execute(select(a).where(a.c.call_id.in_(ids)).order_by(a.c.id)).all()
        cards = connection.execute(select(k).where(k.c.call_id.in_(ids))).all()
        overridden = set(connection.scalars(select(f.c.card_uuid).where(
            f.c.card_uuid.in_([card.uuid for card in cards]), f.c.outcome == "overridden")))
    items = [{**_call_json(call, [_order_json(o, False) for o in orders if o.call_id == call.id],
                           [{"uuid": card.uuid, "indicator": card.indicator, "summary": card.summary}
                            for card in cards if card.call_id == call.id]),
              "overridden": any(card.uuid in overridden for card in cards if card.call_id == call.id)}
             for call in page_calls]
    return {"period": period.as_dict(), "page": page, "pageSize": page_size, "total": total, "items": items}


def decision(engine: Engine, call_id: str) -> dict | None:
    """One call in full: orders with findings and evidence, cards, and the feedback on each card."""
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
    return _call_json(call, [_order_json(o, True) for o in orders], card_items)


def measure_report(engine: Engine, start: date, end: date, now: datetime) -> dict:
    """The measure as a FHIR R4 MeasureReport, validated with fhir.resources."""
    tally = Tally()
    for row in order_rows(engine, Period(start, end)):
        tally.add(row)
    numerator = tally.met + tally.exempt

    def population(code: str, count: int) -> dict:
        return {"code": {"coding": [{"system": POPULATION_SYSTEM, "code": code}]}, "count": count}

    group = {"population": [population("denominator", tally.orders), population("numerator", numerator)]}
    if tally.orders:
        group["measureScore"] = {"value": round(numerator / tally.orders, 4)}
    report = {"resourceType": "MeasureReport", "status": "complete", "type": "summary", "measure": MEASURE_URL,
              "date": now.isoformat(), "period": {"start": start.isoformat(), "end": end.isoformat()},
              "group": [group]}
    MeasureReport.model_validate(report)
    return report


def rows_as_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()

