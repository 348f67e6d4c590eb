"""Review of commits 3a4f72f and 71033ba (session 13): promotional money taken back from its own lots
(bridge/promotions.py), refunds restoring only the order's payment lots, a deleted refund's points, the sign-up bonus
once per address, and exact amount parsing (bridge.money.parse_scaled and the console's forms).

Seven faults found, fixed in the same session (their tests failed before): a cancellation redelivered once the wallet
had more free raised an IdempotencyConflict (the take-back keyed by the lot alone); converted points' money taken
twice for a refund deleted and made again, lost to whole steps over partial refunds, never taken by a cancellation,
nor for a deleted refund's points the customer had converted; the cashback a deleted refund took back lost; the
sign-up bonus's address compared with two different lower()s on PostgreSQL."""

from dataclasses import replace

import pytest
from sqlalchemy import select

from bridge import orders
from bridge.accounts import ensure_customer, points_account, wallet_account
from bridge.customer_rules import apply_customer
from bridge.db import unit_of_work
from bridge.errors import ValidationFailed
from bridge.ledger import verify, void_hold
from bridge.models import CreditLot
from bridge.money import parse_amount, parse_scaled
from bridge.order_rules import apply_order
from bridge.orders import CustomerSnapshot
from bridge.points import convert_points
from bridge.settings_schema import ShopSettings
from bridge.surfaces.console.forms import Invalid, parse_money, parse_percent
from bridge.wallets import hold_on_wallet
from tests.integration.test_api import auth
from tests.integration.test_order_rules import ACTOR, balance, configure, fund, order, paid, refunds
from tests.integration.test_refund_requests_tips import (  # noqa: F401 - woo is a fixture
    _later,
    ask,
    card_order,
    made_for,
    wallet,
    woo,
)
from tests.integration.test_refund_requests_tips import configure as configure_shop
from tests.woo import post_delivery

CARD = {"payment_method": "stripe"}


def cancelled(**changes):
    return paid(**{**CARD, "status": "cancelled", "phase": orders.CANCELLED, **changes})


def points_of(session, shop, customer="2"):
    return points_account(session, ensure_customer(session, shop.id, customer)).balance


def convert(session, shop, points, key="convert-1"):
    customer = ensure_customer(session, shop.id, "2")
    convert_points(session, shop, ShopSettings.load(shop.settings), customer, points, key)


def cashback_shop(session, shop):
    return configure(
        session, shop, cashback_kind="fixed", cashback_value=400, cashback_on="paid", refund_destination="original"
    )


def points_shop(session, shop):
    return configure(
        session,
        shop,
        points_per_currency_unit=10,  # €41.48 earns 414 points
        points_conversion_points=100,
        points_conversion_value=100,  # 100 points = €1.00
        refund_destination="original",  # refunds go to the card: only points and their money move the wallet
    )


# Cashback taken back from its own lots ---------------------------------------------------------------------------


def test_a_cancellation_redelivered_after_a_hold_ended_is_no_conflict(session, shop):
    """A card order's €4.00 cashback; €3.00 of the wallet reserved (a checkout's hold) when the order is cancelled:
    €1.00 of the cashback is taken back (key `order:12:cashback-reversal:lot-N`, 100). The hold ends; the shop sends
    the cancelled order again (WooCommerce does, on any later save): the order still keeps €3.00 of cashback, its lot
    holds €3.00 and is free, and the same key is posted with 300 → IdempotencyConflict, a failed delivery."""
    shop = cashback_shop(session, shop)
    apply_order(session, shop, paid(**CARD), ACTOR)
    assert balance(session, shop) == 400
    hold, _ = hold_on_wallet(
        session, shop, "2", amount=300, reason="checkout", idempotency_key="checkout-13", expires_in_seconds=600
    )
    apply_order(session, shop, cancelled(), ACTOR)
    assert balance(session, shop) == 300
    void_hold(session, shop_id=shop.id, hold_id=hold.id)
    apply_order(session, shop, cancelled(), ACTOR)  # the redelivery: must not raise
    after = balance(session, shop)
    apply_order(session, shop, cancelled(), ACTOR)
    assert balance(session, shop) == after and after in (0, 300)
    assert verify(session) == []


def test_a_cancellation_redelivered_after_spent_cashback_came_back_is_no_conflict(session, shop):
    """The cashback partly spent on another wallet order (#13), the card order #12 cancelled (€1.00 of it taken
    back), then #13 cancelled: its payment's €3.00 returns to the cashback's lot. The next delivery of #12 posts the
    same per-lot key with 300 → IdempotencyConflict."""
    shop = cashback_shop(session, shop)
    apply_order(session, shop, paid(**CARD), ACTOR)
    apply_order(session, shop, order(external_id="13", total=300), ACTOR)  # paid from the cashback
    assert balance(session, shop) == 100
    apply_order(session, shop, cancelled(), ACTOR)
    assert balance(session, shop) == 0
    apply_order(session, shop, order(external_id="13", total=300, status="cancelled", phase=orders.CANCELLED), ACTOR)
    assert balance(session, shop) == 300
    apply_order(session, shop, cancelled(), ACTOR)  # the redelivery: must not raise
    after = balance(session, shop)
    apply_order(session, shop, cancelled(), ACTOR)
    assert balance(session, shop) == after and after in (0, 300)
    assert verify(session) == []


def test_cashback_partly_spent_is_taken_back_from_what_is_left_of_its_own_lot_only(session, shop):
    """Pins what holds: €3.00 of the €4.00 cashback spent, the customer's own €10.00 deposit untouched by the
    refunds and the cancellation; the deposit never becomes promotional, and replays move nothing."""
    shop = cashback_shop(session, shop)
    apply_order(session, shop, paid(**CARD), ACTOR)
    apply_order(session, shop, order(external_id="13", total=300), ACTOR)  # the cashback lot expires first: spent
    fund(session, shop, 1_000)
    half = paid(**CARD, refunds=refunds((40, 2074)))
    for _ in range(2):
        apply_order(session, shop, half, ACTOR)
    assert balance(session, shop) == 1_000  # the lot's €1.00 left taken back, not €2.00 from the deposit
    for _ in range(2):
        apply_order(session, shop, replace(half, status="cancelled", phase=orders.CANCELLED), ACTOR)
    assert balance(session, shop) == 1_000
    customer = ensure_customer(session, shop.id, "2")
    wallet = wallet_account(session, customer, "EUR")
    lots = session.execute(select(CreditLot.source, CreditLot.remaining).where(CreditLot.account_id == wallet.id))
    assert sorted(tuple(lot) for lot in lots) == [("adjustment", 1_000), ("cashback", 0)]
    assert verify(session) == []


def test_cashback_a_deleted_refund_took_back_is_the_orders_again(session, shop):
    """A card order's €4.00 cashback; a refund of half takes €2.00 back; the shop deletes the refund (the order is
    paid in full again) and later refunds the same half again. One half refunded: €2.00 of cashback is kept. The
    deletion gives the points a refund clawed back to the order again, but not the cashback: €1.00 is left."""
    shop = cashback_shop(session, shop)
    card = paid(**CARD, refunds_complete=True)
    apply_order(session, shop, replace(card, refunds=refunds((40, 2074))), ACTOR)
    assert balance(session, shop) == 200
    apply_order(session, shop, card, ACTOR)  # the shop lists no refund any more
    assert balance(session, shop) == 400
    apply_order(session, shop, replace(card, refunds=refunds((41, 2074))), ACTOR)
    assert balance(session, shop) == 200
    assert verify(session) == []


# Converted points' money ------------------------------------------------------------------------------------------


def test_converted_points_money_is_not_taken_twice_for_a_refund_deleted_and_made_again(session, shop):
    """414 points, 400 converted to €4.00. A refund of half claws 207 back: 14 points and, for the 193 converted,
    €1.00 (one 100-point step). The shop deletes the refund: the 14 points come back, the €1.00 does not, yet the
    order's record counts all 207 as its own again. The same half refunded again takes €1.00 once more: one half
    refunded has cost the customer €2.00 of their converted money."""
    shop = points_shop(session, shop)
    card = paid(**CARD, refunds_complete=True)
    apply_order(session, shop, card, ACTOR)
    convert(session, shop, 400)
    assert (points_of(session, shop), balance(session, shop)) == (14, 400)
    apply_order(session, shop, replace(card, refunds=refunds((40, 2074))), ACTOR)
    assert (points_of(session, shop), balance(session, shop)) == (0, 400 - 193)  # the 193 converted, at their rate
    apply_order(session, shop, card, ACTOR)  # the shop lists no refund any more
    assert (points_of(session, shop), balance(session, shop)) == (14, 400)  # as before the refund
    apply_order(session, shop, replace(card, refunds=refunds((41, 2074))), ACTOR)
    assert (points_of(session, shop), balance(session, shop)) == (0, 400 - 193)
    assert verify(session) == []


def test_converted_points_money_follows_an_order_refunded_in_parts(session, shop):
    """414 points, 400 converted to €4.00; the order refunded in full in eleven parts (ten of €4.00, then €1.48).
    Refunded in one, the refund takes the €4.00 back (test_order_rules' shortfall test). In parts, each refund's
    shortfall (~40 points) is valued in whole 100-point steps, rounded down, and what is below a step is never carried
    to the next refund: nothing is taken back and the €4.00 stays with the customer."""
    shop = points_shop(session, shop)
    apply_order(session, shop, paid(**CARD), ACTOR)
    convert(session, shop, 400)
    made = []
    for number, amount in enumerate([400] * 10 + [148]):
        made.append((100 + number, amount))
        last = number == 10
        apply_order(
            session, shop, paid(**CARD, status="refunded" if last else "processing", refunds=refunds(*made)), ACTOR
        )
    assert (points_of(session, shop), balance(session, shop)) == (0, 0)
    assert verify(session) == []


def test_converted_points_money_is_taken_from_what_is_left_of_the_conversion_only(session, shop):
    """Pins what holds: €3.00 of the €4.00 conversion spent on wallet order #13, €10.00 deposited; the full refund,
    redelivered, takes the €1.00 left of the conversion's lot and never the deposit (still withdrawable)."""
    shop = points_shop(session, shop)
    apply_order(session, shop, paid(**CARD), ACTOR)
    convert(session, shop, 400)
    apply_order(session, shop, order(external_id="13", total=300), ACTOR)
    fund(session, shop, 1_000)
    whole = paid(**CARD, status="refunded", refunds=refunds((40, 4148)))
    for _ in range(2):
        apply_order(session, shop, whole, ACTOR)
    assert (points_of(session, shop), balance(session, shop)) == (0, 1_000)
    wallet = wallet_account(session, ensure_customer(session, shop.id, "2"), "EUR")
    lots = session.execute(select(CreditLot.source, CreditLot.remaining).where(CreditLot.account_id == wallet.id))
    assert sorted(tuple(lot) for lot in lots) == [("adjustment", 1_000), ("points_conversion", 0)]
    assert verify(session) == []


def test_points_converted_after_a_partial_refund_are_taken_back_by_the_refund_completing_the_order(session, shop):
    """Pins what holds: 207 of 414 points clawed back by a half refund, the other 207 converted (200 → €2.00), the
    rest refunded (redelivered): 7 points and €2.00 taken back, once."""
    shop = points_shop(session, shop)
    apply_order(session, shop, paid(**CARD), ACTOR)
    apply_order(session, shop, paid(**CARD, refunds=refunds((40, 2074))), ACTOR)
    convert(session, shop, 200)
    assert (points_of(session, shop), balance(session, shop)) == (7, 200)
    for _ in range(2):
        apply_order(session, shop, paid(**CARD, status="refunded", refunds=refunds((40, 2074), (41, 2074))), ACTOR)
    assert (points_of(session, shop), balance(session, shop)) == (0, 0)
    assert verify(session) == []


@pytest.mark.parametrize("refunded_first", [False, True], ids=["cancelled", "refunded-half-then-cancelled"])
def test_a_cancelled_card_order_takes_back_its_converted_points_money(session, shop, refunded_first):
    """414 points, 400 converted to €4.00, the order cancelled (after a refund of half, or not): the cancellation
    claws back all the order's points, but only those still held; the money of the converted ones stays with the
    customer, where a full refund takes it (test_order_rules' shortfall test). Buy, convert, cancel: €4.00 free."""
    shop = points_shop(session, shop)
    apply_order(session, shop, paid(**CARD), ACTOR)
    convert(session, shop, 400)
    if refunded_first:
        apply_order(session, shop, paid(**CARD, refunds=refunds((40, 2074))), ACTOR)
    for _ in range(2):
        apply_order(session, shop, cancelled(refunds=refunds((40, 2074)) if refunded_first else ()), ACTOR)
    assert (points_of(session, shop), balance(session, shop)) == (0, 0)
    assert verify(session) == []


# Amount parsing -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("41.48", "EUR", 4148),
        (" -9.00 ", "EUR", -900),
        ("10.0", "EUR", 1000),  # Shopify's MoneyV2 amounts carry one decimal
        ("1000.0", "JPY", 1000),
        ("1.5", "KWD", 1500),
        ("0.10000000000000000000000000000000", "EUR", 10),
        (12, "EUR", 1200),
        ("00012.50", "EUR", 1250),
        ("-0.00", "EUR", 0),
        ("5", "PTS", 5),
    ],
)
def test_parse_amount_reads_what_the_shops_send(text, currency, minor):
    assert parse_amount(text, currency) == minor


@pytest.mark.parametrize(
    "text",
    [
        "5.0000000000000000000000000000001",
        "٣.00",
        "1e2",
        "1_000",
        "+5",
        "5.",
        ".5",
        "",
        "5\n0",
        "1" * 1_001,
        1.5,
        True,
        None,
    ],
)
def test_parse_amount_refuses_with_a_validation_error(text):
    with pytest.raises(ValidationFailed):
        parse_amount(text, "EUR")


def test_console_money_and_percent_fields_are_exact():
    assert parse_money("12,50", "EUR") == 1250
    assert parse_percent("12,5 %") == 1250
    for raw in ("5.0000000000000000000000000000001", "1e-999999999", "٣"):
        with pytest.raises(Invalid):
            parse_percent(raw)
        with pytest.raises(Invalid):
            parse_money(raw, "EUR")
    assert parse_scaled("1" * 1_000, 0) == int("1" * 1_000)


# The sign-up bonus once per address ----------------------------------------------------------------------------------


@pytest.mark.parametrize("address", ["İnci@example.test", "ΟΔΥΣΣΕΑΣ@example.test", "Alice@Example.test"])
def test_the_same_address_registered_again_gets_no_second_signup_bonus_on_either_database(session, shop, address):
    """The very same address, registered again under a new id: one bonus. `_bonus_given_to_the_address` compares the
    database's lower() of the stored address with Python's str.lower() of the new one; SQLite's is Python's, but
    PostgreSQL's (C.UTF-8 here) lowers 'İ' to 'i' (Python: 'i̇') and a final 'Σ' to 'σ' (Python: 'ς'): no match, and
    the second bonus is paid on PostgreSQL only."""
    shop = configure(session, shop, signup_bonus=500)
    apply_customer(session, shop, CustomerSnapshot("2", address, "First"), ACTOR, is_new=True)
    apply_customer(session, shop, CustomerSnapshot("3", address, "Again"), ACTOR, is_new=True)
    apply_customer(session, shop, CustomerSnapshot("3", address, "Again"), ACTOR, is_new=True)  # redelivered
    assert [balance(session, shop, customer) for customer in ("2", "3")] == [500, 0]


# Webhook level -------------------------------------------------------------------------------------------------------


def test_points_a_deleted_refund_gave_and_the_customer_converted_leave_as_money(client, services, woo):  # noqa: F811
    """A €10.00 refund taken as 2,000 points (at 100 points = €0.50); the customer converts them to €10.00 of wallet
    money; the shop deletes the refund (it refunded nothing). The deletion claws back only points still held (none):
    the €10.00 stays in the wallet, paid for nothing. A refund's shortfall is taken back as money
    (take_back_converted); the deleted refund's is not."""
    post_delivery(client, woo.shop.id, "order.created", card_order())
    asked = ask(client, woo, destination="points")
    refunded = card_order(refunds=[made_for(asked, 62)])
    post_delivery(client, woo.shop.id, "order.updated", refunded)
    converted = client.post("/api/v1/customers/2/points/conversions", json={}, headers=auth(woo, "convert-all"))
    assert converted.status_code == 201, converted.get_json()
    assert (wallet(client, woo)["points"], wallet(client, woo)["balance"]) == (0, 1_000)
    for _ in range(2):  # the shop lists the refund no more
        response = post_delivery(client, woo.shop.id, "order.updated", card_order(**_later(refunded)))
        assert response.status_code < 300 and response.get_json()["status"] == "applied", response.get_json()
    assert (wallet(client, woo)["points"], wallet(client, woo)["balance"]) == (0, 0)
    with unit_of_work(services.sessions) as session:
        assert verify(session) == []


def test_a_webhook_amount_with_more_digits_than_decimal_holds_is_refused_not_rounded(client, services, woo):  # noqa: F811
    """Pins what holds: a WooCommerce total of 40.000…0001 (more digits than Decimal's 28) is a 422 naming the
    field, never read as 40.00; the same order sent right is applied."""
    body = card_order(total="40." + "0" * 40 + "1")
    response = post_delivery(client, woo.shop.id, "order.created", body)
    assert response.status_code == 422, response.get_data(as_text=True)
    assert "total" in response.get_data(as_text=True)
    assert post_delivery(client, woo.shop.id, "order.created", card_order()).get_json()["status"] == "applied"


def test_a_cancelled_order_delivered_again_after_a_hold_ended_is_applied(client, services, woo):  # noqa: F811
    """The first cashback finding through the webhook: a €40.00 card order's €4.00 cashback, a €3.00 hold on the
    wallet while the shop cancels it (€1.00 taken back), the hold voided, the cancelled order delivered again (a later
    save in the shop): the delivery must apply, not fail on the per-lot key's other amount."""
    configure_shop(services, woo, cashback_kind="fixed", cashback_value=400, cashback_on="paid")
    post_delivery(client, woo.shop.id, "order.created", card_order())
    assert wallet(client, woo)["balance"] == 400
    held = client.post(
        "/api/v1/customers/2/holds", json={"amount": 300, "reason": "checkout"}, headers=auth(woo, "hold-1")
    )
    assert held.status_code == 201, held.get_json()
    first = card_order(status="cancelled")
    assert post_delivery(client, woo.shop.id, "order.updated", first).get_json()["status"] == "applied"
    assert wallet(client, woo)["balance"] == 300
    voided = client.post(f"/api/v1/holds/{held.get_json()['hold_id']}/void", headers=auth(woo, "void-1"))
    assert voided.status_code == 200, voided.get_json()
    again = card_order(status="cancelled", **_later(first))
    response = post_delivery(client, woo.shop.id, "order.updated", again)
    assert response.status_code < 300 and response.get_json()["status"] == "applied", response.get_json()
