"""An order or refund in a currency the shop does not accept moves nothing: its delivery is kept as failed with
a reason the merchant can act on (and shown on the Operations page); a currency the merchant lists is accepted."""

from __future__ import annotations

from sqlalchemy import func, select

from bridge.db import unit_of_work
from bridge.models import Account, InboxDelivery, LedgerTransaction, OrderRefund, Shop
from tests.console_support import text_of
from tests.integration.test_order_lifecycle import configure
from tests.integration.test_shopify import deliver as shopify_deliver
from tests.integration.test_shopify import order as shopify_order
from tests.integration.test_shopify import shopify  # noqa: F401 - the fixture
from tests.integration.test_woocommerce_webhooks import woo  # noqa: F401 - the fixture
from tests.woo import order_body, post_delivery

pytest_plugins = ("tests.console_fixtures",)  # fixtures: merchant, console

# A card order in dollars on a euro shop, refunded to the wallet: before, this opened a hidden USD wallet.
USD_REFUNDED = order_body(
    id=60,
    currency="USD",
    status="processing",
    payment_method="stripe",
    refunds=[{"id": 61, "reason": "", "total": "-10.00"}],
)


def wallet_currencies(services) -> list[str]:
    with unit_of_work(services.sessions) as session:
        return list(session.scalars(select(Account.currency).where(Account.kind == "wallet")))


def test_an_order_in_a_currency_the_shop_does_not_accept_is_a_failed_delivery_and_moves_nothing(
    client,
    services,
    woo,
    console,  # noqa: F811
):
    configure(services, woo, points_per_currency_unit=1)

    response = post_delivery(client, woo, "order.updated", USD_REFUNDED)

    assert response.status_code == 200 and response.get_json()["status"] == "failed"
    with unit_of_work(services.sessions) as session:
        delivery = session.execute(select(InboxDelivery)).scalar_one()
        assert delivery.status == "failed"
        assert delivery.error.startswith(
            "currency_not_accepted: this order is in USD, a currency the shop does not accept (EUR): nothing was moved."
        )
        assert session.scalar(select(func.count()).select_from(LedgerTransaction)) == 0
    assert "USD" not in wallet_currencies(services)
    assert "a currency the shop does not accept (EUR)" in text_of(console.get(f"/shops/{woo}/operations"))


def test_a_currency_the_merchant_accepts_opens_its_own_wallet(client, services, woo):  # noqa: F811
    configure(services, woo, extra_currencies=["USD"])

    assert post_delivery(client, woo, "order.updated", USD_REFUNDED).get_json()["status"] == "applied"

    assert "USD" in wallet_currencies(services)
    with unit_of_work(services.sessions) as session:
        assert session.get(Shop, woo).currency == "EUR"
        refunds = session.scalar(select(func.count()).where(LedgerTransaction.kind == "refund_to_wallet"))
        assert refunds == 1


def test_a_shopify_refund_in_another_currency_than_its_order_moves_nothing(client, services, shopify):  # noqa: F811
    """Shopify's refund transactions are in the customer's (presentment) currency: a refunds/create in another
    currency than the order's carries no rate to read it in the order's, and moves nothing (the orders/updated
    that lists it is read with the order's own rate: tests/e2e/test_presentment_currency_session11.py)."""
    shop_id = shopify.shop.id
    assert shopify_deliver(client, shop_id, "orders/paid", shopify_order()).get_json()["status"] == "applied"
    with unit_of_work(services.sessions) as session:
        before = session.scalar(select(func.count()).select_from(LedgerTransaction))
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
                "amount": "10.00",
                "currency": "GBP",
            }
        ],
    }

    assert shopify_deliver(client, shop_id, "refunds/create", refund).get_json()["status"] == "applied"

    with unit_of_work(services.sessions) as session:
        assert session.scalar(select(func.count()).select_from(LedgerTransaction)) == before
        assert session.scalar(select(func.count()).select_from(OrderRefund)) == 0
