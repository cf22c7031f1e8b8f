"""The recorded calls, one page at a time or one in full, and the record of audit reads."""
from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, Row, func, select

from . import tables
from .filters import Filters
from .measure import MeasureDefinition
from .orders import ReportPeriod, as_utc


def _order_json(row: Row[Any], measure: MeasureDefinition, with_evidence: bool) -> dict[str, Any]:
    codes = [finding["code"] for finding in row.findings]
    item = {"reference": row.order_reference, "category": row.category, "region": row.region,
            "detail": row.detail, "codes": row.codes, "decision": row.decision,
            "components": measure.outcomes(row.category, row.decision, codes) if row.decision else {},
            "conservativeDays": row.conservative_days, "requiredDays": row.required_days,
            "lead": next((finding["code"] for finding in row.findings if finding["severity"] != "note"), None),
            "findings": row.findings if with_evidence else codes}
    if with_evidence:
        item["evidence"] = row.evidence
    return item


def _call_json(call: Row[Any], orders: list[dict[str, Any]], cards: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": call.id, "receivedAt": as_utc(call.received_at).isoformat(), "service": call.service_id,
            "hook": call.hook, "hookInstance": call.hook_instance, "clinician": call.user_id,
            "clinicianName": call.user_display, "site": call.site,
            "patient": call.patient, "encounter": call.encounter_id, "status": call.status, "problem": call.problem,
            "latencyMs": round(call.latency_ms, 1), "dataSource": call.data_source,
            "fetchedKeys": call.fetched_keys, "knowledgeVersion": call.knowledge_version,
            "orders": orders, "cards": cards}


def _latest_outcomes(connection: Connection, card_uuids: list[str]) -> dict[str, str]:
    f = tables.feedback
    latest: dict[str, str] = {}
    for card_uuid, outcome in connection.execute(select(f.c.card_uuid, f.c.outcome).where(
            f.c.card_uuid.in_(card_uuids), f.c.call_id.is_not(None)).order_by(f.c.outcome_timestamp)):
        latest[str(card_uuid)] = str(outcome)
    return latest


def decisions(engine: Engine, period: ReportPeriod, measure: MeasureDefinition, page: int, page_size: int,
              filters: Filters = Filters()) -> dict[str, Any]:
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


def decision(engine: Engine, measure: MeasureDefinition, call_id: str) -> dict[str, Any] | None:
    """One call in full: orders with components, findings and evidence, cards, and the feedback on each."""
    c, a, k, f = tables.calls, tables.assessments, tables.cards, tables.feedback
    with engine.connect() as connection:
        call = connection.execute(select(c).where(c.c.id == call_id)).first()
        if call is None:
            return None
        orders = connection.execute(select(a).where(a.c.call_id == call_id).order_by(a.c.id)).all()
        cards = connection.execute(select(k).where(k.c.call_id == call_id)).all()
        feedback = connection.execute(select(f).where(f.c.call_id == call_id)
                                      .order_by(f.c.outcome_timestamp)).all()
    card_items = [{"uuid": card.uuid, "indicator": card.indicator, "summary": card.summary,
                   "suggestions": card.suggestion_uuids, "feedback": [
                       {"outcome": fb.outcome, "acceptedSuggestions": fb.accepted_suggestions,
                        "overrideReason": fb.override_code, "comment": fb.override_comment,
                        "outcomeTimestamp": as_utc(fb.outcome_timestamp).isoformat()}
                       for fb in feedback if fb.card_uuid == card.uuid]} for card in cards]
    return _call_json(call, [_order_json(o, measure, True) for o in orders], card_items)


def access_log(engine: Engine, period: ReportPeriod, user: str | None, page: int, page_size: int) -> dict[str, Any]:
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
            "items": [{"at": as_utc(read.at).isoformat(), "user": read.user_name, "role": read.role,
                       "method": read.method, "path": read.path, "query": read.query} for read in found]}


