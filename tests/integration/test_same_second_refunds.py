"""A refund the bridge applied that a delivery of the same second does not list: the shop dates changes to the second,
so that state may be the older one, delivered late (several workers, background queues), as well as a deletion.
Only the shop can say: the bridge reads the order back and takes the refund for deleted only when the order read back
does not list it. Found by the bank test on a top-up (session 14), and the same for every order (session 15)."""

from __future__ import annotations

from dataclasses import replace

from bridge.ledger import verify
from bridge.order_rules import apply_order
from tests.integration.test_order_rules import ACTOR, balance, configure, messages, refunds
from tests.integration.test_review_session11 import card_paid_rest, partly_paid


def read_backs(session) -> int:
    return sum(kind == "order.read_back" for kind, _ in messages(session))


def refunded_to_the_wallet(session, shop):
    """10.00 of 39.98 paid by the wallet, the rest by card; a 15.00 refund to the wallet at minute 2."""
    shop = configure(session, shop, refund_destination="wallet")
    partly_paid(session, shop)
    apply_order(session, shop, card_paid_rest(1), ACTOR)
    apply_order(session, shop, card_paid_rest(2, refunds=refunds((70, 1_500))), ACTOR)
    assert balance(session, shop) == 1_500
    return shop


def test_the_state_before_a_refund_delivered_after_it_in_the_same_second_takes_nothing_back(session, shop):
    shop = refunded_to_the_wallet(session, shop)
    apply_order(session, shop, card_paid_rest(2), ACTOR)  # the state of the same second before the refund, late
    assert balance(session, shop) == 1_500
    assert read_backs(session) == 1  # the shop is asked which state is the newer
    apply_order(session, shop, card_paid_rest(3, refunds=refunds((70, 1_500))), ACTOR)
    assert balance(session, shop) == 1_500
    assert verify(session) == []


def test_a_refund_the_order_read_back_does_not_list_was_deleted(session, shop):
    shop = refunded_to_the_wallet(session, shop)
    apply_order(session, shop, card_paid_rest(2), ACTOR)
    apply_order(session, shop, replace(card_paid_rest(2), read_back=True), ACTOR)  # what the shop answers: deleted
    assert balance(session, shop) == 0
    assert verify(session) == []


def test_a_refund_missing_from_a_newer_state_was_deleted_without_asking(session, shop):
    shop = refunded_to_the_wallet(session, shop)
    apply_order(session, shop, card_paid_rest(3), ACTOR)
    assert balance(session, shop) == 0 and read_backs(session) == 0


def test_a_refund_made_and_deleted_between_two_deliveries_listed_by_a_late_older_state_credits_nothing(session, shop):
    """Found on the real store (session 15): the merchant refunds 15.00 at minute 2 and deletes it; the bridge sees
    minute 3 (no refund), then minute 2's state late. The newest seen listed every refund standing: 15.00 was never
    credited, and is not now."""
    shop = configure(session, shop, refund_destination="wallet")
    partly_paid(session, shop)
    apply_order(session, shop, card_paid_rest(1), ACTOR)
    apply_order(session, shop, card_paid_rest(3), ACTOR)
    apply_order(session, shop, card_paid_rest(2, refunds=refunds((70, 1_500))), ACTOR)  # late, older
    assert balance(session, shop) == 0 and read_backs(session) == 0
    apply_order(session, shop, card_paid_rest(4, refunds=refunds((71, 800))), ACTOR)  # a refund made since counts
    assert balance(session, shop) == 800
    assert verify(session) == []
