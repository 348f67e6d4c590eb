"""DEFER_DELIVERIES: a delivery is answered once stored, and a worker applies it (woken at once on PostgreSQL by
LISTEN/NOTIFY, polling on SQLite). Nothing stored is lost, nothing is applied twice."""

import threading
import time
from dataclasses import replace

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from bridge.db import unit_of_work
from bridge.models import InboxDelivery, LedgerTransaction, OutboxMessage, ShopOrder
from bridge.surfaces.cli import create_cli_app
from bridge.surfaces.platforms import TOPICS
from bridge.surfaces.workers import run_worker
from bridge.usecases.deliveries import INBOX_CHANNEL, apply_received
from tests.conftest import make_shop
from tests.integration.test_ledger import _statements_during
from tests.integration.test_woocommerce_webhooks import count, fund, send_captured, wallet_balance
from tests.woo import connect_for_tests, order_body, post_delivery


def payments(services) -> int:
    return count(services, LedgerTransaction, LedgerTransaction.kind == "payment")


@pytest.fixture
def deferring(settings):
    app = create_cli_app(replace(settings, defer_deliveries=True, embedded_worker=False))
    yield app
    app.extensions["wallet_bridge"].engine.dispose()


@pytest.fixture
def shop_id(deferring):
    services = deferring.extensions["wallet_bridge"]
    shop = make_shop(services)
    connect_for_tests(services, shop.shop.id)
    fund(services, shop.shop.id, 10_000)
    return shop.shop.id


def test_a_delivery_is_answered_once_stored_and_applied_by_the_worker(deferring, shop_id):
    services = deferring.extensions["wallet_bridge"]
    answer = send_captured(deferring.test_client(), shop_id, "0005")  # a wallet order of 41.48

    assert answer.status_code == 200 and answer.get_json()["status"] == "received"
    assert count(services, InboxDelivery, InboxDelivery.status == "received") == 1
    assert wallet_balance(services, shop_id) == 10_000  # nothing applied before the answer

    assert apply_received(services.sessions, TOPICS) == 1
    assert apply_received(services.sessions, TOPICS) == 0  # applied once, not tried again
    assert wallet_balance(services, shop_id) == 10_000 - 4148
    assert count(services, InboxDelivery, InboxDelivery.status == "applied") == 1
    assert count(services, OutboxMessage, OutboxMessage.kind == "order.mark_paid") == 1


def test_a_waiting_worker_applies_a_new_delivery_at_once(deferring, shop_id, monkeypatch):
    services = deferring.extensions["wallet_bridge"]
    monkeypatch.setattr("sync.worker.run_once", lambda *args, **kwargs: 0)  # no shop to push to here
    stop = threading.Event()
    worker = threading.Thread(target=run_worker, args=(services, stop), kwargs={"idle_seconds": 30.0})
    worker.start()
    try:
        time.sleep(0.5)  # the worker is idle, waiting (30 s unless woken)
        send_captured(deferring.test_client(), shop_id, "0005")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not payments(services):
            time.sleep(0.05)
        assert wallet_balance(services, shop_id) == 10_000 - 4148  # long before the idle wait ran out
    finally:
        stop.set()
        if services.engine.dialect.name == "postgresql":  # wakes it to see `stop` (on SQLite it polls)
            with unit_of_work(services.sessions) as session:
                session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": INBOX_CHANNEL})
        worker.join(timeout=35)


def test_a_worker_whose_claim_the_database_refuses_ends_its_round_and_tries_again_later(
    deferring, shop_id, monkeypatch
):
    services = deferring.extensions["wallet_bridge"]
    send_captured(deferring.test_client(), shop_id, "0005")

    def refused(*_args, **_kwargs):
        raise OperationalError("UPDATE inbox …", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr("bridge.usecases.deliveries._claim", refused)
    assert apply_received(services.sessions, TOPICS) == 0  # nothing claimed, nothing passed over, no error
    monkeypatch.undo()
    assert apply_received(services.sessions, TOPICS) == 1
    assert wallet_balance(services, shop_id) == 10_000 - 4148


@pytest.mark.postgres_only
def test_two_workers_share_the_waiting_deliveries_and_never_pick_the_same_one(deferring, shop_id):
    services = deferring.extensions["wallet_bridge"]
    fund(services, shop_id, 100 * 4148)
    client = deferring.test_client()
    orders = 24
    for order in range(1, orders + 1):
        assert post_delivery(client, shop_id, "order.created", order_body(id=5000 + order)).status_code == 200
    start, tried = threading.Barrier(2), []

    def worker():
        start.wait()
        tried.append(apply_received(services.sessions, TOPICS))

    workers = [threading.Thread(target=worker) for _ in range(2)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=60)

    assert sum(tried) == orders  # each delivery tried by one worker only
    assert payments(services) == orders
    assert count(services, InboxDelivery, InboxDelivery.status == "applied") == orders


@pytest.mark.postgres_only
def test_a_wallet_order_is_answered_in_one_statement_and_applied_in_four(deferring, shop_id):
    """The budget of the hot path (issue 15, docs/performance.md): answered with the delivery stored, the shop's keys
    checked and the workers told in one statement (the keys remembered by the process); applied in four: the
    delivery claimed with its shop; the order's record with its customer and whether its checkout reserved; the
    wallet locked; the payment with the message to the shop and what the record decided."""
    services = deferring.extensions["wallet_bridge"]
    client = deferring.test_client()
    send_captured(client, shop_id, "0005")  # the first delivery reads what each process then remembers
    assert apply_received(services.sessions, TOPICS) == 1

    answer = _statements_during(
        services.engine, lambda: post_delivery(client, shop_id, "order.created", order_body(id=7001))
    )
    applied = _statements_during(services.engine, lambda: apply_received(services.sessions, TOPICS, limit=1))

    assert (answer, applied) == (1, 4)
    assert payments(services) == 2
    with unit_of_work(services.sessions) as session:  # what went in the payment's round trip was written
        payment = session.scalars(select(LedgerTransaction).where(LedgerTransaction.order_ref == "7001")).one()
        message = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "order.mark_paid")).all()[-1]
        record = session.scalars(select(ShopOrder).where(ShopOrder.external_id == "7001")).one()
        assert (message.payload["order_id"], message.payload["transaction_id"]) == ("7001", payment.id)
        assert message.payload["balance"] == 10_000 - 2 * 4148
        assert (record.wallet_paid, record.payment_outcome, record.status) == (4148, "paid", "pending")
        assert record.updated_at > record.created_at
