"""Points are earned on the items without tax, or on the items and shipping if the shop says so: never on tax.
The bodies' net amounts are read at the edge (WooCommerce keeps them net; Shopify may include taxes)."""

from __future__ import annotations

import pytest

from bridge.accounts import ensure_customer, points_account
from bridge.db import unit_of_work
from bridge.settings_schema import default_settings
from tests.integration.test_order_lifecycle import configure
from tests.integration.test_shopify import order as shopify_order
from tests.integration.test_woocommerce_webhooks import woo  # noqa: F401 - the fixture
from tests.woo import order_body, post_delivery
from webhooks.shopify.payloads import parse_order as parse_shopify_order
from webhooks.woocommerce.payloads import parse_order as parse_woo_order

# €40.88 paid by card: €30.00 of items + €5.98 tax on them, €4.12 of shipping + €0.78 tax on it.
TAXED_CARD_ORDER = order_body(
    id=70,
    status="processing",
    payment_method="stripe",
    total="40.88",
    total_tax="6.76",
    shipping_total="4.12",
    shipping_tax="0.78",
    fee_lines=[],
    line_items=[
        {
            "id": 1,
            "name": "Mug",
            "quantity": 2,
            "subtotal": "30.00",
            "subtotal_tax": "5.98",
            "total": "30.00",
            "total_tax": "5.98",
            "taxes": [],
            "meta_data": [],
        }
    ],
)


def points(services, shop_id: int, customer: str = "2") -> int:
    with unit_of_work(services.sessions) as session:
        return points_account(session, ensure_customer(session, shop_id, customer)).balance


@pytest.mark.parametrize(("base", "earned"), [("items", 300), ("items_and_shipping", 341)])
def test_points_are_earned_on_the_base_the_shop_chose_never_on_tax(client, services, woo, base, earned):  # noqa: F811
    configure(services, woo, points_per_currency_unit=10, points_base=base)

    assert post_delivery(client, woo, "order.updated", TAXED_CARD_ORDER).get_json()["status"] == "applied"

    assert points(services, woo) == earned  # not 408: the €40.88 paid, tax and shipping included


def test_the_default_base_is_the_items():
    assert default_settings()["points_base"] == "items"


def test_woocommerce_bodies_give_the_net_items_and_shipping():
    order = parse_woo_order(TAXED_CARD_ORDER)
    assert (order.items_excluding_tax, order.shipping_excluding_tax) == (3000, 412)


def test_shopify_bodies_with_taxes_included_give_them_net():
    body = shopify_order(
        total="40.88",
        subtotal_price="35.98",
        taxes_included=True,
        line_items=[{"tax_lines": [{"price": "5.00"}, {"price": "0.98"}]}],
        shipping_lines=[{"discounted_price": "4.90", "tax_lines": [{"price": "0.78"}]}],
    )
    order = parse_shopify_order(body)
    assert (order.items_excluding_tax, order.shipping_excluding_tax) == (3000, 412)
    net = parse_shopify_order(
        {
            **body,
            "taxes_included": False,
            "subtotal_price": "30.00",
            "shipping_lines": [{"discounted_price": "4.12", "tax_lines": [{"price": "0.78"}]}],
        }
    )
    assert (net.items_excluding_tax, net.shipping_excluding_tax) == (3000, 412)
