"""merchant console: users, shop memberships, login attempts, audit trail; report range-scan indexes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 12:37:35.515902
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "login_attempts",
        sa.Column("id", BigId, nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("login_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_login_attempts_email_created", ["email", "created_at"], unique=False)
        batch_op.create_index("ix_login_attempts_ip_created", ["ip", "created_at"], unique=False)

    op.create_table(
        "merchant_users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email"),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", BigId, nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("action", sa.String(length=60), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=True),
        sa.Column("field", sa.String(length=60), nullable=True),
        sa.Column("old_value", sa.Text(), nullable=True),
        sa.Column("new_value", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["shop_id"], ["shops.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["merchant_users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index("ix_audit_events_shop_id_id", ["shop_id", "id"], unique=False)

    op.create_table(
        "shop_memberships",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["shop_id"], ["shops.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["merchant_users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "shop_id"),
    )
    with op.batch_alter_table("shop_memberships", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_shop_memberships_shop_id"), ["shop_id"], unique=False)

    # Reports count orders per day and the console shows the newest delivery per topic: range scans.
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.create_index("ix_inbox_shop_topic_received", ["shop_id", "topic", "received_at"], unique=False)
    with op.batch_alter_table("shop_orders", schema=None) as batch_op:
        batch_op.create_index("ix_shop_orders_shop_created", ["shop_id", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("shop_orders", schema=None) as batch_op:
        batch_op.drop_index("ix_shop_orders_shop_created")
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_index("ix_inbox_shop_topic_received")
    with op.batch_alter_table("shop_memberships", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_shop_memberships_shop_id"))
    op.drop_table("shop_memberships")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_shop_id_id")
    op.drop_table("audit_events")
    op.drop_table("merchant_users")
    with op.batch_alter_table("login_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_login_attempts_ip_created")
        batch_op.drop_index("ix_login_attempts_email_created")
    op.drop_table("login_attempts")
