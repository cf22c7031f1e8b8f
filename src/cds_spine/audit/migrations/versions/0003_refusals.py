"""Integration traffic: the requests to the CDS services that were refused before they became calls (a JWT
that failed a check, a malformed request, a browser origin not allowed), counted per minute, service,
status and reason, so the dashboard can show what an EHR integration met.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "refusals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
    )
    op.create_index("ix_refusals_minute", "refusals", ["minute"])


def downgrade() -> None:
    op.drop_table("refusals")
