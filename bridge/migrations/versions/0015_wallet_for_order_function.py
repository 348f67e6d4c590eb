"""PostgreSQL: lock an order's checkout reservations and the wallet that pays it in one round trip
(`wb_lock_wallet_for_order`); nothing on SQLite

An order's wallet payment locks the order's open reservations (holds keyed `reservation:<order>:…`), then the wallet,
in that order because capturing and voiding a hold lock them so; then it reads the wallet and whether the order has
an open reservation. Each statement of a PL/pgSQL function takes a new snapshot, so the read sees a reservation the
checkout committed while this waited for the wallet's lock (the checkout reserves under that lock): one statement
could not, its snapshot being taken before the wait. No row when the wallet does not exist yet.

Revision ID: 0015
Revises: 0014
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

WALLET_FOR_ORDER = """
CREATE OR REPLACE FUNCTION wb_lock_wallet_for_order(
    p_shop_id integer, p_code text, p_order_ref text, p_key_pattern text
) RETURNS TABLE (wallet accounts, reserved boolean) LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM holds
    WHERE holds.shop_id = p_shop_id AND holds.order_ref = p_order_ref AND holds.status = 'open'
      AND holds.idempotency_key LIKE p_key_pattern ESCAPE '/'
    ORDER BY holds.id FOR UPDATE;
    PERFORM 1 FROM accounts WHERE accounts.shop_id = p_shop_id AND accounts.code = p_code FOR UPDATE;
    RETURN QUERY
    SELECT accounts, EXISTS (
        SELECT 1 FROM holds
        WHERE holds.shop_id = p_shop_id AND holds.order_ref = p_order_ref AND holds.status = 'open'
          AND holds.idempotency_key LIKE p_key_pattern ESCAPE '/')
    FROM accounts WHERE accounts.shop_id = p_shop_id AND accounts.code = p_code;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(WALLET_FOR_ORDER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS wb_lock_wallet_for_order")
