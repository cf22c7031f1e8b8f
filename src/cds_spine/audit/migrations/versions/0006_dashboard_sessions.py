"""Dashboard sessions kept by the service (issue 32, M6): a session is a random token whose SHA-256 is stored
with its user, role, the user's key at sign-in and its expiry, so that signing out and rotating the user's key
end it, and whoever reads the database cannot make one. The keys the service kept in the store to sign
dashboard cookies and seal the timeline's are deleted (the timeline's secret is now CDS_SPINE_SECRET_KEYS):
everyone signs in again once.

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dashboard_sessions",
        sa.Column("token_sha256", sa.String(64), primary_key=True),
        sa.Column("user_name", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("key_sha256", sa.String(64)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_dashboard_sessions_expires_at", "dashboard_sessions", ["expires_at"])
    store_keys = sa.table("store_keys", sa.column("name", sa.String))
    op.execute(sa.delete(store_keys).where(store_keys.c.name.in_(["dashboard-session-key", "smart-session-key"])))


def downgrade() -> None:
    op.drop_table("dashboard_sessions")
