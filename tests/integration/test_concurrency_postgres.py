"""Real parallel requests on PostgreSQL, each thread with its own connection: the database decides."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from bridge.accounts import SystemAccount, ensure_customer, system_account, wallet_account
from bridge.db import make_engine, make_session_factory, unit_of_work
from bridge.errors import InsufficientFunds
from bridge.ledger import Leg, authorize_hold, post_transaction, verify
from bridge.models import Account, Entry

pytestmark = pytest.mark.postgres_only
THREADS = 50


@pytest.fixture
def sessions(postgres_url):
    engine = make_engine(postgres_url, pool_size=THREADS)
    yield make_session_factory(engine)
    engine.dispose()


def _fund(sessions, shop_id, external_id, amount):
    with unit_of_work(sessions) as session:
        customer = ensure_customer(session, shop_id, external_id)
        wallet = wallet_account(session, customer, "EUR")
        pool = system_account(session, shop_id, SystemAccount.PROMOTIONS, "EUR")
        legs = [Leg(wallet, amount), Leg(pool, -amount)]
        post_transaction(
            session, shop_id=shop_id, kind="adjustment", reason="fund", legs=legs, idempotency_key=f"fund:{external_id}"
        )


def _pay(sessions, shop_id, n):
    try:
        with unit_of_work(sessions) as session:
            wallet = wallet_account(session, ensure_customer(session, shop_id, "payer"), "EUR")
            shop_side = system_account(session, shop_id, SystemAccount.WALLET_PAYMENTS, "EUR")
            post_transaction(
                session,
                shop_id=shop_id,
                kind="payment",
                reason=f"order {n}",
                legs=[Leg(wallet, -1000), Leg(shop_side, 1000)],
                idempotency_key=f"pay:{n}",
            )
        return True
    except InsufficientFunds:
        return False


def _run_parallel(fn, count):
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(fn, range(count)))


def test_fifty_parallel_payments_of_ten_from_a_hundred(sessions, shop):
    shop_id = shop.shop.id
    _fund(sessions, shop_id, "payer", 10_000)
    results = _run_parallel(lambda n: _pay(sessions, shop_id, n), THREADS)
    assert results.count(True) == 10
    with unit_of_work(sessions) as session:
        wallet = session.execute(select(Account).where(Account.kind == "wallet")).scalar_one()
        assert wallet.balance == 0
        assert session.scalar(select(func.sum(Entry.amount))) == 0
        assert verify(session) == []


def test_fifty_parallel_holds_of_ten_from_a_hundred(sessions, shop):
    shop_id = shop.shop.id
    _fund(sessions, shop_id, "payer", 10_000)

    def hold(n):
        try:
            with unit_of_work(sessions) as session:
                wallet = wallet_account(session, ensure_customer(session, shop_id, "payer"), "EUR")
                authorize_hold(session, account=wallet, amount=1000, reason=f"order {n}", idempotency_key=f"h{n}")
            return True
        except InsufficientFunds:
            return False

    assert _run_parallel(hold, THREADS).count(True) == 10
    with unit_of_work(sessions) as session:
        wallet = session.execute(select(Account).where(Account.kind == "wallet")).scalar_one()
        assert (wallet.balance, wallet.held, wallet.available) == (10_000, 10_000, 0)
        assert verify(session) == []


def test_the_same_idempotency_key_in_parallel_moves_money_once(sessions, shop):
    shop_id = shop.shop.id
    _fund(sessions, shop_id, "payer", 10_000)

    def pay_same(_n):
        with unit_of_work(sessions) as session:
            wallet = wallet_account(session, ensure_customer(session, shop_id, "payer"), "EUR")
            shop_side = system_account(session, shop_id, SystemAccount.WALLET_PAYMENTS, "EUR")
            return post_transaction(
                session,
                shop_id=shop_id,
                kind="payment",
                reason="order 1",
                legs=[Leg(wallet, -1000), Leg(shop_side, 1000)],
                idempotency_key="pay:once",
            ).transaction.id

    ids = _run_parallel(pay_same, 20)
    assert len(set(ids)) == 1
    with unit_of_work(sessions) as session:
        assert session.execute(select(Account.balance).where(Account.kind == "wallet")).scalar_one() == 9_000


def test_two_wallets_paying_each_other_never_deadlock(sessions, shop):
    shop_id = shop.shop.id
    _fund(sessions, shop_id, "a", 100_000)
    _fund(sessions, shop_id, "b", 100_000)

    def transfer(n):
        source, target = ("a", "b") if n % 2 else ("b", "a")
        with unit_of_work(sessions) as session:
            debit = wallet_account(session, ensure_customer(session, shop_id, source), "EUR")
            credit = wallet_account(session, ensure_customer(session, shop_id, target), "EUR")
            post_transaction(
                session,
                shop_id=shop_id,
                kind="adjustment",
                reason="transfer",
                legs=[Leg(debit, -100), Leg(credit, 100)],
                idempotency_key=f"t{n}",
            )

    _run_parallel(transfer, THREADS)
    with unit_of_work(sessions) as session:
        balances = session.execute(select(Account.balance).where(Account.kind == "wallet")).scalars().all()
        assert sorted(balances) == [100_000, 100_000]
        assert verify(session) == []
