"""Credit lots: sources remembered, soonest-expiring spent first, reversals restore, promotions expire."""

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

import bridge.usecases.expiry as expiry
from bridge import orders
from bridge.customer_rules import apply_customer
from bridge.db import unit_of_work
from bridge.ledger import verify
from bridge.models import CreditLot, LedgerTransaction, Shop, utcnow
from bridge.order_rules import apply_order
from bridge.orders import CustomerSnapshot
from bridge.usecases.expiry import expire_credit
from tests.integration.test_order_rules import ACTOR, balance, configure, fund, order, paid, refunds


def lots(session):
    return [
        (lot.kind, lot.source, lot.amount, lot.remaining, lot.expires_at is not None)
        for lot in session.execute(select(CreditLot).order_by(CreditLot.id)).scalars()
    ]


def signup_with_bonus(session, shop, bonus=500, days=30):
    shop = configure(session, shop, signup_bonus=bonus, promotional_expiry_days=days)
    apply_customer(session, shop, CustomerSnapshot("2", "a@example.test", "A"), ACTOR, is_new=True)
    return shop


def test_each_credit_remembers_its_source(session, shop):
    shop = signup_with_bonus(session, shop)
    fund(session, shop, 1_000)
    assert lots(session) == [
        ("promotional", "signup_bonus", 500, 500, True),
        ("cash", "adjustment", 1_000, 1_000, False),
    ]


def test_spending_takes_the_soonest_expiring_credit_first(session, shop):
    shop = signup_with_bonus(session, shop)
    fund(session, shop, 1_000)
    apply_order(session, shop, order(total=700), ACTOR)
    assert [lot[3] for lot in lots(session)] == [0, 800]
    assert verify(session) == []


def test_a_cancelled_order_restores_the_lots_it_took(session, shop):
    shop = signup_with_bonus(session, shop)
    fund(session, shop, 1_000)
    apply_order(session, shop, order(total=700), ACTOR)
    apply_order(session, shop, order(total=700, status="cancelled", phase=orders.CANCELLED), ACTOR)
    assert [lot[3] for lot in lots(session)] == [500, 1_000]
    assert balance(session, shop) == 1_500 and verify(session) == []


def test_a_partial_refund_restores_the_most_recently_taken_lot_first(session, shop):
    shop = signup_with_bonus(session, shop)
    fund(session, shop, 1_000)
    apply_order(session, shop, order(total=700), ACTOR)  # 500 promotional + 200 cash
    apply_order(session, shop, paid(total=700, refunds=refunds((50, 300))), ACTOR)
    assert [lot[3] for lot in lots(session)] == [100, 1_000]
    assert verify(session) == []


def test_refund_bonus_is_promotional_and_expires(session, shop):
    shop = configure(session, shop, refund_wallet_bonus_bp=1000, promotional_expiry_days=10)
    apply_order(session, shop, paid(payment_method="stripe", refunds=refunds((30, 2_000))), ACTOR)
    assert lots(session) == [
        ("cash", "refund_to_wallet", 2_000, 2_000, False),
        ("promotional", "refund_to_wallet", 200, 200, True),
    ]


def test_expired_promotional_credit_leaves_once_and_cash_stays(services, shop):
    with unit_of_work(services.sessions) as session:
        stored = signup_with_bonus(session, shop, bonus=500, days=10)
        fund(session, stored, 1_000)
    assert expire_credit(services.sessions, utcnow() + timedelta(days=9)) == 0
    assert expire_credit(services.sessions, utcnow() + timedelta(days=11)) == 1
    assert expire_credit(services.sessions, utcnow() + timedelta(days=11)) == 0
    with unit_of_work(services.sessions) as session:
        assert balance(session, stored) == 1_000
        expiry = session.execute(select(LedgerTransaction).where(LedgerTransaction.kind == "expiry")).scalar_one()
        assert expiry.reason == "€5.00 of promotional credit expired"
        assert verify(session) == []


def test_expiry_spares_money_held_for_a_payment(services, shop):
    from bridge.accounts import ensure_customer, wallet_account
    from bridge.ledger import authorize_hold

    with unit_of_work(services.sessions) as session:
        stored = signup_with_bonus(session, shop, bonus=500, days=10)
        wallet = wallet_account(session, ensure_customer(session, stored.id, "2"), "EUR")
        authorize_hold(session, account=wallet, amount=300, reason="order 5", idempotency_key="h")
    assert expire_credit(services.sessions, utcnow() + timedelta(days=11)) == 1
    with unit_of_work(services.sessions) as session:
        assert balance(session, stored) == 300 and verify(session) == []


def test_expire_command_reports_what_it_expired(app, services, shop):
    with unit_of_work(services.sessions) as session:
        stored = signup_with_bonus(session, shop, bonus=500, days=10)
        lot = session.execute(select(CreditLot)).scalar_one()
        lot.expires_at = utcnow() - timedelta(minutes=1)
    with app.app_context():
        result = app.test_cli_runner().invoke(args=["expire", "--json"])
    assert result.exit_code == 0 and '"lots_expired": 1' in result.output
    with unit_of_work(services.sessions) as session:
        assert balance(session, stored) == 0


def test_expiry_and_merchant_credits_are_noted_on_the_latest_order(services, shop):
    from bridge.models import OutboxMessage

    with unit_of_work(services.sessions) as session:
        stored = signup_with_bonus(session, shop, bonus=500, days=10)
        apply_order(session, stored, paid(payment_method="stripe"), ACTOR)
        fund(session, stored, 1_000)
    expire_credit(services.sessions, utcnow() + timedelta(days=11))
    with unit_of_work(services.sessions) as session:
        notes = [(m.payload["order_id"], m.payload["note"]) for m in session.execute(select(OutboxMessage)).scalars()]
    assert notes == [
        ("12", "€10.00 credited to your wallet: fund"),
        ("12", "€5.00 of promotional credit in your wallet expired."),
    ]


def test_a_reminder_is_noted_once_before_credit_expires(services, shop):
    from bridge.usecases.expiry import remind_before_expiry

    with unit_of_work(services.sessions) as session:
        stored = signup_with_bonus(session, shop, bonus=500, days=10)
        apply_order(session, stored, paid(payment_method="stripe"), ACTOR)
    assert remind_before_expiry(services.sessions, 3) == 0
    soon = utcnow() + timedelta(days=8)
    assert remind_before_expiry(services.sessions, 3, now=soon) == 1
    assert remind_before_expiry(services.sessions, 3, now=soon) == 1  # the dedupe key keeps it to one message
    with unit_of_work(services.sessions) as session:
        from bridge.models import OutboxMessage

        [message] = session.execute(select(OutboxMessage)).scalars().all()
        assert "expires on" in message.payload["note"]


@pytest.mark.postgres_only
def test_expiry_counts_the_lot_after_a_payment_that_was_spending_it(services, shop):
    """`expire` reads a lot while a wallet payment holds the wallet and spends that lot: the expiry must wait
    for the payment and expire what is left, not what the lot held before (that would be refused)."""
    with unit_of_work(services.sessions) as session:
        stored = signup_with_bonus(session, shop, bonus=500, days=10)
        fund(session, stored, 1_000)  # cash: the wallet could cover the stale 500, the lot cannot
    expired = []
    later = utcnow() + timedelta(days=11)
    expiring = threading.Thread(target=lambda: expired.append(expire_credit(services.sessions, later)))
    with unit_of_work(services.sessions) as paying:
        apply_order(paying, paying.get(Shop, stored.id), order(total=300), ACTOR)  # the wallet row is now locked
        expiring.start()
        expiring.join(1.0)  # it has read the lot (500 left) and waits for the wallet
        assert expiring.is_alive()
    expiring.join(30)

    assert expired == [1]
    with unit_of_work(services.sessions) as session:
        assert balance(session, stored) == 1_000 and verify(session) == []
        expiry = session.execute(select(LedgerTransaction).where(LedgerTransaction.kind == "expiry")).scalar_one()
        assert expiry.reason == "€2.00 of promotional credit expired"


def test_a_dropped_connection_costs_expire_a_retry_not_the_run(services, shop, monkeypatch):
    with unit_of_work(services.sessions) as session:
        signup_with_bonus(session, shop, bonus=500, days=10)
    post, dropped = expiry.post_transaction, []

    def drop_once(*args, **kwargs):
        if not dropped:
            dropped.append(1)
            raise OperationalError("INSERT", {}, Exception("terminating connection due to administrator command"))
        return post(*args, **kwargs)

    monkeypatch.setattr(expiry, "post_transaction", drop_once)

    assert expire_credit(services.sessions, utcnow() + timedelta(days=11)) == 1
    assert dropped == [1]
    with unit_of_work(services.sessions) as session:
        assert verify(session) == []
