"""Pathway-timeline sessions kept by the service (issue 32, L10): the sealed cookie alone could not be ended and
worked from any browser it was copied to for up to 12 hours. A session is now also a row, the SHA-256 of its
launch id with its expiry and the end of its idle time: ending it (the page's button), leaving it idle, or its
expiry deletes the row, and the cookie no longer opens anything.

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "timeline_sessions",
        sa.Column("launch_sha256", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("idle_until", sa.Float, nullable=False),
    )
    op.create_index("ix_timeline_sessions_expires_at", "timeline_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_table("timeline_sessions")
