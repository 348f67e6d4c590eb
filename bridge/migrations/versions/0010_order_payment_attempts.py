"""shop orders remember their payment attempt (a failed or cancelled order set pending again is a new
attempt with keys of its own) and the wallet discount it was charged with (so a later edit of the order's
total is told apart from the bridge's own discount fee), and whether the wallet paid only part of it (the
shop's total is then what another method pays, even after a cancellation returned the wallet part); refunds
remember their wallet part and when the shop deleted them (their credit is then taken back)

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
    with op.batch_alter_table("shop_orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("payment_attempt", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(sa.Column("wallet_discount", sa.BigInteger(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("paid_in_part", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("order_refunds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("wallet_part", sa.BigInteger(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("order_refunds", schema=None) as batch_op:
        batch_op.drop_column("deleted_at")
        batch_op.drop_column("wallet_part")
    with op.batch_alter_table("shop_orders", schema=None) as batch_op:
        batch_op.drop_column("paid_in_part")
        batch_op.drop_column("wallet_discount")
        batch_op.drop_column("payment_attempt")
