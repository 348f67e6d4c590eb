"""Withdrawal requests held for the merchant's approval: the amount held while the request waits, approved or
declined from the console's queue (audited, the customer told), within the shop's minimum and maximum."""

import pytest
from sqlalchemy import select

from bridge.db import unit_of_work
from bridge.models import AuditEvent, OutboxMessage, Shop, WithdrawalRequest
from tests.console_support import form_post, make_user, sign_in, text_of
from tests.integration.test_topups_withdrawals import paid_topup, wallet, woo  # noqa: F401 - the fixture
from tests.woo import post_delivery


@pytest.fixture
def manual(services, woo):  # noqa: F811
    with unit_of_work(services.sessions) as session:
        stored = session.get(Shop, woo.shop.id)
        stored.settings = {
            **stored.settings,
            "withdrawal_approval": "manual",
            "withdrawal_minimum": 500,
            "withdrawal_maximum": 4_000,
        }
    post_delivery_topup = paid_topup()  # customer 2 tops up €50.00 (order 30)
    return woo, post_delivery_topup


@pytest.fixture
def merchant(client, services, manual):
    woo, topup = manual
    post_delivery(client, woo.shop.id, "order.updated", topup)
    make_user(services, woo.shop.id)
    sign_in(client)
    return woo


def ask(client, shop, amount, key="w1"):
    from tests.integration.test_api import auth

    return client.post("/api/v1/customers/2/withdrawals", json={"amount": amount}, headers=auth(shop, key))


def outbox_kinds(services):
    """Messages to the shop since the top-up (whose own note says it was credited)."""
    with unit_of_work(services.sessions) as session:
        messages = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        return [
            (m.kind, m.payload.get("note", ""))
            for m in messages
            if "added to your wallet" not in m.payload.get("note", "")
        ]


def audit_rows(services):
    with unit_of_work(services.sessions) as session:
        return [(e.action, e.target, e.new_value) for e in session.scalars(select(AuditEvent))]


def test_a_request_waits_with_its_money_held_and_is_paid_out_once_approved(client, services, merchant):
    asked = ask(client, merchant, 2_000)
    assert asked.status_code == 201
    assert {k: asked.get_json()[k] for k in ("status", "amount", "transaction_ids")} == {
        "status": "pending",
        "amount": 2_000,
        "transaction_ids": [],
    }
    assert (wallet(client, merchant)["balance"], wallet(client, merchant)["available"]) == (5_000, 3_000)
    assert ask(client, merchant, 2_000).get_json()["replayed"] is True  # the same key: the same request

    queue = client.get(f"/shops/{merchant.shop.id}/withdrawals")
    assert queue.status_code == 200 and "Waiting for your decision" in text_of(queue) and "€20.00" in text_of(queue)
    request_id = asked.get_json()["request_id"]
    approved = form_post(client, f"/shops/{merchant.shop.id}/withdrawals/{request_id}/approve", follow_redirects=True)
    assert "Approved: €20.00 is refunded" in text_of(approved)
    assert (wallet(client, merchant)["balance"], wallet(client, merchant)["available"]) == (3_000, 3_000)
    assert [kind for kind, _ in outbox_kinds(services)] == ["order.refund"]
    again = form_post(client, f"/shops/{merchant.shop.id}/withdrawals/{request_id}/approve", follow_redirects=True)
    assert "already approved" in text_of(again) and wallet(client, merchant)["balance"] == 3_000
    assert audit_rows(services) == [("withdrawal.approve", "2", "approved: €20.00")]


def test_money_a_waiting_request_holds_cannot_be_asked_for_twice(client, merchant):
    assert ask(client, merchant, 4_000, "w1").status_code == 201
    second = ask(client, merchant, 2_000, "w2")  # €50.00 deposited, €40.00 already promised
    assert second.status_code == 422 and second.get_json()["error"]["fields"] == {"amount": "at most €10.00"}


def test_a_declined_request_frees_the_money_and_tells_the_customer_why(client, services, merchant):
    request_id = ask(client, merchant, 2_000).get_json()["request_id"]
    url = f"/shops/{merchant.shop.id}/withdrawals/{request_id}/decline"
    refused = form_post(client, url, {"reason": ""}, follow_redirects=True)
    assert "Say why" in text_of(refused) and wallet(client, merchant)["available"] == 3_000  # nothing done
    form_post(client, url, {"reason": "Withdrawals open after 30 days"}, follow_redirects=True)
    assert (wallet(client, merchant)["balance"], wallet(client, merchant)["available"]) == (5_000, 5_000)
    [(kind, note)] = outbox_kinds(services)
    assert kind == "order.note" and note == (
        "Your request to withdraw €20.00 was declined: Withdrawals open after 30 days. The money stays in your wallet."
    )
    assert audit_rows(services) == [("withdrawal.decline", "2", "declined: €20.00 (Withdrawals open after 30 days.)")]
    approved = form_post(client, f"/shops/{merchant.shop.id}/withdrawals/{request_id}/approve", follow_redirects=True)
    assert "Nothing was done: this request was declined" in text_of(approved)
    assert wallet(client, merchant)["balance"] == 5_000


@pytest.mark.parametrize(("amount", "message"), [(499, "at least €5.00"), (4_001, "at most €40.00")])
def test_a_request_outside_the_shops_limits_is_refused_naming_them(client, services, merchant, amount, message):
    response = ask(client, merchant, amount)
    assert response.status_code == 422 and response.get_json()["error"]["fields"] == {"amount": message}
    with unit_of_work(services.sessions) as session:
        assert session.scalars(select(WithdrawalRequest)).all() == []


def test_another_shops_merchant_cannot_decide_a_request(client, services, merchant, other_shop):
    request_id = ask(client, merchant, 2_000).get_json()["request_id"]
    make_user(services, other_shop.shop.id, email="bob@example.com", name="Bob")
    bob = client.application.test_client()
    sign_in(bob, email="bob@example.com")
    response = form_post(bob, f"/shops/{other_shop.shop.id}/withdrawals/{request_id}/approve", follow_redirects=True)
    assert "withdrawal request not found" in text_of(response)
    assert bob.get(f"/shops/{merchant.shop.id}/withdrawals").status_code == 404
    assert wallet(client, merchant)["balance"] == 5_000 and wallet(client, merchant)["available"] == 3_000


def test_the_customer_asks_from_their_statement_page_once_per_form(client, services, manual):
    import re

    from bridge.statement_links import StatementLinks

    woo, topup = manual
    post_delivery(client, woo.shop.id, "order.updated", topup)
    url = "/statement/" + StatementLinks(services.settings.secret_key, "").url(woo.shop.id, "2").rsplit("/", 1)[1]
    html = text_of(client.get(url))
    assert "up to\n      €50.00, back to your card" in html
    form = {name: re.search(rf'name="{name}" value="([^"]*)"', html).group(1) for name in ("csrf_token", "form_token")}
    for _ in range(2):  # a double-clicked button
        answer = client.post(url + "/withdraw", data={**form, "amount": "20,00"}, follow_redirects=True)
    assert "Your request to withdraw €20.00 waits for the shop" in text_of(answer)
    assert (wallet(client, woo)["balance"], wallet(client, woo)["available"]) == (5_000, 3_000)
    with unit_of_work(services.sessions) as session:
        assert len(session.scalars(select(WithdrawalRequest)).all()) == 1
    too_much = client.post(
        url + "/withdraw", data={**form, "form_token": "f" * 32, "amount": "35"}, follow_redirects=True
    )
    assert "Nothing was withdrawn: only unspent top-up money can be withdrawn (€30.00 now)." in text_of(too_much)
