"""Property: whatever the merchant does to an order and however WooCommerce delivers it (collapsed, lost and recovered
by `sync`, repeated, reordered), the customer's wallet ends where a small model of the SHOP says.

The model is written from the shop's side — what the customer paid, by wallet and by card, and what the merchant
refunded or cancelled — not from the bridge's records, so it cannot share the bridge's mistakes. Its rules: a refund
returns what it refunds (by card first, for the money the card paid, then wallet money the order still holds); the
shop's refund policy sends the card's part to the wallet or back to the card; a cancellation returns the wallet money
the order holds; the wallet part of a partly paid order returns when the order is refunded in full (refunds made
before the card paid the rest took wallet money; once it is paid, the shop counts them against the card's money, and
the wallet part is held whole again); a failed order's full wallet payment returns, and setting it pending again is a
new attempt; an edited total of a paid order is settled with the wallet, against what the order now costs less what
was refunded of it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from bridge.db import unit_of_work
from bridge.ledger import Actor, verify
from bridge.models import Shop
from bridge.wallets import adjust_wallet
from sync.woocommerce import pull
from tests.e2e.test_e2e_simulator import balances, clock, configure, connected, push, sim  # noqa: F401 - fixtures

MERCHANT = Actor("merchant", "property test")
EXAMPLES = int(os.environ.get("ORDER_PROPERTY_EXAMPLES", "500"))
# Each example plays a whole order over HTTP: shrinking a failure can take minutes, so it is opt-in.
PHASES = tuple(Phase) if os.environ.get("ORDER_PROPERTY_SHRINK") else (Phase.explicit, Phase.generate)

ACTIONS = ("refund", "cancel", "fail_and_retry", "edit", "pay_rest")
DELIVERIES = ("now", "now", "collapse", "lose", "repeat", "reorder")


@dataclass
class ShopModel:
    """One customer's wallet and one order, as the shop and the customer see them (cents)."""

    wallet: int
    partial_payments: bool
    refund_to_wallet: bool
    total: int = 0  # what the shop asks for the order (less the wallet's fee line, if any)
    held: int = 0  # wallet money in the order
    card_paid: int = 0
    card_refunded: int = 0
    refunded: int = 0
    status: str = "pending"
    partial: bool = False
    log: list = field(default_factory=list)
    # edits the wallet cannot pay reopen the order: its wallet part then depends on which of the edits before
    # reached the bridge (a lost one never did), which this model does not follow; scenarios without them say so
    raises_beyond_wallet: bool = True

    def charge(self, total: int) -> None:
        self.total = total
        if total == 0:
            self.status = "processing"
        elif self.wallet >= total:
            self.wallet, self.held, self.status = self.wallet - total, total, "processing"
        elif self.partial_payments and self.wallet > 0:
            self.held, self.total, self.wallet, self.partial = self.wallet, total - self.wallet, 0, True
        else:
            self.status = "unpaid"

    def pay_by_card(self, total: int) -> None:
        self.total, self.card_paid, self.status = total, total, "processing"

    def pay_rest(self) -> None:
        """The card pays the shop's total; refunds made before took wallet money, and now count against it."""
        self.card_paid, self.status = self.total, "processing"
        recounted = min(self.refunded, self.card_paid) - self.card_refunded
        self.card_refunded, self.held = self.card_refunded + recounted, self.held + recounted

    def refund(self, amount: int) -> None:
        card = min(amount, self.card_paid - self.card_refunded)
        wallet_part = min(amount - card, self.held)
        self.card_refunded += card
        self.held -= wallet_part
        self.wallet += wallet_part + (card if self.refund_to_wallet else 0)
        self.refunded += amount
        if self.partial and self.refunded >= self.total:
            self.wallet, self.held = self.wallet + self.held, 0

    def cancel(self) -> None:
        self.wallet, self.held, self.status = self.wallet + self.held, 0, "cancelled"

    def fail_and_retry(self) -> None:
        self.wallet, self.held = self.wallet + self.held, 0
        self.charge(self.total)

    def edit(self, new_total: int) -> None:
        """The order now costs `new_total` less what was refunded of it (never below 0); the wallet holds that."""
        difference = self.edit_difference(new_total)
        if difference <= 0 or self.wallet >= difference:
            self.wallet, self.held, self.total = self.wallet - difference, self.held + difference, new_total
        else:
            self.total, self.partial, self.status = new_total - self.held, True, "pending"

    def edit_difference(self, new_total: int) -> int:
        return max(new_total - self.refunded, 0) - self.held

    def refundable(self) -> int:
        return self.total - self.refunded


scenario = st.fixed_dictionaries(
    {
        "by_wallet": st.booleans(),
        "total": st.one_of(st.just(0), st.integers(1, 20_000)),
        "wallet": st.integers(0, 25_000),
        "partial_payments": st.booleans(),
        "refund_to_wallet": st.booleans(),
        "first_delivery": st.sampled_from(DELIVERIES),
        "steps": st.lists(
            st.tuples(st.sampled_from(ACTIONS), st.integers(1, 10_000), st.sampled_from(DELIVERIES), st.booleans()),
            max_size=5,
        ),
    }
)


class Deliveries:
    """How the shop delivers the next change: at once, collapsed with the next one (WooCommerce's
    background queue), lost, sent twice, or swapped with the next one."""

    def __init__(self, sim):
        self.sim, self.waiting = sim, None

    def before(self, mode: str) -> None:
        if mode in ("collapse", "reorder") and self.waiting is None:
            self.sim.hold_deliveries(coalesce=mode == "collapse")
        elif mode in ("lose", "repeat") and self.waiting is None:
            self.sim.hold_deliveries()

    def after(self, mode: str) -> None:
        if self.waiting is not None:  # the change held back by the previous step goes out with this one
            held, self.waiting = list(self.sim.pending_deliveries), None
            self.sim.flush(held[::-1] if self.reverse else held)
            self.sim.release_deliveries()
        elif mode == "lose":
            self.sim.pending_deliveries.clear()
            self.sim.release_deliveries()
        elif mode == "repeat":
            held = list(self.sim.pending_deliveries)
            self.sim.flush(held + held)
            self.sim.release_deliveries()
        elif mode in ("collapse", "reorder"):
            self.waiting, self.reverse = mode, mode == "reorder"

    def settle(self) -> None:
        self.sim.release_deliveries()


def _amount(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _play(services, sim, clock, shop_id, number: int, case: dict) -> tuple[ShopModel, int]:  # noqa: F811
    model = ShopModel(case["wallet"], case["partial_payments"], case["refund_to_wallet"])
    model.raises_beyond_wallet = case.get("raises_beyond_wallet", True)
    configure(
        services,
        shop_id,
        signup_bonus=0,
        points_per_currency_unit=0,
        partial_payments=model.partial_payments,
        refund_destination="wallet" if model.refund_to_wallet else "original",
    )
    with unit_of_work(services.sessions) as session:
        session.get(Shop, shop_id).last_synced_at = clock.now
    customer = sim.create_customer(f"c{number}@example.test", "Case")["id"]
    if model.wallet:
        with unit_of_work(services.sessions) as session:
            adjust_wallet(
                session,
                session.get(Shop, shop_id),
                str(customer),
                direction="credit",
                amount=model.wallet,
                reason="funds",
                idempotency_key=f"funds-{number}",
                actor=MERCHANT,
            )
    deliveries = Deliveries(sim)
    clock.advance()
    deliveries.before(case["first_delivery"])
    if case["by_wallet"]:
        order_id = sim.place_order(customer, total=_amount(case["total"]), payment_method="wallet")["id"]
        model.charge(case["total"])
    else:
        order_id = sim.place_order(
            customer, total=_amount(case["total"]), payment_method="stripe", status="processing"
        )["id"]
        model.pay_by_card(case["total"])
    deliveries.after(case["first_delivery"])
    _catch_up(services, sim, clock, shop_id, deliveries)  # the payment itself settles before the merchant acts
    for action, size, mode, push_now in case["steps"]:
        clock.advance()
        deliveries.before(mode)
        _act(sim, clock, model, order_id, action, size)
        deliveries.after(mode)
        if push_now:
            push(services)
    _catch_up(services, sim, clock, shop_id, deliveries)
    return model, customer


def _act(sim, clock, model: ShopModel, order_id: int, action: str, size: int) -> None:  # noqa: F811
    if action == "refund" and model.status in ("processing", "cancelled") and model.refundable() > 0:
        amount = min(model.refundable(), size)
        sim.refund(order_id, _amount(amount))
        model.refund(amount)
    elif action == "refund" and model.status == "pending" and model.partial and model.refund_to_wallet:
        # before the rest is paid, part of what the wallet paid (not the whole total: the order stays pending).
        # To the card, its money would go back to the wallet or not depending on whether the bridge saw the
        # refund before the card paid (then wallet money) or only after (then the card's): not modelled.
        amount = min(size, model.held, model.refundable() - 1)
        if amount > 0:
            sim.refund(order_id, _amount(amount))
            model.refund(amount)
    elif action == "cancel" and model.status != "cancelled":
        sim.set_status(order_id, "cancelled")
        model.cancel()
    elif (
        action == "fail_and_retry"
        and model.status == "processing"
        and model.held
        and not model.partial
        and (not model.refunded)
    ):
        sim.set_status(order_id, "failed")
        clock.advance()  # a state in the same second as another could be older or newer: WooCommerce cannot say
        sim.set_status(order_id, "pending")
        model.fail_and_retry()
    elif (
        action == "edit"
        and model.status == "processing"
        and model.held
        and not model.partial
        # after a refund, only edits the wallet settles alone (a raise it cannot pay reopens the order: not modelled),
        # and none below the refunds: a body whose refunds exceed its total is refused when the refund is new to the
        # bridge (its own delivery lost), `refunds_exceed_order`: open, see docs/woocommerce.md
        and (not model.refunded or size >= model.refunded)
        and (model.raises_beyond_wallet and not model.refunded or model.edit_difference(size) <= model.wallet)
    ):
        item = sim.order(order_id)["line_items"][0]["id"]
        sim.update_order(order_id, line_items=[{"id": item, "total": _amount(size)}])
        model.edit(size)
    elif action == "pay_rest" and model.partial and model.status == "pending":
        sim.set_status(order_id, "processing")
        model.pay_rest()


def _catch_up(services, sim, clock, shop_id: int, deliveries: Deliveries) -> None:  # noqa: F811
    """Everything held goes out, the worker pushes, `sync` brings what was lost, the worker pushes again."""
    deliveries.settle()
    for _ in range(3):
        push(services)
        pull.sync_shop(services.sessions, services.secrets, shop_id, timeout=5.0, now=clock)
    push(services)


# Wallet-paid orders the merchant refunds and edits in turn (the scenario above meets few: most of its orders are
# paid by card, partly, or not at all).
edited_and_refunded = st.integers(1, 20_000).flatmap(
    lambda total: st.fixed_dictionaries(
        {
            "by_wallet": st.just(True),
            "total": st.just(total),
            "wallet": st.integers(total, total + 10_000),
            "partial_payments": st.just(False),
            "raises_beyond_wallet": st.just(False),
            "refund_to_wallet": st.booleans(),
            "first_delivery": st.sampled_from(DELIVERIES),
            "steps": st.lists(
                st.tuples(
                    st.sampled_from(("refund", "edit")),
                    st.integers(1, 10_000),
                    st.sampled_from(DELIVERIES),
                    st.booleans(),
                ),
                min_size=2,
                max_size=4,
            ),
        }
    )
)


# Partly paid orders refunded before and after the card pays the rest (the broad scenario meets few).
refunded_around_the_rest = st.integers(2, 20_000).flatmap(
    lambda total: st.fixed_dictionaries(
        {
            "by_wallet": st.just(True),
            "total": st.just(total),
            "wallet": st.integers(1, total - 1),
            "partial_payments": st.just(True),
            "refund_to_wallet": st.just(True),
            "first_delivery": st.sampled_from(DELIVERIES),
            "steps": st.lists(
                st.tuples(
                    st.sampled_from(("refund", "refund", "pay_rest", "cancel")),
                    st.integers(1, 10_000),
                    st.sampled_from(DELIVERIES),
                    st.booleans(),
                ),
                min_size=2,
                max_size=5,
            ),
        }
    )
)


def test_every_order_leaves_the_wallet_where_the_shop_model_says(services, shop, sim, clock, connected):
    _holds(services, shop, sim, clock, scenario, EXAMPLES)


def test_a_wallet_paid_order_refunded_and_edited_in_turn_leaves_the_wallet_where_the_shop_model_says(
    services, shop, sim, clock, connected
):
    _holds(services, shop, sim, clock, edited_and_refunded, max(EXAMPLES // 5, 1))


def test_a_partly_paid_order_refunded_before_and_after_the_rest_is_paid_leaves_the_wallet_where_the_shop_model_says(
    services, shop, sim, clock, connected
):
    _holds(services, shop, sim, clock, refunded_around_the_rest, max(EXAMPLES // 5, 1))


def _holds(services, shop, sim, clock, cases, examples: int) -> None:  # noqa: F811
    shop_id, played = shop.shop.id, iter(range(1_000_000))

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        phases=PHASES,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(case=cases)
    def check(case):
        model, customer = _play(services, sim, clock, shop_id, next(played), case)
        wallet = balances(services, shop_id, customer)[0]
        assert wallet == model.wallet, f"{case} {model}"
        assert wallet - case["wallet"] <= model.card_paid  # never more back than the customer paid another way

    check()
    with unit_of_work(services.sessions) as session:
        assert verify(session) == []
