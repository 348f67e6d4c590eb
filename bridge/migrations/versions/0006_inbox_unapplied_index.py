"""an index of the deliveries not yet applied, for the workers' recovery of stranded deliveries

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UNAPPLIED = sa.text("status = 'received'")


def upgrade() -> None:
    op.create_index("ix_inbox_unapplied", "inbox", ["received_at"], postgresql_where=UNAPPLIED, sqlite_where=UNAPPLIED)


def downgrade() -> None:
    op.drop_index("ix_inbox_unapplied", table_name="inbox")
