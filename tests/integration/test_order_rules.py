"""Order rules on platform-neutral snapshots: wallet payments, reversals, refunds, points."""

from dataclasses import replace

import pytest
from sqlalchemy import func, select

from bridge import orders
from bridge.accounts import ensure_customer, find_wallet, points_account, wallet_account
from bridge.customer_rules import apply_customer
from bridge.ledger import Actor, verify
from bridge.models import LedgerTransaction, OrderRefund, OutboxMessage, ShopOrder
from bridge.order_rules import apply_order, return_overcharge
from bridge.orders import CustomerSnapshot, OrderSnapshot, RefundSnapshot
from bridge.wallets import adjust_wallet

ACTOR = Actor("webhook", "test")


def order(**changes) -> OrderSnapshot:
    base = OrderSnapshot(
        external_id="12",
        customer_external_id="2",
        email="alice@example.test",
        customer_name="Alice Tester",
        currency="EUR",
        status="pending",
        phase=orders.AWAITING_PAYMENT,
        total=4148,
        payment_method="wallet",
    )
    return replace(base, **changes)


def paid(**changes) -> OrderSnapshot:
    return order(**{"status": "processing", "phase": orders.PAID, **changes})


def refunds(*pairs) -> tuple:
    return tuple(RefundSnapshot(str(rid), amount, f"refund {rid}") for rid, amount in pairs)


def configure(session, shop, **settings):
    shop.shop.settings = {**shop.shop.settings, **settings}
    session.merge(shop.shop)
    session.flush()
    return session.merge(shop.shop)


def fund(session, shop, amount, customer="2"):
    adjust_wallet(
        session,
        shop,
        customer,
        direction="credit",
        amount=amount,
        reason="fund",
        idempotency_key=f"fund-{amount}",
        actor=ACTOR,
    )


def balance(session, shop, customer="2"):
    wallet = find_wallet(session, ensure_customer(session, shop.id, customer), shop.currency)
    return wallet.balance if wallet else 0


def messages(session):
    return [(m.kind, m.payload) for m in session.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars()]


def count(session, model):
    return session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def live_shop(session, shop):
    return configure(session, shop)


def test_wallet_covering_the_total_pays_once(session, live_shop):
    fund(session, live_shop, 10_000)
    for _ in range(5):
        apply_order(session, live_shop, order(), ACTOR)
    assert balance(session, live_shop) == 10_000 - 4148
    [(kind, payload)] = messages(session)
    assert kind == "order.mark_paid" and payload["amount"] == 4148 and payload["discount"] == 0
    assert "Paid €41.48 from your wallet. Wallet balance: €58.52" == payload["note"]
    assert session.execute(select(ShopOrder)).scalar_one().payment_outcome == "paid"


def test_wallet_discount_lowers_what_is_debited(session, shop):
    shop = configure(session, shop, wallet_discount_kind="percent", wallet_discount_value=1000)
    fund(session, shop, 10_000)
    apply_order(session, shop, order(), ACTOR)
    assert balance(session, shop) == 10_000 - (4148 - 414)
    assert messages(session)[0][1]["discount"] == 414


def test_renamed_offline_method_counts_as_wallet(session, shop):
    shop = configure(session, shop, wallet_payment_methods=["cheque"])
    fund(session, shop, 10_000)
    apply_order(session, shop, order(payment_method="cheque", status="on-hold"), ACTOR)
    apply_order(session, shop, order(payment_method="wallet"), ACTOR)  # not a wallet method any more
    assert balance(session, shop) == 10_000 - 4148


def test_short_balance_pays_partly_when_enabled(session, live_shop):
    fund(session, live_shop, 1_000)
    apply_order(session, live_shop, order(), ACTOR)
    assert balance(session, live_shop) == 0
    [(kind, payload)] = messages(session)
    assert (kind, payload["amount"]) == ("order.add_wallet_fee", 1_000)
    assert payload["note"] == ""  # written by the push, from what the shop asks once it has taxed the fee


def test_short_balance_without_partial_payments_fails_the_order(session, shop):
    shop = configure(session, shop, partial_payments=False, unpaid_order_status="on-hold")
    fund(session, shop, 1_000)
    apply_order(session, shop, order(), ACTOR)
    apply_order(session, shop, order(), ACTOR)
    assert balance(session, shop) == 1_000
    [(kind, payload)] = messages(session)
    assert kind == "order.mark_unpaid" and payload["status"] == "on-hold"
    assert "insufficient wallet balance (€10.00 available)" in payload["note"]


def test_guest_orders_cannot_pay_by_wallet(session, live_shop):
    apply_order(session, live_shop, order(customer_external_id=None), ACTOR)
    assert messages(session)[0][0] == "order.mark_unpaid"
    assert count(session, LedgerTransaction) == 0


def test_orders_paid_by_other_methods_move_no_wallet_money(session, live_shop):
    fund(session, live_shop, 10_000)
    apply_order(session, live_shop, order(payment_method="stripe"), ACTOR)
    assert balance(session, live_shop) == 10_000 and messages(session) == []


def test_cancelled_after_capture_returns_the_money_once(session, live_shop):
    fund(session, live_shop, 10_000)
    apply_order(session, live_shop, order(), ACTOR)
    for status in ("cancelled", "cancelled", "failed"):
        apply_order(session, live_shop, order(status=status, phase=orders.CANCELLED), ACTOR)
    assert balance(session, live_shop) == 10_000
    assert [kind for kind, _ in messages(session)] == ["order.mark_paid", "order.note"]


def test_refunds_of_a_wallet_paid_order_go_back_to_the_wallet_once_in_any_order(session, live_shop):
    fund(session, live_shop, 10_000)
    apply_order(session, live_shop, order(), ACTOR)
    apply_order(session, live_shop, paid(refunds=refunds((14, 325))), ACTOR)
    both = paid(status="completed", refunds=refunds((13, 500), (14, 325)))
    for _ in range(3):
        apply_order(session, live_shop, both, ACTOR)
    assert balance(session, live_shop) == 10_000 - 4148 + 825
    assert count(session, OrderRefund) == 2
    assert verify(session) == []


def test_two_refunds_in_one_delivery_apply_both(session, live_shop):
    fund(session, live_shop, 10_000)
    apply_order(session, live_shop, order(), ACTOR)
    apply_order(session, live_shop, paid(refunds=refunds((13, 500), (14, 325))), ACTOR)
    notes = [p["note"] for kind, p in messages(session) if kind == "order.note"]
    assert notes == ["Refund #13 of €5.00 credited to your wallet.", "Refund #14 of €3.25 credited to your wallet."]


def test_partly_paid_order_refund_to_the_card_credits_nothing_until_the_order_is_refunded_in_full(session, shop):
    shop = configure(session, shop, refund_destination="original")
    fund(session, shop, 1_000)
    apply_order(session, shop, order(total=4_000), ACTOR)  # wallet pays 10.00, card 30.00
    after_fee = paid(total=3_000)
    apply_order(session, shop, replace(after_fee, refunds=refunds((20, 1_500))), ACTOR)
    assert balance(session, shop) == 0  # the shop returned all 15.00 to the card: the refund is settled
    apply_order(session, shop, replace(after_fee, refunds=refunds((20, 1_500), (21, 1_500))), ACTOR)
    assert balance(session, shop) == 1_000  # refunded in full: the wallet part the shop cannot refund comes back
    apply_order(
        session,
        shop,
        replace(after_fee, status="refunded", phase=orders.REFUNDED, refunds=refunds((20, 1_500), (21, 1_500))),
        ACTOR,
    )
    assert balance(session, shop) == 1_000


@pytest.mark.parametrize("destination, wallet_gain", [("original", 0), ("wallet", 1_999)])
def test_line_item_refund_of_a_partly_paid_order_returns_the_item_price_once(session, shop, destination, wallet_gain):
    """39.98 paid 10.00 by wallet and 29.98 by card; one 19.99 item refunded: 19.99 back in all, not 26.65."""
    shop = configure(session, shop, refund_destination=destination)
    fund(session, shop, 1_000)
    apply_order(session, shop, order(total=3_998), ACTOR)
    apply_order(session, shop, paid(total=2_998, refunds=refunds((50, 1_999))), ACTOR)
    assert balance(session, shop) == wallet_gain  # to the card: the shop returned it all; else the wallet gets it


def test_a_refund_after_the_cancellation_returned_the_payment_credits_nothing_more(session, live_shop):
    fund(session, live_shop, 1_999)
    apply_order(session, live_shop, order(total=1_999), ACTOR)
    apply_order(session, live_shop, paid(total=1_999), ACTOR)
    apply_order(session, live_shop, order(total=1_999, status="cancelled", phase=orders.CANCELLED), ACTOR)
    assert balance(session, live_shop) == 1_999
    apply_order(
        session,
        live_shop,
        order(total=1_999, status="cancelled", phase=orders.CANCELLED, refunds=refunds((60, 500))),
        ACTOR,
    )
    assert balance(session, live_shop) == 1_999


def test_cancellation_and_refunds_in_one_delivery_return_the_payment_once(session, live_shop):
    fund(session, live_shop, 1_999)
    apply_order(session, live_shop, order(total=1_999), ACTOR)
    collapsed = order(total=1_999, status="cancelled", phase=orders.CANCELLED, refunds=refunds((61, 500), (62, 300)))
    apply_order(session, live_shop, collapsed, ACTOR)
    apply_order(session, live_shop, collapsed, ACTOR)
    assert balance(session, live_shop) == 1_999


def test_a_wallet_order_marked_paid_without_a_wallet_payment_gets_no_refund_credit(session, live_shop):
    """The first delivery came when the order was already completed and refunded: the wallet never paid."""
    completed = paid(status="completed", total=1_999, paid_in_shop=True, refunds=refunds((63, 1_000)))
    apply_order(session, live_shop, completed, ACTOR)
    assert balance(session, live_shop) == 0
    assert session.execute(select(OrderRefund.wallet_credit)).scalar_one() == 0


def test_refunds_beyond_the_order_total_fail_the_delivery_and_move_nothing(session, shop):
    from bridge.errors import InvalidState

    shop = configure(session, shop, refund_destination="wallet")
    with pytest.raises(InvalidState, match="exceed its total"):
        apply_order(session, shop, paid(payment_method="stripe", total=500, refunds=refunds((64, 50_000))), ACTOR)


def test_card_order_refund_to_wallet_with_bonus(session, shop):
    shop = configure(session, shop, refund_destination="wallet", refund_wallet_bonus_bp=1000)
    apply_order(session, shop, paid(payment_method="stripe", refunds=refunds((30, 2_000))), ACTOR)
    assert balance(session, shop) == 2_200
    refund = session.execute(select(OrderRefund)).scalar_one()
    assert (refund.destination, refund.wallet_credit, refund.bonus) == ("wallet", 2_000, 200)


def test_card_order_refund_to_original_method_is_recorded_only(session, shop):
    shop = configure(session, shop, refund_destination="original")
    apply_order(session, shop, paid(payment_method="stripe", refunds=refunds((30, 2_000))), ACTOR)
    assert balance(session, shop) == 0
    assert session.execute(select(OrderRefund.destination)).scalar_one() == "original"


def test_paid_orders_earn_points_once_and_refunds_claw_back_pro_rata(session, shop):
    shop = configure(session, shop, points_per_currency_unit=10, refund_destination="original")
    for _ in range(3):
        apply_order(session, shop, paid(payment_method="stripe"), ACTOR)
    customer = ensure_customer(session, shop.id, "2")
    assert points_account(session, customer).balance == 414
    apply_order(session, shop, paid(payment_method="stripe", refunds=refunds((40, 2074))), ACTOR)
    assert points_account(session, customer).balance == 414 - 207


def test_points_already_spent_are_reported_as_shortfall(session, shop):
    shop = configure(
        session,
        shop,
        points_per_currency_unit=10,
        points_conversion_points=100,
        points_conversion_value=100,
        refund_destination="original",
    )
    apply_order(session, shop, paid(payment_method="stripe"), ACTOR)
    from bridge.points import convert_points
    from bridge.settings_schema import ShopSettings

    customer = ensure_customer(session, shop.id, "2")
    convert_points(session, shop, ShopSettings.load(shop.settings), customer, 400, "convert-1")
    apply_order(session, shop, paid(payment_method="stripe", status="refunded", refunds=refunds((41, 4148))), ACTOR)
    refund = session.execute(select(OrderRefund)).scalar_one()
    assert (refund.points_clawed_back, refund.points_shortfall) == (14, 400)
    assert points_account(session, customer).balance == 0
    # the 400 points' money goes back too (found on the real store, session 13: a refund kept the points' value)
    assert wallet_account(session, customer, "EUR").balance == 0
    apply_order(session, shop, paid(payment_method="stripe", status="refunded", refunds=refunds((41, 4148))), ACTOR)
    assert verify(session) == [] and wallet_account(session, customer, "EUR").balance == 0


def test_points_convert_automatically_above_the_threshold(session, shop):
    shop = configure(
        session,
        shop,
        points_per_currency_unit=10,
        points_auto_convert_threshold=400,
        points_conversion_points=100,
        points_conversion_value=50,
    )
    apply_order(session, shop, paid(payment_method="stripe"), ACTOR)  # 414 points → 400 converted
    customer = ensure_customer(session, shop.id, "2")
    assert points_account(session, customer).balance == 14
    assert wallet_account(session, customer, "EUR").balance == 200


def test_signup_bonus_is_given_once(session, shop):
    shop = configure(session, shop, signup_bonus=500)
    snapshot = CustomerSnapshot("2", "alice@example.test", "Alice Tester")
    for _ in range(3):
        apply_customer(session, shop, snapshot, ACTOR, is_new=True)
    apply_customer(session, shop, snapshot, ACTOR, is_new=False)
    assert balance(session, shop) == 500


def test_a_customer_registered_again_with_the_same_address_gets_no_second_signup_bonus(session, shop):
    """Found on the real store (session 13): WooCommerce gives a customer deleted and registered again a new id;
    keyed by the id alone, the same person had the bonus twice. Another address still has its own."""
    shop = configure(session, shop, signup_bonus=500)
    apply_customer(session, shop, CustomerSnapshot("2", "Älice@Example.test", "Alice"), ACTOR, is_new=True)
    apply_customer(session, shop, CustomerSnapshot("3", "älice@example.test", "Alice"), ACTOR, is_new=True)
    apply_customer(session, shop, CustomerSnapshot("4", "bob@example.test", "Bob"), ACTOR, is_new=True)
    assert [balance(session, shop, customer) for customer in ("2", "3", "4")] == [500, 0, 500]


def test_overcharge_against_what_the_shop_applied_is_returned_once(session, live_shop):
    fund(session, live_shop, 1_000)
    apply_order(session, live_shop, order(total=800), ACTOR)
    assert return_overcharge(session, live_shop, "12", 800, 750, "t1") == 50
    assert return_overcharge(session, live_shop, "12", 800, 750, "t1") == 0
    assert balance(session, live_shop) == 250


def test_an_older_pending_state_after_the_cancellation_charges_nothing(session, live_shop):
    fund(session, live_shop, 10_000)
    apply_order(session, live_shop, order(status="cancelled", phase=orders.CANCELLED), ACTOR)
    apply_order(session, live_shop, order(), ACTOR)  # same second: not provably stale
    assert balance(session, live_shop) == 10_000 and messages(session) == []


def test_a_refund_deleted_in_the_shop_is_taken_back_once(session, shop):
    shop = configure(session, shop, refund_destination="wallet")
    card_order = paid(payment_method="stripe", refunds_complete=True)
    apply_order(session, shop, replace(card_order, refunds=refunds((70, 1_000))), ACTOR)
    assert balance(session, shop) == 1_000
    for _ in range(2):
        apply_order(session, shop, card_order, ACTOR)  # the shop lists no refund any more
    assert balance(session, shop) == 0
    assert verify(session) == []


def test_points_a_deleted_refund_clawed_back_are_the_orders_again(session, shop):
    """Found on the real store (session 13): a card order's 414 points, 207 clawed back by a refund the shop then
    deleted, stayed at 207 though the order is paid in full again."""
    shop = configure(session, shop, points_per_currency_unit=10, refund_destination="original")
    card_order = paid(payment_method="stripe", refunds_complete=True)
    apply_order(session, shop, replace(card_order, refunds=refunds((40, 2074))), ACTOR)
    customer = ensure_customer(session, shop.id, "2")
    assert points_account(session, customer).balance == 414 - 207
    for _ in range(2):
        apply_order(session, shop, card_order, ACTOR)  # the shop lists no refund any more
    assert points_account(session, customer).balance == 414
    assert verify(session) == []


@pytest.mark.parametrize("undone", [(orders.CANCELLED, "cancelled"), (orders.FAILED, "failed")])
def test_a_refund_deleted_after_the_order_was_undone_takes_nothing_back(session, shop, undone):
    """A wallet order refunded 10.00, then cancelled (or, paid, set failed): all 41.48 it took is back in the wallet.
    The refund deleted in the shop leaves an undone order that owes all of it back: nothing leaves the wallet (found on
    the real store, tests/e2e/real_store/test_property_audit_session12.py)."""
    phase, status = undone
    shop = configure(session, shop)
    fund(session, shop, 4_148)
    apply_order(session, shop, order(), ACTOR)
    refunded = paid(refunds=refunds((72, 1_000)), refunds_complete=True)
    apply_order(session, shop, refunded, ACTOR)
    apply_order(session, shop, replace(refunded, status=status, phase=phase), ACTOR)
    assert balance(session, shop) == 4_148

    apply_order(session, shop, replace(refunded, status=status, phase=phase, refunds=()), ACTOR)

    assert balance(session, shop) == 4_148
    assert verify(session) == []


def test_a_deleted_refund_already_spent_is_flagged_to_the_merchant(session, shop):
    shop = configure(session, shop, refund_destination="wallet")
    card_order = paid(payment_method="stripe", refunds_complete=True)
    apply_order(session, shop, replace(card_order, refunds=refunds((71, 1_000))), ACTOR)
    adjust_wallet(
        session, shop, "2", direction="debit", amount=600, reason="spent", idempotency_key="spent", actor=ACTOR
    )
    apply_order(session, shop, card_order, ACTOR)
    assert balance(session, shop) == 400  # the customer's money is not taken below what they hold
    private = [p["note"] for kind, p in messages(session) if kind == "order.note" and p.get("customer_note") is False]
    assert any("refund #71 was deleted" in note for note in private)


def _partly_paid_then_refunded_in_full(session, shop) -> OrderSnapshot:
    """39.98: the wallet pays 10.00, the card the 29.98 left; refunded in full to the wallet (29.98 of card money,
    and the wallet's 10.00 back). Returns the order as the shop shows it once that refund is deleted."""
    fund(session, shop, 1_000)
    apply_order(session, shop, order(total=3_998), ACTOR)
    card_paid = paid(total=2_998, wallet_fees=1_000, payment_method="stripe", refunds_complete=True)
    apply_order(session, shop, replace(card_paid, refunds=refunds((70, 2_998))), ACTOR)
    assert balance(session, shop) == 3_998
    return card_paid


def test_a_deleted_full_refund_holds_the_wallet_part_again_and_a_new_full_refund_returns_it(session, shop):
    shop = configure(session, shop, refund_destination="wallet")
    card_paid = _partly_paid_then_refunded_in_full(session, shop)
    apply_order(session, shop, card_paid, ACTOR)  # the refund deleted: the shop applies the wallet's 10.00 again
    assert balance(session, shop) == 0
    refunded_again = replace(card_paid, status="refunded", phase=orders.REFUNDED, refunds=refunds((71, 2_998)))
    for _ in range(2):
        apply_order(session, shop, refunded_again, ACTOR)
    assert balance(session, shop) == 3_998
    assert verify(session) == []


def test_a_deleted_full_refund_whose_wallet_part_was_spent_is_flagged_to_the_merchant(session, shop):
    shop = configure(session, shop, refund_destination="wallet")
    card_paid = _partly_paid_then_refunded_in_full(session, shop)
    adjust_wallet(
        session, shop, "2", direction="debit", amount=3_500, reason="spent", idempotency_key="spent", actor=ACTOR
    )
    apply_order(session, shop, card_paid, ACTOR)
    assert balance(session, shop) == 498  # nothing is taken below what the customer holds
    private = [p["note"] for kind, p in messages(session) if kind == "order.note" and p.get("customer_note") is False]
    assert any("applies the wallet's €10.00 again" in note for note in private)


def test_a_card_paid_order_relabelled_with_the_wallet_method_still_refunds_the_card_money(session, shop):
    shop = configure(session, shop, refund_destination="wallet")
    apply_order(session, shop, paid(payment_method="stripe"), ACTOR)  # the card paid the whole 41.48
    relabelled = paid(payment_method="wallet")
    apply_order(session, shop, relabelled, ACTOR)
    assert balance(session, shop) == 0  # not charged: the card paid
    apply_order(session, shop, replace(relabelled, refunds=refunds((80, 4_148))), ACTOR)
    assert balance(session, shop) == 4_148
    assert verify(session) == []
