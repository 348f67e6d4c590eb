"""Found on the real store in session 14 (tests/e2e/real_store/test_async_money_audit_session14.py), held here on both
databases at the rules' level: an order the wallet paid whole, raised beyond what the wallet could pay (the bridge
reopens it: its 19.99 becomes the wallet part, the shop asks the rest), refunded in part before anyone paid the rest,
then cancelled. WooCommerce keeps the date the wallet's payment set, so the order looked paid by card: the refund
counted as card money and the cancellation gave the 19.99 back as well (24.99 back for 19.99 paid)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bridge import orders
from bridge.ledger import verify
from bridge.order_rules import apply_order
from tests.integration.test_order_rules import ACTOR, balance, configure, fund, order, refunds
from tests.integration.test_review_session11 import pushed

PAID_AT = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)  # set by the wallet's payment, kept by WooCommerce for good


def at(minute: int) -> datetime:
    return PAID_AT + timedelta(minutes=minute)


def paid_whole_then_raised(session, shop, **raised) -> None:
    fund(session, shop, 1_999)
    apply_order(session, shop, order(total=1_999, modified_at=PAID_AT), ACTOR)
    pushed(session)  # the shop marked it paid (processing), dated paid now
    assert balance(session, shop) == 0
    shown = order(status="processing", phase=orders.PAID, total=2_998, paid_at=PAID_AT, modified_at=at(1))
    apply_order(session, shop, replace(shown, wallet_fees=0, **raised), ACTOR)
    pushed(session)  # the shop reopened it: pending, the wallet's 19.99 a fee line


def the_rest_paid_by_card_after_reopening(session, shop):
    """Paid whole, raised, reopened (pending, the rest asked), then the rest paid by card: the shop and that state."""
    shop = configure(session, shop, partial_payments=True, refund_destination="wallet")
    paid_whole_then_raised(session, shop)
    reopened = order(total=999, wallet_fees=1_999, paid_at=PAID_AT, modified_at=at(2))
    apply_order(session, shop, reopened, ACTOR)
    paid = replace(reopened, status="processing", phase=orders.PAID, modified_at=at(3))
    apply_order(session, shop, paid, ACTOR)
    return shop, paid


@pytest.mark.parametrize("then", [("cancelled", orders.CANCELLED), ("refunded", orders.REFUNDED)])
def test_a_raised_order_refunded_before_the_rest_is_paid_returns_what_the_wallet_paid(session, shop, then):
    shop = configure(session, shop, partial_payments=True, refund_destination="wallet")
    paid_whole_then_raised(session, shop)
    reopened = order(total=999, wallet_fees=1_999, paid_at=PAID_AT, modified_at=at(2))  # pending: the rest asked
    apply_order(session, shop, reopened, ACTOR)
    refunded = replace(reopened, refunds=refunds((1, 500)), modified_at=at(3))
    apply_order(session, shop, refunded, ACTOR)
    # set refunded, WooCommerce refunds what is left of the total (4.99) on its own
    left = refunds((1, 500), (2, 499)) if then[1] == orders.REFUNDED else refunded.refunds
    apply_order(session, shop, replace(refunded, status=then[0], phase=then[1], refunds=left, modified_at=at(4)), ACTOR)

    assert balance(session, shop) == 1_999
    assert verify(session) == []


def test_a_raised_order_refunded_in_the_raises_delivery_then_cancelled_returns_what_the_wallet_paid(session, shop):
    """Background delivery: the edit and the refund seen at once, the order still processing from the wallet's
    payment."""
    shop = configure(session, shop, partial_payments=True, refund_destination="wallet")
    paid_whole_then_raised(session, shop, refunds=refunds((1, 500)))
    cancelled = order(status="cancelled", phase=orders.CANCELLED, total=999, wallet_fees=1_999, paid_at=PAID_AT)
    apply_order(session, shop, replace(cancelled, refunds=refunds((1, 500)), modified_at=at(2)), ACTOR)

    assert balance(session, shop) == 1_999
    assert verify(session) == []


def test_the_rest_paid_after_the_reopening_is_card_money_its_refunds_may_go_to_the_wallet(session, shop):
    """The other side of the rule: once a paid state newer than the reopened one shows the rest paid, a refund is
    the card's money first (the shop refunds it, to the wallet by the shop's destination) and the wallet part stays
    paid: 5.00 to the wallet, and the order keeps the 19.99."""
    shop, paid = the_rest_paid_by_card_after_reopening(session, shop)
    apply_order(session, shop, replace(paid, refunds=refunds((1, 500)), modified_at=at(4)), ACTOR)

    assert balance(session, shop) == 500
    assert verify(session) == []


def cashback_on_completion(session, shop):
    """10 % cashback once an order is completed; refunds to the card."""
    settings = {"cashback_kind": "percent", "cashback_value": 1_000, "cashback_on": "completed"}
    return configure(session, shop, **settings, refund_destination="original")


def test_cashback_on_completion_is_on_what_the_refunds_before_it_left_paid(session, shop):
    """Found on the real store (session 14): 10 % cashback on completion; a 41.48 card order, 10.00 refunded to the
    card while it was processing, then completed: the cashback was 4.14, on the whole total, though the customer
    kept 31.48 (3.14)."""
    shop = cashback_on_completion(session, shop)
    card = order(status="processing", phase=orders.PAID, payment_method="stripe", refunds_complete=True)
    apply_order(session, shop, replace(card, refunds=refunds((1, 1_000)), modified_at=at(1)), ACTOR)
    assert balance(session, shop) == 0
    completed = replace(card, status="completed", refunds=refunds((1, 1_000)), modified_at=at(2))
    apply_order(session, shop, completed, ACTOR)

    assert balance(session, shop) == 314
    assert verify(session) == []
