"""Deliveries stored but never applied — the web process died, or the database dropped its connection, between
storing and applying — are applied later by the workers (shops never send them again)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from bridge.accounts import find_customer, find_points, find_wallet
from bridge.db import unit_of_work
from bridge.models import InboxDelivery, Shop, utcnow
from bridge.surfaces.platforms import TOPICS
from bridge.usecases.deliveries import apply_delivery, reapply, recover_stalled
from sync.worker import run_forever
from tests.inbox import record_delivery
from tests.integration.test_shopify import customer as shopify_customer
from tests.integration.test_shopify import shopify  # noqa: F401 (fixture)
from tests.woo import connect_for_tests, order_body, wp_json


@pytest.fixture
def bonus_shop(services, shop):
    connect_for_tests(services, shop.shop.id)
    with unit_of_work(services.sessions) as session:
        stored = session.get(Shop, shop.shop.id)
        stored.settings = {**stored.settings, "signup_bonus": 500, "points_per_currency_unit": 1}
    return shop.shop.id


def stored(
    services,
    shop_id: int,
    topic: str,
    data: dict,
    *,
    age: timedelta,
    platform: str = "woocommerce",
    status: str = "received",
) -> int:
    delivery_id = record_delivery(
        services.sessions,
        shop_id=shop_id,
        platform=platform,
        topic=topic,
        resource_id=str(data["id"]),
        delivery_id=None,
        body=wp_json(data),
        status=status,
    )
    with unit_of_work(services.sessions) as session:
        session.get(InboxDelivery, delivery_id).received_at = utcnow() - age
    return delivery_id


def wallet_balance(services, shop_id: int, customer_id: str, currency: str = "EUR") -> int | None:
    with unit_of_work(services.sessions) as session:
        found = find_customer(session, shop_id, customer_id)
        wallet = find_wallet(session, found, currency) if found else None
        return wallet.balance if wallet else None


def status_of(services, delivery_id: int) -> str:
    with unit_of_work(services.sessions) as session:
        return session.get(InboxDelivery, delivery_id).status


def new_customer(customer_id: int) -> dict:
    return {
        "id": customer_id,
        "email": f"c{customer_id}@example.test",
        "first_name": "C",
        "last_name": "Ustomer",
        "billing": {},
        "shipping": {},
        "meta_data": [],
    }


def test_a_stalled_delivery_is_applied_once_and_a_fresh_one_is_left_to_its_request(services, bonus_shop):
    stalled = stored(services, bonus_shop, "customer.created", new_customer(41), age=timedelta(minutes=5))
    fresh = stored(services, bonus_shop, "customer.created", new_customer(42), age=timedelta(seconds=5))

    assert recover_stalled(services.sessions, TOPICS) == 1
    assert recover_stalled(services.sessions, TOPICS) == 0  # nothing left: applied rows are not touched again

    assert (status_of(services, stalled), status_of(services, fresh)) == ("applied", "received")
    assert wallet_balance(services, bonus_shop, "41") == 500  # the sign-up bonus the dead process never gave
    assert wallet_balance(services, bonus_shop, "42") is None


def test_recovery_applies_an_order_whose_delivery_also_came_again(client, services, bonus_shop):
    """The shop sent the order again (a later change) and it was applied: the stalled copy moves nothing."""
    paid = order_body(id=77, status="processing", payment_method="stripe", total="20.00", refunds=[])
    stalled = stored(services, bonus_shop, "order.updated", paid, age=timedelta(minutes=2))
    fresh = stored(services, bonus_shop, "order.updated", paid, age=timedelta(0))
    assert reapply(services.sessions, TOPICS, fresh).status == "applied"

    assert recover_stalled(services.sessions, TOPICS) == 1
    assert status_of(services, stalled) == "applied"
    with unit_of_work(services.sessions) as session:
        points = find_points(session, find_customer(session, bonus_shop, str(paid["customer_id"])))
        assert points.balance == 20  # €20.00 paid earns 20 points, once


def test_a_dropped_connection_is_tried_again_at_once(services, bonus_shop):
    delivery_id = stored(services, bonus_shop, "customer.created", new_customer(43), age=timedelta(0))
    calls = []

    def flaky(session, shop, snapshot, actor):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))

    assert apply_delivery(services.sessions, delivery_id, flaky, None) == "applied"
    assert len(calls) == 2


def test_a_database_that_stays_away_leaves_the_delivery_for_the_recovery(services, bonus_shop):
    delivery_id = stored(services, bonus_shop, "customer.created", new_customer(44), age=timedelta(0))

    def down(session, shop, snapshot, actor):
        raise OperationalError("SELECT 1", {}, Exception("could not connect to server"))

    assert apply_delivery(services.sessions, delivery_id, down, None) == "received"
    assert status_of(services, delivery_id) == "received"  # not failed: nothing was wrong with it


def test_a_shopify_delivery_is_applied_by_its_own_platform_handler(services, shopify):  # noqa: F811
    delivery_id = stored(
        services,
        shopify.shop.id,
        "customers/create",
        shopify_customer(7),
        platform="shopify",
        age=timedelta(0),
        status="failed",
    )

    outcome = reapply(services.sessions, TOPICS, delivery_id)

    assert outcome.status == "applied"
    assert wallet_balance(services, shopify.shop.id, "7", "USD") == 500


def test_an_unknown_topic_cannot_be_reapplied(services, bonus_shop):
    delivery_id = stored(services, bonus_shop, "coupon.created", {"id": 1}, age=timedelta(0), status="failed")
    error = reapply(services.sessions, TOPICS, delivery_id).error
    assert error == "deliveries of woocommerce coupon.created cannot be applied"


def test_the_worker_runs_its_chores_beside_the_outbox(services):
    stop = threading.Event()
    ran = []

    def chore():
        ran.append(1)
        stop.set()

    run_forever(services.sessions, {}, None, stop, idle_seconds=0.01, chores=[chore])

    assert ran == [1]


def test_the_cli_recovers_stalled_deliveries(app, services, bonus_shop):
    delivery_id = stored(services, bonus_shop, "customer.created", new_customer(45), age=timedelta(seconds=30))
    runner = app.test_cli_runner()

    with app.app_context():  # the `wallet-bridge` FlaskGroup pushes one; app.cli alone does not
        assert "deliveries applied: 0" in runner.invoke(args=["inbox", "recover"]).output  # 30 s: not stalled yet
        assert "deliveries applied: 1" in runner.invoke(args=["inbox", "recover", "--older-than", "10"]).output
    with unit_of_work(services.sessions) as session:
        assert session.scalar(select(InboxDelivery.status).where(InboxDelivery.id == delivery_id)) == "applied"
