"""An outside audit on the real store (session 10): coupons, refunds by line and quantity, top-ups refunded, two
orders on one balance, guests, tiny taxed amounts, hand-made status paths. Every check reads the shop's side
(order totals, fee lines, refunds as wc/v3 reports them) against what moved in the customer's wallet.

Six findings were fixed in the same session (their tests failed before); a test still marked `xfail(strict=True)`
shows an open finding (its reason says what the bridge does); the others pin behaviour that holds and that no
other test covers."""

from __future__ import annotations

import secrets
import threading
import time

import pytest
from sqlalchemy import text

from tests.e2e.real_store.harness import CARD_METHOD, cents, money, paid_by_wallet

pytestmark = pytest.mark.real_store


# -- helpers


def books_balance(bridge, failed_before: int = 0) -> None:
    verify = bridge.cli("ledger", "verify", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert bridge.failed_deliveries() == failed_before


def refunded(order: dict) -> int:
    return -sum(cents(refund["total"]) for refund in order["refunds"])


def wallet_fee(order: dict, name: str = "Paid from wallet") -> int:
    """What the bridge's fee lines of that name take off the shop's total (amount and tax)."""
    return -sum(cents(fee["total"]) + cents(fee["total_tax"]) for fee in order["fee_lines"] if fee["name"] == name)


def pay_rest_by_card(store, order_id) -> None:
    store.put(f"orders/{order_id}", {"payment_method": CARD_METHOD, "payment_method_title": "Card", "set_paid": True})


def refund_lines(store, order_id, lines: list[tuple[dict, int]], amount: int | None = None) -> dict:
    """A refund the merchant makes by line and quantity in wp-admin (restock off): each line's share of its total
    and of each of its taxes for the quantity; the amount is their sum unless given."""
    items, total = [], 0
    for line, quantity in lines:
        share = cents(line["total"]) * quantity // line["quantity"]
        taxes = [
            {"id": tax["id"], "refund_total": money(cents(tax["total"]) * quantity // line["quantity"])}
            for tax in line["taxes"]
            if tax.get("total")
        ]
        total += share + sum(cents(t["refund_total"]) for t in taxes)
        items.append({"id": line["id"], "quantity": quantity, "refund_total": money(share), "refund_tax": taxes})
    body = {
        "amount": money(total if amount is None else amount),
        "reason": "Returned",
        "api_refund": False,
        "restock_items": False,
        "line_items": items,
    }
    return store.post(f"orders/{order_id}/refunds", body)


def new_coupon(store, kind: str, amount: str) -> str:
    code = f"{kind[:4]}-{secrets.token_hex(3)}"
    store.post("coupons", {"code": code, "discount_type": kind, "amount": amount})
    return code


# -- coupons


def test_a_percent_coupon_order_paid_by_wallet_refunded_line_by_line_returns_exactly_what_was_paid(
    bridge, store, customer, mug, vase
):
    code = new_coupon(store, "percent", "15")
    bridge.credit(customer, 5000)
    order = store.new_order(customer, [(mug, 2), (vase, 1)], coupon_lines=[{"code": code}])
    bridge.settle()
    shown = store.order(order["id"])
    paid = cents(shown["total"])
    assert shown["status"] == "processing" and paid == 4997 - 750  # 15 % of 49.97, rounded by the shop per line
    assert bridge.balance(customer) == 5000 - paid

    mugs, vases = shown["line_items"]
    refund_lines(store, order["id"], [(mugs, 1)])
    bridge.settle()
    refund_lines(store, order["id"], [(vases, 1)])
    bridge.settle()
    shown = store.order(order["id"])
    rest = paid - refunded(shown)
    store.refund(order["id"], money(rest))  # the last mug and the cents the shares left
    bridge.settle()

    shown = store.order(order["id"])
    assert (shown["status"], refunded(shown)) == ("refunded", paid)
    assert bridge.balance(customer) == 5000
    books_balance(bridge)


def test_a_fixed_cart_coupon_on_a_taxed_partly_paid_order_refunded_by_lines_returns_all_that_was_paid(
    bridge, store, customer, mug
):
    store.switch("taxes", True)
    code = new_coupon(store, "fixed_cart", "5.00")
    bridge.credit(customer, 1000)
    order = store.new_order(customer, [(mug, 2)], coupon_lines=[{"code": code}])
    original = cents(order["total"])
    bridge.settle()
    shown = store.order(order["id"])
    assert cents(shown["total"]) == original - 1000 and bridge.balance(customer) == 0
    pay_rest_by_card(store, order["id"])
    bridge.settle()

    line = store.order(order["id"])["line_items"][0]
    first = refund_lines(store, order["id"], [(line, 1)])
    bridge.settle()
    after_one = bridge.balance(customer)
    shown = store.order(order["id"])
    store.refund(order["id"], money(cents(shown["total"]) - refunded(shown)))
    bridge.settle()

    shown = store.order(order["id"])
    assert shown["status"] == "refunded"
    assert after_one == cents(first["amount"])  # card money first, to the wallet by the shop's policy
    assert bridge.balance(customer) == original  # the card's part by the refund policy, the wallet part once in full
    books_balance(bridge)


def test_a_coupon_added_to_a_wallet_paid_order_returns_the_difference_once(bridge, store, customer, mug):
    order = paid_by_wallet(bridge, store, customer, [(mug, 2)])
    code = new_coupon(store, "fixed_cart", "10.00")
    store.put(f"orders/{order['id']}", {"coupon_lines": [{"code": code}]})
    bridge.settle()
    shown = store.order(order["id"])
    assert cents(shown["total"]) == 3998 - 1000
    assert bridge.balance(customer) == 5000 - 2998

    store.put(f"orders/{order['id']}", {"status": "refunded"})
    bridge.settle()
    assert refunded(store.order(order["id"])) == 2998
    assert bridge.balance(customer) == 5000
    books_balance(bridge)


# -- top-ups refunded in the shop


def topped_up(bridge, store, customer, amount: int) -> dict:
    made = bridge.api("post", f"/customers/{customer['id']}/topups", {"amount": amount}, expect=201)
    store.put(
        f"orders/{made['order_id']}", {"payment_method": CARD_METHOD, "payment_method_title": "Card", "set_paid": True}
    )
    bridge.settle()
    return made


def test_a_topup_refunded_to_the_card_after_it_was_spent_is_taken_back_when_the_money_returns(
    bridge, store, customer, mug
):
    made = topped_up(bridge, store, customer, 2000)
    assert bridge.balance(customer) == 2000
    order = store.new_order(customer, [(mug, 1)])
    bridge.settle()
    assert store.order(order["id"])["status"] == "processing" and bridge.balance(customer) == 1

    store.refund(made["order_id"], "20.00")  # the card gets the 20.00 back
    bridge.settle()
    assert store.order(made["order_id"])["status"] == "refunded"
    assert bridge.balance(customer) == 0  # the cent still there taken back

    store.put(f"orders/{order['id']}", {"status": "cancelled"})  # 19.99 of the top-up's money returns
    bridge.settle()
    assert bridge.balance(customer) == 0  # the card has it already
    books_balance(bridge)


def test_a_topup_refunded_in_part_takes_back_only_that_part(bridge, store, customer):
    made = topped_up(bridge, store, customer, 3000)
    store.refund(made["order_id"], "12.34")
    bridge.settle()
    assert bridge.balance(customer) == 3000 - 1234
    store.refund(made["order_id"], "7.66")
    bridge.settle()
    assert bridge.balance(customer) == 1000
    books_balance(bridge)


# -- two orders on one balance


@pytest.mark.parametrize("partial", [True, False])
def test_two_orders_placed_at_once_never_spend_the_balance_twice(bridge, store, settings, customer, mug, partial):
    settings(partial_payments=partial)
    bridge.credit(customer, 3000)
    made: list[dict] = []
    barrier = threading.Barrier(2)

    def place():
        barrier.wait()
        made.append(store.new_order(customer, [(mug, 1)]))

    threads = [threading.Thread(target=place) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    bridge.settle()

    shown = sorted((store.order(o["id"]) for o in made), key=lambda o: o["status"] != "processing")
    paid, other = shown
    assert paid["status"] == "processing" and cents(paid["total"]) == 1999
    if partial:
        assert other["status"] == "pending" and wallet_fee(other) == 1001 and cents(other["total"]) == 998
        assert bridge.balance(customer) == 0
    else:
        assert other["status"] == "failed" and cents(other["total"]) == 1999
        assert bridge.balance(customer) == 1001
    books_balance(bridge)


# -- guests


def test_a_guest_wallet_order_moves_nothing_even_when_paid_and_refunded_by_hand(bridge, store, customer, mug):
    failed = bridge.failed_deliveries()
    bridge.credit(customer, 5000)
    guest = store.post(
        "orders",
        {
            "payment_method": "cheque",
            "payment_method_title": "Wallet",
            "billing": {"country": "DE", "email": customer["email"]},  # the customer's address, not logged in
            "line_items": [{"product_id": mug["id"], "quantity": 1}],
        },
    )
    bridge.settle()
    assert store.order(guest["id"])["status"] == "failed"
    store.put(f"orders/{guest['id']}", {"status": "processing"})
    bridge.settle()
    store.refund(guest["id"], "19.99")
    bridge.settle()

    assert store.order(guest["id"])["status"] == "refunded"
    assert bridge.balance(customer) == 5000
    books_balance(bridge, failed)


# -- hand-made status paths


def test_an_on_hold_wallet_order_moved_by_hand_to_completed_then_refunded_returns_the_payment_once(
    bridge, store, customer, mug
):
    bridge.credit(customer, 5000)
    order = store.new_order(customer, [(mug, 1)], status="on-hold")
    bridge.settle()
    assert store.order(order["id"])["status"] == "processing" and bridge.balance(customer) == 5000 - 1999
    for status in ("on-hold", "processing", "completed"):
        store.put(f"orders/{order['id']}", {"status": status})
        bridge.settle()
        assert bridge.balance(customer) == 5000 - 1999, status
    store.put(f"orders/{order['id']}", {"status": "refunded"})
    bridge.settle()
    store.put(f"orders/{order['id']}", {"status": "completed"})
    bridge.settle()

    shown = store.order(order["id"])
    assert refunded(shown) == 1999
    assert bridge.balance(customer) == 5000
    books_balance(bridge)


# -- refund, edit, refund


def test_refund_then_raise_then_refund_the_rest_returns_all_that_was_paid(bridge, store, customer, mug, vase):
    order = paid_by_wallet(bridge, store, customer, [(mug, 1)])
    store.refund(order["id"], "5.00")
    bridge.settle()
    store.put(f"orders/{order['id']}", {"line_items": [{"product_id": vase["id"], "quantity": 1}]})
    bridge.settle()
    shown = store.order(order["id"])
    assert cents(shown["total"]) == 2998
    assert bridge.balance(customer) == 5000 - (2998 - 500)

    store.refund(order["id"], money(2998 - 500))
    bridge.settle()
    assert store.order(order["id"])["status"] == "refunded"
    assert bridge.balance(customer) == 5000
    books_balance(bridge)


def test_a_partly_paid_order_paid_in_full_then_a_line_removed_never_returns_more_than_was_paid(
    bridge, store, customer, mug, vase
):
    bridge.credit(customer, 1000)
    order = store.new_order(customer, [(mug, 1), (vase, 1)])
    bridge.settle()
    assert cents(store.order(order["id"])["total"]) == 1998
    pay_rest_by_card(store, order["id"])
    bridge.settle()
    line = store.order(order["id"])["line_items"][0]
    store.put(f"orders/{order['id']}", {"line_items": [{"id": line["id"], "quantity": 0}]})
    bridge.settle()
    edited = store.order(order["id"])
    after_edit = bridge.balance(customer)

    store.put(f"orders/{order['id']}", {"status": "refunded"})
    bridge.settle()
    # the shop cut the wallet's fee to -9.99 (the total is 0.00): the cent it no longer applies went back at once,
    # the 9.99 it does when the order was refunded in full. The card's 19.98 the merchant's edit dropped is the
    # merchant's to settle: the shop records no refund of it (its refund of the 0.00 total is 0.00).
    assert (cents(edited["total"]), wallet_fee(edited), after_edit) == (0, 999, 1)
    assert bridge.balance(customer) == 1000
    books_balance(bridge)


# -- tiny amounts with taxes


@pytest.mark.parametrize("funds", [1, 2, 3, 4, 5])
def test_a_few_cents_from_the_wallet_on_a_tiny_taxed_order_lower_it_by_exactly_that(bridge, store, customer, funds):
    store.switch("taxes", True)
    tiny = store.new_product("0.05", f"Sticker {secrets.token_hex(2)}")
    bridge.credit(customer, funds)
    order = store.new_order(customer, [(tiny, 1)])
    original = cents(order["total"])
    assert original == 6
    bridge.settle()

    shown = store.order(order["id"])
    taken = funds - bridge.balance(customer)
    assert original - cents(shown["total"]) == taken  # what the shop took off is what the wallet paid
    # the shop rounds a fee's tax to the cent: 0.03 off a 0.05 + 19 % order cannot be written (0.02 or 0.04),
    # so the wallet pays the 0.02 the store can take off and keeps the cent
    assert taken == {3: 2}.get(funds, funds)
    books_balance(bridge)


# -- cashback, refund bonus, refund policy


def test_cashback_credited_after_a_partial_refund_goes_back_whole_when_the_rest_is_refunded(
    bridge, store, settings, customer, mug
):
    """The merchant refunds part of a wallet-paid order before shipping, completes it (cashback on completed),
    then the customer returns the rest: the shop says the order is refunded in full."""
    settings(cashback_kind="percent", cashback_value=1000, cashback_on="completed")
    order = paid_by_wallet(bridge, store, customer, [(mug, 1)])
    store.refund(order["id"], "10.00")
    bridge.settle()
    store.put(f"orders/{order['id']}", {"status": "completed"})
    bridge.settle()
    with_cashback = bridge.balance(customer)
    cashback = with_cashback - (5000 - 1999 + 1000)
    assert cashback == 99  # 10 % of the 9.99 the order still holds

    store.refund(order["id"], "9.99")
    bridge.settle()

    shown = store.order(order["id"])
    assert (shown["status"], refunded(shown)) == ("refunded", 1999)
    assert bridge.balance(customer) == 5000  # paid 19.99, refunded 19.99: no cashback left on it
    books_balance(bridge)


def test_a_partly_paid_order_refunded_in_full_with_refunds_to_the_card_returns_only_the_wallet_part(
    bridge, store, settings, customer, mug
):
    settings(refund_destination="original")
    bridge.credit(customer, 1000)
    order = store.new_order(customer, [(mug, 2)])
    bridge.settle()
    pay_rest_by_card(store, order["id"])
    bridge.settle()
    store.refund(order["id"], "20.00")
    bridge.settle()
    assert bridge.balance(customer) == 0
    store.refund(order["id"], "9.98")
    bridge.settle()

    shown = store.order(order["id"])
    assert (shown["status"], refunded(shown)) == ("refunded", 2998)
    assert bridge.balance(customer) == 1000
    store.put(f"orders/{order['id']}", {"status": "cancelled"})
    bridge.settle()
    assert bridge.balance(customer) == 1000
    books_balance(bridge)


def test_a_refund_bonus_is_paid_on_the_cards_money_only(bridge, store, settings, customer, mug):
    settings(refund_wallet_bonus_bp=1000)
    bridge.credit(customer, 1000)
    order = store.new_order(customer, [(mug, 2)])
    bridge.settle()
    pay_rest_by_card(store, order["id"])
    bridge.settle()
    store.put(f"orders/{order['id']}", {"status": "refunded"})
    bridge.settle()

    shown = store.order(order["id"])
    assert refunded(shown) == 2998
    assert bridge.balance(customer) == 1000 + 2998 + 299  # 10 % on the 29.98 the card paid, none on the wallet's
    store.put(f"orders/{order['id']}", {"status": "cancelled"})
    bridge.settle()
    assert bridge.balance(customer) == 1000 + 2998 + 299
    books_balance(bridge)


# -- refunds made before the rest was paid, more than the wallet part


def test_a_refund_above_the_wallet_part_before_the_rest_was_paid_then_full_returns_all_that_was_paid(
    bridge, store, customer, mug
):
    bridge.credit(customer, 1000)
    order = store.new_order(customer, [(mug, 2)])
    bridge.settle()
    assert cents(store.order(order["id"])["total"]) == 2998
    store.refund(order["id"], "15.00")  # the shop allows it: its total is 29.98
    bridge.settle()
    assert bridge.balance(customer) == 1000  # only the wallet's money was paid then
    pay_rest_by_card(store, order["id"])
    bridge.settle()
    store.refund(order["id"], "14.98")
    bridge.settle()

    shown = store.order(order["id"])
    assert (shown["status"], refunded(shown), wallet_fee(shown)) == ("refunded", 2998, 1000)
    assert bridge.balance(customer) == 1000 + 2998  # 10.00 from the wallet and 29.98 by card, all back
    books_balance(bridge)


def test_two_refunds_making_up_the_wallet_part_before_the_rest_was_paid_then_full(bridge, store, customer, mug):
    bridge.credit(customer, 1000)
    order = store.new_order(customer, [(mug, 2)])
    bridge.settle()
    for amount in ("4.00", "6.00"):
        store.refund(order["id"], amount)
        bridge.settle()
    assert bridge.balance(customer) == 1000
    pay_rest_by_card(store, order["id"])
    bridge.settle()
    store.refund(order["id"], "19.98")
    bridge.settle()

    shown = store.order(order["id"])
    assert (shown["status"], refunded(shown)) == ("refunded", 2998)
    assert bridge.balance(customer) == 1000 + 2998
    books_balance(bridge)


# -- a paid order whose money went back, set paid again by hand, then refunded


@pytest.mark.parametrize("undo", ["failed", "cancelled", "trash"])
def test_a_wallet_order_undone_then_set_processing_by_hand_and_refunded_credits_nothing_more(
    bridge, store, customer, mug, undo
):
    order = paid_by_wallet(bridge, store, customer, [(mug, 1)])
    time.sleep(1)
    if undo == "trash":
        assert store.api.delete(f"orders/{order['id']}").status_code == 200  # to the trash, not deleted
    else:
        store.put(f"orders/{order['id']}", {"status": undo})
    bridge.settle()
    assert bridge.balance(customer) == 5000
    time.sleep(1)
    store.put(f"orders/{order['id']}", {"status": "processing"})
    bridge.settle()
    assert bridge.balance(customer) == 5000  # not charged behind anyone's back
    time.sleep(1)
    store.put(f"orders/{order['id']}", {"status": "refunded"})
    bridge.settle()

    shown = store.order(order["id"])
    assert refunded(shown) == 1999
    assert bridge.balance(customer) == 5000  # the wallet paid 19.99 once and had it back once
    books_balance(bridge)


def test_a_paid_wallet_order_set_pending_by_hand_then_processing_is_not_charged_again(bridge, store, customer, mug):
    order = paid_by_wallet(bridge, store, customer, [(mug, 1)])
    time.sleep(1)
    store.put(f"orders/{order['id']}", {"status": "pending"})
    bridge.settle()
    time.sleep(1)
    store.put(f"orders/{order['id']}", {"status": "on-hold"})
    bridge.settle()
    time.sleep(1)
    store.put(f"orders/{order['id']}", {"status": "processing"})
    bridge.settle()
    assert bridge.balance(customer) == 5000 - 1999
    store.put(f"orders/{order['id']}", {"status": "refunded"})
    bridge.settle()
    assert bridge.balance(customer) == 5000
    books_balance(bridge)


@pytest.mark.xfail(
    strict=True,
    reason=(
        "finding: a refund of the shipping alone takes back 3 of the 19 points the items earned (pro rata of the total)"
    ),
)
def test_refunding_only_the_shipping_keeps_the_items_points(bridge, store, settings, customer, mug):
    settings(points_per_currency_unit=1)
    bridge.credit(customer, 5000)
    shipping = [{"method_id": "flat_rate", "method_title": "Flat rate", "total": "4.90"}]
    order = store.new_order(customer, [(mug, 1)], shipping_lines=shipping)
    bridge.settle()
    assert bridge.wallet(customer)["points"] == 19  # the items earn, the shipping does not
    store.refund(order["id"], "4.90")
    bridge.settle()
    wallet = bridge.wallet(customer)
    assert wallet["balance"] == 5000 - 2489 + 490
    assert wallet["points"] == 19


def test_refunds_before_and_after_the_rest_was_paid_seen_in_one_delivery_return_all_that_was_paid(
    bridge, store, customer, mug
):
    """The same shop history as the test above, delivered at once (background webhooks)."""
    bridge.credit(customer, 1000)
    order = store.new_order(customer, [(mug, 2)])
    bridge.settle()
    store.switch("async", True)
    store.refund(order["id"], "15.00")
    pay_rest_by_card(store, order["id"])
    store.refund(order["id"], "14.98")
    store.ctl("run-queue")
    bridge.settle()

    shown = store.order(order["id"])
    assert (shown["status"], refunded(shown), wallet_fee(shown)) == ("refunded", 2998, 1000)
    assert bridge.balance(customer) == 1000 + 2998
    books_balance(bridge)


# -- top-ups refunded, more


def test_a_topup_with_a_bonus_refunded_in_full_takes_the_bonus_back_too(bridge, store, settings, customer):
    settings(topup_bonus_bp=1000)
    made = topped_up(bridge, store, customer, 2000)
    assert bridge.balance(customer) == 2200
    store.refund(made["order_id"], "20.00")
    bridge.settle()
    assert store.order(made["order_id"])["status"] == "refunded"
    assert bridge.balance(customer) == 0  # the card has the 20.00 back: the bonus on it is not earned
    books_balance(bridge)


def test_a_spent_topup_refunded_then_the_order_it_paid_refunded_gives_the_wallet_nothing(bridge, store, customer, mug):
    made = topped_up(bridge, store, customer, 2000)
    order = store.new_order(customer, [(mug, 1)])
    bridge.settle()
    store.refund(made["order_id"], "20.00")
    bridge.settle()
    store.refund(order["id"], "19.99")
    bridge.settle()
    assert store.order(order["id"])["status"] == "refunded"
    assert bridge.balance(customer) == 0
    books_balance(bridge)


# -- earned on a total lowered afterwards


def test_cashback_and_points_on_paid_follow_a_total_lowered_afterwards(bridge, store, settings, customer, mug, vase):
    settings(cashback_kind="percent", cashback_value=1000, cashback_on="paid", points_per_currency_unit=1)
    order = paid_by_wallet(bridge, store, customer, [(mug, 1), (vase, 1)])
    wallet = bridge.wallet(customer)
    assert (wallet["balance"], wallet["points"]) == (5000 - 2998 + 299, 29)
    line = store.order(order["id"])["line_items"][0]
    store.put(f"orders/{order['id']}", {"line_items": [{"id": line["id"], "quantity": 0}]})  # the mug out
    bridge.settle()

    shown = store.order(order["id"])
    assert cents(shown["total"]) == 999
    wallet = bridge.wallet(customer)
    assert wallet["balance"] == 5000 - 999 + 99  # 19.99 back, and the cashback on 9.99 only
    assert wallet["points"] == 9
    books_balance(bridge)


# -- an order given to another customer


def test_a_wallet_order_moved_to_another_customer_and_refunded_credits_who_paid(bridge, store, customer, mug):
    other = store.new_customer("lee")
    order = paid_by_wallet(bridge, store, customer, [(mug, 1)])
    store.put(f"orders/{order['id']}", {"customer_id": other["id"]})
    bridge.settle()
    store.refund(order["id"], "5.00")
    bridge.settle()
    store.put(f"orders/{order['id']}", {"status": "refunded"})
    bridge.settle()
    assert bridge.balance(customer) == 5000
    assert bridge.balance(other) == 0
    books_balance(bridge)


def test_with_refunds_to_the_card_a_refund_made_before_the_rest_was_paid_stays_in_the_wallet(
    bridge, store, settings, customer, mug
):
    """Refunds go back to the card. A 5.00 refund made before the card paid could only be wallet money then (there
    was no card payment to refund): the wallet keeps it. Once the card paid, the wallet part is held whole again and
    comes back when the order is refunded in full: 15.00 in the wallet, and the card is due the last 24.98 —
    39.98 in all, what the customer paid (10.00 + 29.98)."""
    settings(refund_destination="original")
    bridge.credit(customer, 1000)
    order = store.new_order(customer, [(mug, 2)])
    bridge.settle()
    store.refund(order["id"], "5.00")
    bridge.settle()
    assert bridge.balance(customer) == 500
    pay_rest_by_card(store, order["id"])
    bridge.settle()
    store.refund(order["id"], "24.98")
    bridge.settle()

    shown = store.order(order["id"])
    assert (shown["status"], refunded(shown), wallet_fee(shown)) == ("refunded", 2998, 1000)
    assert bridge.balance(customer) == 1500
    assert [line["kind"] for line in bridge.statement(customer)].count("refund_to_wallet") == 1
    books_balance(bridge)


def test_refund_then_lower_then_pay_then_refund_in_full_on_a_partly_paid_order(bridge, store, customer, mug):
    bridge.credit(customer, 1000)
    order = store.new_order(customer, [(mug, 2)])
    bridge.settle()
    store.refund(order["id"], "5.00")
    bridge.settle()
    line = store.order(order["id"])["line_items"][0]
    store.put(
        f"orders/{order['id']}",
        {"line_items": [{"id": line["id"], "quantity": 1, "subtotal": "19.99", "total": "19.99"}]},
    )
    bridge.settle()
    assert cents(store.order(order["id"])["total"]) == 999
    pay_rest_by_card(store, order["id"])
    bridge.settle()
    store.refund(order["id"], "4.99")
    bridge.settle()

    shown = store.order(order["id"])
    assert (shown["status"], refunded(shown), wallet_fee(shown)) == ("refunded", 999, 1000)
    assert bridge.balance(customer) == 1000 + 999  # paid 10.00 from the wallet and 9.99 by card
    books_balance(bridge)


def test_a_guest_card_order_refunded_moves_nothing_and_fails_nothing(bridge, store, customer, mug):
    failed = bridge.failed_deliveries()
    guest = store.post(
        "orders",
        {
            "payment_method": CARD_METHOD,
            "payment_method_title": "Card",
            "set_paid": True,
            "billing": {"country": "DE", "email": customer["email"]},  # a customer's address, not logged in
            "line_items": [{"product_id": mug["id"], "quantity": 1}],
        },
    )
    bridge.settle()
    store.refund(guest["id"], "19.99")
    bridge.settle()
    assert store.order(guest["id"])["status"] == "refunded"
    assert bridge.balance(customer) == 0
    books_balance(bridge, failed)


# -- payment method changed after payment


def test_a_wallet_paid_order_switched_to_card_afterwards_and_refunded_returns_the_payment_once(
    bridge, store, customer, mug
):
    order = paid_by_wallet(bridge, store, customer, [(mug, 1)])
    store.put(f"orders/{order['id']}", {"payment_method": CARD_METHOD, "payment_method_title": "Card"})
    bridge.settle()
    store.put(f"orders/{order['id']}", {"status": "refunded"})
    bridge.settle()
    assert refunded(store.order(order["id"])) == 1999
    assert bridge.balance(customer) == 5000
    books_balance(bridge)


def test_a_card_paid_order_switched_to_the_wallet_method_afterwards_and_refunded_credits_the_refund(
    bridge, store, customer, mug
):
    bridge.credit(customer, 5000)
    order = store.new_order(
        customer, [(mug, 1)], payment_method=CARD_METHOD, payment_method_title="Card", set_paid=True
    )
    bridge.settle()
    assert bridge.balance(customer) == 5000
    store.put(f"orders/{order['id']}", {"payment_method": "cheque", "payment_method_title": "Wallet"})
    bridge.settle()
    assert bridge.balance(customer) == 5000  # not charged: the card paid
    store.refund(order["id"], "19.99")
    bridge.settle()
    assert bridge.balance(customer) == 5000 + 1999  # card money, to the wallet by the shop's policy
    books_balance(bridge)


# -- refunds deleted in the shop


def delete_refund(store, order_id, refund_id) -> None:
    response = store.api.delete(f"orders/{order_id}/refunds/{refund_id}", params={"force": "true"})
    assert response.status_code == 200, response.text[:500]


def test_a_refund_deleted_in_the_shop_is_taken_back_at_the_next_delivery(bridge, store, customer, mug):
    order = paid_by_wallet(bridge, store, customer, [(mug, 1)])
    refund = store.refund(order["id"], "5.00")
    bridge.settle()
    assert bridge.balance(customer) == 5000 - 1999 + 500
    delete_refund(store, order["id"], refund["id"])
    store.put(f"orders/{order['id']}", {"status": "completed"})  # a refund's deletion sends no webhook itself
    bridge.settle()
    assert store.order(order["id"])["refunds"] == []
    assert bridge.balance(customer) == 5000 - 1999
    store.put(f"orders/{order['id']}", {"status": "refunded"})
    bridge.settle()
    assert bridge.balance(customer) == 5000
    books_balance(bridge)


def test_the_full_refund_of_a_partly_paid_order_deleted_takes_back_the_wallet_part_too(bridge, store, customer, mug):
    bridge.credit(customer, 1000)
    order = store.new_order(customer, [(mug, 2)])
    bridge.settle()
    pay_rest_by_card(store, order["id"])
    bridge.settle()
    refund = store.refund(order["id"], "29.98")
    bridge.settle()
    assert bridge.balance(customer) == 1000 + 2998
    delete_refund(store, order["id"], refund["id"])
    store.put(f"orders/{order['id']}", {"status": "processing"})
    bridge.settle()

    shown = store.order(order["id"])
    assert (shown["status"], shown["refunds"], wallet_fee(shown)) == ("processing", [], 1000)
    after_deletion = bridge.balance(customer)
    store.put(f"orders/{order['id']}", {"status": "refunded"})  # refunded in full once more
    bridge.settle()
    shown = store.order(order["id"])
    assert (shown["status"], refunded(shown)) == ("refunded", 2998)
    assert (after_deletion, bridge.balance(customer)) == (0, 1000 + 2998)  # the wallet part comes back once
    books_balance(bridge)


# -- a partly paid order set processing by hand


def test_a_partly_paid_order_set_processing_by_hand_then_refunded_in_full_returns_what_the_shop_says_was_paid(
    bridge, store, customer, mug
):
    bridge.credit(customer, 1000)
    order = store.new_order(customer, [(mug, 2)])
    bridge.settle()
    bridge.credit(customer, 5000)  # money arrives later
    store.put(f"orders/{order['id']}", {"status": "processing"})  # the merchant took the rest in cash, say
    bridge.settle()
    middle = bridge.balance(customer)
    store.put(f"orders/{order['id']}", {"status": "refunded"})
    bridge.settle()
    shown = store.order(order["id"])
    assert refunded(shown) == cents(shown["total"]) == 2998
    # not charged from the money that arrived (the shop says the rest was paid), and then the wallet's 10.00 and
    # the 29.98 the shop recorded as paid come back (WooCommerce set date_paid: WC_Order::maybe_set_date_paid)
    assert middle == 5000
    assert bridge.balance(customer) == 6000 + 2998
    books_balance(bridge)


# -- earned after refunds made before the rest was paid


def test_points_earned_after_refunds_made_before_the_rest_was_paid_all_go_back_on_the_full_refund(
    bridge, store, settings, customer, mug
):
    settings(points_per_currency_unit=1)
    bridge.credit(customer, 1000)
    order = store.new_order(customer, [(mug, 2)])
    bridge.settle()
    for amount in ("4.00", "6.00"):
        store.refund(order["id"], amount)
        bridge.settle()
    pay_rest_by_card(store, order["id"])
    bridge.settle()
    earned = bridge.wallet(customer)["points"]
    store.refund(order["id"], "19.98")
    bridge.settle()

    shown = store.order(order["id"])
    assert (shown["status"], refunded(shown)) == ("refunded", 2998)
    wallet = bridge.wallet(customer)
    assert earned == 39
    assert wallet["balance"] == 1000 + 2998
    assert wallet["points"] == 0
    books_balance(bridge)


# -- a wallet-discounted order raised beyond the wallet


def test_a_discounted_wallet_order_raised_beyond_the_wallet_then_paid_and_refunded_returns_what_was_paid(
    bridge, store, settings, customer, mug, vase
):
    settings(wallet_discount_kind="percent", wallet_discount_value=1000)
    bridge.credit(customer, 3000)
    order = store.new_order(customer, [(mug, 1)])
    bridge.settle()
    paid = store.order(order["id"])
    assert (paid["status"], cents(paid["total"])) == ("processing", 1800)  # 19.99 less 10 % (1.99)
    assert bridge.balance(customer) == 1200
    time.sleep(1)
    store.put(f"orders/{order['id']}", {"line_items": [{"product_id": vase["id"], "quantity": 2}]})
    bridge.settle()
    raised = store.order(order["id"])
    wallet_paid = 3000 - bridge.balance(customer)
    # what the wallet paid becomes the wallet part; the discount's fee stays (the merchant's, not the wallet's money)
    assert (raised["status"], cents(raised["total"]), wallet_paid) == ("pending", 1998, 1800)
    assert [(fee["name"], fee["total"]) for fee in raised["fee_lines"]] == [
        ("Wallet discount", "-1.99"),
        ("Paid from wallet", "-18.00"),
    ]
    pay_rest_by_card(store, order["id"])
    bridge.settle()
    card_paid = cents(store.order(order["id"])["total"])
    store.put(f"orders/{order['id']}", {"status": "refunded"})
    bridge.settle()
    assert refunded(store.order(order["id"])) == card_paid
    # the customer paid `wallet_paid` from the wallet and `card_paid` by card: all of it back, no more
    assert bridge.balance(customer) == 3000 + card_paid
    books_balance(bridge)


# -- a currency without decimals


@pytest.fixture
def yen(bridge, store):
    """The store sells in JPY with no decimals, and the bridge's shop keeps its wallets in JPY (as a shop made with
    `shop create --currency JPY` would): both put back afterwards."""

    def shop_currency(code: str) -> None:
        with bridge.db.begin() as connection:
            connection.execute(
                text("UPDATE shops SET currency = :c WHERE id = :id"), {"c": code, "id": bridge.shop["id"]}
            )

    store.put("settings/general/woocommerce_currency", {"value": "JPY"})
    store.put("settings/general/woocommerce_price_num_decimals", {"value": "0"})
    shop_currency("JPY")
    try:
        yield store.new_product("1999", f"Tea bowl {secrets.token_hex(2)}")
    finally:
        store.put("settings/general/woocommerce_currency", {"value": "EUR"})
        store.put("settings/general/woocommerce_price_num_decimals", {"value": "2"})
        shop_currency("EUR")


def test_in_yen_a_wallet_order_paid_refunded_in_part_then_in_full(bridge, store, customer, yen):
    failed = bridge.failed_deliveries()
    bridge.credit(customer, 5000)  # 5,000 yen
    order = store.new_order(customer, [(yen, 1)])
    bridge.settle()
    shown = store.order(order["id"])
    assert (shown["currency"], shown["total"], shown["status"]) == ("JPY", "1999", "processing")
    assert bridge.balance(customer) == 5000 - 1999
    store.refund(order["id"], "999")
    bridge.settle()
    assert bridge.balance(customer) == 5000 - 1000
    store.put(f"orders/{order['id']}", {"status": "refunded"})
    bridge.settle()
    assert bridge.balance(customer) == 5000
    books_balance(bridge, failed)


def test_in_yen_with_taxes_a_partial_payment_leaves_exactly_the_rest_and_a_full_refund_returns_all(
    bridge, store, customer, yen
):
    failed = bridge.failed_deliveries()
    store.switch("taxes", True)
    bridge.credit(customer, 1000)
    order = store.new_order(customer, [(yen, 1)])
    original = int(order["total"])
    assert original == 2379  # 1,999 + 19 %, in whole yen
    bridge.settle()
    shown = store.order(order["id"])
    assert (shown["status"], int(shown["total"])) == ("pending", original - 1000)
    assert bridge.balance(customer) == 0
    assert any("¥1,379" in note and "left to pay" in note for note in store.customer_notes(order["id"]))
    pay_rest_by_card(store, order["id"])
    bridge.settle()
    store.put(f"orders/{order['id']}", {"status": "refunded"})
    bridge.settle()
    assert bridge.balance(customer) == original
    books_balance(bridge, failed)


# -- changes the shop makes at the same moment


def at_once(*calls) -> None:
    barrier = threading.Barrier(len(calls))
    errors: list[BaseException] = []

    def run(call):
        barrier.wait()
        try:
            call()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def test_a_refund_and_a_cancellation_at_the_same_moment_return_the_payment_once(bridge, store, customer, mug):
    bridge.credit(customer, 3 * 1999)
    orders = [store.new_order(customer, [(mug, 1)]) for _ in range(3)]
    bridge.settle()
    for order in orders:
        at_once(
            lambda order_id=order["id"]: store.refund(order_id, "5.00"),
            lambda order_id=order["id"]: store.put(f"orders/{order_id}", {"status": "cancelled"}),
        )
    bridge.settle()
    for order in orders:
        shown = store.order(order["id"])
        assert (shown["status"], refunded(shown)) == ("cancelled", 500)
    assert bridge.balance(customer) == 3 * 1999
    books_balance(bridge)


def test_two_refunds_making_a_partly_paid_order_whole_at_the_same_moment_return_all_that_was_paid(
    bridge, store, customer, mug
):
    orders = []
    for _ in range(3):
        bridge.credit(customer, 1000)
        orders.append(store.new_order(customer, [(mug, 2)]))
        bridge.settle()
    for order in orders:
        pay_rest_by_card(store, order["id"])
    bridge.settle()
    totals = [cents(store.order(order["id"])["total"]) for order in orders]
    assert totals == [2998] * 3
    for order in orders:
        at_once(
            lambda order_id=order["id"]: store.refund(order_id, "15.00"),
            lambda order_id=order["id"]: store.refund(order_id, "14.98"),
        )
    bridge.settle()
    for order in orders:  # the shop's own race may leave one "processing", refunded in full all the same
        assert refunded(store.order(order["id"])) == 2998
    assert bridge.balance(customer) == 3 * (1000 + 2998)
    books_balance(bridge)


def test_a_coupon_and_a_wallet_discount_on_a_taxed_order_refunded_by_line_then_in_full(
    bridge, store, settings, customer, mug, vase
):
    settings(wallet_discount_kind="fixed", wallet_discount_value=300)
    store.switch("taxes", True)
    code = new_coupon(store, "percent", "10")
    bridge.credit(customer, 10000)
    order = store.new_order(customer, [(mug, 2), (vase, 1)], coupon_lines=[{"code": code}])
    bridge.settle()
    shown = store.order(order["id"])
    paid = 10000 - bridge.balance(customer)
    assert shown["status"] == "processing" and paid == cents(shown["total"])
    assert paid <= cents(order["total"]) - 300
    mugs = shown["line_items"][0]
    refund_lines(store, order["id"], [(mugs, 1)])
    bridge.settle()
    store.put(f"orders/{order['id']}", {"status": "refunded"})
    bridge.settle()
    shown = store.order(order["id"])
    assert refunded(shown) == paid
    assert bridge.balance(customer) == 10000
    books_balance(bridge)


def test_refund_then_raise_beyond_the_wallet_then_pay_and_refund_in_full_returns_all_that_was_paid(
    bridge, store, customer, mug, vase
):
    order = paid_by_wallet(bridge, store, customer, [(mug, 1)], funds=1999)
    store.refund(order["id"], "5.00")
    bridge.settle()
    assert bridge.balance(customer) == 500
    time.sleep(1)
    store.put(f"orders/{order['id']}", {"line_items": [{"product_id": vase["id"], "quantity": 1}]})
    bridge.settle()
    raised = store.order(order["id"])
    # the wallet's 14.99 (19.99 less the 5.00 refunded) becomes the wallet part, the card pays the other 14.99
    assert (raised["status"], cents(raised["total"]), wallet_fee(raised)) == ("pending", 1499, 1499)
    assert bridge.balance(customer) == 500
    pay_rest_by_card(store, order["id"])
    bridge.settle()
    card_paid = cents(store.order(order["id"])["total"])
    store.put(f"orders/{order['id']}", {"status": "refunded"})
    bridge.settle()
    # 19.99 from the wallet and whatever the card paid: all of it back, no more
    assert bridge.balance(customer) == 1999 + card_paid
    books_balance(bridge)


# -- the bridge's fee lines removed by the merchant


def remove_fee(store, order_id, name: str) -> None:
    fee = next(fee for fee in store.order(order_id)["fee_lines"] if fee["name"] == name)
    store.put(f"orders/{order_id}", {"fee_lines": [{"id": fee["id"], "name": None}]})


def test_the_wallet_fee_removed_and_the_whole_total_paid_by_card_returns_the_wallet_part_once(
    bridge, store, customer, mug
):
    bridge.credit(customer, 1000)
    order = store.new_order(customer, [(mug, 2)])
    bridge.settle()
    time.sleep(1)
    remove_fee(store, order["id"], "Paid from wallet")
    bridge.settle()
    assert cents(store.order(order["id"])["total"]) == 3998
    pay_rest_by_card(store, order["id"])
    bridge.settle()
    shown = store.order(order["id"])
    assert (shown["status"], cents(shown["total"]), wallet_fee(shown)) == ("processing", 3998, 0)
    after_card = bridge.balance(customer)
    store.put(f"orders/{order['id']}", {"status": "refunded"})
    bridge.settle()
    assert after_card == 1000  # the card paid it all: the wallet's 10.00 back
    assert bridge.balance(customer) == 1000 + 3998
    books_balance(bridge)


def test_the_wallet_discount_fee_removed_after_payment_then_refunded_in_full_returns_what_was_paid(
    bridge, store, settings, customer, mug
):
    settings(wallet_discount_kind="fixed", wallet_discount_value=300)
    order = paid_by_wallet(bridge, store, customer, [(mug, 1)])
    assert bridge.balance(customer) == 5000 - 1699
    time.sleep(1)
    remove_fee(store, order["id"], "Wallet discount")
    bridge.settle()
    assert cents(store.order(order["id"])["total"]) == 1999
    assert bridge.balance(customer) == 5000 - 1699  # the shop's total is what the wallet paid and the discount
    store.put(f"orders/{order['id']}", {"status": "refunded"})
    bridge.settle()
    assert refunded(store.order(order["id"])) == 1999
    # the shop refunded 19.99, of which 16.99 was paid: the wallet ends where it began, no more
    assert bridge.balance(customer) == 5000
    books_balance(bridge)


@pytest.mark.parametrize(
    "delivered",
    [
        "one by one",
        "at once",
    ],
)
def test_the_refund_bonus_on_card_money_does_not_depend_on_when_the_card_paid(
    bridge, store, settings, customer, mug, delivered
):
    """Refunds to the wallet earn a 10 % bonus on the card's money. Two refunds (4.00 and 6.00) made before the card
    paid are counted against the card's money once it paid (docs/woocommerce.md, Refunds): in the end all 29.98
    refunded is the card's, and its bonus is 2.99 — what the same history gets when seen in one delivery."""
    settings(refund_wallet_bonus_bp=1000)
    bridge.credit(customer, 1000)
    order = store.new_order(customer, [(mug, 2)])
    bridge.settle()
    if delivered == "at once":
        store.switch("async", True)
    for amount in ("4.00", "6.00"):
        store.refund(order["id"], amount)
        bridge.settle()
    pay_rest_by_card(store, order["id"])
    bridge.settle()
    store.refund(order["id"], "19.98")
    if delivered == "at once":
        store.ctl("run-queue")
    bridge.settle()

    shown = store.order(order["id"])
    assert (shown["status"], refunded(shown)) == ("refunded", 2998)
    assert bridge.balance(customer) == 1000 + 2998 + 299
    books_balance(bridge)


def test_a_partly_paid_order_refunded_in_part_cancelled_reopened_paid_by_card_and_refunded_in_full(
    bridge, store, customer, mug
):
    """The wallet pays 10.00 of 39.98; 5.00 refunded; cancelled (the other 5.00 back, the fee leaves the order);
    set pending again (not charged: the order has a refund); the customer pays the whole 39.98 by card; the merchant
    refunds it in full: the shop says 39.98 paid and 39.98 refunded (5.00 + 34.98). The customer paid 10.00 + 39.98
    and should have 49.98 back in all; the wallet gets 44.98."""
    bridge.credit(customer, 1000)
    order = store.new_order(customer, [(mug, 2)])
    bridge.settle()
    store.refund(order["id"], "5.00")
    bridge.settle()
    time.sleep(1)
    store.put(f"orders/{order['id']}", {"status": "cancelled"})
    bridge.settle()
    assert bridge.balance(customer) == 1000
    time.sleep(1)
    store.put(f"orders/{order['id']}", {"status": "pending"})
    bridge.settle()
    reopened = store.order(order["id"])
    assert (reopened["status"], cents(reopened["total"]), reopened["fee_lines"]) == ("pending", 3998, [])
    assert bridge.balance(customer) == 1000
    pay_rest_by_card(store, order["id"])
    bridge.settle()
    store.put(f"orders/{order['id']}", {"status": "refunded"})
    bridge.settle()

    shown = store.order(order["id"])
    assert (shown["status"], cents(shown["total"]), refunded(shown)) == ("refunded", 3998, 3998)
    assert bridge.balance(customer) == 1000 + 3998
    books_balance(bridge)


@pytest.mark.parametrize("funds", [1, 50, 101, 199])
def test_with_taxes_rounded_at_subtotal_a_partial_payment_lowers_the_order_by_what_the_wallet_paid(
    bridge, store, customer, funds
):
    store.switch("taxes", True)
    store.put("settings/tax/woocommerce_tax_round_at_subtotal", {"value": "yes"})
    try:
        cheap = store.new_product("0.33", f"Pin {secrets.token_hex(2)}")
        bridge.credit(customer, funds)
        shipping = [{"method_id": "flat_rate", "method_title": "Flat rate", "total": "0.07"}]
        order = store.new_order(customer, [(cheap, 7)], shipping_lines=shipping)
        original = cents(order["total"])
        bridge.settle()
        shown = store.order(order["id"])
    finally:
        store.put("settings/tax/woocommerce_tax_round_at_subtotal", {"value": "no"})
    taken = funds - bridge.balance(customer)
    assert 0 < taken <= funds
    assert original - cents(shown["total"]) == taken  # the shop took off exactly what the wallet paid
    books_balance(bridge)
