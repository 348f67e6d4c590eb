"""Session 13: an outside audit of points, bonuses, cashback, tips, lots and withdrawals on the real store.

Checked from the shop's side: a sign-up bonus is given once per customer; bonus and promotional money (sign-up
bonus, cashback, converted points) never becomes withdrawable cash, and the customer's own deposit stays
withdrawable once the shop gave back what it took from it; points given for a refund follow the refund (a refund
deleted in the shop takes its points back); points are never converted twice; every movement is in the statement,
which adds up to the balance; `ledger verify` stays clean.
Six findings, fixed in the same session (their tests failed before): the sign-up bonus twice for a customer deleted
and registered again (now once per e-mail address); a refund restoring a tip's lot (bonus money made withdrawable);
cashback taken back from the deposit; a deleted refund's points (given, or clawed back) left as they were; converted
points' money kept by a refunded order.
"""

from __future__ import annotations

import os
import random
import secrets

import pytest
from hypothesis import HealthCheck, Phase, given, note, seed
from hypothesis import settings as run_settings
from hypothesis import strategies as st
from woocommerce import oauth

from tests.e2e.real_store.harness import CARD_METHOD, cents, money

pytestmark = pytest.mark.real_store


# -- helpers (the harness has no top-up, tip, conversion or refund-request helpers)


def topped_up(bridge, store, customer, amount: int) -> dict:
    """A top-up order made by the bridge and paid by card in the store: deposited, withdrawable money."""
    made = bridge.api("post", f"/customers/{customer['id']}/topups", {"amount": amount}, expect=201)
    store.put(
        f"orders/{made['order_id']}", {"payment_method": CARD_METHOD, "payment_method_title": "Card", "set_paid": True}
    )
    bridge.settle()
    return made


def card_order(store, customer, items) -> dict:
    return store.new_order(customer, items, payment_method=CARD_METHOD, payment_method_title="Card", set_paid=True)


def statement_adds_up(bridge, customer) -> None:
    """Every money movement is in the statement with a reason, and they add up to the balance; the ledger verifies."""
    lines = bridge.statement(customer)
    money_lines = [line for line in lines if line["unit"] == "money"]
    assert all(line["reason"] for line in lines)
    wallet = bridge.wallet(customer)
    assert sum(line["amount"] for line in money_lines) == wallet["balance"]
    assert sum(line["amount"] for line in lines if line["unit"] == "points") == wallet["points"]
    verify = bridge.cli("ledger", "verify", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def touch(store, order_id) -> None:
    """A refund's deletion sends no webhook: the merchant's next save of the order does."""
    store.put(f"orders/{order_id}", {"meta_data": [{"key": "_audit13", "value": secrets.token_hex(3)}]})


# -- sign-up bonuses


def test_a_customer_deleted_and_registered_again_gets_the_signup_bonus_once(bridge, store, settings):
    settings(signup_bonus=500)
    first = store.new_customer("bea")
    bridge.settle()
    assert bridge.balance(first) == 500
    assert store.api.delete(f"customers/{first['id']}", params={"force": "true"}).status_code == 200
    again = store.post("customers", {"email": first["email"], "first_name": "Bea", "last_name": "Tester"})
    bridge.settle()

    assert again["id"] != first["id"]  # WooCommerce gives the same person a new id
    # one person, one welcome bonus: the shop's "credited once to each new customer"
    assert bridge.balance(first) + bridge.balance(again) == 500


def test_a_redelivered_customer_created_gives_the_bonus_once_and_a_guest_gets_nothing(bridge, store, settings, mug):
    settings(signup_bonus=500, points_per_currency_unit=1)
    customer = store.new_customer("cal")
    bridge.settle()
    hook = next(h for h in store.our_webhooks(bridge.delivery_url) if h["topic"] == "customer.created")
    store.ctl("redeliver", str(hook["id"]), str(customer["id"]))
    store.put(f"customers/{customer['id']}", {"first_name": "Callum"})  # customer.updated: no bonus either
    bridge.settle()
    assert bridge.balance(customer) == 500
    assert [line["kind"] for line in bridge.statement(customer)] == ["signup_bonus"]

    guest = store.post(  # a guest order paid by card: no wallet, no points, nothing moves and nothing fails
        "orders",
        {
            "customer_id": 0,
            "payment_method": CARD_METHOD,
            "set_paid": True,
            "billing": {"country": "DE", "email": f"guest-{secrets.token_hex(3)}@example.test"},
            "line_items": [{"product_id": mug["id"], "quantity": 1}],
        },
    )
    failed = bridge.failed_deliveries()
    bridge.settle()
    assert store.order(guest["id"])["status"] == "processing"
    assert bridge.failed_deliveries() == failed
    statement_adds_up(bridge, customer)


# -- promotional money never becomes withdrawable; deposits stay withdrawable


def test_a_tip_then_a_refund_never_makes_bonus_money_withdrawable(bridge, store, settings, mug):
    """A tip taken from the deposit, then the order's wallet payment (taken from the bonus) refunded in full: the
    refund must go back to the bonus it came from, so the deposit stays 10.00 - 2.00 (the tip)."""
    settings(signup_bonus=1999, tips_enabled=True)
    customer = store.new_customer("tia")
    bridge.settle()
    topped_up(bridge, store, customer, 1000)
    assert bridge.wallet(customer)["withdrawable"] == 1000
    order = store.new_order(customer, [(mug, 1)])  # 19.99: the bonus lot is the oldest, spent first
    bridge.settle()
    assert store.order(order["id"])["status"] == "processing" and bridge.balance(customer) == 1000
    bridge.api("post", f"/orders/{order['id']}/tips", {"amount": 200}, expect=201)  # from the deposit
    assert bridge.wallet(customer)["withdrawable"] == 800

    store.refund(order["id"], "19.99")  # the order's wallet payment comes back: it was bonus money
    bridge.settle()

    wallet = bridge.wallet(customer)
    assert wallet["balance"] == 1999 + 1000 - 200
    assert wallet["withdrawable"] == 800  # deposited 10.00, tipped 2.00 of it: never the bonus's 2.00
    bridge.api("post", f"/customers/{customer['id']}/withdrawals", {"amount": 1000}, expect=422)
    statement_adds_up(bridge, customer)


def test_cashback_taken_back_leaves_the_customers_own_deposit_withdrawable(bridge, store, settings, customer, mug):
    """Deposit 50.00, pay 19.99 from it, 10 % cashback (1.99, promotional); the order refunded in full: the cashback
    goes, the deposit is whole again. Taking the cashback back from the deposit instead leaves 1.99 of the customer's
    own money locked as promotional credit."""
    settings(cashback_kind="percent", cashback_value=1000, cashback_on="paid")
    topped_up(bridge, store, customer, 5000)
    order = store.new_order(customer, [(mug, 1)])
    bridge.settle()
    assert store.order(order["id"])["status"] == "processing"
    assert bridge.balance(customer) == 5000 - 1999 + 199

    store.refund(order["id"], "19.99")
    bridge.settle()

    wallet = bridge.wallet(customer)
    assert wallet["balance"] == 5000
    assert wallet["withdrawable"] == 5000  # all of it is the customer's deposit
    statement_adds_up(bridge, customer)


def test_cashback_converted_points_and_bonus_are_never_withdrawable(bridge, store, settings, mug):
    settings(
        signup_bonus=300,
        cashback_kind="fixed",
        cashback_value=150,
        cashback_on="paid",
        points_per_currency_unit=10,
        points_conversion_points=100,
        points_conversion_value=100,
    )
    customer = store.new_customer("pia")
    bridge.settle()
    card_order(store, customer, [(mug, 1)])  # earns 199 points and 1.50 cashback
    bridge.settle()
    assert bridge.wallet(customer)["points"] == 199
    bridge.api("post", f"/customers/{customer['id']}/points/conversions", {}, expect=201)
    topped_up(bridge, store, customer, 500)

    wallet = bridge.wallet(customer)
    assert (wallet["balance"], wallet["points"], wallet["withdrawable"]) == (300 + 150 + 100 + 500, 99, 500)
    bridge.api("post", f"/customers/{customer['id']}/withdrawals", {"amount": 501}, expect=422)
    statement_adds_up(bridge, customer)


# -- points


def test_points_given_for_a_refund_leave_when_the_shop_deletes_the_refund(bridge, store, settings, customer, mug):
    """The customer takes a refund of a card-paid order as points (a refund request); the merchant deletes the refund
    in the shop: the shop refunded nothing, so the points it stood for go."""
    settings(points_conversion_points=100, points_conversion_value=100)
    order = card_order(store, customer, [(mug, 1)])
    bridge.settle()
    bridge.api("post", f"/orders/{order['id']}/refunds", {"amount": 1000, "destination": "points"}, expect=202)
    bridge.settle()
    refunds = store.order(order["id"])["refunds"]
    assert [cents(r["total"]) for r in refunds] == [-1000]
    assert bridge.wallet(customer)["points"] == 1000  # 10.00 as points at 100 points per 1.00

    response = store.api.delete(f"orders/{order['id']}/refunds/{refunds[0]['id']}", params={"force": "true"})
    assert response.status_code == 200, response.text[:300]
    touch(store, order["id"])
    bridge.settle()

    assert store.order(order["id"])["refunds"] == []
    assert bridge.wallet(customer)["points"] == 0  # the shop refunded nothing now
    statement_adds_up(bridge, customer)


def test_points_a_deleted_refund_took_back_are_earned_again(bridge, store, settings, customer, mug):
    """A refund takes back its share of the order's points; deleted in the shop, the order is paid in full again and
    earns its points again (the refund's money leaves the wallet again, the points must come back)."""
    settings(points_per_currency_unit=1)
    order = card_order(store, customer, [(mug, 2)])  # 39.98 paid by card: 39 points
    bridge.settle()
    assert bridge.wallet(customer)["points"] == 39
    refund = store.refund(order["id"], "19.99")
    bridge.settle()
    assert bridge.wallet(customer)["points"] == 39 - 19

    response = store.api.delete(f"orders/{order['id']}/refunds/{refund['id']}", params={"force": "true"})
    assert response.status_code == 200, response.text[:300]
    touch(store, order["id"])
    bridge.settle()

    wallet = bridge.wallet(customer)
    assert wallet["balance"] == 0  # the refund's 19.99 credit left again
    assert wallet["points"] == 39
    statement_adds_up(bridge, customer)


def test_automatically_converted_points_are_taken_back_when_the_order_is_refunded(
    bridge, store, settings, customer, mug
):
    """With automatic conversion on, every order's points become wallet money at once; refunded in full, the order
    must not leave that money behind (the customer paid nothing in the end)."""
    settings(points_per_currency_unit=10, points_auto_convert_threshold=100, refund_destination="original")
    order = card_order(store, customer, [(mug, 1)])  # 199 points, converted at once: 1.00 (100 points) + 99 left
    bridge.settle()
    wallet = bridge.wallet(customer)
    assert (wallet["balance"], wallet["points"]) == (100, 99)

    store.refund(order["id"], "19.99")  # to the card: the customer has all their money back
    bridge.settle()

    wallet = bridge.wallet(customer)
    # the order earned nothing in the end: no points left, and no money from its points
    assert wallet["points"] == 0
    assert wallet["balance"] == 0
    statement_adds_up(bridge, customer)


def test_a_conversion_is_made_once_and_points_never_go_below_zero(bridge, store, settings, customer, mug):
    settings(points_per_currency_unit=10, points_conversion_points=100, points_conversion_value=50)
    order = card_order(store, customer, [(mug, 1)])  # 199 points
    bridge.settle()
    path = f"/customers/{customer['id']}/points/conversions"
    first = bridge.api("post", path, {"points": 150}, key="conv-13-a", expect=201)
    again = bridge.api("post", path, {"points": 150}, key="conv-13-a", expect=201)
    assert (first["transaction_id"], again["replayed"]) == (again["transaction_id"], True)
    assert bridge.wallet(customer)["points"] == 99 and bridge.balance(customer) == 50  # one whole step only
    bridge.api("post", path, {"points": 100}, key="conv-13-b", expect=409)  # 99 left: not enough

    store.refund(order["id"], "19.99")  # the order's 199 points: 99 are still there, 100 were converted
    bridge.settle()
    wallet = bridge.wallet(customer)
    assert wallet["points"] == 0 and wallet["points"] >= 0
    statement_adds_up(bridge, customer)


# -- a property: random short lives of points, cashback, conversions, adjustments, top-ups


EXPLORE_SEED = os.environ.get("PROPERTY_AUDIT_SEED")

STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("card"), st.integers(1, 2)),
        st.tuples(st.just("wallet"), st.integers(1, 2)),
        st.tuples(st.just("refund"), st.integers(0, 5), st.sampled_from([25, 50, 100])),
        st.tuples(st.just("cancel"), st.integers(0, 5)),
        st.tuples(st.just("convert")),
        st.tuples(st.just("adjust"), st.sampled_from(["credit", "debit"]), st.sampled_from([100, 700])),
        st.tuples(st.just("topup")),
    ),
    min_size=3,
    max_size=6,
)


class PointsLife:
    """The shop's books: what the customer paid per order, what the shop refunded, and what the shop's rules give
    (1 point per whole euro of items, 100 points = 1.00, cashback 5 % on paid orders, all promotional)."""

    def __init__(self, bridge, store, customer, mug):
        self.bridge, self.store, self.customer, self.mug = bridge, store, customer, mug
        self.orders: list[dict] = []  # {id, kind, paid, refunded, status}
        self.deposited = 0
        self.debited = False  # a merchant debit may take deposited money
        self.log: list[str] = []

    def funds(self) -> int:
        return self.bridge.balance(self.customer)

    def run(self, step) -> None:
        kind, *args = step
        if kind == "card":
            made = card_order(self.store, self.customer, [(self.mug, args[0])])
            self.orders.append({"id": made["id"], "kind": "card", "paid": cents(made["total"]), "refunded": 0})
            self.log.append(f"#{made['id']} card {made['total']}")
        elif kind == "wallet":
            goods = 1999 * args[0]
            if self.funds() < goods:
                return
            made = self.store.new_order(self.customer, [(self.mug, args[0])])
            self.bridge.settle()
            assert self.store.order(made["id"])["status"] == "processing", self.story()
            self.orders.append({"id": made["id"], "kind": "wallet", "paid": goods, "refunded": 0})
            self.log.append(f"#{made['id']} wallet {money(goods)}")
        elif kind in ("refund", "cancel"):
            live = [o for o in self.orders if o["refunded"] < o["paid"] and o.get("status") != "cancelled"]
            if not live:
                return
            order = live[args[0] % len(live)]
            if kind == "cancel":
                if order["refunded"] or order["kind"] == "card":
                    return
                self.store.put(f"orders/{order['id']}", {"status": "cancelled"})
                order["status"] = "cancelled"
                self.log.append(f"#{order['id']} cancelled")
            else:
                amount = min(order["paid"] - order["refunded"], max(1, order["paid"] * args[1] // 100))
                self.store.refund(order["id"], money(amount))
                order["refunded"] += amount
                self.log.append(f"#{order['id']} refunded {money(amount)}")
        elif kind == "convert":
            points = self.bridge.wallet(self.customer)["points"]
            expect = 201 if points >= 100 else 422
            self.bridge.api("post", f"/customers/{self.customer['id']}/points/conversions", {}, expect=expect)
            self.log.append(f"convert {points} points ({expect})")
        elif kind == "adjust":
            direction, amount = args
            if direction == "debit" and self.bridge.wallet(self.customer)["available"] < amount:
                return
            self.bridge.api(
                "post",
                f"/customers/{self.customer['id']}/adjustments",
                {"direction": direction, "amount": amount, "reason": "audit 13"},
                expect=201,
            )
            self.debited |= direction == "debit"
            self.log.append(f"merchant {direction} {money(amount)}")
        elif kind == "topup":
            topped_up(self.bridge, self.store, self.customer, 2500)
            self.deposited += 2500
            self.log.append("top-up 25.00")
        self.bridge.settle()

    def check(self) -> None:
        wallet = self.bridge.wallet(self.customer)
        assert wallet["points"] >= 0 and wallet["balance"] >= 0, self.story()
        assert wallet["withdrawable"] <= self.deposited, self.story()
        spent = any(
            o["kind"] == "wallet" and o.get("status") != "cancelled" and o["refunded"] < o["paid"] for o in self.orders
        )
        if not spent and not self.debited:  # every deposit is unspent: all of it may leave as cash
            assert wallet["withdrawable"] == self.deposited, self.story()
        lines = self.bridge.statement(self.customer)
        assert sum(line["amount"] for line in lines if line["unit"] == "money") == wallet["balance"], self.story()
        for order in self.orders:
            mine = [line for line in lines if str(line["order_id"]) == str(order["id"])]
            back = sum(line["amount"] for line in mine if line["unit"] == "money" and line["amount"] > 0)
            taken = -sum(line["amount"] for line in mine if line["unit"] == "money" and line["amount"] < 0)
            # what comes back for an order (refunds, reversals, cashback) never exceeds what it took and the shop
            # refunded, plus the cashback its rules give on what was kept (5 % of what was paid at most)
            refunded = order["paid"] if order.get("status") == "cancelled" else order["refunded"]
            wallet_paid = order["paid"] if order["kind"] == "wallet" else 0
            assert back - taken <= refunded - wallet_paid + order["paid"] * 5 // 100, self.story()
            points = sum(line["amount"] for line in mine if line["unit"] == "points")
            refunds = sum(1 for line in mine if line["kind"] == "points_clawback")
            # what the order still holds, by what was kept (each pro-rata clawback may round one point down)
            assert 0 <= points <= (order["paid"] - refunded) // 100 + refunds, self.story()

    def story(self) -> str:
        return "\n".join(self.log)


def audited(examples: int):
    def wrap(test):
        return seed(int(EXPLORE_SEED or 13))(
            run_settings(
                max_examples=int(os.environ.get("PROPERTY_AUDIT_EXAMPLES", examples)),
                deadline=None,
                derandomize=not EXPLORE_SEED,
                database=None,
                phases=(Phase.explicit, Phase.generate),
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
                print_blob=False,
            )(test)
        )

    return wrap


@audited(2)
@given(steps=STEPS)
def test_random_lives_of_points_cashback_and_adjustments_keep_the_shops_books(
    bridge, store, settings, mug, monkeypatch, steps
):
    monkeypatch.setattr(oauth, "randint", random.SystemRandom().randint)
    settings(
        points_per_currency_unit=1,
        points_conversion_points=100,
        points_conversion_value=100,
        cashback_kind="percent",
        cashback_value=500,
        cashback_on="paid",
    )
    customer = store.new_customer("pat")
    bridge.settle()
    life = PointsLife(bridge, store, customer, mug)
    life.run(("topup",))
    failed = bridge.failed_deliveries()
    for step in steps:
        life.run(step)
        note(life.log[-1] if life.log else "")
        life.check()
    verify = bridge.cli("ledger", "verify", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert bridge.failed_deliveries() == failed, life.story()
