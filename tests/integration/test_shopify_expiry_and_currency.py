"""Shopify: promotional credit expires once, on Shopify's side (it was given the date with the credit), and a
refund whose transactions name no currency is read in the order's. Signed webhooks through the simulator."""

# ruff: noqa: F811 - the Shopify end-to-end fixtures are imported by name and requested as arguments
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bridge.accounts import find_customer, find_wallet
from bridge.db import unit_of_work
from bridge.usecases.expiry import expire_credit
from simulator.shopify import ManualClock
from tests.e2e.test_e2e_shopify import both, configure, connect, loopback_only, mutations, outbox, push, shopify, sim  # noqa: F401
from tests.integration.test_shopify import customer, deliver, order
from tests.integration.test_shopify import shopify as usd_shop  # noqa: F401 - a USD shop on `responses`, for the refund

DAY = 86_400


@pytest.fixture
def clock():
    """Shopify's clock starts at the real time: the lots' expiry dates are real ones."""
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


def test_promotional_credit_expires_on_shopify_once(client, services, sim, shopify, clock, loopback_only):
    shop_id = shopify.shop.id
    configure(services, shop_id, promotional_expiry_days=1)
    connect(services, shop_id, sim)
    alice = sim.create_customer("alice@example.test", "Alice", "Tester")["id"]  # a €5.00 promotional bonus
    response = client.post(
        f"/api/v1/customers/{alice}/adjustments",
        json={"direction": "credit", "amount": 5000, "reason": "Goodwill"},
        headers={"Authorization": f"Bearer {shopify.api_key}", "Idempotency-Key": "g"},
    )
    assert response.status_code == 201
    push(services)
    assert both(services, shop_id, sim, alice) == (5500, 5500)
    clock.advance(3 * DAY)  # Shopify expires the bonus at its date
    assert expire_credit(services.sessions, now=datetime.now(UTC) + timedelta(days=3))  # so does the bridge
    push(services)
    assert both(services, shop_id, sim, alice) == (5000, 5000)
    assert [field for field, _ in mutations(sim)] == ["storeCreditAccountCredit"] * 2  # no debit on top
    assert [status for _, _, status in outbox(services) if status != "delivered"] == []


def test_a_refund_naming_no_currency_is_read_in_the_orders(client, services, usd_shop):
    shop_id = usd_shop.shop.id
    configure(services, shop_id, signup_bonus=0, extra_currencies=["JPY"])
    assert deliver(client, shop_id, "customers/create", customer()).status_code == 200
    paid = order(
        total="1000",
        subtotal_price="1000",
        currency="JPY",
        transactions=[{"id": 1, "kind": "sale", "status": "success", "gateway": "bogus", "amount": "1000"}],
    )
    assert deliver(client, shop_id, "orders/paid", paid).status_code == 200
    refund = {
        "id": 5001,
        "order_id": 1001,
        "note": "",
        "transactions": [
            {
                "id": 9,
                "kind": "refund",
                "status": "success",
                "gateway": "shopify_store_credit",
                "amount": "100",
                "currency": None,
            }
        ],
    }
    assert deliver(client, shop_id, "refunds/create", refund).status_code == 200
    with unit_of_work(services.sessions) as session:
        wallet = find_wallet(session, find_customer(session, shop_id, "7"), "JPY")
        assert wallet.balance == 100  # ¥100, not ¥10 000
