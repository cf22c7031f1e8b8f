"""The audit schema (SQLAlchemy Core). Alembic migrations in migrations/ create and evolve it."""
from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

calls = Table(
    "calls", metadata,
    Column("id", String(36), primary_key=True),
    Column("received_at", DateTime(timezone=True), nullable=False, index=True),
    Column("service_id", String(64), nullable=False),
    Column("hook", String(32), nullable=False),
    Column("hook_instance", String(128), nullable=False, index=True),
    Column("user_id", String(256)),
    Column("patient", String(128)),
    Column("encounter_id", String(256)),
    Column("status", Integer, nullable=False),
    Column("problem", Text),
    Column("knowledge_version", String(32), nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("data_source", String(16), nullable=False),
    Column("fetched_keys", JSON, nullable=False),
    Column("user_display", String(256)),
    Column("site", String(256)),
    Column("origin", String(64)),  # the calling EHR: issuer, tenant and FHIR server, hashed (Caller.origin)
    Index("ix_calls_patient_received_at", "patient", "received_at"),  # override memory: a patient's recent calls
)

assessments = Table(
    "assessments", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("call_id", String(36), ForeignKey("calls.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("order_reference", String(256)),
    Column("category", String(16), nullable=False),
    Column("region", String(32), nullable=False),
    Column("detail", String(32)),
    Column("codes", JSON, nullable=False),
    Column("decision", String(16)),
    Column("conservative_days", Integer),
    Column("required_days", Integer),
    Column("findings", JSON, nullable=False),
    Column("evidence", JSON, nullable=False),
    Column("finding_codes", String(512), nullable=False, server_default=" "),
    # " code code ": the findings' codes, space-delimited, so a filter can match one with LIKE '% code %'.
)

cards = Table(
    "cards", metadata,
    Column("uuid", String(36), primary_key=True),
    Column("call_id", String(36), ForeignKey("calls.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("assessment_id", Integer, ForeignKey("assessments.id", ondelete="CASCADE"), index=True),
    Column("indicator", String(16), nullable=False),
    Column("summary", String(140), nullable=False),
    Column("suggestion_uuids", JSON, nullable=False),
    Column("topic", String(64)),
)

suppressions = Table(
    "suppressions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("call_id", String(36), ForeignKey("calls.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("assessment_id", Integer, ForeignKey("assessments.id", ondelete="CASCADE"), nullable=False),
    Column("topic", String(64), nullable=False),
    Column("overridden_card", String(36), nullable=False),
    Column("overridden_at", DateTime(timezone=True), nullable=False),
)

feedback = Table(
    "feedback", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("card_uuid", String(128), nullable=False, index=True),
    Column("call_id", String(36), ForeignKey("calls.id", ondelete="SET NULL"), index=True),
    Column("service_id", String(64), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("accepted_suggestions", JSON, nullable=False),
    Column("override_system", String(256)),
    Column("override_code", String(128)),
    Column("override_comment", Text),
    Column("outcome_timestamp", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, index=True),
    Column("unknown_card", Boolean, nullable=False),
    Column("patient", String(128)),  # the card's call's patient, as calls keeps it: None for an unknown card
    # The override memory: a patient's overrides in the window, found without reading the patient's calls.
    Index("ix_feedback_patient_outcome_received_at", "patient", "outcome", "received_at"),
    # Once per kind: feedback another EHR sends on a card's uuid (kept as unknown) never blocks the card's own.
    UniqueConstraint("card_uuid", "outcome", "outcome_timestamp", "unknown_card", name="uq_feedback_once"),
)

audit_reads = Table(
    "audit_reads", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("user_name", String(128), nullable=False, index=True),
    Column("role", String(16), nullable=False),
    Column("method", String(8), nullable=False),
    Column("path", String(512), nullable=False),
    Column("query", Text, nullable=False),
)

refusals = Table(
    "refusals", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("minute", DateTime(timezone=True), nullable=False, index=True),
    Column("service", String(64), nullable=False),
    Column("status", Integer, nullable=False),
    Column("reason", String(64), nullable=False),
    Column("count", Integer, nullable=False),
)

store_keys = Table(
    "store_keys", metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(128), nullable=False),
)

dashboard_sessions = Table(
    "dashboard_sessions", metadata,
    Column("token_sha256", String(64), primary_key=True),  # the cookie is the token; only its hash is kept
    Column("user_name", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("key_sha256", String(64)),  # api-keys: the user's key at sign-in (a rotated key ends the session)
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
)

timeline_sessions = Table(
    "timeline_sessions", metadata,
    Column("launch_sha256", String(64), primary_key=True),  # the launch id is in the page's URL: only its hash
    Column("expires_at", Float, nullable=False, index=True),
    Column("idle_until", Float, nullable=False),
)

jwt_replay = Table(
    "jwt_replay", metadata,
    Column("iss", String(512), primary_key=True),
    Column("jti", String(512), primary_key=True),
    Column("keep_until", Float, nullable=False, index=True),
)
