"""Money coming back from the real store: refunds, cancellations, and loyalty points."""

import pytest

from tests.e2e.real_store.harness import paid_by_wallet

pytestmark = pytest.mark.real_store


def test_a_refund_in_the_store_goes_to_the_wallet(bridge, store, customer, mug):
    order = paid_by_wallet(bridge, store, customer, [(mug, 1)])

    store.refund(order["id"], "5.00")
    bridge.settle()

    assert bridge.balance(customer) == 5000 - 1999 + 500
    assert [line["amount"] for line in bridge.statement(customer) if line["kind"] == "refund_to_wallet"] == [500]
    shown = store.order(order["id"])
    assert [refund["total"] for refund in shown["refunds"]] == ["-5.00"] and shown["status"] == "processing"
    assert any("€5.00" in note for note in store.customer_notes(order["id"]))


def test_a_cancelled_wallet_order_returns_the_money_once(bridge, store, customer, mug):
    order = paid_by_wallet(bridge, store, customer, [(mug, 1)])

    store.put(f"orders/{order['id']}", {"status": "cancelled"})
    store.redeliver(bridge.delivery_url, order["id"])
    bridge.settle()

    assert bridge.balance(customer) == 5000
    assert [line["kind"] for line in bridge.statement(customer)].count("payment_reversal") == 1
    assert store.order(order["id"])["status"] == "cancelled"
    assert any("€19.99" in note for note in store.customer_notes(order["id"]))


def test_points_are_earned_on_a_paid_order_and_taken_back_on_its_refund(bridge, store, settings, customer, mug):
    settings(points_per_currency_unit=1)
    order = paid_by_wallet(bridge, store, customer, [(mug, 2)])
    assert bridge.wallet(customer)["points"] == 39  # 39.98 paid

    store.refund(order["id"], "19.99")
    bridge.settle()

    wallet = bridge.wallet(customer)
    assert wallet["points"] == 39 - 19  # half the order back: half its points
    assert wallet["balance"] == 5000 - 3998 + 1999
    store.refund(order["id"], "19.99")
    bridge.settle()
    assert bridge.wallet(customer)["points"] == 0
    assert store.order(order["id"])["status"] == "refunded"
