"""The audit store: every service call and every feedback, committed before the response is sent.

SqlAuditStore records on SQLAlchemy: SQLite by default, PostgreSQL in production.
"""
from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError

from ..pathway import Assessment, ClassifiedOrder
from ..privacy import PatientIdHasher
from . import tables

PATIENT_HASH_KEY = "patient-hash-key"
# Built once: executing a prebuilt INSERT with parameters reuses SQLAlchemy's compiled statement.
INSERT_CALL = insert(tables.calls)
INSERT_ASSESSMENT = insert(tables.assessments)
INSERT_CARD = insert(tables.cards)
INSERT_FEEDBACK = insert(tables.feedback)
INSERT_READ = insert(tables.audit_reads)
INSERT_SUPPRESSION = insert(tables.suppressions)


@dataclass(frozen=True)
class CardRecord:
    uuid: str
    indicator: str
    summary: str
    suggestion_uuids: tuple[str, ...]
    topic: str | None = None


@dataclass(frozen=True)
class Suppression:
    """A card held back: the clinician had overridden its topic for the same order (`overridden_card`)."""

    topic: str
    overridden_card: str
    overridden_at: datetime


@dataclass(frozen=True)
class CallRecord:
    received_at: datetime
    service_id: str
    hook: str
    hook_instance: str
    user_id: str | None
    patient_id: str | None
    encounter_id: str | None
    status: int
    knowledge_version: str
    latency_ms: float
    data_read: bool
    fetched_keys: tuple[str, ...] = ()
    assessed: tuple[tuple[Assessment, CardRecord | None], ...] = ()
    suppressed: Mapping[int, Suppression] = field(default_factory=dict)
    """By the index of its assessment in `assessed`: the card held back (override memory)."""
    unassessed: tuple[ClassifiedOrder, ...] = ()
    """Orders in scope that could not be evaluated (412)."""
    other_cards: tuple[CardRecord, ...] = ()
    """Cards not tied to an order (patient-view)."""
    problem: str | None = None
    user_display: str | None = None
    """The ordering user's name, when the EHR's data gave it."""
    site: str | None = None
    """The organization the order was placed at, when the EHR's data gave it."""
    origin: str | None = None
    """The calling EHR (issuer, tenant and FHIR server, hashed): whose patient the patient id names."""

    @property
    def data_source(self) -> str:
        return "fhir" if self.fetched_keys else "prefetch" if self.data_read else "none"


@dataclass(frozen=True)
class FeedbackEvent:
    service_id: str
    card: str
    outcome: str
    accepted_suggestions: tuple[str, ...]
    override_system: str | None
    override_code: str | None
    override_comment: str | None
    outcome_timestamp: datetime
    received_at: datetime


@dataclass(frozen=True)
class AuditRead:
    """Who read the audit, when, and what (method, path, query string)."""

    at: datetime
    user: str
    role: str
    method: str
    path: str
    query: str


def _codes(order: ClassifiedOrder) -> list[dict[str, Any]]:
    return [{"system": c.system, "code": c.code, "display": c.display} for c in order.order.codes]


def _order_row(call_id: str, order: ClassifiedOrder) -> dict[str, Any]:
    return {"call_id": call_id, "order_reference": order.reference, "category": order.category,
            "region": order.region, "detail": order.guidance or order.kind, "codes": _codes(order),
            "decision": None, "conservative_days": None, "required_days": None, "findings": [], "evidence": [],
            "finding_codes": " "}


def _assessment_row(call_id: str, assessment: Assessment) -> dict[str, Any]:
    return {
        **_order_row(call_id, assessment.order),
        "decision": assessment.decision.value,
        "conservative_days": assessment.history.days,
        "required_days": assessment.required_days,
        "finding_codes": f" {' '.join(f.code for f in assessment.findings)} ",
        "findings": [{"code": f.code, "severity": f.severity, "facts": dict(f.facts), "evidence": list(f.evidence)}
                     for f in assessment.findings],
        "evidence": [{"category": e.category, "label": e.label, "reference": e.reference,
                      "references": list(e.references),
                      "description": e.description, "start": e.start.isoformat(), "end": e.end.isoformat()}
                     for e in assessment.history.evidence],
    }


def _card_row(call_id: str, card: CardRecord, assessment_id: int | None) -> dict[str, Any]:
    return {"uuid": card.uuid, "call_id": call_id, "assessment_id": assessment_id, "indicator": card.indicator,
            "summary": card.summary, "suggestion_uuids": list(card.suggestion_uuids), "topic": card.topic}


class SqlAuditStore:
    def __init__(self, engine: Engine, hash_key: bytes | None = None, plain_patient_ids: bool = False) -> None:
        self.engine = engine
        self.reader = engine if engine.dialect.name == "sqlite" else engine.execution_options(
            isolation_level="AUTOCOMMIT")
        """For a call's read (the override memory): outside a transaction on PostgreSQL, which spares the BEGIN and
        ROLLBACK round trips around it (0.64 -> 0.43 ms a read); SQLite begins no transaction for a read anyway."""
        self.plain_patient_ids = plain_patient_ids
        self.patient_hasher = PatientIdHasher(hash_key or self.stored_key(PATIENT_HASH_KEY))

    def stored_key(self, name: str) -> bytes:
        """A random key, created once and kept in the store, so that it is stable across restarts and shared
        by every worker and replica (the patient-id hash key, the dashboard's session key)."""
        with self.engine.begin() as connection:
            found = connection.scalar(select(tables.store_keys.c.value).where(tables.store_keys.c.name == name))
            if found is None:
                found = secrets.token_hex(32)
                try:
                    with connection.begin_nested():
                        connection.execute(insert(tables.store_keys).values(name=name, value=found))
                except IntegrityError:  # another worker created it first
                    found = connection.scalar(select(tables.store_keys.c.value).where(
                        tables.store_keys.c.name == name))
        return bytes.fromhex(str(found))

    def stored_patient(self, patient_id: str) -> str:
        """The patient id as the store keeps it: its keyed hash, or plain (CDS_SPINE_AUDIT_PLAIN_PATIENT_IDS)."""
        return patient_id if self.plain_patient_ids else self.patient_hasher(patient_id)

    def record_call(self, record: CallRecord) -> None:
        call_id = str(uuid.uuid4())
        with self.engine.begin() as connection:
            connection.execute(INSERT_CALL, {
                "id": call_id, "received_at": record.received_at, "service_id": record.service_id,
                "hook": record.hook, "hook_instance": record.hook_instance, "user_id": record.user_id,
                "patient": self.stored_patient(record.patient_id) if record.patient_id else None, "encounter_id": record.encounter_id,
                "status": record.status, "problem": record.problem, "knowledge_version": record.knowledge_version,
                "latency_ms": record.latency_ms, "data_source": record.data_source,
                "fetched_keys": list(record.fetched_keys), "user_display": record.user_display,
                "site": record.site, "origin": record.origin})
            for index, (assessment, card) in enumerate(record.assessed):
                inserted = connection.execute(INSERT_ASSESSMENT, _assessment_row(call_id, assessment)).inserted_primary_key
                assert inserted is not None
                assessment_id = inserted[0]
                if card:
                    connection.execute(INSERT_CARD, _card_row(call_id, card, assessment_id))
                if index in record.suppressed:
                    held = record.suppressed[index]
                    connection.execute(INSERT_SUPPRESSION, {
                        "call_id": call_id, "assessment_id": assessment_id, "topic": held.topic,
                        "overridden_card": held.overridden_card, "overridden_at": held.overridden_at})
            if record.unassessed:
                connection.execute(INSERT_ASSESSMENT, [_order_row(call_id, order) for order in record.unassessed])
            if record.other_cards:
                connection.execute(INSERT_CARD, [_card_row(call_id, card, None) for card in record.other_cards])

    def record_read(self, read: AuditRead) -> None:
        with self.engine.begin() as connection:
            connection.execute(INSERT_READ, {"at": read.at, "user_name": read.user, "role": read.role,
                                             "method": read.method, "path": read.path[:512], "query": read.query})

    def record_feedback(self, events: Sequence[FeedbackEvent], origins: frozenset[str] | None) -> None:
        """Linked to its card's call when that call came from one of `origins` (the EHR giving the feedback;
        None: any); kept and flagged as an unknown card otherwise, so that no EHR can override another's card
        (nor silence it in the override memory); the same feedback once, linked or unknown, so that feedback
        another EHR sends first on a card's uuid never makes the card's own a duplicate."""
        calls, cards = tables.calls, tables.cards
        with self.engine.begin() as connection:
            for event in events:
                query = select(cards.c.call_id, calls.c.patient).join(calls, calls.c.id == cards.c.call_id) \
                    .where(cards.c.uuid == event.card)
                if origins is not None:
                    query = query.where(calls.c.origin.in_(origins))
                call_id, patient = connection.execute(query).first() or (None, None)
                row = {"card_uuid": event.card, "call_id": call_id, "patient": patient, "service_id": event.service_id,
                       "outcome": event.outcome, "accepted_suggestions": list(event.accepted_suggestions),
                       "override_system": event.override_system, "override_code": event.override_code,
                       "override_comment": event.override_comment, "outcome_timestamp": event.outcome_timestamp,
                       "received_at": event.received_at, "unknown_card": call_id is None}
                try:
                    with connection.begin_nested():
                        connection.execute(INSERT_FEEDBACK, row)
                except IntegrityError:
                    pass  # the same feedback again: stored once


    def record_refusals(self, counts: Mapping[tuple[datetime, str, int, str], int]) -> None:
        """Refused requests, counted per (minute, service, status, reason) by one worker since its last write."""
        if counts:
            with self.engine.begin() as connection:
                connection.execute(insert(tables.refusals), [
                    {"minute": minute, "service": service, "status": status, "reason": reason, "count": count}
                    for (minute, service, status, reason), count in counts.items()])


class SqlReplayCache:
    """The JWT replay cache in the audit database, shared by every worker and replica."""

    PURGE_EVERY = 100

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock
        self._uses = 0
        self._lock = threading.Lock()

    def first_use(self, iss: str, jti: str, keep_until: float) -> bool:
        with self._lock:
            self._uses += 1
            purge = self._uses % self.PURGE_EVERY == 1
        try:
            with self.engine.begin() as connection:
                if purge:
                    connection.execute(delete(tables.jwt_replay).where(tables.jwt_replay.c.keep_until < self.clock()))
                connection.execute(insert(tables.jwt_replay).values(iss=iss, jti=jti, keep_until=keep_until))
        except IntegrityError:
            return False
        return True
