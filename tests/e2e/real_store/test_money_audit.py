"""Money edges found by trying the bridge as a merchant would on the real store (after issue 12): an order set
"refunded" before anyone paid it, a payment cycle started again on an order still carrying the old wallet fee,
refunds left above a total edited afterwards, a partly paid order edited afterwards."""

import secrets
import time

import pytest

from tests.e2e.real_store.harness import cents, money, paid_by_wallet

pytestmark = pytest.mark.real_store


def test_a_partly_paid_order_set_refunded_before_the_rest_was_paid_returns_only_the_wallet_part(
    bridge, store, customer, mug
):
    bridge.credit(customer, 1000)
    order = store.new_order(customer, [(mug, 2)])
    bridge.settle()
    assert cents(store.order(order["id"])["total"]) == 2998

    store.put(f"orders/{order['id']}", {"status": "refunded"})  # WooCommerce refunds the 29.98 nobody paid
    bridge.settle()

    shown = store.order(order["id"])
    assert [refund["total"] for refund in shown["refunds"]] == ["-29.98"] and shown["date_paid_gmt"] is None
    assert bridge.balance(customer) == 1000


def test_a_partly_paid_order_cancelled_and_set_pending_again_pays_its_whole_total(bridge, store, customer, mug):
    """Before, the cancellation returned the wallet part but left its fee on the order, and the new attempt
    was charged on the total that fee lowered: 29.98 + 10.00 asked for 39.98 of goods, then 19.98 + 10.00."""
    bridge.credit(customer, 1000)
    order = store.new_order(customer, [(mug, 2)])
    bridge.settle()
    store.put(f"orders/{order['id']}", {"status": "cancelled"})
    bridge.settle()
    assert bridge.balance(customer) == 1000
    cancelled = store.order(order["id"])  # the wallet's fee went with the money it stood for
    assert (cancelled["fee_lines"], cents(cancelled["total"])) == ([], 3998)
    time.sleep(1)  # a later state: the shop dates changes to the second, and the fee's removal was one

    store.put(f"orders/{order['id']}", {"status": "pending"})
    bridge.settle()

    shown = store.order(order["id"])
    assert bridge.balance(customer) == 0
    assert [(fee["name"], fee["total"]) for fee in shown["fee_lines"]] == [("Paid from wallet", "-10.00")]
    assert cents(shown["total"]) == 3998 - 1000
    assert any("€29.98 is left to pay" in note and "attempt 2" in note for note in store.customer_notes(order["id"]))


def swap_first_line_for(store, order_id: int, product) -> None:
    """The merchant edits the order: its first line out, one of `product` in (WooCommerce recalculates the total)."""
    line = store.order(order_id)["line_items"][0]
    store.put(
        f"orders/{order_id}",
        {"line_items": [{"id": line["id"], "quantity": 0}, {"product_id": product["id"], "quantity": 1}]},
    )


def test_refunds_above_a_total_edited_afterwards_do_not_block_the_cancellation(bridge, store, customer, mug, vase):
    failed = bridge.failed_deliveries()
    order = paid_by_wallet(bridge, store, customer, [(mug, 1)])
    store.refund(order["id"], "10.00")
    bridge.settle()
    swap_first_line_for(store, order["id"], vase)
    bridge.settle()

    store.put(f"orders/{order['id']}", {"status": "cancelled"})
    bridge.settle()

    assert bridge.balance(customer) == 5000  # 10.00 by the refund, the 9.99 the order still held by the cancellation
    assert bridge.failed_deliveries() == failed


def test_a_partly_paid_order_edited_below_the_wallet_part_returns_the_rest_and_is_paid(
    bridge, store, customer, mug, vase
):
    bridge.credit(customer, 1500)
    order = store.new_order(customer, [(mug, 2)])
    bridge.settle()

    swap_first_line_for(store, order["id"], vase)
    bridge.settle()

    shown = store.order(order["id"])
    assert (cents(shown["total"]), shown["status"]) == (0, "processing")  # the shop cut the fee to -9.99
    assert bridge.balance(customer) == 1500 - 999
    assert any("€5.01 returned" in note for note in store.customer_notes(order["id"]))


def test_a_partly_paid_taxed_order_edited_afterwards_tells_the_customer_what_is_left(bridge, store, customer, mug):
    store.switch("taxes", True)
    bridge.credit(customer, 1000)
    order = store.new_order(customer, [(mug, 1)])
    bridge.settle()
    assert cents(store.order(order["id"])["total"]) == 1379

    shipping = [{"method_id": "flat_rate", "method_title": "Flat rate", "total": "4.90"}]
    store.put(f"orders/{order['id']}", {"shipping_lines": shipping})
    bridge.settle()

    shown = store.order(order["id"])
    assert cents(shown["total"]) == 2379 + 490 + 93 - 1000  # shipping taxed at 19 %; the wallet's 10.00 stands
    assert any("€19.62 is left to pay" in note for note in store.customer_notes(order["id"]))
    assert bridge.balance(customer) == 0


@pytest.mark.parametrize("prices_include_tax", ["no", "yes"])
def test_a_wallet_discount_on_a_taxed_order_is_one_payment_of_the_shops_total(
    bridge, store, settings, customer, mug, prices_include_tax
):
    """The discount's fee is taxed and rounded by the shop, so its push corrects it in a few writes, each sending
    the order's state: none of them is the merchant editing the paid order (before, each was settled as an edit,
    with a note: "The order's total changed to €25.84: €0.01 more paid from your wallet", and so on)."""
    settings(wallet_discount_kind="percent", wallet_discount_value=1300)
    store.switch("taxes", True)
    store.put("settings/tax/woocommerce_prices_include_tax", {"value": prices_include_tax})
    try:
        book = reduced_rate_book(store)
        bridge.credit(customer, 10000)
        shipping = [{"method_id": "flat_rate", "method_title": "Flat rate", "total": "4.95"}]
        order = store.new_order(customer, [(mug, 1), (book, 1)], shipping_lines=shipping)
        bridge.settle()
    finally:
        store.put("settings/tax/woocommerce_prices_include_tax", {"value": "no"})

    shown = store.order(order["id"])
    assert shown["status"] == "processing"
    # one payment, and back what the shop's rounding took off more than the discount (a cent, if any)
    kinds = [line["kind"] for line in bridge.statement(customer) if line["kind"] != "adjustment"]
    assert kinds in (["payment"], ["payment_reversal", "payment"])
    assert bridge.balance(customer) == 10000 - cents(shown["total"])  # the wallet paid what the shop says it costs
    assert cents(shown["total"]) <= cents(order["total"]) - cents(order["total"]) * 13 // 100  # 13 % off, at least
    notes = store.customer_notes(order["id"])
    assert len(notes) == 1
    assert notes[0].startswith(f"Paid €{money(cents(shown['total']))} from your wallet. Wallet balance: €")
    assert f"Wallet balance: €{money(bridge.balance(customer))}" in notes[0]


def reduced_rate_book(store) -> dict:
    if not [rate for rate in store.get("taxes", per_page=100) if rate.get("class") == "reduced-rate"]:
        store.post(
            "taxes", {"country": "DE", "rate": "7.0000", "name": "MwSt 7 %", "class": "reduced-rate", "shipping": False}
        )
    return store.post(
        "products", {"name": f"Book {secrets.token_hex(2)}", "regular_price": "6.45", "tax_class": "reduced-rate"}
    )
