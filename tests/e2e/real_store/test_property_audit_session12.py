"""An outside audit on the real store (session 12): random short order lives, as session 11's, now with WooCommerce's
own asynchronous webhook delivery (Action Scheduler: deliveries late and collapsed into the final state, run when the
test runs the queue), taxes on (the store's 19 % DE rate), shipping lines and coupons on the orders, several partial
refunds and then a full one, and refunds deleted in the shop.

The model is session 11's (`ShopOrder`, `Books`: the SHOP'S books — what the customer paid from the wallet W, by card C,
what the shop refunded R), read from the shop's side: W of a wallet order is the total the shop asked; W of a partly
paid order is what the "Paid from wallet" fee took off the shop's total (with taxes on the fee's tax included: the
customer owes the shop the total less W). A refund deleted in the shop no longer counts in R, so what it returned goes
back out of the wallet (skipped by the generator when the wallet no longer holds it: the bridge then tells the merchant,
a design choice, not modelled). With async delivery the books are compared only once the queue ran dry (op "deliver",
and at the end of a life); with sync delivery after every step. In half the async lives the queue runs only once after
an order is placed, so the bridge's own pushes are delivered late, collapsed with what the merchant and the customer do
next.

It found one fault (fixed: the tests at the end failed before): a refund deleted in the shop after the order was
cancelled (or, paid, set failed) was taken back from the wallet, though the cancellation had already returned all the
wallet had paid: the customer lost the refund's amount. Not a fault but a design question (not asserted): a refund
deleted on an order that stays "refunded" follows the refunds (the wallet gives the deleted refund back), not the
status.

Run with -s to see each life; PROPERTY_AUDIT_SEED=<n> PROPERTY_AUDIT_EXAMPLES=<n> explore other lives."""

from __future__ import annotations

import random
import secrets
import time

import pytest
from hypothesis import given, note
from hypothesis import strategies as st
from woocommerce import oauth

from tests.e2e.real_store.harness import CARD_METHOD, cents, money
from tests.e2e.real_store.test_property_audit_session11 import Life, ShopOrder, audited, pick

pytestmark = pytest.mark.real_store

SHIPPING = [{"method_id": "flat_rate", "method_title": "Flat rate", "total": "4.90"}]


def extras_for(kind: int, coupons: dict) -> dict:
    """0 nothing, 1 shipping, 2 a 10 % coupon, 3 shipping and a 3.00 cart coupon."""
    extra: dict = {}
    if kind in (1, 3):
        extra["shipping_lines"] = SHIPPING
    if kind == 2:
        extra["coupon_lines"] = [{"code": coupons["percent"]}]
    if kind == 3:
        extra["coupon_lines"] = [{"code": coupons["fixed"]}]
    return extra


class Life12(Life):
    """Session 11's life, with taxes and async delivery switched per life, extras on the orders, refunds deleted."""

    def __init__(self, bridge, store, products, coupons, destination: str, taxes: bool, late: bool, lag: bool = False):
        store.switch("taxes", taxes)
        super().__init__(bridge, store, products, destination)  # the customer is known before deliveries wait
        self.coupons, self.taxes, self.late, self.lag = coupons, taxes, late, lag
        self.refund_ids: dict[int, list[tuple[int, int, bool]]] = {}  # order: (refund id, amount, before card)
        mode = ("async, pushes lag" if lag else "async") if late else "sync"
        self.log.append(f"taxes {'on' if taxes else 'off'}, webhooks {mode}")
        if late:
            store.switch("async", True)

    # the queue

    def flush(self, runs: int = 8) -> None:
        """Run Action Scheduler until a run finds nothing to deliver (the bridge's own pushes queue more), or `runs`
        times (once: the order's delivery is applied and the bridge's push made, the push's own delivery waits)."""
        self.bridge.settle()
        if not self.late:
            return
        for _ in range(runs):
            time.sleep(0.4)  # the end-of-request hook of the last write queues its delivery after the answer
            out = self.store.ctl("run-queue")
            self.bridge.settle()
            if " 0 action(s)" in out:
                return
        if runs == 8:
            raise AssertionError("the queue never ran dry")

    # orders

    def open_order(self, product: dict, quantity: int, extras: int, funds: int, whole: bool) -> ShopOrder:
        price = cents(product["regular_price"])
        if whole:  # enough for the order's total whatever its tax and shipping
            need = (price * quantity + 490) * 120 // 100
            short = need - self.books.balance()
            if short > 0:
                self.credit(short + funds)
        elif self.books.balance() == 0:
            self.credit(funds)
        held = self.books.balance()
        if not whole:
            quantity = held // price + 1 + quantity
        made = self.store.new_order(self.customer, [(product, quantity)], **extras_for(extras, self.coupons))
        total = cents(made["total"])
        self.flush(1 if self.lag else 8)
        shown = self.store.order(made["id"])
        if total <= held:
            order = ShopOrder(made["id"], "wallet", total, wallet_paid=total, to_wallet=self.to_wallet)
            how = "paid by wallet"
        else:
            paid = total - cents(shown["total"])  # what the wallet's fee took off what the shop asks
            order = ShopOrder(
                made["id"], "partial", total, wallet_paid=paid, status="pending", to_wallet=self.to_wallet
            )
            how = f"partly paid: {money(paid)} from the wallet ({money(held)} held)"
        self.books.orders.append(order)
        self.log.append(f"#{order.id}: {quantity} x {product['regular_price']} extras {extras} ({money(total)}) {how}")
        return order

    def card_order12(self, product: dict, quantity: int, extras: int) -> None:
        made = self.store.new_order(
            self.customer,
            [(product, quantity)],
            payment_method=CARD_METHOD,
            payment_method_title="Card",
            set_paid=True,
            **extras_for(extras, self.coupons),
        )
        total = cents(made["total"])
        self.books.orders.append(
            ShopOrder(made["id"], "card", total, wallet_paid=0, card_paid=total, to_wallet=self.to_wallet)
        )
        self.log.append(
            f"#{made['id']}: {quantity} x {product['regular_price']} extras {extras} by card ({money(total)})"
        )
        self.flush()

    # refunds, remembered by id so that they can be deleted

    def remember_refunds(self, order: ShopOrder, before: set[int], amount_before_card: bool) -> None:
        shown = self.store.order(order.id)
        for refund in shown["refunds"]:
            if refund["id"] not in before:
                self.refund_ids.setdefault(order.id, []).append(
                    (refund["id"], -cents(refund["total"]), amount_before_card)
                )

    def known_refunds(self, order: ShopOrder) -> set[int]:
        return {rid for rid, _, _ in self.refund_ids.get(order.id, [])}

    def refund12(self, order: ShopOrder, percent: int | None, by_line: bool = False, by_status: bool = False) -> None:
        before, card_before = self.known_refunds(order), order.card_paid == 0
        self.refund(order, percent, by_line=by_line, by_status=by_status)
        self.remember_refunds(order, before, card_before)

    def refund_shipping(self, order: ShopOrder) -> None:
        shown = self.store.order(order.id)
        if not shown["shipping_lines"]:
            return
        line = shown["shipping_lines"][0]
        taxes = [{"id": t["id"], "refund_total": t["total"]} for t in line["taxes"] if cents(t["total"])]
        amount = cents(line["total"]) + sum(cents(t["total"]) for t in line["taxes"])
        left = cents(shown["total"]) - order.refunded
        if amount <= 0 or amount >= left:
            return
        before, card_before = self.known_refunds(order), order.card_paid == 0
        self.store.post(
            f"orders/{order.id}/refunds",
            {
                "amount": money(amount),
                "reason": "Shipping",
                "api_refund": False,
                "line_items": [{"id": line["id"], "refund_total": line["total"], "refund_tax": taxes}],
            },
        )
        self.refunded(order, amount, left)
        self.remember_refunds(order, before, card_before)
        self.log.append(f"#{order.id}: shipping refunded {money(amount)} ({money(left)} was left)")

    def delete_refund(self, order: ShopOrder, which: int) -> None:
        refunds = self.refund_ids.get(order.id, [])
        if not refunds:
            return
        rid, amount, before_card = refunds[which % len(refunds)]
        was = order.status
        reopen = was == "refunded"
        if reopen and order.kind == "partial" and order.card_paid == 0:
            return  # an unpaid partly paid order refunded whole, then re-opened: not modelled
        order.refunds.remove(amount)
        if before_card:
            order.refunded_before_card -= amount
        if reopen:
            order.status = "processing"
        if self.books.balance() < 0:  # the wallet no longer holds it: the merchant is told (not modelled)
            order.refunds.append(amount)
            if before_card:
                order.refunded_before_card += amount
            order.status = was
            return
        response = self.store.api.delete(f"orders/{order.id}/refunds/{rid}", params={"force": "true"})
        assert response.status_code == 200, response.text[:500]
        refunds.remove((rid, amount, before_card))
        # a refund's deletion sends no webhook: the merchant's next save of the order does
        touch = (
            {"status": "processing"} if reopen else {"meta_data": [{"key": "_audit12", "value": secrets.token_hex(3)}]}
        )
        self.store.put(f"orders/{order.id}", touch)
        self.log.append(f"#{order.id}: refund #{rid} of {money(amount)} deleted{', set processing' if reopen else ''}")

    def run(self, op: tuple) -> None:
        kind, *args = op
        orders = self.books.orders
        if kind in ("wallet", "partial"):
            order = self.open_order(self.products[args[0]], args[1], args[2], args[3], kind == "wallet")
            if kind == "partial" and args[4] and order.kind == "partial":
                self.pay_rest(order)
        elif kind == "card":
            self.card_order12(self.products[args[0]], args[1], args[2])
        elif kind in ("refund", "refund_rest", "refund_shipping"):
            order = pick(orders, args[0], lambda o: o.status != "refunded")
            if order and kind == "refund":
                self.refund12(order, args[1], by_line=args[2])
            elif order and kind == "refund_rest":
                self.refund12(order, None, by_status=args[1])
            elif order:
                self.refund_shipping(order)
        elif kind == "delete":
            order = pick(orders, args[0], lambda o: bool(self.refund_ids.get(o.id)))
            if order:
                self.delete_refund(order, args[1])
        elif kind == "deliver":
            self.log.append("(queue run)" if self.late else "(nothing queued)")
        else:
            super().run(op)
            return
        self.bridge.settle()

    def check_order_on_the_shop(self, order: ShopOrder) -> None:
        shown = self.store.order(order.id)
        if order.kind == "partial" and order.status == "pending" and not order.refunds:
            assert cents(shown["total"]) == order.goods - order.wallet_paid, self.story()
        elif order.kind == "wallet" and order.status == "processing" and not order.refunds:
            assert cents(shown["total"]) == order.goods, self.story()


# -- the operations, drawn as plain data

PICK = st.integers(0, 7)
EXTRAS = st.integers(0, 3)
DESTINATIONS = st.sampled_from(["wallet", "wallet", "original"])
OPENING = st.one_of(
    st.tuples(st.just("wallet"), st.integers(0, 1), st.integers(1, 2), EXTRAS, st.integers(0, 700)),
    st.tuples(st.just("partial"), st.integers(0, 1), st.integers(0, 1), EXTRAS, st.integers(1, 2500), st.booleans()),
    st.tuples(st.just("card"), st.integers(0, 1), st.integers(1, 2), EXTRAS),
)
REFUND = st.tuples(st.just("refund"), PICK, st.integers(1, 60), st.booleans())
LATER = st.one_of(
    REFUND,
    st.tuples(st.just("refund_rest"), PICK, st.booleans()),
    st.tuples(st.just("delete"), PICK, st.integers(0, 3)),
    st.tuples(st.just("deliver")),
    st.tuples(st.just("pay"), PICK),
    REFUND,
    st.tuples(st.just("refund_shipping"), PICK),
    st.tuples(st.just("cancel"), PICK),
    OPENING,
    st.tuples(st.just("credit"), st.integers(1, 3000)),
)
LIVES = st.tuples(OPENING, st.lists(LATER, min_size=2, max_size=6)).map(lambda t: [t[0], *t[1]])
# one order: several partial refunds, the rest paid or not, a full refund, refunds deleted
ONE = st.one_of(
    st.tuples(st.just("refund"), st.just(0), st.integers(1, 40), st.booleans()),
    st.tuples(st.just("refund"), st.just(0), st.integers(1, 40), st.booleans()),
    st.tuples(st.just("refund_shipping"), st.just(0)),
    st.tuples(st.just("delete"), st.just(0), st.integers(0, 3)),
    st.tuples(st.just("pay"), st.just(0)),
    st.tuples(st.just("deliver")),
)
REFUND_LIVES = st.tuples(
    st.one_of(
        st.tuples(
            st.just("wallet"), st.integers(0, 1), st.integers(1, 3), st.sampled_from([1, 3]), st.integers(0, 300)
        ),
        st.tuples(
            st.just("partial"),
            st.integers(0, 1),
            st.integers(0, 1),
            st.sampled_from([1, 3]),
            st.integers(1, 2500),
            st.booleans(),
        ),
    ),
    st.lists(ONE, min_size=2, max_size=5),
    st.tuples(st.just("refund_rest"), st.just(0), st.booleans()),
    st.lists(ONE, max_size=2),
).map(lambda t: [t[0], *t[1], t[2], *t[3]])


@pytest.fixture(scope="module")
def coupons(store):
    codes = {"percent": f"ten-{secrets.token_hex(3)}", "fixed": f"three-{secrets.token_hex(3)}"}
    store.post("coupons", {"code": codes["percent"], "discount_type": "percent", "amount": "10"})
    store.post("coupons", {"code": codes["fixed"], "discount_type": "fixed_cart", "amount": "3.00"})
    return codes


def live12(bridge, store, products, coupons, monkeypatch, set_rules, destination, taxes, late, ops, lag=False) -> None:
    monkeypatch.setattr(oauth, "randint", random.SystemRandom().randint)  # see session 11
    failed = bridge.failed_deliveries()
    set_rules(refund_destination=destination)
    life = None
    try:
        life = Life12(bridge, store, products, coupons, destination, taxes, late, lag)
        for op in ops:
            life.run(op)
            note(life.log[-1])
            if not late or op[0] == "deliver":
                life.flush()
                life.check()
        life.flush()
        life.check()
        life.check_statement()
        assert bridge.failed_deliveries() == failed, life.story()
        print(life.story(), end="\n\n")
    finally:
        if life is not None and late:
            life.flush()
        store.reset_switches()
        bridge.settle()


@audited(6)
@given(destination=DESTINATIONS, taxes=st.booleans(), late=st.booleans(), lag=st.booleans(), ops=LIVES)
def test_random_lives_with_async_delivery_taxes_shipping_and_coupons_keep_the_shops_books(
    bridge, store, settings, mug, vase, coupons, monkeypatch, destination, taxes, late, lag, ops
):
    live12(bridge, store, [mug, vase], coupons, monkeypatch, settings, destination, taxes, late, ops, lag)


@audited(4)
@given(destination=DESTINATIONS, taxes=st.booleans(), late=st.booleans(), ops=REFUND_LIVES)
def test_random_partial_refunds_then_a_full_refund_and_deletions_keep_the_shops_books(
    bridge, store, settings, mug, vase, coupons, monkeypatch, destination, taxes, late, ops
):
    live12(bridge, store, [mug, vase], coupons, monkeypatch, settings, destination, taxes, late, ops)


# -- findings, minimised (each fails now)


def delete_refund(store, order_id, refund_id) -> None:
    response = store.api.delete(f"orders/{order_id}/refunds/{refund_id}", params={"force": "true"})
    assert response.status_code == 200, response.text[:500]


def touch(store, order_id) -> None:
    """The merchant saves the order: a refund's deletion sends no webhook of its own."""
    store.put(f"orders/{order_id}", {"meta_data": [{"key": "_audit12", "value": secrets.token_hex(3)}]})


@pytest.mark.parametrize("undone", ["cancelled", "failed"])
def test_a_refund_deleted_after_the_wallet_order_was_undone_takes_nothing_back(bridge, store, customer, mug, undone):
    """Finding (fixed; failed before): a 19.99 wallet order (1999 cents paid from the wallet), refunded 5.00 (500 back),
    then cancelled (or, paid, set failed by hand: undone like a cancellation) — the other 1499 back, all 1999 the wallet
    paid — then the 5.00 refund deleted in the shop. The shop's books: an order undone, no refunds, 1999 paid from the
    wallet, all of it owed back: the wallet must stay at 1999. The bridge took the deleted refund's 500 back
    (`refund_reversal`), leaving 1499: the customer lost 5.00 (`_take_back_deleted_refunds` did not ask whether the
    order's wallet payment was owed back whole; the cancellation had returned what the wallet paid less refunds)."""
    bridge.credit(customer, 1999)
    order = store.new_order(customer, [(mug, 1)])
    bridge.settle()
    refund = store.refund(order["id"], "5.00")
    bridge.settle()
    store.put(f"orders/{order['id']}", {"status": undone})
    bridge.settle()
    assert bridge.balance(customer) == 1999
    delete_refund(store, order["id"], refund["id"])
    touch(store, order["id"])
    bridge.settle()

    shown = store.order(order["id"])
    assert (shown["status"], shown["refunds"]) == (undone, [])
    assert bridge.balance(customer) == 1999  # 1499 before the fix


def test_a_cancellation_and_a_refund_deletion_delivered_as_one_take_nothing_back(bridge, store, customer, mug):
    """Finding (fixed; failed before), with WooCommerce's background delivery: a 19.99 wallet order refunded 5.00 (500
    back, delivered), then cancelled and the refund deleted before the queue runs, so that one collapsed delivery shows
    a cancelled order without refunds. Expected: all 1999 the wallet paid back, the wallet at 1999. Before the fix: 1499
    (the cancellation returned 1499, "less refunds already returned", and the deletion took the 500 back)."""
    bridge.credit(customer, 1999)
    order = store.new_order(customer, [(mug, 1)])
    bridge.settle()
    refund = store.refund(order["id"], "5.00")
    bridge.settle()
    store.switch("async", True)
    store.put(f"orders/{order['id']}", {"status": "cancelled"})
    delete_refund(store, order["id"], refund["id"])
    touch(store, order["id"])
    for _ in range(3):
        time.sleep(0.5)
        store.ctl("run-queue")
        bridge.settle()

    assert store.order(order["id"])["status"] == "cancelled"
    assert bridge.balance(customer) == 1999  # 1499 before the fix


def test_a_refund_deleted_after_a_partly_paid_order_was_cancelled_takes_nothing_back(bridge, store, customer, mug):
    """Finding (fixed; failed before), the same on a partly paid order: 39.98 ordered, 10.00 (1000 cents) from the
    wallet, the rest never paid; refunded 4.00 (400 back: wallet money, the only money paid), cancelled (the other 600
    back), the 4.00 refund deleted. The shop: cancelled, no refunds, 1000 paid from the wallet, all owed back: 1000
    expected, the bridge left 600 (the deleted refund's 400 taken back a second time)."""
    bridge.credit(customer, 1000)
    order = store.new_order(customer, [(mug, 2)])
    bridge.settle()
    refund = store.refund(order["id"], "4.00")
    bridge.settle()
    assert bridge.balance(customer) == 400
    store.put(f"orders/{order['id']}", {"status": "cancelled"})
    bridge.settle()
    assert bridge.balance(customer) == 1000
    delete_refund(store, order["id"], refund["id"])
    touch(store, order["id"])
    bridge.settle()

    assert store.order(order["id"])["status"] == "cancelled"
    assert bridge.balance(customer) == 1000  # 600 before the fix
