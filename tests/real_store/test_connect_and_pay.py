"""Connecting the real store, and wallet payments pushed back to it."""

import pytest

from tests.real_store.harness import cents

pytestmark = pytest.mark.real_store


def test_connect_registers_each_webhook_once_even_when_run_twice(bridge, store, first_connect):
    again = bridge.connect(store)

    assert len(first_connect["webhooks"]["created"]) == 4
    assert again["webhooks"]["created"] == [] and sorted(again["webhooks"]["unchanged"]) == sorted(
        first_connect["webhooks"]["created"])
    hooks = store.our_webhooks(bridge.delivery_url)
    assert sorted(hook["topic"] for hook in hooks) == ["customer.created", "customer.updated", "order.created",
                                                       "order.updated"]
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
    assert any("Paid 19.99" in note or "19.99" in note for note in store.customer_notes(order["id"]))
