"""Outside review (session 10) of the session's own changes (4a904fa..): six findings fixed in the same session (their
tests failed before); the two still marked xfail(strict) are open (the wallet fee taken off by hand); the plain
ones pin behaviour that held under odd input."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bridge.db import unit_of_work
from bridge.ledger import verify
from bridge.models import Shop
from tests.console_support import move
from tests.e2e.test_e2e_simulator import balances, clock, configure, connected, push, sim  # noqa: F401 - fixtures
from tests.e2e.test_orders_never_paid_and_edited import alices_wallet_order
from tests.e2e.test_wallet_orders_on_the_shop import fund
from tests.integration.test_api import auth
from tests.integration.test_topups_withdrawals import paid_topup, wallet, woo  # noqa: F401 - fixtures
from tests.woo import order_body, post_delivery

pytest_plugins = ("tests.console_fixtures",)
NOW = datetime.now(UTC)


def statement_link(client, shop, customer="42") -> str:
    response = client.post(f"/api/v1/customers/{customer}/statement-link", headers=auth(shop))
    assert response.status_code == 201
    return response.get_json()["url"].split("https://bridge.example.test", 1)[1]


@pytest.mark.parametrize("cursor", ["abc", "MA==", "%%%", "é", "LTE=", "OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5"])
def test_statement_with_a_bad_cursor_is_no_500(client, services, shop, cursor):
    move(services, shop.shop, "42", "adjustment", 100, NOW, "funds")
    url = statement_link(client, shop)
    r = client.get(url, query_string={"cursor": cursor})
    assert r.status_code < 500, r.status_code
    base, _, query = url.partition("?")
    r = client.get(base + ".json", query_string={"cursor": cursor})
    assert r.status_code < 500, (r.status_code, r.get_data(as_text=True)[:300])


# Money on the simulated WooCommerce store ------------------------------------------------------------------------


def _edit_item(sim, order_id: int, total: str) -> None:
    item = sim.order(order_id)["line_items"][0]["id"]
    sim.update_order(order_id, line_items=[{"id": item, "total": total}])


def test_points_of_an_order_lowered_then_raised_back_follow_what_was_paid(
    client, services, shop, sim, clock, connected
):
    alice, order_id = alices_wallet_order(client, services, shop, sim, clock, funded=10_000, total="40.00")
    push(services)
    assert sim.order(order_id)["status"] == "processing"
    wallet0, points0 = balances(services, shop.shop.id, alice)
    assert points0 == 40
    clock.advance()
    _edit_item(sim, order_id, "20.00")
    push(services)
    wallet1, points1 = balances(services, shop.shop.id, alice)
    assert wallet1 == wallet0 + 2_000 and points1 == 20
    clock.advance()
    _edit_item(sim, order_id, "40.00")
    push(services)
    wallet2, points2 = balances(services, shop.shop.id, alice)
    assert wallet2 == wallet0  # the customer paid the 40.00 again
    assert points2 == 40  # ... and has the points of 40.00 paid


# Top-up bonus -------------------------------------------------------------------------------------------------


def test_bonus_of_a_topup_refunded_to_the_card_goes_when_its_spent_money_comes_back(client, services, woo):
    """Like test_money_coming_back_into_a_topup_refunded_to_the_card_is_taken_back, with the top-up's bonus: a 100.00
    top-up (10.00 bonus) is spent whole on a wallet order, the top-up refunded to the card in full (nothing left to
    take then), then the wallet order is cancelled: its 110.00 come back. The card has the 100.00; the cash goes
    again, and so must the bonus that rewarded a deposit the customer no longer has."""
    topup = dict(total="100.00", requested=10_000)
    spend = order_body(
        id=40,
        status="pending",
        payment_method="wallet",
        total="110.00",
        refunds=[],
        date_modified_gmt="2026-11-23T10:00:00",
    )
    post_delivery(client, woo.shop.id, "order.updated", paid_topup(**topup))
    assert wallet(client, woo)["balance"] == 11_000
    post_delivery(client, woo.shop.id, "order.created", spend)
    assert wallet(client, woo)["balance"] == 0
    post_delivery(client, woo.shop.id, "order.updated", paid_topup(**topup, refunds=[{"id": 31, "total": "-100.00"}]))
    assert wallet(client, woo)["balance"] == 0

    cancelled = dict(spend, status="cancelled", date_modified_gmt="2026-11-23T10:05:00")
    assert post_delivery(client, woo.shop.id, "order.updated", cancelled).get_json()["status"] == "applied"
    with unit_of_work(services.sessions) as session:
        assert verify(session) == []
    # taken back by the delivery that returned it, as the cash is (no later repeat of the top-up's delivery needed)
    assert wallet(client, woo)["balance"] == 0, "the bonus of the refunded top-up stays in the wallet"


def _remove_fee(sim, order_id: int, name: str = "Paid from wallet") -> None:
    fee = next(fee for fee in sim.order(order_id)["fee_lines"] if fee["name"] == name)
    sim.update_order(order_id, fee_lines=[{"id": fee["id"], "name": None}])


def test_the_wallet_fee_removed_after_the_card_paid_only_the_rest_returns_nothing(
    client, services, shop, sim, clock, connected
):
    """A 39.98 order: the wallet pays 10.00 (5.00 funded and the 5.00 sign-up bonus), the card the 29.98 left, the
    bridge sees it paid with its fee on. Afterwards the merchant takes the "Paid from wallet" line off the paid order
    (tidying it, or a refund prepared by lines): the shop now shows 39.98 paid. The card never paid more than 29.98,
    so the 10.00 the wallet paid is still what paid the rest of the order: nothing is due back."""
    alice, order_id = alices_wallet_order(client, services, shop, sim, clock, funded=500, total="39.98")
    push(services)
    assert sim.order(order_id)["total"] == "29.98" and balances(services, shop.shop.id, alice)[0] == 0
    clock.advance()
    sim.set_status(order_id, "processing")  # the card pays the 29.98 the shop asks
    push(services)
    assert balances(services, shop.shop.id, alice)[0] == 0
    clock.advance()
    _remove_fee(sim, order_id)
    push(services)
    assert sim.order(order_id)["status"] == "processing"
    # customer paid 10.00 by wallet + 29.98 by card for a 39.98 order: nothing comes back
    assert balances(services, shop.shop.id, alice)[0] == 0


def test_the_wallet_fee_removed_after_payment_then_refunded_in_full_never_returns_more_than_was_paid(
    client, services, shop, sim, clock, connected
):
    alice, order_id = alices_wallet_order(client, services, shop, sim, clock, funded=500, total="39.98")
    push(services)
    clock.advance()
    sim.set_status(order_id, "processing")  # the card pays the 29.98 left
    push(services)
    clock.advance()
    _remove_fee(sim, order_id)
    push(services)
    clock.advance()
    sim.refund(order_id, sim.order(order_id)["total"])  # refunded in full, to the wallet (the shop's policy)
    push(services)
    push(services)
    # paid: 10.00 from the wallet and 29.98 by card; at most 39.98 may come back
    assert balances(services, shop.shop.id, alice)[0] <= 3_998


# Currencies -------------------------------------------------------------------------------------------------------


def test_a_shop_in_a_currency_iso_4217_withdrew_still_answers(client, services, shop):
    """BGN (Bulgaria joined the euro on 1 January 2026) is no longer in iso4217's list, which babel's still has: a
    shop created in it before this change, with its wallets, must not turn every API call into a 500."""
    with unit_of_work(services.sessions) as session:
        session.get(Shop, shop.shop.id).currency = "BGN"
    move(services, shop.shop, "42", "adjustment", 1_000, NOW, "funds")
    response = client.get("/api/v1/customers/42/wallet", headers=auth(shop))
    assert response.status_code == 200, response.get_data(as_text=True)[:300]


def test_points_of_an_order_lowered_then_refunded_in_half_keep_half(client, services, shop, sim, clock, connected):
    """40.00 paid from the wallet earns 40 points; lowered to 20.00, 20.00 and 20 points go back (the new rule);
    then half of what is left (10.00) is refunded: 10 points go, 10 stay (the customer paid 10.00 net)."""
    alice, order_id = alices_wallet_order(client, services, shop, sim, clock, funded=10_000, total="40.00")
    push(services)
    assert balances(services, shop.shop.id, alice)[1] == 40
    clock.advance()
    _edit_item(sim, order_id, "20.00")
    push(services)
    assert balances(services, shop.shop.id, alice)[1] == 20
    clock.advance()
    sim.refund(order_id, "10.00")
    push(services)
    assert sim.order(order_id)["total"] == "20.00"
    assert balances(services, shop.shop.id, alice)[1] == 10


@pytest.mark.parametrize(
    "body",
    [
        b'{"amount": 1e999, "reason": "x"}',
        b'{"amount": NaN, "reason": "x"}',
        b'{"amount": -Infinity, "reason": "x"}',
        b'{"amount": 100, "reason": "x", "expires_in_seconds": 1e400}',
        b'{"amount": 100, "reason": "x", "expires_in_seconds": 3600.0}',
        b'{"amount": 100.0, "reason": "x"}',
        b'\xef\xbb\xbf{"amount": 100, "reason": "x"}',
        '{"amount": 100, "reason": "x"}'.encode("utf-16"),
        b'{"amount": 100, "reason": "x", "order_id": 12}',
        b"[1, 2]",
        b'"text"',
        b'{"amount": 100, "reason": ["x"]}',
    ],
)
def test_odd_json_bodies_are_no_500(client, services, shop, body):
    move(services, shop.shop, "42", "adjustment", 10_000, NOW, "funds")
    headers = {**auth(shop, "odd"), "Content-Type": "application/json"}
    response = client.post("/api/v1/customers/42/holds", data=body, headers=headers)
    assert response.status_code < 500, response.get_data(as_text=True)[:300]


def test_cashback_of_an_order_lowered_then_refunded_in_half_keeps_half(client, services, shop, sim, clock, connected):
    """10 % cashback on paid: 40.00 paid earns 4.00; lowered to 20.00, 2.00 of it goes back; half of the 20.00 then
    refunded: 1.00 more goes, 1.00 stays (the customer paid 10.00 net)."""
    configure(
        services,
        shop.shop.id,
        cashback_kind="percent",
        cashback_value=1_000,
        cashback_on="paid",
        points_per_currency_unit=0,
    )
    alice = sim.create_customer("alice@example.test", "Alice")["id"]
    fund(client, shop, alice, 10_000)
    start = balances(services, shop.shop.id, alice)[0]
    clock.advance()
    order_id = sim.place_order(alice, total="40.00", payment_method="wallet")["id"]
    push(services)
    push(services)
    assert balances(services, shop.shop.id, alice)[0] == start - 4_000 + 400
    clock.advance()
    _edit_item(sim, order_id, "20.00")
    push(services)
    assert balances(services, shop.shop.id, alice)[0] == start - 2_000 + 200
    clock.advance()
    sim.refund(order_id, "10.00")  # to the wallet (the shop's policy)
    push(services)
    assert balances(services, shop.shop.id, alice)[0] == start - 1_000 + 100


def test_the_wallet_fee_removed_and_the_whole_paid_by_card_after_a_refund_returns_the_wallet_part(
    client, services, shop, sim, clock, connected
):
    """39.98, the wallet pays 10.00 (29.98 left); 5.00 refunded to the wallet before the rest is paid; the merchant
    takes the "Paid from wallet" line off and the card pays the whole 39.98. The customer paid 49.98 for a 39.98 order
    and has had 5.00 back: the wallet's 10.00 must come back too ('what the fee no longer takes off goes back to the
    wallet at once'), as it does without the refund."""
    alice, order_id = alices_wallet_order(client, services, shop, sim, clock, funded=500, total="39.98")
    push(services)
    assert sim.order(order_id)["total"] == "29.98"
    clock.advance()
    sim.refund(order_id, "5.00")
    push(services)
    assert balances(services, shop.shop.id, alice)[0] == 500
    clock.advance()
    _remove_fee(sim, order_id)
    push(services)
    assert sim.order(order_id)["total"] == "39.98"
    clock.advance()
    sim.set_status(order_id, "processing")  # the card pays the whole 39.98
    push(services)
    push(services)
    assert balances(services, shop.shop.id, alice)[0] == 500 + 1_000
