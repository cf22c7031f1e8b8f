"""The EHR each call came from (issue 32, M5): a hash of its issuer, tenant and FHIR server, so that the override
memory of a patient id at one hospital is never read for the same id at another. Calls recorded before have
none, and their overrides are not remembered (at most CDS_SPINE_OVERRIDE_MEMORY_HOURS of memory is lost).

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("calls", sa.Column("origin", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("origin")
