"""The audit store: calls, assessments, cards, feedback, store keys, JWT replay cache.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("service_id", sa.String(64), nullable=False),
        sa.Column("hook", sa.String(32), nullable=False),
        sa.Column("hook_instance", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(256)),
        sa.Column("patient", sa.String(128)),
        sa.Column("encounter_id", sa.String(256)),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("problem", sa.Text),
        sa.Column("knowledge_version", sa.String(32), nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("data_source", sa.String(16), nullable=False),
        sa.Column("fetched_keys", sa.JSON, nullable=False),
    )
    op.create_index("ix_calls_received_at", "calls", ["received_at"])
    op.create_index("ix_calls_hook_instance", "calls", ["hook_instance"])
    op.create_table(
        "assessments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("call_id", sa.String(36), sa.ForeignKey("calls.id", ondelete="CASCADE"), nullable=False),
        sa.Column("order_reference", sa.String(256)),
        sa.Column("category", sa.String(16), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("detail", sa.String(32)),
        sa.Column("codes", sa.JSON, nullable=False),
        sa.Column("decision", sa.String(16)),
        sa.Column("conservative_days", sa.Integer),
        sa.Column("required_days", sa.Integer),
        sa.Column("findings", sa.JSON, nullable=False),
        sa.Column("evidence", sa.JSON, nullable=False),
    )
    op.create_index("ix_assessments_call_id", "assessments", ["call_id"])
    op.create_table(
        "cards",
        sa.Column("uuid", sa.String(36), primary_key=True),
        sa.Column("call_id", sa.String(36), sa.ForeignKey("calls.id", ondelete="CASCADE"), nullable=False),
        sa.Column("assessment_id", sa.Integer, sa.ForeignKey("assessments.id", ondelete="CASCADE")),
        sa.Column("indicator", sa.String(16), nullable=False),
        sa.Column("summary", sa.String(140), nullable=False),
        sa.Column("suggestion_uuids", sa.JSON, nullable=False),
    )
    op.create_index("ix_cards_call_id", "cards", ["call_id"])
    op.create_index("ix_cards_assessment_id", "cards", ["assessment_id"])
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("card_uuid", sa.String(128), nullable=False),
        sa.Column("call_id", sa.String(36), sa.ForeignKey("calls.id", ondelete="SET NULL")),
        sa.Column("service_id", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("accepted_suggestions", sa.JSON, nullable=False),
        sa.Column("override_system", sa.String(256)),
        sa.Column("override_code", sa.String(128)),
        sa.Column("override_comment", sa.Text),
        sa.Column("outcome_timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("unknown_card", sa.Boolean, nullable=False),
        sa.UniqueConstraint("card_uuid", "outcome", "outcome_timestamp", name="uq_feedback_once"),
    )
    op.create_index("ix_feedback_card_uuid", "feedback", ["card_uuid"])
    op.create_index("ix_feedback_call_id", "feedback", ["call_id"])
    op.create_table(
        "store_keys",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(128), nullable=False),
    )
    op.create_table(
        "jwt_replay",
        sa.Column("iss", sa.String(512), primary_key=True),
        sa.Column("jti", sa.String(512), primary_key=True),
        sa.Column("keep_until", sa.Float, nullable=False),
    )
    op.create_index("ix_jwt_replay_keep_until", "jwt_replay", ["keep_until"])


def downgrade() -> None:
    for table in ("jwt_replay", "store_keys", "feedback", "cards", "assessments", "calls"):
        op.drop_table(table)
