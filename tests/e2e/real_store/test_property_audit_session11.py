"""An outside audit on the real store (session 11): random short lives of one customer's orders — paid by wallet,
partly paid by wallet (placed pending, or on-hold as the cheque gateway's checkout leaves it) and the rest by card,
paid by card, refunded in part (by amount or by line) and in full (by amount or by setting the status), failed,
cancelled, the wallet credited by the merchant — checked after every step against a small model of the SHOP'S
books, not of the bridge: what the customer paid from the wallet and by card, what the shop refunded.

The model (partial payments on, taxes off; refund_destination "wallet", or "original" in a third of the lives), per
order: paid from the wallet W (the whole total, or the "Paid from wallet" fee), by card C (the shop's total once it
is recorded paid by card), refunded in the shop R (its refunds never exceed its total), R0 of it before any card paid.
- No card money paid: back to the wallet min(R, W); all of W once the shop says cancelled or refunded.
- A card paid: to the wallet R (destination "wallet") or min(R0, W) (destination "original": what was refunded while
  only the wallet had paid), plus W once the shop says refunded in full — W + C back in all with "wallet".
- The wallet is what the merchant credited, less every W, plus all that comes back: exactly, in cents, after each
  step; per order (the statement's lines for it) exactly that, never more back than W + R; never below zero.

It found one fault (fixed: the test below failed before): a partly paid order placed on-hold stayed on-hold, which
WooCommerce never lets the customer pay; the bridge's fee push now sets it pending.

Run with -s to see each life; PROPERTY_AUDIT_SEED=<n> PROPERTY_AUDIT_EXAMPLES=<n> explore other lives."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, Phase, given, note, seed
from hypothesis import settings as run_settings
from hypothesis import strategies as st
from woocommerce import oauth

from tests.e2e.real_store.harness import CARD_METHOD, cents, money

pytestmark = pytest.mark.real_store

FEE = "Paid from wallet"
AWAITING = ("pending", "on-hold", "failed")  # a partly paid order whose rest is not paid yet


# -- the shop's books, as the customer and the merchant see them


@dataclass
class ShopOrder:
    id: int
    kind: str  # "wallet" (paid whole from the wallet), "partial" (wallet part, the rest by card), "card"
    goods: int  # what the items cost
    wallet_paid: int  # W
    card_paid: int = 0  # C
    refunds: list[int] = field(default_factory=list)
    refunded_before_card: int = 0  # refunded while no card money had been paid for it (only wallet money was)
    status: str = "processing"
    to_wallet: bool = True  # refund_destination "wallet" (else "original": card money back to the card)

    @property
    def refunded(self) -> int:
        return sum(self.refunds)

    def back_to_wallet(self) -> int:
        """What the wallet should have had back from this order so far, by the shop's books."""
        if self.card_paid == 0:  # only wallet money was ever paid for it
            if self.status in ("cancelled", "refunded"):
                return self.wallet_paid
            return min(self.refunded, self.wallet_paid)
        whole = self.wallet_paid if self.status == "refunded" else 0  # refunded in full: the wallet part too
        if self.to_wallet:
            return self.refunded + whole  # card money, to the wallet by the shop's policy
        # to the card: only what was refunded while the wallet's money was all the order had been paid stays
        return min(self.refunded_before_card, self.wallet_paid) + whole

    def net(self) -> int:
        """The order's movements on the wallet: what came back less what it took."""
        return self.back_to_wallet() - self.wallet_paid


@dataclass
class Books:
    credited: int = 0  # by the merchant
    orders: list[ShopOrder] = field(default_factory=list)

    def balance(self) -> int:
        return self.credited + sum(order.net() for order in self.orders)


# -- the operations, drawn as plain data and resolved against the books when they run

PICK = st.integers(0, 7)
DESTINATIONS = st.sampled_from(["wallet", "wallet", "original"])
OPENING = st.one_of(
    st.tuples(st.just("wallet"), st.integers(0, 1), st.integers(1, 2), st.integers(0, 700), st.booleans()),
    st.tuples(
        st.just("partial"), st.integers(0, 1), st.integers(0, 1), st.integers(1, 2500), st.booleans(), st.booleans()
    ),
    st.tuples(st.just("card"), st.integers(0, 1), st.integers(1, 2)),
)
LATER = st.one_of(  # the first branches are drawn the most: refunds, cancellations and payments of the rest
    st.tuples(st.just("refund"), PICK, st.integers(1, 99), st.booleans()),
    st.tuples(st.just("cancel"), PICK),
    st.tuples(st.just("refund_rest"), PICK, st.booleans()),
    st.tuples(st.just("pay"), PICK),
    st.tuples(st.just("fail"), PICK),
    st.tuples(st.just("refund"), PICK, st.integers(1, 99), st.booleans()),
    OPENING,
    st.tuples(st.just("credit"), st.integers(1, 3000)),
)
LIVES = st.tuples(OPENING, st.lists(LATER, min_size=2, max_size=5)).map(lambda t: [t[0], *t[1]])
# one partly paid order, its rest not paid yet, and what the merchant and the customer do to it
ONE_ORDER = st.one_of(
    st.tuples(st.just("refund"), st.just(0), st.integers(1, 99), st.booleans()),
    st.tuples(st.just("pay"), st.just(0)),
    st.tuples(st.just("refund_rest"), st.just(0), st.booleans()),
    st.tuples(st.just("cancel"), st.just(0)),
    st.tuples(st.just("fail"), st.just(0)),
    st.tuples(st.just("credit"), st.integers(1, 3000)),
)
PARTLY_PAID_LIVES = st.tuples(
    st.tuples(
        st.just("partial"), st.integers(0, 1), st.integers(0, 1), st.integers(1, 2500), st.just(False), st.booleans()
    ),
    st.lists(ONE_ORDER, min_size=2, max_size=4),
).map(lambda t: [t[0], *t[1]])


def placed(on_hold: bool) -> dict:
    """How the order is placed: pending (the REST default), or on-hold as an offline gateway's checkout leaves it."""
    return {"status": "on-hold"} if on_hold else {}


def held(on_hold: bool) -> str:
    return ", placed on-hold" if on_hold else ""


def pick(orders: list[ShopOrder], index: int, eligible) -> ShopOrder | None:
    candidates = [order for order in orders if eligible(order)]
    return candidates[index % len(candidates)] if candidates else None


class Life:
    """One customer's life on the real store, the shop's books beside it."""

    def __init__(self, bridge, store, products, destination: str):
        self.bridge, self.store, self.products = bridge, store, products
        self.to_wallet = destination == "wallet"
        self.customer = store.new_customer("prop")
        self.books = Books()
        self.log: list[str] = [f"refund_destination {destination}"]
        bridge.settle()

    # what the merchant and the customer do

    def credit(self, amount: int) -> None:
        self.bridge.credit(self.customer, amount)
        self.books.credited += amount
        self.log.append(f"credit {money(amount)}")

    def wallet_order(self, product: dict, quantity: int, extra: int, on_hold: bool) -> None:
        goods = cents(product["regular_price"]) * quantity
        short = goods - self.books.balance()
        if short > 0:
            self.credit(short + extra)
        made = self.store.new_order(self.customer, [(product, quantity)], **placed(on_hold))
        self.books.orders.append(ShopOrder(made["id"], "wallet", goods, wallet_paid=goods, to_wallet=self.to_wallet))
        self.log.append(
            f"#{made['id']}: {quantity} x {product['regular_price']} paid by wallet ({money(goods)}){held(on_hold)}"
        )

    def partial_order(self, product: dict, extra_quantity: int, funds: int, pay_now: bool, on_hold: bool) -> None:
        if self.books.balance() == 0:
            self.credit(funds)
        funds_held = self.books.balance()
        price = cents(product["regular_price"])
        quantity = funds_held // price + 1 + extra_quantity
        made = self.store.new_order(self.customer, [(product, quantity)], **placed(on_hold))
        order = ShopOrder(
            made["id"],
            "partial",
            price * quantity,
            wallet_paid=funds_held,
            status="pending",  # placed on-hold, the bridge's fee push sets it pending: the rest can be paid
            to_wallet=self.to_wallet,
        )
        self.books.orders.append(order)
        self.log.append(
            f"#{order.id}: {quantity} x {product['regular_price']} ({money(order.goods)}) partly paid: "
            f"{money(funds_held)} from the wallet{held(on_hold)}"
        )
        if pay_now:
            self.bridge.settle()
            self.check_order_on_the_shop(order)
            self.pay_rest(order)

    def card_order(self, product: dict, quantity: int) -> None:
        made = self.store.new_order(
            self.customer, [(product, quantity)], payment_method=CARD_METHOD, payment_method_title="Card", set_paid=True
        )
        goods = cents(product["regular_price"]) * quantity
        self.books.orders.append(
            ShopOrder(made["id"], "card", goods, wallet_paid=0, card_paid=goods, to_wallet=self.to_wallet)
        )
        self.log.append(f"#{made['id']}: {quantity} x {product['regular_price']} paid by card ({money(goods)})")

    def pay_rest(self, order: ShopOrder) -> None:
        rest = cents(self.store.order(order.id)["total"])
        # set_paid runs payment_complete only for an order that needs_payment (pending, failed): an on-hold order's
        # rest is recorded as the merchant does when the money arrives, by setting it processing (date_paid is set)
        paid = {"status": "processing"} if order.status == "on-hold" else {"set_paid": True}
        self.store.put(f"orders/{order.id}", {"payment_method": CARD_METHOD, "payment_method_title": "Card", **paid})
        order.card_paid, order.status = rest, "processing"
        self.log.append(f"#{order.id}: the rest, {money(rest)}, paid by card")

    def refund(self, order: ShopOrder, percent: int | None, by_line: bool = False, by_status: bool = False) -> None:
        shown = self.store.order(order.id)
        left = cents(shown["total"]) - order.refunded
        if left <= 0:
            return
        if by_status:  # the merchant sets it "refunded": wc_order_fully_refunded refunds all that is left
            self.store.put(f"orders/{order.id}", {"status": "refunded"})
            self.refunded(order, left, left)
            self.log.append(f"#{order.id}: set refunded ({money(left)} was left)")
            return
        if percent is None:
            amount = left
        else:
            amount = max(1, left * percent // 100)
            if amount >= left:
                return
        line = shown["line_items"][0]
        unit = cents(line["total"]) // line["quantity"]
        if by_line and percent is not None and unit < left:
            amount = unit
            body = {
                "amount": money(amount),
                "reason": "Returned",
                "api_refund": False,
                "restock_items": False,
                "line_items": [{"id": line["id"], "quantity": 1, "refund_total": money(unit), "refund_tax": []}],
            }
            self.store.post(f"orders/{order.id}/refunds", body)
            how = "one item"
        else:
            self.store.refund(order.id, money(amount))
            how = "the rest" if amount == left else "amount"
        self.refunded(order, amount, left)
        self.log.append(f"#{order.id}: refund {money(amount)} ({how}, {money(left)} was left)")

    @staticmethod
    def refunded(order: ShopOrder, amount: int, left: int) -> None:
        order.refunds.append(amount)
        if order.card_paid == 0:
            order.refunded_before_card += amount
        if amount == left:
            order.status = "refunded"  # wc_create_refund: a refund of all that is left sets the order refunded

    def fail(self, order: ShopOrder) -> None:
        """The rest's payment did not go through: the order waits, its wallet part on it."""
        self.store.put(f"orders/{order.id}", {"status": "failed"})
        order.status = "failed"
        self.log.append(f"#{order.id}: failed")

    def cancel(self, order: ShopOrder) -> None:
        self.store.put(f"orders/{order.id}", {"status": "cancelled"})
        order.status = "cancelled"
        self.log.append(f"#{order.id}: cancelled")

    def run(self, op: tuple) -> None:
        kind, *args = op
        orders = self.books.orders
        if kind == "credit":
            self.credit(args[0])
        elif kind == "wallet":
            self.wallet_order(self.products[args[0]], *args[1:])
        elif kind == "partial":
            self.partial_order(self.products[args[0]], *args[1:])
        elif kind == "card":
            self.card_order(self.products[args[0]], args[1])
        elif kind == "pay":
            order = pick(orders, args[0], lambda o: o.kind == "partial" and o.status in AWAITING)
            if order:
                self.pay_rest(order)
        elif kind == "fail":
            order = pick(orders, args[0], lambda o: o.kind == "partial" and o.status in ("pending", "on-hold"))
            if order:
                self.fail(order)
        elif kind in ("refund", "refund_rest"):
            order = pick(orders, args[0], lambda o: o.status != "refunded")
            if order:
                if kind == "refund":
                    self.refund(order, args[1], by_line=args[2])
                else:
                    self.refund(order, None, by_status=args[1])
        elif kind == "cancel":
            order = pick(
                orders,
                args[0],
                lambda o: (
                    (o.kind == "partial" and o.status in AWAITING) or (o.kind == "wallet" and o.status == "processing")
                ),
            )
            if order:
                self.cancel(order)
        self.bridge.settle()

    # the checks

    def check_order_on_the_shop(self, order: ShopOrder) -> None:
        """The shop's side of a payment the bridge made: what it asks, what it says the wallet paid."""
        shown = self.store.order(order.id)
        fee = -sum(cents(line["total"]) for line in shown["fee_lines"] if line["name"] == FEE)
        if order.kind == "partial" and order.status in ("pending", "on-hold") and not order.refunds:
            assert (shown["status"], fee, cents(shown["total"])) == (
                order.status,
                order.wallet_paid,
                order.goods - order.wallet_paid,
            ), self.story()
        elif order.kind == "wallet" and order.status == "processing" and not order.refunds:
            assert (shown["status"], cents(shown["total"])) == ("processing", order.goods), self.story()

    def check(self) -> None:
        for order in self.books.orders:
            self.check_order_on_the_shop(order)
            assert self.store.order(order.id)["status"] == order.status, self.story()
        assert self.bridge.balance(self.customer) == self.books.balance(), self.story()

    def check_statement(self) -> None:
        lines = [line for line in self.bridge.statement(self.customer) if line["unit"] == "money"]
        assert sum(line["amount"] for line in lines) == self.books.balance(), self.story()
        assert all(line["balance_after"] is None or line["balance_after"] >= 0 for line in lines), self.story()
        for order in self.books.orders:
            mine = [line["amount"] for line in lines if str(line["order_id"]) == str(order.id)]
            back, taken = sum(a for a in mine if a > 0), -sum(a for a in mine if a < 0)
            assert back <= taken + order.refunded, self.story()  # never more back than paid from it and refunded
            assert back - taken == order.net(), f"order #{order.id}: {mine}\n{self.story()}"
        verify = self.bridge.cli("ledger", "verify", check=False)
        assert verify.returncode == 0, verify.stdout + verify.stderr

    def story(self) -> str:
        books = "; ".join(
            f"#{o.id} {o.kind} {o.status} goods {money(o.goods)} W {money(o.wallet_paid)} C {money(o.card_paid)} "
            f"R {money(o.refunded)} back {money(o.back_to_wallet())}"
            for o in self.books.orders
        )
        return "\n".join([*self.log, f"books: {books}", f"expected balance {money(self.books.balance())}"])


EXPLORE_SEED = os.environ.get("PROPERTY_AUDIT_SEED")


def audited(examples: int):
    """Few examples, reproducible in CI (PROPERTY_AUDIT_SEED / PROPERTY_AUDIT_EXAMPLES explore further)."""

    def wrap(test):
        return seed(int(EXPLORE_SEED or 0))(
            run_settings(
                max_examples=int(os.environ.get("PROPERTY_AUDIT_EXAMPLES", examples)),
                deadline=None,
                derandomize=not EXPLORE_SEED,
                database=None,
                phases=(Phase.explicit, Phase.generate),  # no shrinking against a real store: the story is printed
                suppress_health_check=[
                    HealthCheck.function_scoped_fixture,
                    HealthCheck.too_slow,
                    HealthCheck.data_too_large,
                ],
                print_blob=False,
            )(test)
        )

    return wrap


def live(bridge, store, products, monkeypatch, set_rules, destination, ops) -> None:
    # Hypothesis seeds `random` for each example, and the woocommerce client draws its OAuth nonces from it: the
    # store would refuse the second example's requests ("nonce has already been used").
    monkeypatch.setattr(oauth, "randint", random.SystemRandom().randint)
    failed = bridge.failed_deliveries()
    set_rules(refund_destination=destination)
    life = Life(bridge, store, products, destination)
    for op in ops:
        life.run(op)
        note(life.log[-1] if life.log else "")
        life.check()
    life.check_statement()
    assert bridge.failed_deliveries() == failed, life.story()
    print(life.story(), end="\n\n")  # shown with -s: what the example did


@audited(12)
@given(destination=DESTINATIONS, ops=LIVES)
def test_random_lives_of_wallet_and_card_orders_keep_the_shops_books(
    bridge, store, settings, mug, vase, monkeypatch, destination, ops
):
    live(bridge, store, [mug, vase], monkeypatch, settings, destination, ops)


@audited(8)
@given(destination=DESTINATIONS, ops=PARTLY_PAID_LIVES)
def test_random_lives_of_one_partly_paid_order_keep_the_shops_books(
    bridge, store, settings, mug, vase, monkeypatch, destination, ops
):
    live(bridge, store, [mug, vase], monkeypatch, settings, destination, ops)


# -- findings, minimised from the property (fixed in the same session: each failed before)


def test_a_partly_paid_order_placed_on_hold_is_left_for_the_customer_to_pay(bridge, store, customer, vase):
    bridge.credit(customer, 264)
    order = store.new_order(customer, [(vase, 1)], status="on-hold")
    bridge.settle()

    shown = store.order(order["id"])
    fee = [(line["name"], line["total"]) for line in shown["fee_lines"]]
    assert (fee, cents(shown["total"]), bridge.balance(customer)) == ([(FEE, "-2.64")], 735, 0)
    assert any("€7.35 is left to pay" in note for note in store.customer_notes(order["id"]))
    assert shown["status"] == "pending"  # WooCommerce's order-pay page takes pending and failed orders only
