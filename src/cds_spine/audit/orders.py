"""The orders the audit reports count, from the audit store or a bulk run (`Orders`): each evaluated order once,
per service, hookInstance and order, as first evaluated, with the latest feedback on any of its cards; and the
traffic the EHRs sent. Orders are counted where the decision is made, at order-sign (order-select previews the
same order); calls that ended in 412 evaluated nothing."""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal, Protocol, get_args

from sqlalchemy import ColumnElement, Connection, Engine, and_, func, select

from ..service_ids import ORDER_SELECT, ORDER_SIGN
from . import tables
from .measure import MeasureDefinition, Outcome

ORDER_SERVICES = (ORDER_SELECT, ORDER_SIGN)
Grouping = Literal["month", "clinician", "order-kind", "region", "site", "service", "knowledge"]
GROUPINGS: tuple[Grouping, ...] = get_args(Grouping)
UNKNOWN = "(unknown)"
Decision = Literal["met", "not-met", "exempt", "stopped"]
OrderKind = Literal["esi", "regenerative", "surgery"]


FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(2399, 12, 31)


def reportable(day: date) -> date:
    """A day a report may start or end on; ValueError naming the range otherwise (the day after 9999-12-31 does
    not exist; MIMIC-IV shifts its dates into the 2100s and 2200s)."""
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"must be a day from {FIRST_DAY} to {LAST_DAY}")
    return day


@dataclass(frozen=True)
class ReportPeriod:
    """Inclusive calendar days in UTC; None is open."""

    since: date | None = None
    until: date | None = None

    def conditions(self, column: ColumnElement[datetime] = tables.calls.c.received_at) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.since:
            found.append(column >= datetime.combine(self.since, time(), UTC))
        if self.until:
            found.append(column < datetime.combine(self.until + timedelta(days=1), time(), UTC))
        return found

    def as_dict(self) -> dict[str, Any]:
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
    knowledge_version: str | None = None
    """The version of cards/ that evaluated the order (None: a run written before it was stamped)."""
    patient: str | None = None
    """As the source keeps it: the keyed hash, or the plain id where the store or the run keeps plain ids."""

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
        if stratifier == "knowledge":
            return self.knowledge_version or UNKNOWN
        if stratifier == "site":
            return self.site or UNKNOWN
        return self.service_id



def as_utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)



def count_orders(engine: Engine, period: ReportPeriod, services: Sequence[str]) -> int:
    query = (select(func.count()).select_from(tables.assessments.join(tables.calls))
             .where(tables.calls.c.status == 200, tables.assessments.c.decision.is_not(None),
                    tables.calls.c.service_id.in_(services), *period.conditions()))
    with engine.connect() as connection:
        return connection.scalar(query) or 0


def _sent_again(connection: Connection, period: ReportPeriod, services: Sequence[str]) -> set[tuple[str, str]]:
    """(service, hookInstance) of the calls of the period that were sent more than once."""
    c = tables.calls
    query = (select(c.c.service_id, c.c.hook_instance).where(c.c.status == 200, c.c.service_id.in_(services),
                                                            *period.conditions())
             .group_by(c.c.service_id, c.c.hook_instance).having(func.count() > 1))
    return {(record.service_id, record.hook_instance) for record in connection.execute(query)}


def order_rows(engine: Engine, period: ReportPeriod, measure: MeasureDefinition, services: Sequence[str] = (ORDER_SIGN,),
               progress: Callable[[int], None] | None = None) -> Iterator[OrderRow]:
    """Each evaluated order once (per service, hookInstance and order), as first evaluated, with the latest
    feedback on any of its cards: an EHR that sends a hookInstance again (a re-sign, a retry) shows the
    order again, and the clinician's answer to the later card is the order's. Orders of calls sent once are
    streamed; those of calls sent again are merged and come last."""
    a, c, k, f = tables.assessments, tables.calls, tables.cards, tables.feedback
    query = (select(a.c.id, a.c.order_reference, a.c.category, a.c.region, a.c.decision, a.c.finding_codes,
                    c.c.id.label("call_id"), c.c.service_id, c.c.hook_instance, c.c.received_at, c.c.user_id,
                    c.c.user_display, c.c.site, c.c.knowledge_version, c.c.patient, k.c.uuid, f.c.outcome, f.c.override_code, f.c.override_comment,
                    f.c.outcome_timestamp)
             .select_from(a.join(c).outerjoin(k, k.c.assessment_id == a.c.id).outerjoin(f, and_(f.c.card_uuid == k.c.uuid, f.c.call_id == c.c.id)))
             .where(c.c.status == 200, a.c.decision.is_not(None), c.c.service_id.in_(services), *period.conditions())
             .order_by(c.c.received_at, a.c.id, f.c.outcome_timestamp))
    merged: dict[tuple[Any, ...], OrderRow] = {}
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
                    record.call_id, record.id, record.service_id, as_utc(record.received_at), record.user_id,
                    record.user_display, record.site, record.category, record.region, record.decision,
                    measure.outcomes(record.category, record.decision, record.finding_codes.split()),
                    record.uuid, knowledge_version=record.knowledge_version, patient=record.patient)
                streamed = (record.service_id, record.hook_instance) not in sent_again
                if not streamed:
                    merged[key] = current
            assert current is not None
            if record.outcome and (current.feedback_at is None or as_utc(record.outcome_timestamp) >= current.feedback_at):
                current.outcome, current.override_code = record.outcome, record.override_code
                current.override_comment = record.override_comment
                current.feedback_at = as_utc(record.outcome_timestamp)
    if current is not None and streamed:
        yield current
    yield from merged.values()



@dataclass(frozen=True)
class Traffic:
    """What the EHRs sent in the period, whatever it was: every call recorded, by service and status (patient-
    view and previews included, 412s too), every feedback, by service and outcome, and the requests refused
    before they became calls, by service, status and reason."""

    calls: Mapping[tuple[str, int], int]
    feedback: Mapping[tuple[str, str], int]
    refusals: Mapping[tuple[str, int, str], int]

    def as_dict(self) -> dict[str, Any]:
        statuses: Counter[str] = Counter()
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

    def rows(self, period: ReportPeriod, measure: MeasureDefinition, services: Sequence[str] = (ORDER_SIGN,),
             progress: Callable[[int], None] | None = None) -> Iterator[OrderRow]: ...

    def traffic(self, period: ReportPeriod) -> Traffic: ...


@dataclass(frozen=True)
class StoredOrders:
    engine: Engine

    def rows(self, period: ReportPeriod, measure: MeasureDefinition, services: Sequence[str] = (ORDER_SIGN,),
             progress: Callable[[int], None] | None = None) -> Iterator[OrderRow]:
        return order_rows(self.engine, period, measure, services, progress)

    def traffic(self, period: ReportPeriod) -> Traffic:
        c, f, r = tables.calls, tables.feedback, tables.refusals
        with self.engine.connect() as connection:
            calls: Sequence[Any] = connection.execute(select(c.c.service_id, c.c.status, func.count()).where(*period.conditions())
                                       .group_by(c.c.service_id, c.c.status)).all()
            feedback: Sequence[Any] = connection.execute(select(f.c.service_id, f.c.outcome, func.count())
                                          .where(*period.conditions(f.c.received_at))
                                          .group_by(f.c.service_id, f.c.outcome)).all()
            refused: Sequence[Any] = connection.execute(select(r.c.service, r.c.status, r.c.reason, func.sum(r.c.count))
                                         .where(*period.conditions(r.c.minute))
                                         .group_by(r.c.service, r.c.status, r.c.reason)).all()
        return Traffic({(service, status): count for service, status, count in calls},
                       {(service, outcome): count for service, outcome, count in feedback},
                       {(service, status, reason): int(count) for service, status, reason, count in refused})


