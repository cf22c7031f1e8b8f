"""The same feedback is stored once per kind: linked to its card's call, or kept as feedback on an unknown card
(issue 32). Before, feedback from another EHR on a card's uuid and time, kept as unknown, made the real EHR's
feedback on that card a duplicate, and it was dropped.

Revision ID: 0008
Revises: 0007
"""
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.drop_constraint("uq_feedback_once", type_="unique")
        batch.create_unique_constraint("uq_feedback_once", ["card_uuid", "outcome", "outcome_timestamp", "unknown_card"])


def downgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.drop_constraint("uq_feedback_once", type_="unique")
        batch.create_unique_constraint("uq_feedback_once", ["card_uuid", "outcome", "outcome_timestamp"])
