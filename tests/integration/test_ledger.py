"""Ledger rules: balanced, idempotent, never below the limit, holds, append-only, verifiable."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import DBAPIError

from bridge.accounts import SystemAccount, customer_wallet, ensure_customer, system_account, wallet_account
from bridge.db import unit_of_work
from bridge.errors import IdempotencyConflict, InsufficientFunds, InvalidState, UnbalancedTransaction
from bridge.ledger import (
    Leg,
    authorize_hold,
    capture_hold,
    expire_stale_holds,
    post_transaction,
    verify,
    void_hold,
)
from bridge.models import Account, Entry, LedgerTransaction


def _wallet_and_pool(session, shop_id, external_id="c1"):
    customer = ensure_customer(session, shop_id, external_id)
    return wallet_account(session, customer, "EUR"), system_account(session, shop_id, SystemAccount.PROMOTIONS, "EUR")


def _credit(session, shop_id, wallet, pool, amount, key):
    return post_transaction(
        session,
        shop_id=shop_id,
        kind="adjustment",
        reason="test credit",
        legs=[Leg(wallet, amount), Leg(pool, -amount)],
        idempotency_key=key,
    )


def test_credit_moves_balance_and_records_balance_after(session, shop):
    wallet, pool = _wallet_and_pool(session, shop.shop.id)
    posted = _credit(session, shop.shop.id, wallet, pool, 2935, "k1")
    assert wallet.balance == 2935
    entries = session.execute(select(Entry).where(Entry.transaction_id == posted.transaction.id)).scalars().all()
    assert sorted(e.amount for e in entries) == [-2935, 2935]
    assert [e.balance_after for e in entries if e.account_id == wallet.id] == [2935]


def test_unbalanced_transaction_is_refused(session, shop):
    wallet, pool = _wallet_and_pool(session, shop.shop.id)
    with pytest.raises(UnbalancedTransaction):
        post_transaction(
            session,
            shop_id=shop.shop.id,
            kind="adjustment",
            reason="x",
            legs=[Leg(wallet, 100), Leg(pool, -99)],
            idempotency_key="u1",
        )


def test_mixed_currencies_must_balance_per_currency(session, shop):
    customer = ensure_customer(session, shop.shop.id, "c1")
    eur = wallet_account(session, customer, "EUR")
    usd_pool = system_account(session, shop.shop.id, SystemAccount.PROMOTIONS, "USD")
    with pytest.raises(UnbalancedTransaction):
        post_transaction(
            session,
            shop_id=shop.shop.id,
            kind="adjustment",
            reason="x",
            legs=[Leg(eur, 100), Leg(usd_pool, -100)],
            idempotency_key="m1",
        )


def test_replay_with_same_key_and_content_moves_nothing(session, shop):
    wallet, pool = _wallet_and_pool(session, shop.shop.id)
    first = _credit(session, shop.shop.id, wallet, pool, 500, "same")
    second = _credit(session, shop.shop.id, wallet, pool, 500, "same")
    assert second.replayed and second.transaction.id == first.transaction.id
    assert wallet.balance == 500
    assert session.scalar(select(func.count()).select_from(LedgerTransaction)) == 1


def test_replay_with_same_key_and_other_content_conflicts(session, shop):
    wallet, pool = _wallet_and_pool(session, shop.shop.id)
    _credit(session, shop.shop.id, wallet, pool, 500, "same")
    with pytest.raises(IdempotencyConflict):
        _credit(session, shop.shop.id, wallet, pool, 600, "same")


def test_same_key_in_another_shop_is_independent(session, shop, other_shop):
    wallet_a, pool_a = _wallet_and_pool(session, shop.shop.id)
    wallet_b, pool_b = _wallet_and_pool(session, other_shop.shop.id)
    _credit(session, shop.shop.id, wallet_a, pool_a, 100, "k")
    assert not _credit(session, other_shop.shop.id, wallet_b, pool_b, 100, "k").replayed


def test_overdraft_is_refused_and_the_key_is_not_claimed(services, shop):
    shop_id = shop.shop.id
    with unit_of_work(services.sessions) as session:
        wallet, pool = _wallet_and_pool(session, shop_id)
        _credit(session, shop_id, wallet, pool, 1000, "fund")
    with pytest.raises(InsufficientFunds), unit_of_work(services.sessions) as session:
        wallet, pool = _wallet_and_pool(session, shop_id)
        _credit(session, shop_id, wallet, pool, -1001, "overdraw")
    with unit_of_work(services.sessions) as session:
        wallet, pool = _wallet_and_pool(session, shop_id)
        assert wallet.balance == 1000
        assert not _credit(session, shop_id, wallet, pool, -1000, "overdraw").replayed
        assert wallet.balance == 0


def test_overdraft_limit_allows_going_below_zero_to_the_limit(session, shop):
    wallet, pool = _wallet_and_pool(session, shop.shop.id)
    wallet.overdraft_limit = 300
    session.flush()
    _credit(session, shop.shop.id, wallet, pool, -300, "d1")
    assert wallet.balance == -300
    with pytest.raises(InsufficientFunds):
        _credit(session, shop.shop.id, wallet, pool, -1, "d2")


def test_hold_reduces_available_and_partial_capture_releases_the_rest(session, shop):
    wallet, pool = _wallet_and_pool(session, shop.shop.id)
    _credit(session, shop.shop.id, wallet, pool, 10_000, "fund")
    hold, replayed = authorize_hold(session, account=wallet, amount=4_000, reason="order 7", idempotency_key="h1")
    assert not replayed and wallet.available == 6_000 and wallet.balance == 10_000
    with pytest.raises(InsufficientFunds):
        _credit(session, shop.shop.id, wallet, pool, -6_001, "too much")
    posted = capture_hold(session, shop_id=shop.shop.id, hold_id=hold.id, amount=2_500)
    session.refresh(wallet)
    assert (wallet.balance, wallet.held, wallet.available) == (7_500, 0, 7_500)
    assert posted.transaction.kind == "capture"
    again = capture_hold(session, shop_id=shop.shop.id, hold_id=hold.id, amount=2_500)
    assert again.replayed and again.transaction.id == posted.transaction.id
    with pytest.raises(InvalidState):
        void_hold(session, shop_id=shop.shop.id, hold_id=hold.id)


def test_hold_beyond_available_is_refused(session, shop):
    wallet, pool = _wallet_and_pool(session, shop.shop.id)
    _credit(session, shop.shop.id, wallet, pool, 1_000, "fund")
    authorize_hold(session, account=wallet, amount=800, reason="a", idempotency_key="h1")
    with pytest.raises(InsufficientFunds):
        authorize_hold(session, account=wallet, amount=201, reason="b", idempotency_key="h2")


def test_void_releases_without_moving_money(session, shop):
    wallet, pool = _wallet_and_pool(session, shop.shop.id)
    _credit(session, shop.shop.id, wallet, pool, 1_000, "fund")
    hold, _ = authorize_hold(session, account=wallet, amount=700, reason="a", idempotency_key="h1")
    void_hold(session, shop_id=shop.shop.id, hold_id=hold.id)
    session.refresh(wallet)
    assert (wallet.balance, wallet.available, hold.status) == (1_000, 1_000, "voided")
    with pytest.raises(InvalidState):
        capture_hold(session, shop_id=shop.shop.id, hold_id=hold.id)


def test_stale_holds_expire(session, shop):
    wallet, pool = _wallet_and_pool(session, shop.shop.id)
    _credit(session, shop.shop.id, wallet, pool, 1_000, "fund")
    hold, _ = authorize_hold(
        session, account=wallet, amount=700, reason="a", idempotency_key="h1", expires_in=timedelta(minutes=5)
    )
    assert expire_stale_holds(session, datetime.now(UTC)) == 0
    assert expire_stale_holds(session, datetime.now(UTC) + timedelta(minutes=6)) == 1
    session.refresh(wallet)
    assert (hold.status, wallet.available) == ("expired", 1_000)


def test_ledger_rows_are_append_only(services, shop):
    with unit_of_work(services.sessions) as session:
        wallet, pool = _wallet_and_pool(session, shop.shop.id)
        _credit(session, shop.shop.id, wallet, pool, 1_000, "fund")
    for statement in (
        "UPDATE entries SET amount = amount + 1",
        "DELETE FROM entries",
        "UPDATE ledger_transactions SET reason = 'x'",
        "DELETE FROM ledger_transactions",
    ):
        with pytest.raises(DBAPIError), unit_of_work(services.sessions) as session:
            session.execute(text(statement))


def test_verify_finds_a_tampered_balance(services, shop):
    with unit_of_work(services.sessions) as session:
        wallet, pool = _wallet_and_pool(session, shop.shop.id)
        _credit(session, shop.shop.id, wallet, pool, 1_000, "fund")
        assert verify(session) == []
    with unit_of_work(services.sessions) as session:
        session.execute(text("UPDATE accounts SET balance = balance + 1 WHERE kind = 'wallet'"))
    with unit_of_work(services.sessions) as session:
        problems = verify(session)
        wallet_id = session.scalar(select(Account.id).where(Account.kind == "wallet"))
    found = sorted((p.what, p.id, p.expected, p.found) for p in problems)
    assert found == [("account_balance", wallet_id, 1_000, 1_001), ("wallet_lots", wallet_id, 1_001, 1_000)]


def _statements_during(engine, work) -> int:
    counted = []
    listener = lambda *_args: counted.append(1)  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        work()
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    return len(counted)


def test_a_wallet_payment_is_two_statements_on_postgresql(services, shop, postgres_url):
    """A known customer's wallet in one statement, the payment (key, balance, entries, lots) in one more:
    the system account and the shop's platform are read once per process, then remembered."""
    shop_id = shop.shop.id
    with unit_of_work(services.sessions) as session:
        wallet, pool = _wallet_and_pool(session, shop_id)
        _credit(session, shop_id, wallet, pool, 10_000, "fund")
        system_account(session, shop_id, SystemAccount.WALLET_PAYMENTS, "EUR")

    def pay(key: str) -> None:
        with unit_of_work(services.sessions) as session:
            _customer, wallet = customer_wallet(session, shop_id, "c1", "EUR")
            shop_side = system_account(session, shop_id, SystemAccount.WALLET_PAYMENTS, "EUR")
            post_transaction(
                session,
                shop_id=shop_id,
                kind="payment",
                reason="order",
                order_ref="1",
                legs=[Leg(wallet, -300), Leg(shop_side, 300)],
                idempotency_key=key,
            )

    assert _statements_during(services.engine, lambda: pay("p1")) == 2
    with unit_of_work(services.sessions) as session:
        assert verify(session) == []
        assert session.scalar(select(Account.balance).where(Account.id == wallet.id)) == 9_700


def test_a_system_account_created_by_a_rolled_back_transaction_is_not_remembered(services, shop):
    shop_id = shop.shop.id
    with pytest.raises(RuntimeError), unit_of_work(services.sessions) as session:
        system_account(session, shop_id, SystemAccount.TIPS, "EUR")
        raise RuntimeError("rolled back")
    with unit_of_work(services.sessions) as session:
        again = system_account(session, shop_id, SystemAccount.TIPS, "EUR")
    with unit_of_work(services.sessions) as session:  # the row exists: not the rolled-back one's id
        assert session.scalar(select(func.count()).select_from(Account).where(Account.id == again.id)) == 1
