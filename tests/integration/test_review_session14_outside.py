"""Outside review of session 14's changes (b39145c..HEAD): three faults found in them, fixed; each test asserts the
behaviour the change should keep."""

from __future__ import annotations

from dataclasses import replace

from bridge import orders
from bridge.ledger import verify
from bridge.order_rules import apply_order
from tests.integration.test_api import credit
from tests.integration.test_order_rules import ACTOR, balance, order, refunds
from tests.integration.test_reservations import deliver, reserve, wallet
from tests.integration.test_review_session14 import (
    at,
    cashback_on_completion,
    the_rest_paid_by_card_after_reopening,
)


def test_a_fixed_discount_covering_a_small_order_still_lets_the_wallet_check_out(client, shop, services):
    """5.00 off for paying by wallet, a 3.00 order, 100.00 in the wallet: the order's delivery pays it (nothing due,
    the order proceeds), and before the change the checkout reserved 3.00. Now the reservation asks a hold of 0
    (wallet_due = 0) and the checkout is refused with 422 "a hold is a positive amount"."""
    credit(client, shop)
    discount = {"wallet_discount_kind": "fixed", "wallet_discount_value": 500, "partial_payments": False}
    deliver(services, shop, settings=discount, status="checkout-draft", phase=orders.OTHER, total=300)
    placed = reserve(client, shop, amount=300)

    assert placed.status_code == 201, placed.get_json()
    assert placed.get_json()["left_to_pay"] == 0
    deliver(services, shop, total=300)
    assert wallet(client, shop)["balance"] == 10_000


def test_a_reopened_order_paid_by_card_then_refunded_in_full_gives_the_card_money_back(session, shop):
    """The wallet paid 19.99, the total was raised to 29.98, the bridge reopened the order and the card paid the
    9.99 left (processing, newer than the reopened state). The merchant then refunds it in full (status refunded,
    the shop's refund of its 9.99 total), to the wallet by the shop's destination: 9.99 card money and the 19.99 the
    wallet paid are the customer's. paid_in_shop only counts a PAID phase newer than the reopening, so in the
    refunded state the order no longer looks card-paid: the 9.99 is taken as wallet money."""
    shop, paid = the_rest_paid_by_card_after_reopening(session, shop)
    assert balance(session, shop) == 0
    refunded = replace(paid, status="refunded", phase=orders.REFUNDED, refunds=refunds((1, 999)), modified_at=at(4))
    apply_order(session, shop, refunded, ACTOR)

    assert balance(session, shop) == 2_998
    assert verify(session) == []


def test_cashback_on_completion_after_a_refund_counts_the_refund_when_the_order_is_taxed(session, shop):
    """10 % cashback on completion, a 100.00 card order whose items cost 80.00 without tax. Refunded 10.00 after
    completion, the order keeps 7.20 of its 8.00 cashback (the refund's share is taken back). Refunded the same 10.00
    before completion, the new base (paid less card money refunded, 90.00) is capped by the untaxed items (80.00):
    the refund is not counted at all and the cashback is the whole 8.00."""
    shop = cashback_on_completion(session, shop)
    card = order(
        status="processing",
        phase=orders.PAID,
        payment_method="stripe",
        refunds_complete=True,
        total=10_000,
        items_excluding_tax=8_000,
    )
    apply_order(session, shop, replace(card, refunds=refunds((1, 1_000)), modified_at=at(1)), ACTOR)
    completed = replace(card, status="completed", refunds=refunds((1, 1_000)), modified_at=at(2))
    apply_order(session, shop, completed, ACTOR)

    assert balance(session, shop) == 720
    assert verify(session) == []
