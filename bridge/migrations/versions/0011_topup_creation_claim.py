"""when a top-up request began creating its shop order: a retry arriving meanwhile waits instead of creating
a second order

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("topup_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("creating_since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("topup_requests", schema=None) as batch_op:
        batch_op.drop_column("creating_since")
