"""Money bugs the real store showed (issue 12): each test asserts the correct behaviour, which the bridge got
wrong before (each failed on that code). A marker xfail(strict=True) says one is still open."""

import secrets

import pytest

from tests.e2e.real_store.harness import CARD_METHOD, WALLET_METHOD, cents, money, paid_by_wallet

pytestmark = pytest.mark.real_store


def kinds(bridge, customer) -> list[str]:
    return [line["kind"] for line in bridge.statement(customer)]


# (a) a refund on an order already cancelled (its wallet payment returned whole) returns nothing more


def test_a_refund_after_the_cancellation_credits_nothing_more(bridge, store, customer, mug):
    order = paid_by_wallet(bridge, store, customer, [(mug, 1)])
    store.put(f"orders/{order['id']}", {"status": "cancelled"})
    bridge.settle()
    assert bridge.balance(customer) == 5000

    store.refund(order["id"], "5.00")
    bridge.settle()

    assert bridge.balance(customer) == 5000


def test_a_refund_and_a_cancellation_collapsed_into_one_delivery_return_the_payment_once(bridge, store, customer, mug):
    order = paid_by_wallet(bridge, store, customer, [(mug, 1)])
    store.switch("async", True)

    store.refund(order["id"], "5.00")
    store.put(f"orders/{order['id']}", {"status": "cancelled"})
    store.ctl("run-queue")
    bridge.settle()

    assert bridge.balance(customer) == 5000
    assert store.order(order["id"])["status"] == "cancelled"


def test_a_refund_and_a_cancellation_while_the_bridge_is_down_return_the_payment_once(bridge, store, customer, mug):
    order = paid_by_wallet(bridge, store, customer, [(mug, 1)])
    bridge.stop("web")

    store.refund(order["id"], "5.00")
    store.put(f"orders/{order['id']}", {"status": "cancelled"})
    bridge.start_web()
    bridge.sync()
    bridge.settle()

    assert bridge.balance(customer) == 5000


# (b) with taxes on, the wallet's fee lowers the order by exactly what the wallet paid


def partly_paid_with_taxes(bridge, store, customer, mug, funds: int) -> dict:
    store.switch("taxes", True)
    bridge.credit(customer, funds)
    order = store.new_order(customer, [(mug, 1)])
    assert cents(order["total"]) == 2379  # 19.99 + 3.80 tax (19 %, DE)
    bridge.settle()
    return store.order(order["id"])


def test_with_taxes_a_partial_wallet_payment_leaves_exactly_the_rest_to_pay(bridge, store, customer, mug):
    order = partly_paid_with_taxes(bridge, store, customer, mug, funds=1000)

    assert bridge.balance(customer) == 0
    assert cents(order["total"]) == 1379
    assert any("€13.79" in note for note in store.customer_notes(order["id"]))


def test_with_taxes_a_large_partial_wallet_payment_leaves_exactly_the_rest_to_pay(bridge, store, customer, mug):
    order = partly_paid_with_taxes(bridge, store, customer, mug, funds=2200)

    assert bridge.balance(customer) == 0
    assert cents(order["total"]) == 179
    assert any("€1.79" in note for note in store.customer_notes(order["id"]))


# (c) an order the bridge first sees completed and refunded was never paid from the wallet


def test_a_wallet_order_first_seen_completed_and_refunded_gives_the_wallet_nothing(bridge, store, customer, mug):
    store.switch("async", True)

    order = store.new_order(customer, [(mug, 1)], status="on-hold")
    store.refund(order["id"], "10.00")
    store.put(f"orders/{order['id']}", {"status": "completed"})
    store.ctl("run-queue")
    bridge.settle()

    assert bridge.balance(customer) == 0
    assert "refund_to_wallet" not in kinds(bridge, customer)


# (d) a refund to the card of an order paid partly by wallet returns the card's money to the card only


def test_a_card_refund_of_a_partly_wallet_paid_order_gives_the_wallet_nothing(bridge, store, settings, customer, mug):
    settings(refund_destination="original")
    bridge.credit(customer, 1000)
    order = store.new_order(customer, [(mug, 2)])
    bridge.settle()
    assert cents(store.order(order["id"])["total"]) == 2998
    store.put(
        f"orders/{order['id']}", {"payment_method": CARD_METHOD, "payment_method_title": "Card", "set_paid": True}
    )
    bridge.settle()

    store.refund(order["id"], "19.99")
    bridge.settle()

    assert bridge.balance(customer) == 0
    assert store.order(order["id"])["status"] == "processing"


# (e) a wallet-paid order edited afterwards: the wallet follows the new total


def edit_quantity(store, order: dict, quantity: int) -> dict:
    line = order["line_items"][0]
    total = money(cents(line["subtotal"]) // line["quantity"] * quantity)  # the line's new price: WooCommerce
    return store.put(
        f"orders/{order['id']}",
        {
            "line_items": [  # prices a line anew only for a new product
                {
                    "id": line["id"],
                    "product_id": line["product_id"],
                    "quantity": quantity,
                    "subtotal": total,
                    "total": total,
                }
            ]
        },
    )


def test_a_paid_order_raised_afterwards_charges_the_wallet_the_difference(bridge, store, customer, mug):
    order = paid_by_wallet(bridge, store, customer, [(mug, 1)], funds=10000)

    edited = edit_quantity(store, store.order(order["id"]), 3)
    bridge.settle()

    assert cents(edited["total"]) == 5997
    assert bridge.balance(customer) == 10000 - 5997
    assert store.order(order["id"])["status"] == "processing"


def test_a_paid_order_raised_beyond_the_wallet_is_marked_as_needing_payment(bridge, store, customer, mug):
    order = paid_by_wallet(bridge, store, customer, [(mug, 1)], funds=1999)

    edit_quantity(store, store.order(order["id"]), 3)
    bridge.settle()

    assert bridge.balance(customer) == 0
    assert store.order(order["id"])["status"] in ("pending", "on-hold", "failed")
    assert any("€39.98" in note for note in store.customer_notes(order["id"]))


def test_a_paid_order_lowered_afterwards_returns_the_difference_to_the_wallet(bridge, store, customer, mug, vase):
    order = paid_by_wallet(bridge, store, customer, [(mug, 1)])

    line = store.order(order["id"])["line_items"][0]
    edited = store.put(
        f"orders/{order['id']}",
        {
            "line_items": [
                {"id": line["id"], "product_id": mug["id"], "quantity": 0},
                {"product_id": vase["id"], "quantity": 1},
            ]
        },
    )
    bridge.settle()

    assert cents(edited["total"]) == 999
    assert bridge.balance(customer) == 5000 - 999


# (f) failed, then awaiting payment again: charged again, once


def test_a_failed_wallet_order_set_pending_again_is_charged_again_once(bridge, store, customer, mug):
    order = paid_by_wallet(bridge, store, customer, [(mug, 1)])
    store.put(f"orders/{order['id']}", {"status": "failed"})
    bridge.settle()
    assert bridge.balance(customer) == 5000

    store.put(f"orders/{order['id']}", {"status": "pending"})
    bridge.settle()
    store.redeliver(bridge.delivery_url, order["id"])
    bridge.settle()

    assert bridge.balance(customer) == 5000 - 1999
    assert kinds(bridge, customer).count("payment") == 2
    assert store.order(order["id"])["status"] == "processing"


# (g) an order a coupon made free


def test_a_zero_total_wallet_order_proceeds_without_a_made_up_transaction_id(bridge, store, customer, mug):
    code = f"free-{secrets.token_hex(3)}"
    store.post("coupons", {"code": code, "discount_type": "percent", "amount": "100"})

    order = store.new_order(customer, [(mug, 1)], coupon_lines=[{"code": code}])
    bridge.settle()

    shown = store.order(order["id"])
    assert cents(shown["total"]) == 0
    assert shown["status"] in ("processing", "completed")
    assert shown["transaction_id"] != "wallet-bridge-None"
    assert bridge.balance(customer) == 0


# (h) points are for goods, not shipping


def test_points_are_earned_on_the_items_not_on_shipping(bridge, store, settings, customer, mug):
    settings(points_per_currency_unit=1)
    bowl = store.new_product("15.99", "Bowl")
    bridge.credit(customer, 5000)

    order = store.new_order(
        customer,
        [(mug, 1), (bowl, 1)],
        shipping_lines=[{"method_id": "flat_rate", "method_title": "Flat rate", "total": "4.90"}],
    )
    bridge.settle()

    assert cents(store.order(order["id"])["total"]) == 4088
    assert bridge.wallet(customer)["points"] == 35  # 35.98 of goods


# (i) a top-up cannot be paid from the wallet it tops up


def test_a_topup_order_paid_with_the_wallet_method_is_refused_with_a_note(bridge, store, customer):
    bridge.credit(customer, 5000)
    made = bridge.api("post", f"/customers/{customer['id']}/topups", {"amount": 2000}, expect=201)

    store.put(
        f"orders/{made['order_id']}",
        {"payment_method": WALLET_METHOD, "payment_method_title": "Wallet", "status": "on-hold"},
    )
    bridge.settle()

    assert bridge.balance(customer) == 5000
    assert store.order(made["order_id"])["status"] not in ("processing", "completed")
    assert store.customer_notes(made["order_id"])


# (j) what the customer reads is in plain words


def test_a_refused_withdrawal_tells_the_customer_in_plain_words(bridge, store, customer):
    made = bridge.api("post", f"/customers/{customer['id']}/topups", {"amount": 2000}, expect=201)
    store.put(f"orders/{made['order_id']}", {"payment_method": CARD_METHOD, "set_paid": True})
    bridge.settle()

    bridge.api("post", f"/customers/{customer['id']}/withdrawals", {"amount": 1500}, expect=201)
    bridge.settle()

    assert bridge.balance(customer) == 2000
    notes = [note for note in store.customer_notes(made["order_id"]) if "€15.00" in note]
    assert notes
    assert not any(word in note for note in notes for word in ("HTTP", "POST", "orders/"))
