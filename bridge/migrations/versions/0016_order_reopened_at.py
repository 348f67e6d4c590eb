"""shop orders remember the state (its date) in which the bridge reopened an order the wallet had paid whole, for the
rest of a raised total: WooCommerce keeps an order's first date_paid for good, so only a paid state newer than that
says another method paid the rest

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shop_orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reopened_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("shop_orders", schema=None) as batch_op:
        batch_op.drop_column("reopened_at")
