"""Connecting the real store, and wallet payments pushed back to it."""

import pytest

from sync.woocommerce.connect import WEBHOOK_TOPICS
from tests.e2e.real_store.harness import cents

pytestmark = pytest.mark.real_store


def test_connect_registers_each_webhook_once_even_when_run_twice(bridge, store, first_connect):
    again = bridge.connect(store)

    assert len(first_connect["webhooks"]["created"]) == len(WEBHOOK_TOPICS)
    assert again["webhooks"]["created"] == [] and sorted(again["webhooks"]["unchanged"]) == sorted(
        first_connect["webhooks"]["created"]
    )
    hooks = store.our_webhooks(bridge.delivery_url)
    assert sorted(hook["topic"] for hook in hooks) == sorted(WEBHOOK_TOPICS)
    assert all(hook["status"] == "active" for hook in hooks)


def test_wallet_payment_is_pushed_back_as_paid(bridge, store, customer, mug):
    bridge.credit(customer, 5000)

    order = store.new_order(customer, [(mug, 1)])
    bridge.settle()

    assert bridge.balance(customer) == 5000 - 1999
    shown = store.order(order["id"])
    assert shown["status"] == "processing" and shown["date_paid"] is not None
    assert shown["transaction_id"].startswith("wallet-bridge-") and shown["transaction_id"] != "wallet-bridge-None"
    assert cents(shown["total"]) == 1999
    assert any("€19.99" in note for note in store.customer_notes(order["id"]))


def test_partial_payment_adds_a_wallet_fee_line_and_the_store_asks_for_the_rest(bridge, store, customer, mug):
    bridge.credit(customer, 1000)

    order = store.new_order(customer, [(mug, 1)])
    bridge.settle()

    assert bridge.balance(customer) == 0
    shown = store.order(order["id"])
    assert shown["status"] == "pending" and shown["date_paid"] is None
    assert [(fee["name"], fee["total"]) for fee in shown["fee_lines"]] == [("Paid from wallet", "-10.00")]
    assert cents(shown["total"]) == 999
    assert any("€9.99" in note for note in store.customer_notes(order["id"]))


def test_repeated_deliveries_of_a_paid_order_move_money_once(bridge, store, customer, mug):
    bridge.credit(customer, 5000)
    order = store.new_order(customer, [(mug, 1)])
    bridge.settle()

    for _ in range(3):
        store.redeliver(bridge.delivery_url, order["id"])
    bridge.settle()

    assert bridge.balance(customer) == 5000 - 1999
    assert [line["kind"] for line in bridge.statement(customer)].count("payment") == 1
    shown = store.order(order["id"])
    assert shown["status"] == "processing" and cents(shown["total"]) == 1999 and shown["fee_lines"] == []
    assert bridge.failed_deliveries() == 0
