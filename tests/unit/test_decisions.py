"""The rules' pure decisions (bridge/decisions.py), checked directly: no database, no app."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge import decisions, orders
from bridge.errors import ValidationFailed
from bridge.orders import OrderSnapshot, RefundSnapshot
from bridge.settings_schema import ShopSettings
from bridge.states import PaymentOutcome

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DEFAULTS = ShopSettings.load({})


@dataclass
class Record:
    """What the bridge recorded of an order, as a ShopOrder row carries it."""

    total: int = 0
    payment_outcome: str | None = None
    wallet_paid: int = 0
    wallet_refunded: int = 0
    wallet_discount: int = 0
    paid_in_part: bool = False
    card_paid: int | None = None
    reopened_at: datetime | None = None
    points_earned: int = 0
    points_clawed_back: int = 0
    last_modified_at: datetime | None = None
    status: str = "processing"


def snapshot(total: int = 1000, phase: str = orders.PAID, refunds=(), modified_at=None, **more) -> OrderSnapshot:
    return OrderSnapshot(
        external_id="7",
        customer_external_id="1",
        email=None,
        customer_name=None,
        currency="EUR",
        status=more.pop("status", "processing"),
        phase=phase,
        total=total,
        payment_method="wallet",
        refunds=tuple(refunds),
        modified_at=modified_at,
        **more,
    )


def settings(**changes) -> ShopSettings:
    return replace(DEFAULTS, **changes)


# Staleness


def test_an_older_state_is_stale_and_a_newer_one_is_newer():
    record = Record(last_modified_at=T0)
    older, newer = snapshot(modified_at=T0 - timedelta(seconds=1)), snapshot(modified_at=T0 + timedelta(seconds=1))
    assert decisions.is_stale(record, older) and not decisions.is_newer(record, older)
    assert decisions.is_newer(record, newer) and not decisions.is_stale(record, newer)
    assert not decisions.is_stale(record, snapshot(modified_at=T0)) and not decisions.is_newer(record, snapshot())
    assert not decisions.is_stale(Record(), older)  # nothing seen yet: nothing is older


def test_a_state_of_the_same_second_is_newer_only_when_read_back_and_still_the_state_seen_last():
    """The shop dates changes to the second: a cancelled order set pending again within it is told from a late
    delivery of its pending state before the cancellation only by reading the order back."""
    cancelled = Record(payment_outcome=PaymentOutcome.REVERSED, last_modified_at=T0, status="cancelled")
    pending = snapshot(phase=orders.AWAITING_PAYMENT, modified_at=T0, status="pending")
    assert decisions.same_second_retry(cancelled, pending) and not decisions.is_newer(cancelled, pending)
    seen_pending = replace(cancelled, status="pending")  # the delivery was applied: its state is the one seen last
    read_back = replace(pending, read_back=True)
    assert decisions.is_newer(seen_pending, read_back) and not decisions.same_second_retry(seen_pending, read_back)
    assert not decisions.is_newer(cancelled, read_back)  # another state was applied after the one read back
    assert not decisions.is_newer(seen_pending, replace(read_back, modified_at=T0 - timedelta(seconds=1)))
    assert not decisions.same_second_retry(seen_pending, pending)  # the same state again: nothing to settle
    assert not decisions.same_second_retry(replace(cancelled, payment_outcome=PaymentOutcome.PAID), pending)
    assert not decisions.same_second_retry(cancelled, replace(pending, modified_at=T0 + timedelta(seconds=1)))


def test_failed_orders_are_released_after_the_shops_days_or_never():
    assert decisions.release_cutoff(settings(failed_order_release_days=7), T0) == T0 - timedelta(days=7)
    assert decisions.release_cutoff(settings(failed_order_release_days=0), T0) is None


def test_promotional_credit_expires_after_the_shops_days_or_never():
    assert decisions.promotional_expiry(settings(promotional_expiry_days=10), T0) == T0 + timedelta(days=10)
    assert decisions.promotional_expiry(settings(promotional_expiry_days=0), T0) is None


# Wallet payments


def test_a_payment_is_decided_again_only_in_a_newer_state_after_a_refusal_cancellation_or_reversal():
    newer = snapshot(phase=orders.AWAITING_PAYMENT, modified_at=T0 + timedelta(minutes=1))
    assert decisions.payment_undecided(Record(), newer)
    for outcome in (PaymentOutcome.UNPAID, PaymentOutcome.CANCELLED, PaymentOutcome.REVERSED):
        assert decisions.payment_undecided(Record(payment_outcome=outcome, last_modified_at=T0), newer)
        assert not decisions.payment_undecided(Record(payment_outcome=outcome, last_modified_at=T0), snapshot())
    for outcome in (PaymentOutcome.PAID, PaymentOutcome.PARTIAL, PaymentOutcome.STORE_CREDIT, PaymentOutcome.TOPUP):
        assert not decisions.payment_undecided(Record(payment_outcome=outcome, last_modified_at=T0), newer)


def test_a_failure_undoes_only_a_settled_payment_and_a_cancellation_always():
    failed = snapshot(phase=orders.FAILED)
    assert decisions.undoes_payment(snapshot(phase=orders.CANCELLED), Record())
    assert decisions.undoes_payment(failed, Record(payment_outcome=PaymentOutcome.PAID))
    assert decisions.undoes_payment(failed, Record(payment_outcome=PaymentOutcome.STORE_CREDIT))
    assert decisions.undoes_payment(failed, Record(points_earned=5))
    assert not decisions.undoes_payment(failed, Record(payment_outcome=PaymentOutcome.PARTIAL))
    assert not decisions.undoes_payment(snapshot(phase=orders.PAID), Record(payment_outcome=PaymentOutcome.PAID))


def test_what_counts_as_having_moved_money():
    assert not decisions.moved_money(Record())
    assert not decisions.moved_money(Record(payment_outcome=PaymentOutcome.UNPAID))
    assert not decisions.moved_money(Record(payment_outcome=PaymentOutcome.CANCELLED))
    assert decisions.moved_money(Record(payment_outcome=PaymentOutcome.REVERSED))
    assert decisions.moved_money(Record(points_earned=1))


@pytest.mark.parametrize(
    ("kind", "value", "total", "discount"),
    [
        ("none", 500, 1000, 0),
        ("percent", 1000, 999, 99),
        ("fixed", 300, 1000, 300),
        ("fixed", 3000, 1000, 1000),
    ],
)
def test_wallet_discount(kind, value, total, discount):
    rule = settings(wallet_discount_kind=kind, wallet_discount_value=value)
    assert decisions.wallet_discount(rule, total) == discount


@given(st.sampled_from(["none", "percent", "fixed"]), st.integers(0, 10_000), st.integers(0, 10**10))
def test_a_wallet_discount_is_never_more_than_the_order(kind, value, total):
    rule = settings(wallet_discount_kind=kind, wallet_discount_value=value)
    assert 0 <= decisions.wallet_discount(rule, total) <= total


def test_an_edited_total_is_neither_what_the_wallet_holds_nor_a_settled_total():
    paid = Record(total=1000, payment_outcome=PaymentOutcome.PAID, wallet_paid=900, wallet_discount=100)
    assert not decisions.total_edited(paid, snapshot(total=900))  # the discount fee is in
    assert not decisions.total_edited(paid, snapshot(total=1000))  # not yet in, or already settled
    assert decisions.total_edited(paid, snapshot(total=1200))
    assert not decisions.total_edited(
        replace(paid, total=900), snapshot(total=900, refunds=[RefundSnapshot("1", 100, "")])
    )
    assert not decisions.total_edited(replace(paid, payment_outcome=PaymentOutcome.PARTIAL), snapshot(total=1200))


def test_an_edit_worth_the_discount_is_an_edit_when_the_body_shows_the_discount_line_in():
    """Found on the real store (session 15): a €3.00 sticker added to a €19.99 order the wallet paid €16.99 of (its
    €3.00 discount line in) costs €19.99 = what the wallet holds + the discount, read as the line not yet in."""
    paid = Record(total=1699, payment_outcome=PaymentOutcome.PAID, wallet_paid=1699, wallet_discount=300)
    line_in = {"wallet_fees": 300, "discount_fees": 300}
    assert decisions.total_edited(paid, snapshot(total=1999, **line_in))
    assert not decisions.total_edited(paid, snapshot(total=1999, wallet_fees=0))  # the line not yet in
    assert not decisions.total_edited(replace(paid, total=1999), snapshot(total=1699, **line_in))


def test_an_edit_after_refunds_compares_what_the_order_now_costs_less_them_with_what_the_wallet_holds():
    refunded = Record(total=1000, payment_outcome=PaymentOutcome.PAID, wallet_paid=1000, wallet_refunded=100)
    refund = [RefundSnapshot("1", 100, "")]
    assert not decisions.total_edited(refunded, snapshot(total=1000, refunds=refund), refunded_before=100)
    lowered = snapshot(total=600, refunds=refund)
    assert decisions.total_edited(refunded, lowered, refunded_before=100)
    assert decisions.net_cost(lowered, 100) - decisions.wallet_held(refunded) == -400
    below_the_refunds = snapshot(total=50, refunds=refund)
    assert decisions.net_cost(below_the_refunds, 100) == 0  # all the wallet holds goes back, never more
    lowered_then_refunded = snapshot(total=600, phase=orders.REFUNDED, refunds=[RefundSnapshot("2", 600, "")])
    assert decisions.total_edited(refunded, lowered_then_refunded)  # its refund's delivery shows the edit too
    assert not decisions.total_edited(refunded, snapshot(total=1500, phase=orders.REFUNDED))  # never charged more


def test_a_wallet_part_is_cut_only_when_the_shop_capped_the_fee_of_a_partly_paid_order():
    partial = Record(payment_outcome=PaymentOutcome.PARTIAL, wallet_paid=1500, paid_in_part=True)
    cut = snapshot(total=0, phase=orders.AWAITING_PAYMENT, wallet_fees=999)
    assert decisions.wallet_part_cut(partial, cut) == 501
    assert decisions.wallet_part_cut(partial, replace(cut, total=1)) == 0  # something left: the fee stands whole
    assert decisions.wallet_part_cut(partial, replace(cut, wallet_fees=None)) == 0  # the body does not say
    assert decisions.wallet_part_cut(partial, replace(cut, phase=orders.CANCELLED)) == 0  # a cancellation returns all
    assert decisions.wallet_part_cut(partial, replace(cut, refunds=(RefundSnapshot("9", 100, ""),))) == 0
    assert decisions.wallet_part_cut(replace(partial, payment_outcome=PaymentOutcome.PAID), cut) == 0
    assert decisions.wallet_part_cut(replace(partial, wallet_refunded=501), cut) == 0  # returned already


def test_a_cut_wallet_part_is_counted_without_the_discount_line_the_shop_left():
    """Found on the real store (session 15): a discounted order raised, then edited below the wallet's €18.00; the
    shop cut its fees in line order: the €1.99 discount stays, the wallet's line is €8.00. €10.00 goes back, not
    €8.01."""
    partial = Record(payment_outcome=PaymentOutcome.PARTIAL, wallet_paid=1800, paid_in_part=True)
    cut = snapshot(total=0, phase=orders.AWAITING_PAYMENT, wallet_fees=999, discount_fees=199)
    assert cut.wallet_part_fees == 800
    assert decisions.wallet_part_cut(partial, cut) == 1000


def test_an_order_binds_no_customer_once_all_it_moved_went_back():
    reversed_ = Record(payment_outcome=PaymentOutcome.REVERSED, wallet_paid=1999, wallet_refunded=1999)
    assert decisions.all_given_back(reversed_)
    assert not decisions.all_given_back(replace(reversed_, wallet_refunded=1000))  # part of it still held
    assert not decisions.all_given_back(replace(reversed_, points_earned=19, points_clawed_back=10))
    assert not decisions.all_given_back(replace(reversed_, payment_outcome=PaymentOutcome.PAID))


def test_a_partly_paid_order_awaiting_the_rest_changed_when_the_shop_asks_another_amount():
    partial = Record(total=2998, payment_outcome=PaymentOutcome.PARTIAL, wallet_paid=1000, paid_in_part=True)
    edited = snapshot(total=3488, phase=orders.AWAITING_PAYMENT, wallet_fees=1000)
    assert decisions.partial_total_changed(partial, edited)
    assert not decisions.partial_total_changed(partial, replace(edited, total=2998))  # as last seen
    assert not decisions.partial_total_changed(partial, replace(edited, wallet_fees=999))  # the fee being written
    assert not decisions.partial_total_changed(partial, replace(edited, phase=orders.PAID))  # paid: nothing left
    assert not decisions.partial_total_changed(partial, replace(edited, total=0))  # a cut fee: settled apart


def test_what_was_paid_by_other_means():
    partial = Record(payment_outcome=PaymentOutcome.PARTIAL, wallet_paid=300, paid_in_part=True)
    assert decisions.paid_by_other_means(partial, snapshot(total=700), pays_by_wallet=True) == 700
    assert decisions.paid_by_other_means(Record(payment_outcome=PaymentOutcome.PAID), snapshot(), True) == 0
    assert decisions.paid_by_other_means(Record(), snapshot(total=1000), pays_by_wallet=True) == 0  # marked by hand
    assert decisions.paid_by_other_means(Record(), snapshot(total=1000), pays_by_wallet=False) == 1000
    assert decisions.paid_by_other_means(Record(), snapshot(phase=orders.AWAITING_PAYMENT), False) == 0
    spent = Record(payment_outcome=PaymentOutcome.STORE_CREDIT, wallet_paid=400)
    assert decisions.paid_by_other_means(spent, snapshot(total=1000), pays_by_wallet=False) == 600
    card_paid_the_rest = replace(partial, card_paid=700)  # then the wallet's fee line was taken off: 1000
    assert decisions.paid_by_other_means(card_paid_the_rest, snapshot(total=1000), pays_by_wallet=False) == 700
    assert decisions.paid_by_other_means(card_paid_the_rest, snapshot(total=500), pays_by_wallet=False) == 500
    relabelled = Record(card_paid=1000)  # paid whole by card, then given the wallet's method
    assert decisions.paid_by_other_means(relabelled, snapshot(total=1000), pays_by_wallet=True) == 1000
    # a card order edited up after its payment, the rest paid too (Shopify asks it): the whole is card money
    assert decisions.paid_by_other_means(relabelled, snapshot(total=1500), pays_by_wallet=False) == 1500


def test_a_partly_paid_order_is_fully_refunded_at_its_total_or_when_set_refunded():
    partial = Record(wallet_paid=300, paid_in_part=True)
    assert decisions.fully_refunded(partial, snapshot(total=700, refunds=[RefundSnapshot("1", 700, "")]))
    assert decisions.fully_refunded(partial, snapshot(total=700, phase=orders.REFUNDED))
    assert not decisions.fully_refunded(partial, snapshot(total=700, refunds=[RefundSnapshot("1", 699, "")]))
    assert not decisions.fully_refunded(replace(partial, wallet_refunded=300), snapshot(phase=orders.REFUNDED))


def test_an_overcharge_is_what_the_shop_did_not_apply_at_most_what_the_order_holds():
    assert decisions.wallet_overcharge(held=500, charged=500, credited_by_shop=450) == 50
    assert decisions.wallet_overcharge(held=500, charged=None, credited_by_shop=0) == 500
    assert decisions.wallet_overcharge(held=100, charged=500, credited_by_shop=-5) == 100
    assert decisions.wallet_overcharge(held=500, charged=500, credited_by_shop=500) == 0


# Refunds


def test_a_refund_returns_card_money_first_then_wallet_money():
    order = snapshot(total=1000, refunds=[RefundSnapshot("1", 600, ""), RefundSnapshot("2", 300, "")])
    first = decisions.split_refund(order, order.refunds[0], wallet_held=400, paid_otherwise=600)
    second = decisions.split_refund(order, order.refunds[1], wallet_held=400, paid_otherwise=600)
    assert (first.card_part, first.wallet_part) == (600, 0)
    assert (second.card_part, second.wallet_part) == (0, 300)


def test_a_refund_the_shop_settled_to_its_store_credit_is_split_as_it_says():
    refund = RefundSnapshot("1", 500, "", to_store_credit=400)
    split = decisions.split_refund(snapshot(refunds=[refund]), refund, wallet_held=300, paid_otherwise=0)
    assert split == decisions.RefundSplit(wallet_part=300, card_part=100, native=True, native_extra=100)


def test_a_refund_made_before_the_rest_was_paid_counts_against_the_rest_once_paid():
    """23.79 of which the wallet paid 10.00: 5.00 refunded while the shop waited for the 13.79 (wallet money then),
    8.79 after the card paid it. Now the card's 13.79 covers both refunds, and the first stops counting against
    the wallet part; a refund that still exceeds the card's money keeps that excess as wallet money."""
    order = snapshot(total=1379, refunds=[RefundSnapshot("1", 500, ""), RefundSnapshot("2", 879, "")])
    recount = decisions.recount_refund
    assert recount(order, order.refunds[0], wallet_part=500, paid_otherwise=0) == decisions.Recount(0, 0)
    assert recount(order, order.refunds[0], wallet_part=500, paid_otherwise=1379) == decisions.Recount(500, 500)
    assert recount(order, order.refunds[1], wallet_part=879, paid_otherwise=1000) == decisions.Recount(500, 500)
    assert recount(order, order.refunds[1], wallet_part=0, paid_otherwise=1379) == decisions.Recount(879, 0)
    # 15.00 refunded while only the wallet's 10.00 was paid: all 15.00 is the card's money once it paid
    early = snapshot(total=2998, refunds=[RefundSnapshot("1", 1500, "")])
    assert recount(early, early.refunds[0], wallet_part=1000, paid_otherwise=2998) == decisions.Recount(1500, 1000)


def test_refunds_are_ordered_by_numeric_id():
    refunds = [RefundSnapshot(i, 1, "") for i in ("10", "9", "abc")]
    assert [r.external_id for r in sorted(refunds, key=decisions.refund_sort_key)] == ["abc", "9", "10"]


@st.composite
def paid_orders(draw):
    """An order paid `paid_otherwise` by other means and `wallet` from the wallet, its refunds (distinct ids,
    at most what was paid), and an order in which the deliveries apply them."""
    paid_otherwise, wallet = draw(st.integers(0, 100_000)), draw(st.integers(0, 100_000))
    amounts = draw(st.lists(st.integers(1, 50_000), max_size=6))
    kept, left = [], paid_otherwise + wallet
    for amount in amounts:
        if amount <= left:
            kept.append(amount)
            left -= amount
    ids = draw(st.lists(st.integers(1, 10**6), min_size=len(kept), max_size=len(kept), unique=True))
    refunds = [RefundSnapshot(str(i), amount, "") for i, amount in zip(ids, kept, strict=True)]
    applied = draw(st.permutations(refunds))
    return snapshot(total=paid_otherwise + wallet, refunds=refunds), paid_otherwise, wallet, applied


def _apply_all(order, paid_otherwise, wallet, applied):
    held, splits = wallet, {}
    for refund in applied:
        split = decisions.split_refund(order, refund, held, paid_otherwise)
        held -= split.wallet_part
        splits[refund.external_id] = split
    return splits


@given(paid_orders())
def test_refund_splits_give_back_each_refund_exactly_and_never_more_than_was_paid(case):
    order, paid_otherwise, wallet, applied = case
    splits = _apply_all(order, paid_otherwise, wallet, applied)
    for refund in order.refunds:
        split = splits[refund.external_id]
        assert split.card_part >= 0 and split.wallet_part >= 0
        assert split.card_part + split.wallet_part == refund.amount
    assert sum(s.card_part for s in splits.values()) <= paid_otherwise
    assert sum(s.wallet_part for s in splits.values()) <= wallet


@given(paid_orders(), st.randoms())
def test_a_refunds_card_part_does_not_depend_on_the_order_they_are_applied_in(case, random):
    order, paid_otherwise, wallet, applied = case
    shuffled = list(applied)
    random.shuffle(shuffled)
    first = _apply_all(order, paid_otherwise, wallet, applied)
    second = _apply_all(order, paid_otherwise, wallet, shuffled)
    assert {k: s.card_part for k, s in first.items()} == {k: s.card_part for k, s in second.items()}


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6))
def test_a_native_split_adds_up_to_the_refund(wallet_held, card, to_store_credit):
    refund = RefundSnapshot("1", card + to_store_credit, "", to_store_credit=to_store_credit)
    split = decisions.split_refund(snapshot(refunds=[refund]), refund, wallet_held, paid_otherwise=0)
    if to_store_credit:
        assert split.wallet_part <= wallet_held
        assert split.wallet_part + split.native_extra + split.card_part == refund.amount


@given(st.integers(0, 10**9), st.integers(0, 10**9), st.integers(0, 10**6))
def test_a_share_is_between_nothing_and_the_part(refunded, total, part):
    assert 0 <= decisions.share(refunded, total, part) <= part
    assert decisions.share(total, total, part) == (part if total > 0 else 0)


@given(paid_orders(), st.integers(0, 10**6))
def test_refunds_claw_back_at_most_the_points_earned_and_all_of_them_once_refunded_in_full(case, earned):
    order, _, _, applied = case
    record = Record(points_earned=earned)
    for refund in applied:
        record.points_clawed_back += max(decisions.points_to_claw_back(record, order, refund), 0)
    assert record.points_clawed_back <= earned
    if order.total and sum(r.amount for r in order.refunds) == order.total:
        assert record.points_clawed_back == earned


def test_a_refund_takes_its_share_of_what_is_left_and_the_last_one_all_of_it():
    """10.00 refunded before the card paid (and the points were earned): the last refund takes back all 39. A total
    lowered from 40.00 to 20.00 took 20 of 40 points: half of the rest refunded takes half of what is left."""
    order = snapshot(total=2998, refunds=[RefundSnapshot("1", 1000, ""), RefundSnapshot("2", 1998, "")])
    assert decisions.points_to_claw_back(Record(points_earned=39), order, order.refunds[1]) == 39
    assert decisions.points_to_claw_back(Record(points_earned=39, points_clawed_back=5), order, order.refunds[1]) == 34
    lowered = snapshot(total=2000, refunds=[RefundSnapshot("1", 1000, "")])
    assert (
        decisions.points_to_claw_back(Record(points_earned=40, points_clawed_back=20), lowered, lowered.refunds[0])
        == 10
    )


def test_a_refund_taken_as_points_converts_at_the_shops_rate():
    rate = settings(points_conversion_points=100, points_conversion_value=50)  # 100 points are worth 0.50
    assert decisions.money_as_points(rate, 1234) == 2468
    assert decisions.money_as_points(settings(points_conversion_value=0), 10) == 10 * 100


def test_the_return_window_is_the_highest_tier_reached():
    windows = [
        {"tier": "Gold", "min_lifetime_spend": 50_000, "days": 90},
        {"tier": "Standard", "min_lifetime_spend": 0, "days": 30},
    ]
    tiers = ShopSettings.load({"return_windows": windows})
    assert decisions.return_window(tiers, 49_999) == ("Standard", 30)
    assert decisions.return_window(tiers, 50_000) == ("Gold", 90)


# Points, top-ups, tips


def test_points_are_earned_per_whole_currency_unit():
    per_euro = settings(points_per_currency_unit=1)
    assert decisions.points_for(per_euro, 999, "EUR") == 9
    assert decisions.points_for(per_euro, 999, "JPY") == 999


def test_points_are_earned_on_the_items_and_perhaps_shipping_never_more_than_was_paid():
    order = snapshot(items_excluding_tax=800, shipping_excluding_tax=100)
    assert decisions.points_base(DEFAULTS, order, paid=1000) == 800
    assert decisions.points_base(settings(points_base="items_and_shipping"), order, paid=1000) == 900
    assert decisions.points_base(settings(points_base="items_and_shipping"), order, paid=850) == 850
    assert decisions.points_base(DEFAULTS, snapshot(), paid=1000) == 1000  # no items listed


@given(st.integers(1, 1000), st.integers(0, 10**6), st.integers(0, 10**7))
def test_a_conversion_uses_whole_steps_only(step, value, points):
    used, money = decisions.conversion_value(
        settings(points_conversion_points=step, points_conversion_value=value), points
    )
    assert 0 <= points - used < step and used % step == 0
    assert money == used // step * value


def test_a_topup_bonus_starts_at_its_threshold():
    bonus = settings(topup_bonus_bp=500, topup_bonus_threshold=5000)
    assert decisions.topup_bonus(bonus, 4999) == 0
    assert decisions.topup_bonus(bonus, 5000) == 250
    assert decisions.topup_bonus(DEFAULTS, 10_000) == 0


def test_a_preset_tip_is_a_share_of_what_the_customer_paid_for_the_order():
    tips = settings(tip_presets_bp=(1000, 1500))
    partial = Record(total=700, payment_outcome=PaymentOutcome.PARTIAL, wallet_paid=300)
    assert decisions.tip_amount(tips, partial, 1000, None) == 100
    assert decisions.tip_amount(tips, Record(total=700), 1000, None) == 70
    assert decisions.tip_amount(tips, partial, None, 250) == 250
    with pytest.raises(ValidationFailed):
        decisions.tip_amount(tips, partial, 2000, None)
    with pytest.raises(ValidationFailed):
        decisions.tip_amount(tips, partial, 1000, 250)


def test_an_order_changed_well_after_its_payment_is_told_apart():
    paid_at = datetime(2026, 11, 23, 10, 1, tzinfo=UTC)
    assert not decisions.changed_after_payment(snapshot(paid_at=paid_at, modified_at=paid_at + timedelta(seconds=2)))
    assert decisions.changed_after_payment(snapshot(paid_at=paid_at, modified_at=paid_at + timedelta(minutes=1)))
    assert not decisions.changed_after_payment(snapshot(modified_at=paid_at))  # the body does not say when it was paid
