"""withdrawal requests: a customer's request waits for the merchant's approval, its amount held on the wallet

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "withdrawal_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("hold_id", sa.Integer(), nullable=True),
        sa.Column("decided_by", sa.String(length=320), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decline_reason", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"]),
        sa.ForeignKeyConstraint(["hold_id"], ["holds.id"]),
        sa.ForeignKeyConstraint(["shop_id"], ["shops.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("shop_id", "idempotency_key"),
    )
    op.create_index("ix_withdrawal_requests_customer_id", "withdrawal_requests", ["customer_id"])
    op.create_index("ix_withdrawal_requests_shop_status", "withdrawal_requests", ["shop_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_withdrawal_requests_shop_status", table_name="withdrawal_requests")
    op.drop_index("ix_withdrawal_requests_customer_id", table_name="withdrawal_requests")
    op.drop_table("withdrawal_requests")
