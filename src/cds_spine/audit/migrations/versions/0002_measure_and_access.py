"""The measure and accountable access: who ordered (display name) and where (site), each order's finding
codes (for the component filters), and the record of every read of the audit.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("user_display", sa.String(256)))
        batch.add_column(sa.Column("site", sa.String(256)))
    with op.batch_alter_table("assessments") as batch:
        batch.add_column(sa.Column("finding_codes", sa.String(512), nullable=False, server_default=" "))
    assessments = sa.table("assessments", sa.column("id", sa.Integer), sa.column("findings", sa.JSON),
                           sa.column("finding_codes", sa.String))
    connection = op.get_bind()
    for row in connection.execute(sa.select(assessments.c.id, assessments.c.findings)).all():
        codes = " ".join(finding["code"] for finding in row.findings or ())
        connection.execute(sa.update(assessments).where(assessments.c.id == row.id)
                           .values(finding_codes=f" {codes} "))
    op.create_table(
        "audit_reads",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_name", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("query", sa.Text, nullable=False),
    )
    op.create_index("ix_audit_reads_at", "audit_reads", ["at"])
    op.create_index("ix_audit_reads_user_name", "audit_reads", ["user_name"])


def downgrade() -> None:
    op.drop_table("audit_reads")
    with op.batch_alter_table("assessments") as batch:
        batch.drop_column("finding_codes")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("site")
        batch.drop_column("user_display")
