"""An outside audit on the real store (session 14): money that shows with WooCommerce's default background (async)
webhook delivery — several quick changes to an order delivered once, in their final state — and the shop-side moves
that earlier audits left out: an order raised beyond the wallet and refunded before the rest is paid, cashback on
completion of orders refunded in part first (by card, and seen collapsed), refunds deleted and made again.

Every expectation is written from the SHOP's figures (what the customer paid from the wallet and by card, what the shop
refunded), never from the bridge's code. Findings when written: the raised order's refunds counted as card money,
cashback on completion ignoring earlier refunds, a re-opening push undoing a cancellation (fixed); a refund and the
completion collapsed, and a merchant's processing before a re-opening push (open, strict xfail)."""

from __future__ import annotations

import os
import random
import time

import pytest
from hypothesis import HealthCheck, given, note
from hypothesis import settings as settings_h
from hypothesis import strategies as st
from woocommerce import oauth

from tests.e2e.real_store.harness import cents, money, paid_by_wallet
from tests.e2e.real_store.test_audit_session10 import books_balance, pay_rest_by_card, refunded, wallet_fee
from tests.e2e.real_store.test_points_and_bonuses_audit_session13 import card_order
from tests.e2e.real_store.test_refunds_withdrawals_audit_session13 import delete_refund

pytestmark = pytest.mark.real_store


# -- helpers


def flush(bridge, store, runs: int = 8) -> None:
    """Run Action Scheduler until a run finds nothing to deliver (the bridge's own pushes queue more)."""
    bridge.settle()
    for _ in range(runs):
        time.sleep(0.5)  # the last write's end-of-request hook queues its delivery after the answer
        out = store.ctl("run-queue")
        bridge.settle()
        if " 0 action(s)" in out:
            return
    raise AssertionError("the queue never ran dry")


def order_money(bridge, customer, order_id) -> int:
    """Net money the order's statement lines moved into the wallet (credits less debits)."""
    lines = bridge.statement(customer)
    return sum(line["amount"] for line in lines if str(line["order_id"]) == str(order_id) and line["unit"] == "money")


# -- an order raised beyond the wallet, refunded before the rest is paid


@pytest.mark.parametrize("then", ["cancelled", "refunded"])
def test_a_raised_order_refunded_before_the_rest_is_paid_never_returns_more_than_the_wallet_paid(
    bridge, store, customer, mug, vase, then
):
    """The wallet pays a 19.99 order whole (all it had). The merchant adds a vase (29.98): the wallet cannot pay the
    9.99 more, so its 19.99 becomes the wallet part and the shop asks 9.99 for the rest (pending). Before anyone pays
    it the merchant refunds 5.00, then the order is cancelled (or set refunded). Nobody paid by card: the customer
    paid 19.99 in all and must get 19.99 back in all, no more."""
    order = paid_by_wallet(bridge, store, customer, [(mug, 1)], funds=1999)
    assert bridge.balance(customer) == 0
    time.sleep(1)
    store.put(f"orders/{order['id']}", {"line_items": [{"product_id": vase["id"], "quantity": 1}]})
    bridge.settle()
    raised = store.order(order["id"])
    assert (raised["status"], cents(raised["total"]), wallet_fee(raised)) == ("pending", 999, 1999)

    store.refund(order["id"], "5.00")  # goodwill, before the rest was paid
    bridge.settle()
    time.sleep(1)
    store.put(f"orders/{order['id']}", {"status": then})
    bridge.settle()

    shown = store.order(order["id"])
    assert shown["status"] == then
    # paid 19.99 from the wallet, nothing by card: back at most (and, undone, exactly) the 19.99
    lines = [(line["kind"], line["amount"]) for line in bridge.statement(customer)]
    assert bridge.balance(customer) == 1999, f"the wallet got {money(bridge.balance(customer))} for 19.99 paid: {lines}"
    books_balance(bridge)


def test_a_raised_order_refunded_in_the_same_delivery_then_cancelled_returns_what_the_wallet_paid(
    bridge, store, customer, mug, vase
):
    """The same, with background delivery: the merchant's edit and refund reach the bridge as one delivery."""
    order = paid_by_wallet(bridge, store, customer, [(mug, 1)], funds=1999)
    store.switch("async", True)
    time.sleep(1)
    store.put(f"orders/{order['id']}", {"line_items": [{"product_id": vase["id"], "quantity": 1}]})
    store.refund(order["id"], "5.00")
    flush(bridge, store)
    time.sleep(1)
    store.put(f"orders/{order['id']}", {"status": "cancelled"})
    flush(bridge, store)

    shown = store.order(order["id"])
    assert shown["status"] == "cancelled"
    assert bridge.balance(customer) == 1999, f"the wallet got {money(bridge.balance(customer))} back for 19.99 paid"
    books_balance(bridge)


# -- cashback on completion after a partial refund


@pytest.mark.parametrize("paid", ["by card", "partly by wallet"])
def test_cashback_on_completing_an_order_refunded_in_part_is_on_what_the_customer_kept(
    bridge, store, settings, customer, mug, paid
):
    """10 % cashback on completed orders. The customer pays 39.98 (by card, or 10.00 from the wallet and 29.98 by
    card); the merchant refunds 10.00 to the card before shipping, then completes the order: the customer paid 29.98
    for what they kept, so the cashback is 2.99 (as it is for the same order paid whole from the wallet: session 10)."""
    settings(cashback_kind="percent", cashback_value=1000, cashback_on="completed", refund_destination="original")
    if paid == "by card":
        order = card_order(store, customer, [(mug, 2)])
        bridge.settle()
    else:
        bridge.credit(customer, 1000)
        order = store.new_order(customer, [(mug, 2)])
        bridge.settle()
        pay_rest_by_card(store, order["id"])
        bridge.settle()
    assert bridge.balance(customer) == 0
    store.refund(order["id"], "10.00")
    bridge.settle()
    assert bridge.balance(customer) == 0  # to the card
    store.put(f"orders/{order['id']}", {"status": "completed"})
    bridge.settle()

    shown = store.order(order["id"])
    assert (shown["status"], refunded(shown)) == ("completed", 1000)
    assert bridge.balance(customer) == 299, f"cashback {money(bridge.balance(customer))} on 29.98 kept"
    books_balance(bridge)


COLLAPSED_CASHBACK = pytest.mark.xfail(
    strict=True,
    reason="finding (open): a refund and the completion seen in one delivery: the cashback is credited on the whole "
    "total (capped, or checked against the minimum order, on it) before the refund takes its share back; one change "
    "at a time it is on what was kept (bridge.order_rules.apply_order credits cashback before the state's refunds). "
    "Open: one delivery hides whether the refund came before the completion; crediting after the refunds breaks the "
    "case where it came after (fixed cashback on payment, then refunded: tests/integration/test_review_session13.py)",
)


@pytest.mark.parametrize(
    ("rules", "cashback"),
    [
        pytest.param({"cashback_cap": 100}, 99, marks=COLLAPSED_CASHBACK),  # 10 % of 9.99, under the 1.00 cap
        pytest.param({"cashback_minimum_order": 1500}, 0, marks=COLLAPSED_CASHBACK),  # 9.99 kept: under the 15.00
    ],
    ids=["cap", "minimum"],
)
def test_a_refund_and_the_completion_seen_in_one_delivery_give_the_cashback_of_one_by_one(
    bridge, store, settings, customer, mug, rules, cashback
):
    """10 % cashback on completed orders. The merchant refunds 10.00 of a 19.99 wallet order, then completes it: seen
    one change at a time the cashback is on the 9.99 kept. With background delivery both changes arrive as one
    delivery (completed, refunded 10.00): the shop's history is the same, so is the cashback."""
    settings(cashback_kind="percent", cashback_value=1000, cashback_on="completed", **rules)
    order = paid_by_wallet(bridge, store, customer, [(mug, 1)])
    store.switch("async", True)
    store.refund(order["id"], "10.00")
    store.put(f"orders/{order['id']}", {"status": "completed"})
    flush(bridge, store)

    shown = store.order(order["id"])
    assert (shown["status"], refunded(shown)) == ("completed", 1000)
    got = bridge.balance(customer) - (5000 - 1999 + 1000)
    assert got == cashback, f"cashback {money(got)}, one change at a time {money(cashback)}"
    books_balance(bridge)


# -- refunds deleted and made again, collapsed with a cancellation


def test_refund_deleted_refunded_again_and_cancelled_in_one_delivery_returns_what_the_shop_says(
    bridge, store, settings, customer, mug
):
    """The wallet pays 10.00 of a 39.98 order; then, before the queue runs, the card pays the other 29.98, the merchant
    refunds 5.00, deletes that refund, refunds 8.00 and cancels the order. One delivery shows it: cancelled, card
    paid, one refund of 8.00. The wallet part comes back with the cancellation (10.00); the 8.00 the shop refunded is
    card money, to the wallet by the shop's policy with its 10 % bonus (0.80)."""
    settings(refund_wallet_bonus_bp=1000)
    bridge.credit(customer, 1000)
    order = store.new_order(customer, [(mug, 2)])
    bridge.settle()
    assert cents(store.order(order["id"])["total"]) == 2998 and bridge.balance(customer) == 0
    store.switch("async", True)
    pay_rest_by_card(store, order["id"])
    first = store.refund(order["id"], "5.00")
    delete_refund(store, order["id"], first["id"])
    store.refund(order["id"], "8.00")
    store.put(f"orders/{order['id']}", {"status": "cancelled"})
    flush(bridge, store)
    store.redeliver(bridge.delivery_url, order["id"])  # a true duplicate moves nothing
    flush(bridge, store)

    shown = store.order(order["id"])
    assert (shown["status"], refunded(shown)) == ("cancelled", 800)
    assert bridge.balance(customer) == 1000 + 800 + 80
    books_balance(bridge)


# -- a property: short lives of one partly paid order, delivered in the background


BONUS_BP = 1000
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("pay")),
        st.tuples(st.just("refund"), st.sampled_from([20, 50, 100])),
        st.tuples(st.just("delete"), st.integers(0, 3)),
        st.tuples(st.just("cancel")),
        st.tuples(st.just("complete")),
        st.tuples(st.just("deliver")),
    ),
    min_size=3,
    max_size=7,
)


class OneOrder:
    """The shop's books for one order, read from the shop: W the wallet paid (the "Paid from wallet" fee), C what the
    card paid (the total the shop asked when it was paid), the refunds the shop lists now."""

    def __init__(self, bridge, store, customer, mug):
        self.bridge, self.store, self.customer = bridge, store, customer
        bridge.credit(customer, 1000)
        made = store.new_order(customer, [(mug, 2)])
        bridge.settle()
        shown = store.order(made["id"])
        self.id, self.wallet, self.card = made["id"], wallet_fee(shown), 0
        assert (shown["status"], self.wallet) == ("pending", 1000)
        self.refund_ids: list[int] = []
        self.log = [f"#{self.id}: 39.98, 10.00 from the wallet"]

    def run(self, op) -> None:
        kind, *args = op
        shown = self.store.order(self.id)
        left = cents(shown["total"]) - refunded(shown)
        if kind == "pay" and shown["status"] == "pending":
            self.card = cents(shown["total"])
            pay_rest_by_card(self.store, self.id)
        elif kind == "refund" and left > 0:
            amount = max(1, left * args[0] // 100)
            self.refund_ids.append(self.store.refund(self.id, money(amount))["id"])
            kind = f"refund {money(amount)}"
        elif kind == "delete" and self.refund_ids:
            rid = self.refund_ids.pop(args[0] % len(self.refund_ids))
            delete_refund(self.store, self.id, rid)
            self.store.put(f"orders/{self.id}", {"customer_note": f"touched {rid}"})  # a deletion sends nothing
        elif kind == "cancel" and shown["status"] not in ("cancelled", "refunded"):
            self.store.put(f"orders/{self.id}", {"status": "cancelled"})
        elif kind == "complete" and shown["status"] == "processing":
            self.store.put(f"orders/{self.id}", {"status": "completed"})
        elif kind == "deliver":
            flush(self.bridge, self.store)
        else:
            return
        self.log.append(kind)

    def check(self) -> None:
        shown = self.store.order(self.id)
        balance = self.bridge.balance(self.customer)
        net = order_money(self.bridge, self.customer, self.id)  # what the order moved into the wallet, net
        story = "\n".join(
            [
                *self.log,
                f"shop: {shown['status']} total {shown['total']} refunded {money(refunded(shown))}",
                f"wallet {money(balance)}, order net {money(net)}",
            ]
        )
        assert balance >= 0, story
        # never more back than the customer paid: the wallet part, and the card's money with its bonus
        assert net <= self.card + self.card * BONUS_BP // 10_000, story
        # never more back than the shop refunded (card money, with its bonus), unless the wallet part came back
        undone = shown["status"] in ("cancelled", "refunded") or (self.card and refunded(shown) >= self.card)
        limit = refunded(shown) + refunded(shown) * BONUS_BP // 10_000 - (0 if undone else self.wallet)
        assert net <= limit, story
        if shown["status"] == "cancelled":
            assert net >= 0, story  # a cancelled order gives the wallet part back whatever its refunds
        books_balance(self.bridge)


@settings_h(
    max_examples=int(os.environ.get("PROPERTY_AUDIT_EXAMPLES", 3)),
    deadline=None,
    derandomize=not os.environ.get("PROPERTY_AUDIT_SEED"),
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    print_blob=False,
)
@given(ops=OPS)
def test_random_background_lives_of_a_partly_paid_order_keep_the_shops_books(
    bridge, store, settings, mug, monkeypatch, ops
):
    monkeypatch.setattr(oauth, "randint", random.SystemRandom().randint)  # the client's nonces (session 11)
    settings(refund_wallet_bonus_bp=BONUS_BP)
    store.switch("async", False)
    customer = store.new_customer("pam")
    bridge.settle()
    life = OneOrder(bridge, store, customer, mug)
    store.switch("async", True)
    try:
        for op in ops:
            life.run(op)
            note(life.log[-1])
            if op[0] == "deliver":
                life.check()
        flush(bridge, store)
        life.check()
        before = bridge.balance(customer)
        store.redeliver(bridge.delivery_url, life.id)
        flush(bridge, store)
        assert bridge.balance(customer) == before, "\n".join(life.log)
    finally:
        store.switch("async", False)


def test_a_card_order_refunded_in_full_then_completed_earns_no_cashback(bridge, store, settings, customer, mug):
    """10 % cashback on completed orders. A 19.99 card order is refunded in full (to the card), then the merchant
    sets it completed by hand (WooCommerce keeps the refund): the customer paid nothing in the end, so no cashback —
    which is also what the bridge gives when both changes arrive in one background delivery."""
    settings(cashback_kind="percent", cashback_value=1000, cashback_on="completed", refund_destination="original")
    order = card_order(store, customer, [(mug, 1)])
    bridge.settle()
    store.refund(order["id"], "19.99")
    bridge.settle()
    assert store.order(order["id"])["status"] == "refunded"
    time.sleep(1)
    store.put(f"orders/{order['id']}", {"status": "completed"})
    bridge.settle()

    shown = store.order(order["id"])
    assert (shown["status"], refunded(shown)) == ("completed", 1999)
    assert bridge.balance(customer) == 0, f"cashback {money(bridge.balance(customer))} on an order refunded in full"
    books_balance(bridge)


# -- a customer's refund request and the merchant's own refund, delivered together


def test_a_customers_request_and_a_merchants_refund_of_another_amount_in_one_delivery_go_where_each_belongs(
    bridge, store, settings, customer, mug
):
    """Refunds go back to the card (`refund_destination: original`), a refund to the wallet earns 10 %. On a 39.98
    card order the customer asks the bridge for 10.00 to the wallet; the merchant refunds 7.00 to the card in wp-admin
    meanwhile; background delivery shows both refunds at once. The wallet gets the customer's 10.00 and its 1.00
    bonus, nothing of the merchant's card refund; a redelivery moves nothing."""
    settings(refund_destination="original", refund_wallet_bonus_bp=1000)
    order = card_order(store, customer, [(mug, 2)])
    bridge.settle()
    store.switch("async", True)
    bridge.api(
        "post",
        f"/orders/{order['id']}/refunds",
        {"amount": 1000, "destination": "wallet", "reason": "Asked"},
        expect=202,
    )
    store.refund(order["id"], "7.00")
    bridge.settle()  # the worker made the bridge's refund in the store: its delivery waits in the queue
    flush(bridge, store)
    store.redeliver(bridge.delivery_url, order["id"])
    flush(bridge, store)

    shown = store.order(order["id"])
    assert sorted(-cents(r["total"]) for r in shown["refunds"]) == [700, 1000]
    assert bridge.balance(customer) == 1000 + 100
    books_balance(bridge)


# -- the bridge's own push meeting a change the merchant made meanwhile


@pytest.mark.parametrize(
    "merchant_sets",
    [
        "cancelled",
        pytest.param(
            "processing",
            marks=pytest.mark.xfail(
                strict=True,
                reason="finding (open): the merchant marks processing (the rest paid by hand) while the bridge's "
                "re-opening push waits: the push cannot tell it from the processing the wallet's payment left (same "
                "status; a newer date may be any edit) and sets the order pending again",
            ),
        ),
    ],
)
def test_a_status_the_merchant_set_before_the_bridges_reopening_push_stands(
    bridge, store, customer, mug, vase, merchant_sets
):
    """The wallet paid a 19.99 order whole (all it had). The merchant adds a vase (29.98); its delivery reaches the
    bridge, which decides the 19.99 becomes the wallet part and the order must be re-opened for the 9.99 left. Before
    the worker writes that to the store, the merchant cancels the order in wp-admin (or marks it processing: the rest
    was paid by hand) — background delivery: that change's webhook waits in the queue. The merchant's status must
    stand: cancelled, the wallet gets its 19.99 back; processing, the shop asks nothing more. Not an order set pending
    again behind the merchant's back, holding the customer's money or asking for money already paid."""
    order = paid_by_wallet(bridge, store, customer, [(mug, 1)], funds=1999)
    store.switch("async", True)
    bridge.stop("worker")
    try:
        time.sleep(1)
        store.put(f"orders/{order['id']}", {"line_items": [{"product_id": vase["id"], "quantity": 1}]})
        time.sleep(0.5)
        store.ctl("run-queue")  # the edit's delivery, applied by the web process: the re-opening push waits
        time.sleep(1)
        store.put(f"orders/{order['id']}", {"status": merchant_sets})
    finally:
        bridge.start_worker()
    flush(bridge, store)

    shown = store.order(order["id"])
    seen = (shown["status"], bridge.balance(customer))
    story = (
        f"the shop says {shown['status']} (total {shown['total']}, wallet fee {money(wallet_fee(shown))}), "
        f"the wallet holds {money(bridge.balance(customer))}"
    )
    if merchant_sets == "cancelled":
        assert seen == ("cancelled", 1999), story
    else:
        assert shown["status"] == "processing" and seen[1] in (0, 1999), story
    books_balance(bridge)


def test_an_order_the_merchant_trashed_before_the_bridges_paid_push_is_not_revived_as_paid(
    bridge, store, customer, mug
):
    """A wallet order placed; its delivery reaches the bridge, which takes the 19.99 and is to mark the order paid.
    Before the worker writes that, the merchant moves the order to the trash (background delivery: its webhooks wait in
    the queue). The trashed order's money goes back to the wallet, and the bridge must not bring the order back as a
    paid order the shop would ship with no money behind it."""
    bridge.credit(customer, 5000)
    store.switch("async", True)
    bridge.stop("worker")
    try:
        order = store.new_order(customer, [(mug, 1)])
        time.sleep(0.5)
        store.ctl("run-queue")  # the order's delivery: the wallet pays, the paid push waits
        time.sleep(1)
        assert bridge.balance(customer) == 5000 - 1999
        assert store.api.delete(f"orders/{order['id']}").status_code == 200  # to the trash
    finally:
        bridge.start_worker()
    flush(bridge, store)

    shown = store.order(order["id"])
    assert (shown["status"], bridge.balance(customer)) == ("trash", 5000), (
        f"the shop says {shown['status']} (paid {shown['date_paid']}), "
        f"the wallet holds {money(bridge.balance(customer))}"
    )
    books_balance(bridge)


def test_fee_lines_removed_by_the_bridge_after_the_order_was_reopened_and_paid_never_make_the_card_paid_more(
    bridge, store, customer, mug
):
    """The wallet pays 10.00 of a 39.98 order (the shop asks 29.98). The customer cancels: the bridge returns the
    10.00 and is to take its "Paid from wallet" line off the order. Before the worker does, the merchant re-opens the
    order and the customer pays it by card — 29.98, what the shop asked (background delivery: those webhooks wait).
    The customer paid 10.00 (back in the wallet) and 29.98 by card: a full refund must give back 29.98, not 39.98."""
    bridge.credit(customer, 1000)
    order = store.new_order(customer, [(mug, 2)])
    bridge.settle()
    assert cents(store.order(order["id"])["total"]) == 2998
    store.switch("async", True)
    bridge.stop("worker")
    try:
        time.sleep(1)
        store.put(f"orders/{order['id']}", {"status": "cancelled"})
        time.sleep(0.5)
        store.ctl("run-queue")  # the cancellation's delivery: the 10.00 back, the fee's removal waits
        time.sleep(1)
        assert bridge.balance(customer) == 1000
        store.put(f"orders/{order['id']}", {"status": "pending"})
        paid = cents(store.order(order["id"])["total"])
        pay_rest_by_card(store, order["id"])
    finally:
        bridge.start_worker()
    flush(bridge, store)
    after_payment = store.order(order["id"])
    time.sleep(1)
    store.put(f"orders/{order['id']}", {"status": "refunded"})
    flush(bridge, store)

    shown = store.order(order["id"])
    assert shown["status"] == "refunded"
    assert bridge.balance(customer) <= 1000 + paid, (
        f"card paid {money(paid)}; the shop then showed total {after_payment['total']} and refunded "
        f"{money(refunded(shown))}; the wallet holds {money(bridge.balance(customer))}"
    )
    books_balance(bridge)
