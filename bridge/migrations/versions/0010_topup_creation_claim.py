"""when a top-up request began creating its shop order: a retry arriving meanwhile waits instead of creating
a second order

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("topup_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("creating_since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("topup_requests", schema=None) as batch_op:
        batch_op.drop_column("creating_since")
