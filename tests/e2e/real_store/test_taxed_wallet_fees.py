"""A partial wallet payment on a taxed order, on the real store: whatever the tax setup, the wallet's fee lowers
the order by exactly what the wallet paid, and the note says what the store really asks. WooCommerce taxes a
negative fee in proportion to the order's taxed costs (WC_Order_Item_Fee::calculate_taxes), whatever the fee's
own tax_status, so the bridge writes the fee net of that tax and corrects the cents the store's rounding moved."""

import secrets

import pytest

from tests.e2e.real_store.harness import cents, money

pytestmark = pytest.mark.real_store


@pytest.fixture
def taxed(store):
    store.switch("taxes", True)
    yield store
    store.put("settings/tax/woocommerce_prices_include_tax", {"value": "no"})


def pays_partly(bridge, store, customer, items, funds: int, **extra) -> tuple[int, dict]:
    bridge.credit(customer, funds)
    order = store.new_order(customer, items, **extra)
    original = cents(order["total"])
    bridge.settle()
    return original, store.order(order["id"])


def assert_settled_exactly(bridge, store, customer, original: int, order: dict, funds: int) -> None:
    assert bridge.balance(customer) == 0
    assert cents(order["total"]) == original - funds  # the wallet part and what the store asks make the total
    left = f"€{money(original - funds)}"
    assert any(left in note and "left to pay" in note for note in store.customer_notes(order["id"]))


def test_prices_entered_with_tax(bridge, store, taxed, customer, mug):
    store.put("settings/tax/woocommerce_prices_include_tax", {"value": "yes"})
    product = store.new_product("19.99", f"Gross mug {secrets.token_hex(2)}")
    original, order = pays_partly(bridge, store, customer, [(product, 1)], 1000)
    assert original == 1999
    assert_settled_exactly(bridge, store, customer, original, order, 1000)


def test_mixed_rates(bridge, store, taxed, customer, mug):
    reduced = [rate for rate in store.get("taxes", per_page=100) if rate.get("class") == "reduced-rate"]
    if not reduced:
        store.post(
            "taxes", {"country": "DE", "rate": "7.0000", "name": "MwSt 7 %", "class": "reduced-rate", "shipping": False}
        )
    book = store.post(
        "products", {"name": f"Book {secrets.token_hex(2)}", "regular_price": "6.45", "tax_class": "reduced-rate"}
    )
    original, order = pays_partly(bridge, store, customer, [(mug, 1), (book, 1)], 1500)
    assert original == 2379 + 690  # 19.99 + 19 %, 6.45 + 7 %
    assert_settled_exactly(bridge, store, customer, original, order, 1500)


def test_shipping_and_a_coupon(bridge, store, taxed, customer, mug):
    code = f"ten-{secrets.token_hex(3)}"
    store.post("coupons", {"code": code, "discount_type": "percent", "amount": "10"})
    shipping = [{"method_id": "flat_rate", "method_title": "Flat rate", "total": "4.90"}]
    original, order = pays_partly(
        bridge, store, customer, [(mug, 2)], 2000, shipping_lines=shipping, coupon_lines=[{"code": code}]
    )
    assert_settled_exactly(bridge, store, customer, original, order, 2000)


def test_taxes_off(bridge, store, customer, mug):
    original, order = pays_partly(bridge, store, customer, [(mug, 2)], 1234)
    assert_settled_exactly(bridge, store, customer, original, order, 1234)
