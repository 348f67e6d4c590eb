"""A WooCommerce order's life beyond the straight path: a card declined after a partial wallet payment, a
refused wallet order paid again, states arriving late, a cancelled order set paid again, an order given to
another customer, and messages to the shop overtaken by the order's fate. Signed deliveries in, the
ledger and the REST calls out."""

from __future__ import annotations

from datetime import timedelta

import responses
from sqlalchemy import select

from bridge.accounts import ensure_customer, find_wallet
from bridge.db import unit_of_work
from bridge.ledger import authorize_hold
from bridge.models import LedgerTransaction, OutboxMessage, Shop, utcnow
from bridge.statement_links import without_link
from bridge.surfaces.platforms import pushers_for
from sync.worker import drain
from tests.integration.test_woocommerce_webhooks import FAST, count, fund, wallet_balance, woo  # noqa: F401 - the fixture
from tests.woo import THE_REST_BY_CARD, FakeOrderEndpoint, order_body, post_delivery

TOTAL = 4148  # the captured wallet order: €41.48, customer 2, pending


def at(minute: int) -> str:
    """A date_modified_gmt: later minutes are newer states of the order."""
    return f"2026-11-23T12:{minute:02d}:00"


def deliver(client, woo, minute: int, **changes):  # noqa: F811 - the fixture
    response = post_delivery(client, woo, "order.updated", order_body(date_modified_gmt=at(minute), **changes))
    assert response.status_code == 200, response.get_json()


def configure(services, shop_id: int, **settings) -> None:
    with unit_of_work(services.sessions) as session:
        shop = session.get(Shop, shop_id)
        shop.settings = {**shop.settings, **settings}


def kinds(services) -> list[str]:
    with unit_of_work(services.sessions) as session:
        return list(session.scalars(select(LedgerTransaction.kind).order_by(LedgerTransaction.id)))


def messages(services) -> list[tuple[str, dict]]:
    with unit_of_work(services.sessions) as session:
        return [(m.kind, m.payload) for m in session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))]


# --- a failed payment ---------------------------------------------------------------------------------------


def test_a_declined_card_keeps_the_wallet_part_for_the_customers_next_try(client, services, woo):  # noqa: F811
    fund(services, woo, 1_000)
    deliver(client, woo, 0)  # the wallet pays €10.00 of €41.48; the rest by card
    deliver(client, woo, 1, status="failed", **THE_REST_BY_CARD)  # the card is declined
    assert wallet_balance(services, woo) == 0  # the order still carries the "Paid from wallet" line
    deliver(client, woo, 2, status="processing", **THE_REST_BY_CARD)  # paid on the next try
    assert wallet_balance(services, woo) == 0 and kinds(services) == ["adjustment", "payment"]


def test_a_failed_order_the_customer_cancels_returns_the_wallet_part(client, services, woo):  # noqa: F811
    fund(services, woo, 1_000)
    deliver(client, woo, 0)
    deliver(client, woo, 1, status="failed", **THE_REST_BY_CARD)
    deliver(client, woo, 2, status="cancelled", **THE_REST_BY_CARD)
    assert wallet_balance(services, woo) == 1_000


def test_a_refused_wallet_order_paid_again_after_a_top_up_is_charged(client, services, woo):  # noqa: F811
    configure(services, woo, partial_payments=False)
    fund(services, woo, 1_000)
    deliver(client, woo, 0)  # refused: €10.00 of €41.48
    deliver(client, woo, 1, status="failed")  # the bridge's own push
    deliver(client, woo, 1, status="failed")  # the same state again changes nothing
    fund(services, woo, 5_000)
    deliver(client, woo, 30, status="on-hold")  # the customer pays the failed order again
    assert wallet_balance(services, woo) == 6_000 - TOTAL
    assert [kind for kind, _ in messages(services) if kind != "order.note"] == ["order.mark_unpaid", "order.mark_paid"]


def test_a_wallet_order_refused_twice_is_told_twice(client, services, woo):  # noqa: F811
    configure(services, woo, partial_payments=False)
    fund(services, woo, 1_000)
    deliver(client, woo, 0)
    deliver(client, woo, 1, status="failed")
    deliver(client, woo, 30, status="on-hold")  # paid again, the wallet still short
    assert wallet_balance(services, woo) == 1_000
    refusals = [(kind, p["status"]) for kind, p in messages(services) if kind != "order.note"]
    assert refusals == [("order.mark_unpaid", "failed")] * 2


def test_a_card_order_that_failed_and_then_went_through_earns_its_points(client, services, woo):  # noqa: F811
    configure(services, woo, points_per_currency_unit=1)
    deliver(client, woo, 0, status="failed", payment_method="stripe")
    deliver(client, woo, 1, status="processing", payment_method="stripe")
    assert kinds(services) == ["points_earned"]


def test_an_expired_hold_does_not_make_a_wallet_payment_partial(client, services, woo):  # noqa: F811
    fund(services, woo, 5_000)
    with unit_of_work(services.sessions) as session:
        wallet = find_wallet(session, ensure_customer(session, woo, "2"), "EUR")
        hold, _ = authorize_hold(session, account=wallet, amount=3_000, reason="pre-order", idempotency_key="h")
        hold.expires_at = utcnow() - timedelta(minutes=1)  # the hourly job has not closed it yet
    deliver(client, woo, 0)
    assert wallet_balance(services, woo) == 5_000 - TOTAL
    assert [kind for kind, _ in messages(services) if kind != "order.note"] == ["order.mark_paid"]


# --- states arriving late -----------------------------------------------------------------------------------


def test_a_late_older_failed_state_takes_nothing_back(client, services, woo):  # noqa: F811
    configure(services, woo, points_per_currency_unit=1)
    deliver(client, woo, 2, status="processing", payment_method="stripe")
    deliver(client, woo, 1, status="failed", payment_method="stripe")  # older than what was seen
    deliver(client, woo, 1, status="cancelled", payment_method="stripe")
    assert kinds(services) == ["points_earned"]


# --- a cancelled order set paid again -----------------------------------------------------------------------


@responses.activate
def test_a_cancelled_order_set_paid_again_is_flagged_to_the_merchant_privately(client, services, woo):  # noqa: F811
    fund(services, woo, 10_000)
    deliver(client, woo, 0)
    deliver(client, woo, 1, status="processing")
    deliver(client, woo, 2, status="cancelled")
    deliver(client, woo, 3, status="processing")  # the merchant restores it
    deliver(client, woo, 3, status="processing")
    assert wallet_balance(services, woo) == 10_000  # not taken again behind anyone's back
    shop_order = FakeOrderEndpoint(responses.mock, order_body(status="processing"))
    drain(services.sessions, pushers_for(services), FAST)
    private = [note["note"] for note in shop_order.notes if not note["customer_note"]]
    assert len(private) == 1 and "€41.48" in private[0] and "processing again" in private[0]
    assert "/statement/" not in private[0]  # the merchant's note: no link to the customer's wallet


# --- an order given to another customer ---------------------------------------------------------------------


def test_a_reassigned_order_returns_its_payment_to_who_paid(client, services, woo):  # noqa: F811
    fund(services, woo, 10_000)
    deliver(client, woo, 0)  # customer 2 pays €41.48
    deliver(client, woo, 5, customer_id=3, status="cancelled")
    assert (wallet_balance(services, woo, "2"), wallet_balance(services, woo, "3")) == (10_000, 0)


def test_an_order_reassigned_before_any_payment_is_paid_by_its_new_customer(client, services, woo):  # noqa: F811
    configure(services, woo, partial_payments=False)
    fund(services, woo, 10_000, customer="3")
    deliver(client, woo, 0)  # customer 2 has no money: refused
    deliver(client, woo, 5, customer_id=3, status="on-hold")  # the merchant gives it to customer 3, who pays
    assert (wallet_balance(services, woo, "2"), wallet_balance(services, woo, "3")) == (0, 10_000 - TOTAL)


# --- messages overtaken by the order's fate -----------------------------------------------------------------


@responses.activate
def test_a_delayed_mark_paid_is_not_sent_after_the_order_was_cancelled(client, services, woo):  # noqa: F811
    fund(services, woo, 10_000)
    deliver(client, woo, 0)
    deliver(client, woo, 59, status="cancelled")  # before the worker pushed the payment
    shop_order = FakeOrderEndpoint(responses.mock, order_body(status="cancelled"))
    drain(services.sessions, pushers_for(services), FAST)
    assert shop_order.puts == []
    assert [without_link(n["note"]) for n in shop_order.notes] == ["€41.48 returned to your wallet."]


@responses.activate
def test_a_wallet_fee_is_not_added_to_an_order_paid_in_full_meanwhile(client, services, woo):  # noqa: F811
    fund(services, woo, 1_000)
    deliver(client, woo, 0)  # €10.00 taken, the fee not pushed yet
    shop_order = FakeOrderEndpoint(responses.mock, order_body(status="processing", payment_method="stripe"))
    drain(services.sessions, pushers_for(services), FAST)  # the customer paid €41.48 by card meanwhile
    assert shop_order.puts == [] and wallet_balance(services, woo) == 1_000
    assert [without_link(n["note"]) for n in shop_order.notes] == [
        "€10.00 returned to your wallet: the order was paid in full another way."
    ]
