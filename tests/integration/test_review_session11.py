"""Outside review (session 11) of e45ed1f..HEAD: a deleted full refund holding the wallet part again, what the card
paid of a partly paid order (`card_paid`), Shopify orders in a presentment currency. Tests marked
xfail(strict=True, reason="finding: ...") fail on the reviewed code; the plain ones pin behaviour found right."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from bridge import orders
from bridge.ledger import verify
from bridge.models import OutboxMessage
from bridge.order_rules import apply_order, release_trashed_order
from bridge.orders import TrashedOrder
from bridge.states import OutboxStatus
from tests.e2e.test_e2e_simulator import balances, clock, connected, push, sim  # noqa: F401 - fixtures
from tests.e2e.test_orders_never_paid_and_edited import alices_partly_paid_order
from tests.e2e.test_presentment_currency_session11 import (
    REFUND_ID,
    accept_yen,
    applied,
    customer_body,
    deliver,
    recorded_order,
    refunded,
    shopify,  # noqa: F401 - fixture
    wallet,
    yen_order,
    yen_refund,
)
from tests.e2e.test_wallet_orders_on_the_shop import fund as fund_by_api
from tests.integration.test_order_rules import ACTOR, balance, configure, fund, messages, order, paid, refunds

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def partly_paid(session, shop, *, funded=1_000, total=3_998) -> None:
    """The wallet pays `funded` of `total` (the shop then asks total - funded), state at T0."""
    fund(session, shop, funded)
    apply_order(session, shop, order(total=total, modified_at=at(0)), ACTOR)
    assert balance(session, shop) == 0
    pushed(session)  # the wallet's fee line is on the shop's order before the card can pay the rest


def pushed(session) -> None:
    """The outbox worker wrote what was pending on the shop."""
    session.execute(
        update(OutboxMessage).where(OutboxMessage.status == OutboxStatus.PENDING).values(status=OutboxStatus.DELIVERED)
    )


def card_paid_rest(minute=1, **changes):
    """The card paid the 29.98 left: the shop shows 29.98 with the wallet's 10.00 fee line on."""
    base = dict(total=2_998, wallet_fees=1_000, payment_method="stripe", refunds_complete=True, modified_at=at(minute))
    return paid(**{**base, **changes})


# 1. A deleted full refund: the wallet part held again -------------------------------------------------------------


def test_a_stale_redelivery_of_the_refunded_state_after_the_deletion_returns_nothing(session, shop):
    """Fails at ef1ecdb (the return keyed 'reversal:<deletions>': the stale state returns the 10.00 again, 10.00
    seen); passes with the return keyed by the refund completing the order (working tree, uncommitted)."""
    shop = configure(session, shop, refund_destination="wallet")
    partly_paid(session, shop)
    refunded = card_paid_rest(2, refunds=refunds((70, 2_998)))
    apply_order(session, shop, card_paid_rest(1), ACTOR)
    apply_order(session, shop, refunded, ACTOR)
    assert balance(session, shop) == 3_998
    apply_order(session, shop, card_paid_rest(3), ACTOR)  # refund #70 deleted: the fee line applies again
    assert balance(session, shop) == 0
    apply_order(session, shop, refunded, ACTOR)  # the refund's own delivery, redelivered late
    assert balance(session, shop) == 0


def test_the_full_refund_deleted_while_still_refunded_then_set_processing_holds_the_wallet_part(session, shop):
    shop = configure(session, shop, refund_destination="original")
    partly_paid(session, shop)
    apply_order(session, shop, card_paid_rest(1), ACTOR)
    as_refunded = dict(status="refunded", phase=orders.REFUNDED)
    apply_order(session, shop, card_paid_rest(2, refunds=refunds((70, 2_998)), **as_refunded), ACTOR)
    assert balance(session, shop) == 1_000  # the card's 29.98 to the card, the wallet's 10.00 back
    apply_order(session, shop, card_paid_rest(3, **as_refunded), ACTOR)  # refund deleted, status still refunded
    apply_order(session, shop, card_paid_rest(4), ACTOR)  # set processing
    assert balance(session, shop) == 0


@pytest.mark.parametrize("undo", ["cancelled", "trashed"])
def test_cancelled_after_a_deleted_full_refund_returns_the_wallet_part_held_again(session, shop, undo):
    """Fails at ef1ecdb (the full refund's return and the cancellation's both keyed 'reversal': a replay, 0.00
    returned); passes with the return keyed by the refund completing the order (working tree, uncommitted)."""
    shop = configure(session, shop, refund_destination="original")
    partly_paid(session, shop)
    apply_order(session, shop, card_paid_rest(1), ACTOR)
    apply_order(session, shop, card_paid_rest(2, refunds=refunds((70, 2_998))), ACTOR)
    assert balance(session, shop) == 1_000
    apply_order(session, shop, card_paid_rest(3), ACTOR)  # refund deleted: 10.00 held again
    assert balance(session, shop) == 0
    if undo == "cancelled":
        apply_order(session, shop, card_paid_rest(4, status="cancelled", phase=orders.CANCELLED), ACTOR)
    else:
        release_trashed_order(session, shop, TrashedOrder("12"), ACTOR)
    assert balance(session, shop) == 1_000


def test_the_deletion_state_redelivered_moves_nothing_more(session, shop):
    shop = configure(session, shop, refund_destination="wallet")
    partly_paid(session, shop)
    apply_order(session, shop, card_paid_rest(1), ACTOR)
    apply_order(session, shop, card_paid_rest(2, refunds=refunds((70, 2_998))), ACTOR)
    for _ in range(3):
        apply_order(session, shop, card_paid_rest(3), ACTOR)
    assert balance(session, shop) == 0
    assert verify(session) == []


def test_refunded_deleted_three_times_returns_the_wallet_part_once_per_full_refund(session, shop):
    shop = configure(session, shop, refund_destination="original")
    partly_paid(session, shop)
    apply_order(session, shop, card_paid_rest(1), ACTOR)
    minute = 2
    for refund_id in (70, 71, 72):
        full = card_paid_rest(minute, refunds=refunds((refund_id, 2_998)))
        apply_order(session, shop, full, ACTOR)
        apply_order(session, shop, full, ACTOR)
        assert balance(session, shop) == 1_000  # the card's 29.98 went to the card
        apply_order(session, shop, card_paid_rest(minute + 1), ACTOR)
        apply_order(session, shop, card_paid_rest(minute + 1), ACTOR)
        assert balance(session, shop) == 0
        minute += 2
    assert verify(session) == []


def test_a_partial_refund_of_a_full_refund_deleted_holds_the_wallet_part_and_a_new_refund_completes_it(session, shop):
    """Refunded in full by two refunds (20.00 + 9.98, to the wallet); the second deleted: the 9.98 and the wallet's
    10.00 leave the wallet; a new 9.98 completes the refunds again: both come back."""
    shop = configure(session, shop, refund_destination="wallet")
    partly_paid(session, shop)
    apply_order(session, shop, card_paid_rest(1), ACTOR)
    apply_order(session, shop, card_paid_rest(2, refunds=refunds((70, 2_000), (71, 998))), ACTOR)
    assert balance(session, shop) == 3_998
    apply_order(session, shop, card_paid_rest(3, refunds=refunds((70, 2_000))), ACTOR)
    assert balance(session, shop) == 2_000  # paid 10.00 wallet + 29.98 card, 20.00 refunded
    apply_order(session, shop, card_paid_rest(4, refunds=refunds((70, 2_000), (72, 998))), ACTOR)
    assert balance(session, shop) == 3_998
    assert verify(session) == []


def test_a_deleted_refund_replaced_by_a_smaller_one_in_one_delivery(session, shop):
    shop = configure(session, shop, refund_destination="wallet")
    partly_paid(session, shop)
    apply_order(session, shop, card_paid_rest(1), ACTOR)
    apply_order(session, shop, card_paid_rest(2, refunds=refunds((70, 2_998))), ACTOR)
    apply_order(session, shop, card_paid_rest(3, refunds=refunds((71, 1_000))), ACTOR)
    assert balance(session, shop) == 1_000  # 10.00 of the card's money refunded; the wallet part held again
    assert verify(session) == []


def test_a_partial_refund_deleted_moves_only_its_own_credit(session, shop):
    shop = configure(session, shop, refund_destination="wallet")
    partly_paid(session, shop)
    apply_order(session, shop, card_paid_rest(1), ACTOR)
    apply_order(session, shop, card_paid_rest(2, refunds=refunds((70, 1_500))), ACTOR)
    assert balance(session, shop) == 1_500
    apply_order(session, shop, card_paid_rest(3), ACTOR)
    assert balance(session, shop) == 0


def test_a_partial_refund_deleted_after_a_cancellation_takes_no_wallet_part(session, shop):
    shop = configure(session, shop, refund_destination="wallet")
    partly_paid(session, shop)
    apply_order(session, shop, card_paid_rest(1), ACTOR)
    apply_order(session, shop, card_paid_rest(2, refunds=refunds((70, 1_000))), ACTOR)
    assert balance(session, shop) == 1_000
    cancelled = card_paid_rest(3, status="cancelled", phase=orders.CANCELLED, refunds=refunds((70, 1_000)))
    apply_order(session, shop, cancelled, ACTOR)
    assert balance(session, shop) == 2_000
    apply_order(session, shop, card_paid_rest(4), ACTOR)  # processing again, refund #70 deleted
    private = [p["note"] for kind, p in messages(session) if kind == "order.note" and p.get("customer_note") is False]
    assert any("Collect it another way" in note for note in private)  # the merchant is to collect the 10.00
    assert balance(session, shop) == 1_000


def test_a_never_partly_paid_card_order_whose_full_refund_is_deleted_takes_back_only_the_refund(session, shop):
    shop = configure(session, shop, refund_destination="wallet")
    fund(session, shop, 700)
    card = paid(payment_method="stripe", refunds_complete=True, total=4_148, wallet_fees=0, modified_at=at(1))
    apply_order(session, shop, replace(card, refunds=refunds((70, 4_148)), modified_at=at(2)), ACTOR)
    assert balance(session, shop) == 700 + 4_148
    apply_order(session, shop, replace(card, modified_at=at(3)), ACTOR)
    assert balance(session, shop) == 700
    assert verify(session) == []


def test_a_wallet_paid_order_whose_full_refund_is_deleted_takes_back_only_the_refund(session, shop):
    shop = configure(session, shop, refund_destination="wallet")
    fund(session, shop, 5_000)
    apply_order(session, shop, order(modified_at=at(0)), ACTOR)
    state = paid(refunds_complete=True, modified_at=at(1))
    apply_order(session, shop, state, ACTOR)
    apply_order(session, shop, replace(state, refunds=refunds((70, 4_148)), modified_at=at(2)), ACTOR)
    assert balance(session, shop) == 5_000
    apply_order(session, shop, replace(state, modified_at=at(3)), ACTOR)
    assert balance(session, shop) == 5_000 - 4_148
    assert verify(session) == []


# 2. What the card paid (card_paid) ----------------------------------------------------------------------------------


def test_the_fee_line_removed_before_the_card_paid_the_whole_returns_the_wallet_part_once_then_refunds_it_all(
    session, shop
):
    shop = configure(session, shop, refund_destination="wallet")
    partly_paid(session, shop)
    whole = card_paid_rest(2, total=3_998, wallet_fees=0, paid_at=at(2))  # paid in this state's own save
    for _ in range(2):
        apply_order(session, shop, whole, ACTOR)
    assert balance(session, shop) == 1_000  # the card paid 39.98: the wallet's 10.00 back at once
    apply_order(session, shop, replace(whole, refunds=refunds((70, 3_998)), modified_at=at(3)), ACTOR)
    assert balance(session, shop) == 1_000 + 3_998  # the card's 39.98 to the wallet, nothing more
    assert verify(session) == []


def test_the_fee_line_removed_after_the_card_paid_the_rest_then_refunded_in_full(session, shop):
    shop = configure(session, shop, refund_destination="wallet")
    partly_paid(session, shop)
    apply_order(session, shop, card_paid_rest(1), ACTOR)
    removed = card_paid_rest(2, total=3_998, wallet_fees=0)
    apply_order(session, shop, removed, ACTOR)
    assert balance(session, shop) == 0
    apply_order(session, shop, replace(removed, refunds=refunds((70, 3_998)), modified_at=at(3)), ACTOR)
    assert balance(session, shop) == 3_998  # 29.98 of the card and the wallet's 10.00


def test_the_fee_line_removal_delivered_before_the_card_payment_returns_nothing(session, shop):
    shop = configure(session, shop)
    partly_paid(session, shop)
    # newer state first: the card paid at 10:01, the fee line taken off at 10:02 (WooCommerce's date_paid says 10:01)
    apply_order(session, shop, card_paid_rest(2, total=3_998, wallet_fees=0, paid_at=at(1)), ACTOR)
    apply_order(session, shop, card_paid_rest(1), ACTOR)  # the card payment's own delivery, late
    assert balance(session, shop) == 0


def test_paid_whole_by_card_after_a_reversal_refunds_the_whole_total(session, shop):
    shop = configure(session, shop, refund_destination="wallet")
    partly_paid(session, shop)
    apply_order(session, shop, card_paid_rest(1), ACTOR)
    apply_order(session, shop, card_paid_rest(2, status="cancelled", phase=orders.CANCELLED), ACTOR)
    assert balance(session, shop) == 1_000
    again = card_paid_rest(3, total=3_998, wallet_fees=0)  # the fees gone, the customer paid the order by card
    apply_order(session, shop, again, ACTOR)
    assert balance(session, shop) == 1_000
    apply_order(session, shop, replace(again, refunds=refunds((70, 3_998)), modified_at=at(4)), ACTOR)
    assert balance(session, shop) == 1_000 + 3_998


def test_a_new_wallet_attempt_after_a_reversal_counts_its_own_card_payment(session, shop):
    """Partly paid, the card the rest, cancelled (10.00 back, fees off: 39.98), pending again: the wallet pays 10.00
    of 39.98, the card 29.98; a full refund (to the wallet) gives 29.98 + 10.00."""
    shop = configure(session, shop, refund_destination="wallet")
    partly_paid(session, shop)
    apply_order(session, shop, card_paid_rest(1), ACTOR)
    apply_order(session, shop, card_paid_rest(2, status="cancelled", phase=orders.CANCELLED), ACTOR)
    apply_order(session, shop, order(total=3_998, wallet_fees=0, modified_at=at(3)), ACTOR)
    assert balance(session, shop) == 0
    apply_order(session, shop, card_paid_rest(4), ACTOR)
    apply_order(session, shop, card_paid_rest(5, refunds=refunds((70, 2_998))), ACTOR)
    assert balance(session, shop) == 3_998
    assert verify(session) == []


def test_cancelled_after_the_card_paid_returns_the_wallet_part_once(session, shop):
    shop = configure(session, shop)
    partly_paid(session, shop)
    apply_order(session, shop, card_paid_rest(1), ACTOR)
    cancelled = card_paid_rest(2, status="cancelled", phase=orders.CANCELLED)
    for _ in range(2):
        apply_order(session, shop, cancelled, ACTOR)
    apply_order(session, shop, card_paid_rest(1), ACTOR)  # stale
    assert balance(session, shop) == 1_000


def test_a_lowered_total_caps_what_the_card_paid(session, shop):
    shop = configure(session, shop, refund_destination="wallet")
    partly_paid(session, shop)
    apply_order(session, shop, card_paid_rest(1), ACTOR)
    apply_order(session, shop, card_paid_rest(2, total=1_998, refunds=refunds((70, 1_998))), ACTOR)
    assert balance(session, shop) == 1_998 + 1_000  # refunded in full at the lowered total: the wallet part too


# 3. Shopify orders presented in another currency (webhooks, as tests/e2e/test_presentment_currency_session11.py) ----


def recorded_amounts(services) -> dict[str, int]:
    from sqlalchemy import select

    from bridge.db import unit_of_work
    from bridge.models import OrderRefund

    with unit_of_work(services.sessions) as session:
        rows = session.execute(select(OrderRefund.external_id, OrderRefund.amount)).all()
        return {external_id: amount for external_id, amount in rows}


def delivery_errors(services) -> str:
    from sqlalchemy import select

    from bridge.db import unit_of_work
    from bridge.models import InboxDelivery

    with unit_of_work(services.sessions) as session:
        return " ".join(e or "" for e in session.execute(select(InboxDelivery.error)).scalars())


def yen_refund_of(yen_amount: int, refund_id: int, **kwargs) -> dict:
    """A refund of ¥`yen_amount` (the $-side of its lines approximate: only the transaction's yen are read)."""
    body = yen_refund("1.00", refund_id=refund_id, **kwargs)
    body["transactions"][0]["amount"] = str(yen_amount)
    return body


def test_three_yen_refunds_making_the_whole_total_are_applied_and_sum_to_it(client, services, shopify):
    assert applied(deliver(client, shopify.shop.id, "customers/create", customer_body()))
    assert applied(deliver(client, shopify.shop.id, "orders/paid", yen_order()))
    parts = [yen_refund_of(1000, 1), yen_refund_of(1000, 2)]
    assert applied(deliver(client, shopify.shop.id, "orders/updated", refunded(yen_order(), *parts)))
    parts.append(yen_refund_of(4000, 3))
    body = refunded(yen_order(), *parts) | {"financial_status": "refunded"}
    answer = deliver(client, shopify.shop.id, "orders/updated", body)
    assert answer.status_code < 500
    assert "refunds_exceed_order" not in delivery_errors(services)
    assert applied(answer), answer.get_data(as_text=True)[:300]
    assert sum(recorded_amounts(services).values()) == 4000


def test_two_yen_refunds_rounding_each_way_sum_to_the_total(client, services, shopify):
    assert applied(deliver(client, shopify.shop.id, "customers/create", customer_body()))
    assert applied(deliver(client, shopify.shop.id, "orders/paid", yen_order()))
    body = refunded(yen_order(), yen_refund_of(1000, 1), yen_refund_of(5000, 2)) | {"financial_status": "refunded"}
    assert applied(deliver(client, shopify.shop.id, "orders/updated", body))
    assert recorded_amounts(services) == {"1": 667, "2": 3333}  # 666.67 and 3333.33, each to the nearest cent
    assert wallet(services, shopify, "USD") == 5000


def test_a_yen_refund_delivered_before_the_order_is_known_is_applied_once_from_the_order(client, services, shopify):
    assert applied(deliver(client, shopify.shop.id, "customers/create", customer_body()))
    refund = yen_refund(gateway="shopify_store_credit")
    first = deliver(client, shopify.shop.id, "refunds/create", refund)
    assert first.status_code == 200
    assert recorded_amounts(services) == {}
    assert applied(deliver(client, shopify.shop.id, "orders/paid", refunded(yen_order(), refund)))
    assert applied(deliver(client, shopify.shop.id, "refunds/create", refund))
    assert applied(deliver(client, shopify.shop.id, "orders/updated", refunded(yen_order(), refund)))
    assert recorded_amounts(services) == {str(REFUND_ID): 1100}
    assert wallet(services, shopify, "USD") == 5000  # ¥ store credit: the USD wallet does not move
    assert recorded_order(services).total == 4000


def test_a_yen_store_credit_refund_with_yen_accepted_moves_no_usd_wallet(client, services, shopify):
    accept_yen(services, shopify)
    assert applied(deliver(client, shopify.shop.id, "customers/create", customer_body()))
    assert applied(deliver(client, shopify.shop.id, "orders/paid", yen_order()))
    refund = yen_refund("40.00", gateway="shopify_store_credit")
    assert applied(deliver(client, shopify.shop.id, "refunds/create", refund))
    done = refunded(yen_order(), refund) | {"financial_status": "refunded"}
    for _ in range(2):
        assert applied(deliver(client, shopify.shop.id, "orders/updated", done))
    assert recorded_amounts(services) == {str(REFUND_ID): 4000}
    assert wallet(services, shopify, "USD") == 5000


def test_a_yen_order_of_zero_is_no_server_error(client, services, shopify):
    assert applied(deliver(client, shopify.shop.id, "customers/create", customer_body()))
    free = yen_order(total="0.00")
    assert applied(deliver(client, shopify.shop.id, "orders/paid", free))
    answer = deliver(client, shopify.shop.id, "orders/updated", refunded(free, yen_refund_of(0, 1)))
    assert answer.status_code < 500
    assert wallet(services, shopify, "USD") == 5000


@pytest.mark.xfail(
    strict=True,
    reason="finding (edge: needs both): refunds/create of a known ¥-presented order whose transaction says "
    "`currency: null` and with no total_duties_set is read in the order's USD: ¥30 to store credit becomes "
    "$30.00 credited to the USD wallet and recorded as a $30.00 refund (expected: nothing moved, or $0.20, "
    "and no USD credit)",
)
def test_a_yen_refund_without_currency_nor_duties_is_not_read_as_dollars(client, services, shopify):
    assert applied(deliver(client, shopify.shop.id, "customers/create", customer_body()))
    assert applied(deliver(client, shopify.shop.id, "orders/paid", yen_order()))
    refund = yen_refund_of(30, 1, currency=None, gateway="shopify_store_credit")
    refund.pop("total_duties_set")
    deliver(client, shopify.shop.id, "refunds/create", refund)
    deliver(client, shopify.shop.id, "orders/updated", refunded(yen_order(), refund))
    assert wallet(services, shopify, "USD") == 5000
    assert recorded_amounts(services).get("1", 20) == 20


# 4. The same on the simulated WooCommerce store ----------------------------------------------------------------


def _remove_fee(sim, order_id: int, name: str = "Paid from wallet") -> None:
    fee = next(fee for fee in sim.order(order_id)["fee_lines"] if fee["name"] == name)
    sim.update_order(order_id, fee_lines=[{"id": fee["id"], "name": None}])


def test_store_the_fee_line_removed_then_paid_whole_by_card_returns_the_wallet_part_once(
    client, services, shop, sim, clock, connected
):
    alice, order_id = alices_partly_paid_order(client, services, shop, sim, clock)
    assert sim.order(order_id)["total"] == "29.98"
    clock.advance()
    _remove_fee(sim, order_id)
    push(services)
    clock.advance()
    sim.update_order(order_id, payment_method="stripe")
    sim.set_status(order_id, "processing")  # the card paid the 39.98 the shop asked
    push(services)
    push(services)
    assert balances(services, shop.shop.id, alice)[0] == 1_000
    clock.advance()
    sim.refund(order_id, "39.98")
    push(services)
    assert balances(services, shop.shop.id, alice)[0] == 1_000 + 3_998


def test_store_paid_again_by_card_after_a_cancellation_refunds_the_whole_total(
    client, services, shop, sim, clock, connected
):
    alice, order_id = alices_partly_paid_order(client, services, shop, sim, clock)
    clock.advance()
    sim.set_status(order_id, "processing")  # the card pays the 29.98 left
    push(services)
    clock.advance()
    sim.set_status(order_id, "cancelled")
    push(services)
    assert balances(services, shop.shop.id, alice)[0] == 1_000
    assert sim.order(order_id)["total"] == "29.98"  # paid: the bridge leaves the fee line on
    clock.advance()
    _remove_fee(sim, order_id)  # the merchant takes it off: its 10.00 went back to the wallet
    push(services)
    assert sim.order(order_id)["total"] == "39.98"
    clock.advance()
    sim.update_order(order_id, payment_method="stripe")
    sim.set_status(order_id, "processing")  # the customer pays the order again, by card
    push(services)
    assert balances(services, shop.shop.id, alice)[0] == 1_000
    clock.advance()
    sim.refund(order_id, "39.98")
    push(services)
    assert balances(services, shop.shop.id, alice)[0] == 1_000 + 3_998


def test_store_paid_whole_by_card_before_the_wallet_fee_reached_the_shop_returns_the_wallet_part_once(
    client, services, shop, sim, clock, connected
):
    alice = sim.create_customer("alice@example.test", "Alice")["id"]
    fund_by_api(client, shop, alice, 500)
    clock.advance()
    order_id = sim.place_order(alice, total="39.98", payment_method="wallet")["id"]
    assert balances(services, shop.shop.id, alice)[0] == 0  # 10.00 taken, its fee line not written yet
    clock.advance()
    sim.update_order(order_id, payment_method="stripe")
    sim.set_status(order_id, "processing")  # the card paid the whole 39.98 first
    push(services)
    push(services)
    assert balances(services, shop.shop.id, alice)[0] == 1_000
    clock.advance()
    sim.refund(order_id, sim.order(order_id)["total"])
    push(services)
    # the card paid 39.98 and the wallet nothing in the end: what the shop refunds, nothing more
    paid_by_card = 3_998
    assert balances(services, shop.shop.id, alice)[0] == 1_000 + paid_by_card


def test_a_card_order_cancelled_then_partly_paid_by_wallet_and_paid_whole_by_card_returns_the_wallet_part(
    session, shop
):
    shop = configure(session, shop)
    apply_order(session, shop, paid(payment_method="stripe", modified_at=at(1)), ACTOR)
    apply_order(
        session,
        shop,
        paid(payment_method="stripe", status="cancelled", phase=orders.CANCELLED, modified_at=at(2)),
        ACTOR,
    )
    fund(session, shop, 1_000)
    apply_order(session, shop, order(modified_at=at(3)), ACTOR)  # pending again, the wallet method
    assert balance(session, shop) == 0
    pushed(session)
    apply_order(session, shop, paid(payment_method="stripe", wallet_fees=0, modified_at=at(4)), ACTOR)
    assert balance(session, shop) == 1_000


@pytest.mark.parametrize("deleted_after_payment", [False, True])
def test_a_refund_made_before_the_rest_was_paid_deleted_then_refunded_in_full(session, shop, deleted_after_payment):
    """10.00 of 39.98 from the wallet; 5.00 refunded before the card paid (wallet money then); the refund deleted
    (before or after the card paid the 29.98); refunded in full: 29.98 + the wallet's 10.00, never more."""
    shop = configure(session, shop, refund_destination="original")
    partly_paid(session, shop)
    pending = order(total=2_998, wallet_fees=1_000, refunds_complete=True)
    apply_order(session, shop, replace(pending, refunds=refunds((70, 500)), modified_at=at(1)), ACTOR)
    assert balance(session, shop) == 500
    if deleted_after_payment:
        apply_order(session, shop, card_paid_rest(2, refunds=refunds((70, 500))), ACTOR)
        assert balance(session, shop) == 500  # now a refund of the card's money (kept in the wallet)
        apply_order(session, shop, card_paid_rest(3), ACTOR)
    else:
        apply_order(session, shop, replace(pending, modified_at=at(2)), ACTOR)
        apply_order(session, shop, card_paid_rest(3), ACTOR)
    assert balance(session, shop) == 0
    apply_order(session, shop, card_paid_rest(4, refunds=refunds((71, 2_998))), ACTOR)
    assert balance(session, shop) == 1_000  # the card's 29.98 to the card, the wallet's 10.00 back
    assert verify(session) == []
