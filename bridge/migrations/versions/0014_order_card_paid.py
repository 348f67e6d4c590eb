"""shop orders remember what another method paid of a partly paid order: the shop's total when it first said the
order paid (a total raised afterwards, e.g. the wallet's fee line taken off by hand, was never charged)

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shop_orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("card_paid", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("shop_orders", schema=None) as batch_op:
        batch_op.drop_column("card_paid")
