"""PostgreSQL: post a ledger transaction in one round trip (`wb_post_transaction`); nothing on SQLite

`bridge.ledger.post_transaction` computes the legs, the fingerprint and the time in Python, then on PostgreSQL
calls this function once: it claims the idempotency key, moves the balances of the customer accounts in
ascending id order (each a conditional UPDATE that refuses to go below the account's limit, retried once after
releasing the account's expired holds), inserts the entries, and takes wallet debits from their credit lots.
It does exactly what the portable Python path does on SQLite, statement for statement, in the same order;
the same test suite runs on both. Credits to wallets (new lots, lots restored to an order's payment) stay
in Python: they are rarer and need more context.

Revision ID: 0013
Revises: 0012
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

POST_TRANSACTION = """
CREATE OR REPLACE FUNCTION wb_post_transaction(
    p_shop_id integer, p_kind text, p_reason text, p_actor_kind text, p_actor_id text, p_key text,
    p_fingerprint text, p_order_ref text, p_refund_ref text, p_now timestamptz,
    p_accounts integer[], p_amounts bigint[], p_currencies text[], p_kinds text[], p_lot_id bigint,
    OUT status text, OUT transaction_id bigint, OUT balances bigint[], OUT helds bigint[],
    OUT released_holds boolean
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    legs integer := array_length(p_accounts, 1);
    new_balance bigint;
    new_held bigint;
    lot record;
    wanted bigint;
    taken bigint;
BEGIN
    released_holds := false;
    -- legs arrive sorted by account id: two transactions over the same accounts lock them in one order
    INSERT INTO ledger_transactions (shop_id, kind, reason, actor_kind, actor_id, idempotency_key, fingerprint,
                                     order_ref, refund_ref, created_at)
    VALUES (p_shop_id, p_kind, p_reason, p_actor_kind, p_actor_id, p_key, p_fingerprint, p_order_ref,
            p_refund_ref, p_now)
    ON CONFLICT (shop_id, idempotency_key) DO NOTHING
    RETURNING id INTO transaction_id;
    IF transaction_id IS NULL THEN
        status := 'replayed';
        RETURN;
    END IF;
    balances := array_fill(NULL::bigint, ARRAY[legs]);
    helds := array_fill(NULL::bigint, ARRAY[legs]);
    FOR i IN 1 .. legs LOOP
        CONTINUE WHEN p_kinds[i] = 'system';  -- system accounts keep no running balance: not a hot row
        FOR attempt IN 1 .. 2 LOOP
            UPDATE accounts SET balance = balance + p_amounts[i]
            WHERE id = p_accounts[i]
              AND (p_amounts[i] > 0 OR balance - held + p_amounts[i] >= -overdraft_limit)
            RETURNING balance, held INTO new_balance, new_held;
            EXIT WHEN FOUND OR attempt = 2;
            -- refused: give back what the account's expired holds still reserve, then try once more
            PERFORM 1 FROM accounts WHERE id = p_accounts[i] FOR NO KEY UPDATE;
            WITH expired AS (
                UPDATE holds SET status = 'expired', closed_at = p_now
                WHERE id IN (SELECT id FROM holds
                             WHERE account_id = p_accounts[i] AND status = 'open' AND expires_at <= p_now
                             FOR UPDATE SKIP LOCKED)
                RETURNING amount
            )
            UPDATE accounts SET held = held - (SELECT coalesce(sum(amount), 0) FROM expired)
            WHERE id = p_accounts[i];
            released_holds := true;
        END LOOP;
        IF new_balance IS NULL THEN  -- balances are NOT NULL: no row was updated
            status := 'insufficient';
            RETURN;
        END IF;
        balances[i] := new_balance;
        helds[i] := new_held;
    END LOOP;
    INSERT INTO entries (transaction_id, shop_id, account_id, amount, currency, balance_after, created_at)
    SELECT transaction_id, p_shop_id, leg.account_id, leg.amount, leg.currency, leg.balance_after, p_now
    FROM unnest(p_accounts, p_amounts, p_currencies, balances) AS leg(account_id, amount, currency, balance_after);
    -- a wallet debit takes the soonest-expiring lots first (lots that never expire last, oldest first); the
    -- wallet's row is locked by its UPDATE above, so no other transaction changes its lots meanwhile
    FOR i IN 1 .. legs LOOP
        CONTINUE WHEN p_kinds[i] <> 'wallet' OR p_amounts[i] > 0;
        wanted := -p_amounts[i];
        FOR lot IN SELECT id, remaining FROM credit_lots
                   WHERE account_id = p_accounts[i] AND remaining > 0 AND (p_lot_id IS NULL OR id = p_lot_id)
                   ORDER BY expires_at IS NULL, expires_at, id LOOP
            taken := least(wanted, lot.remaining);
            UPDATE credit_lots SET remaining = remaining - taken WHERE id = lot.id;
            INSERT INTO lot_movements (lot_id, transaction_id, amount, created_at)
            VALUES (lot.id, transaction_id, taken, p_now);
            wanted := wanted - taken;
            EXIT WHEN wanted = 0;
        END LOOP;
        IF wanted > 0 AND p_lot_id IS NOT NULL THEN
            status := 'lot_insufficient';
            RETURN;
        END IF;
    END LOOP;
    status := 'posted';
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POST_TRANSACTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS wb_post_transaction")
