"""Idempotency keys that must not replay another request (conversions, withdrawals, the statement's form),
statement cursors out of range, and holds past their expiry."""

import base64
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bridge.accounts import ensure_customer, wallet_account
from bridge.db import unit_of_work
from bridge.errors import InvalidState
from bridge.ledger import authorize_hold, capture_hold, verify, void_hold
from bridge.models import Account, Hold, LedgerTransaction, Shop, utcnow
from bridge.order_rules import apply_order
from bridge.withdrawals import restore_refused_withdrawal
from tests.integration.test_api import auth, credit
from tests.integration.test_concurrency_postgres import _fund, _pay, _run_parallel, sessions  # noqa: F401
from tests.integration.test_customer_statement import link
from tests.integration.test_order_rules import ACTOR, paid
from tests.integration.test_topups_withdrawals import paid_topup, wallet, woo  # noqa: F401
from tests.woo import post_delivery

CONFLICT = {"idempotency_key": "already used with different content"}


def earn_points(services, shop, customer: str, order_id: str, total: int) -> None:
    """10 points per euro paid by card; 100 points convert to €0.50."""
    with unit_of_work(services.sessions) as session:
        stored = session.get(Shop, shop.shop.id)
        stored.settings = {
            **stored.settings,
            "points_per_currency_unit": 10,
            "points_conversion_points": 100,
            "points_conversion_value": 50,
        }
        apply_order(
            session,
            stored,
            paid(payment_method="stripe", customer_external_id=customer, external_id=order_id, total=total),
            ACTOR,
        )


def count_kind(services, kind: str) -> int:
    with unit_of_work(services.sessions) as session:
        return session.scalar(select(func.count()).where(LedgerTransaction.kind == kind))


# Statement cursors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("entry_id", [b"9" * 29, str(2**63).encode(), b"0", b"-5"])
def test_a_cursor_beyond_any_entry_id_names_the_field(client, shop, entry_id):
    credit(client, shop)
    cursor = base64.urlsafe_b64encode(entry_id).decode()
    response = client.get(f"/api/v1/customers/42/transactions?cursor={cursor}", headers=auth(shop))
    assert response.status_code == 422 and response.get_json()["error"]["fields"] == {"cursor": "invalid cursor"}


# Points conversions ----------------------------------------------------------------------------------


def _convert(client, shop, customer, key, points=None):
    body = {} if points is None else {"points": points}
    return client.post(f"/api/v1/customers/{customer}/points/conversions", json=body, headers=auth(shop, key))


def test_a_conversion_key_reused_for_other_points_or_another_customer_conflicts(client, services, shop):
    earn_points(services, shop, "2", "12", 4_148)  # 414 points
    earn_points(services, shop, "3", "13", 4_148)
    first = _convert(client, shop, "2", "c1", 100)
    assert first.status_code == 201
    for customer, points in (("2", 300), ("3", 100)):
        response = _convert(client, shop, customer, "c1", points)
        assert response.status_code == 409 and response.get_json()["error"]["fields"] == CONFLICT
    again = _convert(client, shop, "2", "c1", 100).get_json()
    assert again["replayed"] and again["transaction_id"] == first.get_json()["transaction_id"]
    assert count_kind(services, "points_conversion") == 1


def test_all_points_converted_replays_for_the_customer_and_conflicts_for_another(client, services, shop):
    earn_points(services, shop, "2", "12", 4_148)
    earn_points(services, shop, "3", "13", 4_148)
    first = _convert(client, shop, "2", "all").get_json()
    assert (first["points"], first["balance"]) == (14, 200)
    again = _convert(client, shop, "2", "all").get_json()  # "all" is 14 points now: still the same request
    assert again["replayed"] and again["transaction_id"] == first["transaction_id"]
    assert _convert(client, shop, "3", "all").status_code == 409
    assert count_kind(services, "points_conversion") == 1


# Withdrawals -----------------------------------------------------------------------------------------


def _withdraw(client, shop, amount, key):
    return client.post("/api/v1/customers/2/withdrawals", json={"amount": amount}, headers=auth(shop, key))


def test_a_withdrawal_key_reused_for_another_amount_or_customer_conflicts(client, woo):  # noqa: F811
    post_delivery(client, woo.shop.id, "order.updated", paid_topup())  # €50 deposited by customer 2
    credit(client, woo, customer="3", key="fund-3")
    first = _withdraw(client, woo, 1_000, "w")
    assert first.status_code == 201
    other_amount = _withdraw(client, woo, 3_000, "w")
    other_customer = client.post("/api/v1/customers/3/withdrawals", json={"amount": 1_000}, headers=auth(woo, "w"))
    for response in (other_amount, other_customer):
        assert response.status_code == 409 and response.get_json()["error"]["fields"] == CONFLICT
    again = _withdraw(client, woo, 1_000, "w").get_json()
    assert again["replayed"] and again["transaction_ids"] == first.get_json()["transaction_ids"]
    assert wallet(client, woo)["balance"] == 4_000


def test_a_withdrawal_key_is_never_matched_by_its_beginning(client, services, woo):  # noqa: F811
    post_delivery(client, woo.shop.id, "order.updated", paid_topup())
    longer = _withdraw(client, woo, 1_000, "x:0").get_json()
    shorter = _withdraw(client, woo, 1_000, "x").get_json()
    assert not shorter["replayed"] and shorter["transaction_ids"] != longer["transaction_ids"]
    with unit_of_work(services.sessions) as session:  # the shop refused to refund the first one
        restore_refused_withdrawal(session, session.get(Shop, woo.shop.id), longer["transaction_ids"][0], "refused")
    key_like_the_restore = _withdraw(client, woo, 1_000, str(longer["transaction_ids"][0])).get_json()
    assert not key_like_the_restore["replayed"]
    assert wallet(client, woo)["balance"] == 3_000  # 5 000 − 3 × 1 000 + 1 000 restored


# The customer's statement page -----------------------------------------------------------------------


def _statement_form(client, url) -> dict:
    html = client.get(url).get_data(as_text=True)
    return {name: re.search(rf'name="{name}" value="([^"]*)"', html).group(1) for name in ("csrf_token", "form_token")}


def test_each_statement_page_converts_once_and_a_fresh_one_converts_again(client, services, shop):
    earn_points(services, shop, "42", "12", 4_148)  # 414 points
    url = link(client, shop)
    form = _statement_form(client, url)
    for _ in range(2):  # a double-clicked button
        client.post(url + "/convert", data=form)
    earn_points(services, shop, "42", "13", 4_000)  # 14 + 400: the same points balance as the first page saw
    client.post(url + "/convert", data=_statement_form(client, url))
    data = client.get(url + ".json").get_json()
    assert (data["wallet"]["points"], data["wallet"]["balance"]) == (14, 400)
    assert count_kind(services, "points_conversion") == 2


def test_a_statement_form_without_its_token_converts_nothing(client, services, shop):
    earn_points(services, shop, "42", "12", 4_148)
    url = link(client, shop)
    form = {**_statement_form(client, url), "form_token": "414"}
    response = client.post(url + "/convert", data=form)
    assert response.status_code == 303
    assert "Reload the page" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert count_kind(services, "points_conversion") == 0


# Holds past their expiry -----------------------------------------------------------------------------


def _expired_hold(client, services, shop, customer="42", amount=5_000) -> int:
    hold_id = client.post(
        f"/api/v1/customers/{customer}/holds",
        headers=auth(shop, "h1"),
        json={"amount": amount, "reason": "order 7", "expires_in_seconds": 60},
    ).get_json()["hold_id"]
    with unit_of_work(services.sessions) as session:  # the hourly expiry job has not run yet
        session.get(Hold, hold_id).expires_at = utcnow() - timedelta(minutes=5)
    return hold_id


def test_an_expired_hold_cannot_be_captured_and_voids_once(client, services, shop):
    credit(client, shop)
    hold_id = _expired_hold(client, services, shop)
    response = client.post(f"/api/v1/holds/{hold_id}/capture", json={}, headers=auth(shop))
    assert response.status_code == 409
    assert response.get_json()["error"] == {
        "code": "invalid_state",
        "message": "the hold has expired",
        "fields": {"hold_id": "hold is expired"},
    }
    assert client.get("/api/v1/customers/42/wallet", headers=auth(shop)).get_json()["balance"] == 10_000
    for _ in range(2):
        assert client.post(f"/api/v1/holds/{hold_id}/void", headers=auth(shop)).status_code == 200
    assert count_kind(services, "capture") == 0


def test_an_expired_hold_reserves_nothing_before_the_expiry_job_runs(client, services, shop):
    credit(client, shop)
    _expired_hold(client, services, shop)
    summary = client.get("/api/v1/customers/42/wallet", headers=auth(shop)).get_json()
    assert (summary["available"], summary["open_holds"]) == (10_000, [])
    debit = credit(client, shop, amount=6_000, key="spend", direction="debit")
    assert debit.status_code == 201 and debit.get_json()["available"] == 4_000
    hold = client.post(
        "/api/v1/customers/42/holds", json={"amount": 4_000, "reason": "order 8"}, headers=auth(shop, "h2")
    )
    assert hold.status_code == 201
    with unit_of_work(services.sessions) as session:
        assert [h.status for h in session.scalars(select(Hold).order_by(Hold.id))] == ["expired", "open"]
        assert verify(session) == []


def test_an_expired_hold_does_not_keep_deposited_money_from_being_withdrawn(client, services, woo):  # noqa: F811
    post_delivery(client, woo.shop.id, "order.updated", paid_topup())
    _expired_hold(client, services, woo, customer="2")
    assert wallet(client, woo)["withdrawable"] == 5_000
    assert _withdraw(client, woo, 5_000, "all").status_code == 201


def _payer_with_expired_holds(session_factory, shop_id) -> list[int]:
    """€100, half of it reserved by five €10 holds that expired an instant ago."""
    _fund(session_factory, shop_id, "payer", 10_000)
    with unit_of_work(session_factory) as session:
        wallet = wallet_account(session, ensure_customer(session, shop_id, "payer"), "EUR")
        holds = [
            authorize_hold(session, account=wallet, amount=1_000, reason=f"order {n}", idempotency_key=f"h{n}")[0]
            for n in range(5)
        ]
        for hold in holds:
            hold.expires_at = utcnow() - timedelta(minutes=5)
        return [hold.id for hold in holds]


@pytest.mark.postgres_only
def test_parallel_payments_spend_what_expired_holds_reserved_once(sessions, shop):  # noqa: F811
    _payer_with_expired_holds(sessions, shop.shop.id)
    assert _run_parallel(lambda n: _pay(sessions, shop.shop.id, n), 20).count(True) == 10
    with unit_of_work(sessions) as session:
        assert set(session.scalars(select(Hold.status))) == {"expired"}
        assert verify(session) == []


@pytest.mark.postgres_only
def test_expired_holds_given_back_while_they_are_captured_and_voided_in_parallel(sessions, shop):  # noqa: F811
    """A hold another transaction is closing is skipped, not waited for (that could deadlock): the payment
    that needed it may be refused, but nothing deadlocks and each euro is spent once."""
    shop_id = shop.shop.id
    hold_ids = _payer_with_expired_holds(sessions, shop_id)

    def act(n):
        if n < 20:
            return _pay(sessions, shop_id, n)
        with unit_of_work(sessions) as session:
            if n < 25:
                with pytest.raises(InvalidState):
                    capture_hold(session, shop_id=shop_id, hold_id=hold_ids[n - 20])
            else:
                void_hold(session, shop_id=shop_id, hold_id=hold_ids[n - 25])
        return None

    paid = _run_parallel(act, 30).count(True)
    with unit_of_work(sessions) as session:
        wallet = session.execute(select(Account).where(Account.kind == "wallet")).scalar_one()
        assert 5 <= paid <= 10 and wallet.balance == 10_000 - 1_000 * paid
        assert "captured" not in set(session.scalars(select(Hold.status)))
        assert verify(session) == []
