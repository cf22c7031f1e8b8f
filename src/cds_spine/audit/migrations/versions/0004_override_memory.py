"""Override memory: each card keeps its topic (source.topic), and a card the service held back because the
clinician had overridden the same topic for the same order lately is recorded as a suppression, with the
card whose override it follows.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("cards", sa.Column("topic", sa.String(64)))
    op.create_table(
        "suppressions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("call_id", sa.String(36), sa.ForeignKey("calls.id", ondelete="CASCADE"), nullable=False),
        sa.Column("assessment_id", sa.Integer, sa.ForeignKey("assessments.id", ondelete="CASCADE"), nullable=False),
        sa.Column("topic", sa.String(64), nullable=False),
        sa.Column("overridden_card", sa.String(36), nullable=False),
        sa.Column("overridden_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_suppressions_call_id", "suppressions", ["call_id"])
    # The memory is read on every call with a card: the patient's calls of the window, then their overrides.
    op.create_index("ix_calls_patient_received_at", "calls", ["patient", "received_at"])
    op.create_index("ix_feedback_received_at", "feedback", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_feedback_received_at", "feedback")
    op.drop_index("ix_calls_patient_received_at", "calls")
    op.drop_table("suppressions")
    op.drop_column("cards", "topic")
