"""Top-ups paid through a real store order, and a withdrawal the store's offline gateway cannot refund."""

import pytest

from tests.e2e.real_store.harness import CARD_METHOD, cents

pytestmark = pytest.mark.real_store


def topped_up(bridge, store, customer, amount=2000):
    made = bridge.api("post", f"/customers/{customer['id']}/topups", {"amount": amount}, expect=201)
    store.put(
        f"orders/{made['order_id']}", {"payment_method": CARD_METHOD, "payment_method_title": "Card", "set_paid": True}
    )
    bridge.settle()
    return made


def test_a_topup_order_paid_in_the_store_credits_the_wallet(bridge, store, customer):
    made = topped_up(bridge, store, customer)

    order = store.order(made["order_id"])
    # Nothing to ship: WooCommerce completes a paid order without line items at once.
    assert order["status"] == "completed" and cents(order["total"]) == 2000 and order["line_items"] == []
    assert order["customer_id"] == customer["id"]
    wallet = bridge.wallet(customer)
    assert wallet["balance"] == 2000 and wallet["withdrawable"] == 2000
    assert any("€20.00" in note for note in store.customer_notes(made["order_id"]))


def test_a_withdrawal_the_offline_gateway_cannot_refund_comes_back_to_the_wallet(bridge, store, customer):
    made = topped_up(bridge, store, customer)

    bridge.api("post", f"/customers/{customer['id']}/withdrawals", {"amount": 1500}, expect=201)
    bridge.settle()

    assert bridge.balance(customer) == 2000
    kinds = [line["kind"] for line in bridge.statement(customer)]
    assert kinds.count("withdrawal") == 1 and kinds.count("withdrawal_reversal") == 1
    assert store.order(made["order_id"])["refunds"] == []  # the store refused: no refund was made
    assert any("€15.00" in note for note in store.customer_notes(made["order_id"]))
