"""Feedback keeps its card's patient (as the store keeps it: hashed or plain), so that the override memory finds
a patient's overrides from the feedback alone (issue 35). Before, SQLite's planner started from the patient's
calls of the window, and a call with a card read every earlier call of its patient (0.2 ms with none, 0.8 ms after
3,600), though most patients have no override at all.

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("feedback", sa.Column("patient", sa.String(128)))
    op.execute("UPDATE feedback SET patient = (SELECT calls.patient FROM calls WHERE calls.id = feedback.call_id) "
               "WHERE call_id IS NOT NULL")
    op.create_index("ix_feedback_patient_outcome_received_at", "feedback", ["patient", "outcome", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_feedback_patient_outcome_received_at", "feedback")
    with op.batch_alter_table("feedback") as batch:
        batch.drop_column("patient")
