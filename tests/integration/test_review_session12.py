"""Review of d95c473 (a wallet-paid order applied in four statements on PostgreSQL): behaviour that changed."""

import threading

import pytest
from sqlalchemy import select, text

from bridge import order_rules
from bridge.db import unit_of_work
from bridge.models import Hold, LedgerTransaction, Shop, ShopOrder, utcnow
from bridge.order_rules import apply_order
from tests.integration.test_api import credit
from tests.integration.test_claim_and_order_lock_audit import wait_for_a_lock_waiter
from tests.integration.test_order_rules import ACTOR, order
from tests.integration.test_reservations import reserve

CUSTOMER = "42"


def _holds(services) -> list[tuple[str, int, int]]:
    with unit_of_work(services.sessions) as session:
        return [(h.status, h.amount, h.captured_amount) for h in session.scalars(select(Hold).order_by(Hold.id))]


def _ledger_kinds(services) -> list[str]:
    with unit_of_work(services.sessions) as session:
        return list(session.scalars(select(LedgerTransaction.kind).order_by(LedgerTransaction.id)))


@pytest.mark.postgres_only
def test_a_delivery_waiting_for_the_orders_record_captures_the_reservation_made_meanwhile(
    postgres_url, client, shop, services
):
    """A delivery of a wallet order that waits for the order's record (another delivery of the order holds it)
    while the shop's checkout reserves the order's money must capture that reservation once it has the record, as
    it did when the reservations were read after the record's lock: the payment is the reservation's capture, the
    wallet pays once, nothing stays held. (d95c473 read whether the order had one in the record's own statement, with
    the snapshot it took before waiting for the row lock: it saw none, skipped the lookup, and refused the order for
    lack of the money the reservation held.)"""
    credit(client, shop, amount=4_148)
    shop_id = shop.shop.id
    with unit_of_work(services.sessions) as session:  # the order's record, as an earlier delivery left it
        now = utcnow()
        session.add(
            ShopOrder(
                shop_id=shop_id, external_id="7001", currency="EUR", status="checkout-draft", total=4_148,
                created_at=now, updated_at=now,
            )
        )  # fmt: skip
    holder = services.engine.connect()
    holder.begin()
    holder.execute(text("SELECT id FROM shop_orders WHERE external_id = '7001' FOR UPDATE"))  # another delivery
    errors: list[BaseException] = []

    def deliver():
        try:
            with unit_of_work(services.sessions) as session:
                stored = session.get(Shop, shop_id)
                apply_order(session, stored, order(external_id="7001", customer_external_id=CUSTOMER), ACTOR)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    worker = threading.Thread(target=deliver)
    worker.start()
    try:
        wait_for_a_lock_waiter(postgres_url)
        assert reserve(client, shop).status_code == 201  # the checkout reserves meanwhile
    finally:
        holder.rollback()
        holder.close()
        worker.join(30)
    assert not errors

    assert _holds(services) == [("captured", 4_148, 4_148)]
    assert _ledger_kinds(services) == ["adjustment", "capture"]
    with unit_of_work(services.sessions) as session:
        record = session.scalars(select(ShopOrder).where(ShopOrder.external_id == "7001")).one()
        assert (record.payment_outcome, record.wallet_paid) == ("paid", 4_148)


@pytest.mark.postgres_only
def test_a_reservation_committed_after_the_orders_record_was_read_is_captured(
    postgres_url, client, shop, services, monkeypatch
):
    """The checkout's reservation committed while the delivery is deciding, after it read the order's record and
    before it locks the wallet (here: while it checks the order's refunds), is captured by the payment, as when the
    reservations were read just before the wallet's lock: one capture, nothing left held, the order paid. (In
    d95c473 the flag read with the record said none, so the rules never looked again: the order was refused, the
    money stayed held.)"""
    credit(client, shop, amount=4_148)
    shop_id = shop.shop.id
    real = order_rules._check_refunds_fit
    reserved: list[int] = []

    def checkout_meanwhile(ctx):
        if not reserved:  # another connection: the checkout's own request, committed before the wallet is locked
            reserved.append(reserve(client, shop).status_code)
        return real(ctx)

    monkeypatch.setattr(order_rules, "_check_refunds_fit", checkout_meanwhile)
    with unit_of_work(services.sessions) as session:
        stored = session.get(Shop, shop_id)
        apply_order(session, stored, order(external_id="7001", customer_external_id=CUSTOMER), ACTOR)

    assert reserved == [201]
    assert _holds(services) == [("captured", 4_148, 4_148)]
    assert _ledger_kinds(services) == ["adjustment", "capture"]
    with unit_of_work(services.sessions) as session:
        record = session.scalars(select(ShopOrder).where(ShopOrder.external_id == "7001")).one()
        assert (record.payment_outcome, record.wallet_paid) == ("paid", 4_148)
