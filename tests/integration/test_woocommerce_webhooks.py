"""End to end: real-shaped signed WooCommerce deliveries in, ledger and inbox checked, REST calls out."""

import json

import pytest
import responses
from sqlalchemy import func, select

from bridge.accounts import ensure_customer, find_wallet
from bridge.db import unit_of_work
from bridge.ledger import Actor, verify
from bridge.models import Customer, InboxDelivery, LedgerTransaction, OutboxMessage
from bridge.statement_links import NOTE_LINK_LEAD, without_link
from bridge.surfaces.platforms import pushers_for
from bridge.usecases.pushes import RetryPolicy, retry_dead
from bridge.wallets import adjust_wallet
from sync.worker import drain
from tests.woo import API, FakeOrderEndpoint, captured, connect_for_tests, order_body, post_delivery, wp_json

FAST = RetryPolicy(max_attempts=3, base_delay_seconds=0)


@pytest.fixture
def woo(services, shop):
    connect_for_tests(services, shop.shop.id)
    return shop.shop.id


def fund(services, shop_id, amount, customer="2"):
    with unit_of_work(services.sessions) as session:
        from bridge.models import Shop

        adjust_wallet(
            session,
            session.get(Shop, shop_id),
            customer,
            direction="credit",
            amount=amount,
            reason="top-up",
            idempotency_key=f"fund-{amount}",
            actor=Actor("system"),
        )


def wallet_balance(services, shop_id, customer="2"):
    with unit_of_work(services.sessions) as session:
        wallet = find_wallet(session, ensure_customer(session, shop_id, customer), "EUR")
        return wallet.balance if wallet else 0


def count(services, model, *where):
    with unit_of_work(services.sessions) as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def outbox(services):
    with unit_of_work(services.sessions) as session:
        return [(m.kind, m.status, m.attempts, m.last_error) for m in session.execute(select(OutboxMessage)).scalars()]


def send_captured(client, shop_id, number):
    body, headers = captured(number)
    return client.post(f"/webhooks/woocommerce/{shop_id}", data=body, headers=headers)


def test_the_ping_is_answered_200_and_stores_nothing(client, services, woo):
    response = send_captured(client, woo, "0001")
    assert response.status_code == 200
    assert count(services, InboxDelivery) == 0


def test_captured_customer_created_opens_a_wallet(client, services, woo):
    response = send_captured(client, woo, "0004")
    assert response.status_code == 200 and response.get_json()["status"] == "applied"
    with unit_of_work(services.sessions) as session:
        customer = session.execute(select(Customer)).scalar_one()
        assert (customer.external_id, customer.email) == ("2", "alice@example.test")
        assert find_wallet(session, customer, "EUR") is not None


def test_captured_wallet_order_is_paid_once_however_often_it_arrives(client, services, woo):
    fund(services, woo, 10_000)
    for _ in range(5):
        assert send_captured(client, woo, "0005").status_code == 200
    assert wallet_balance(services, woo) == 10_000 - 4148
    assert count(services, LedgerTransaction, LedgerTransaction.kind == "payment") == 1
    assert [kind for kind, *_ in outbox(services)] == ["order.mark_paid"]
    assert count(services, InboxDelivery) == 5


def test_captured_refunds_after_payment_are_credited_once_each(client, services, woo):
    fund(services, woo, 10_000)
    send_captured(client, woo, "0005")
    for _ in range(3):
        send_captured(client, woo, "0009")
    assert wallet_balance(services, woo) == 10_000 - 4148 + 500 + 325
    with unit_of_work(services.sessions) as session:
        assert verify(session) == []


def test_refund_delivered_before_the_payment_never_charges(client, services, woo):
    fund(services, woo, 10_000)
    send_captured(client, woo, "0009")  # on-hold with refunds, seen first
    send_captured(client, woo, "0005")  # the older pending state, arriving late
    assert count(services, LedgerTransaction, LedgerTransaction.kind == "payment") == 0
    assert wallet_balance(services, woo) == 10_000  # the wallet never paid it: its refunds are nobody's money


def test_guest_order_with_escaped_slashes_and_unicode_verifies(client, services, woo):
    data = order_body(customer_id=0, billing={"email": "gäst@example.test", "first_name": "Jörg/Ö"})
    body = wp_json(data)
    assert b"\\/" in body and b"\\u00f6" in body
    response = post_delivery(client, woo, "order.created", body)
    assert response.status_code == 200
    assert [kind for kind, *_ in outbox(services)] == ["order.mark_unpaid"]


@pytest.mark.parametrize(
    "tamper",
    ["missing", "wrong", "truncated", "other_shop_secret", "modified_body"],
)
def test_bad_signatures_are_rejected_and_nothing_is_stored(client, services, woo, caplog, tamper):
    body, headers = captured("0005")
    if tamper == "missing":
        headers.pop("X-WC-Webhook-Signature")
    elif tamper == "wrong":
        headers["X-WC-Webhook-Signature"] = "bm90IGEgc2lnbmF0dXJl"
    elif tamper == "truncated":
        headers["X-WC-Webhook-Signature"] = headers["X-WC-Webhook-Signature"][:20]
    elif tamper == "other_shop_secret":
        from webhooks.signing import sign

        headers["X-WC-Webhook-Signature"] = sign(body, "another-shops-secret")
    else:
        body = body.replace(b'"total":"41.48"', b'"total":"0.01"')
    response = client.post(f"/webhooks/woocommerce/{woo}", data=body, headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "invalid_signature"
    assert count(services, InboxDelivery) == 0
    assert "bad signature" in caplog.text and "realwoo-webhook-secret" not in caplog.text


def test_unknown_shop_answers_like_a_bad_signature(client, woo):  # never which shop ids exist (docs/security.md)
    body, headers = captured("0005")
    assert client.post("/webhooks/woocommerce/999", data=body, headers=headers).status_code == 401


@pytest.mark.parametrize("body", [b"{not json", b"[" * 100_000 + b"]" * 100_000], ids=["broken", "nested-too-deep"])
def test_signed_body_that_is_not_json_is_400(client, services, woo, body):
    response = post_delivery(client, woo, "order.updated", body)
    assert response.status_code == 400 and response.get_json()["error"]["fields"] == {"body": "not JSON"}
    assert count(services, InboxDelivery) == 0


def test_a_deeply_nested_body_python_can_read_is_refused_by_the_schema_not_a_crash(client, services, woo):
    response = post_delivery(client, woo, "order.updated", b'{"id": 1, "x": ' + b"[" * 900 + b"]" * 900 + b"}")
    assert response.status_code == 422


def test_payload_failing_the_schema_is_422_and_kept_as_failed(client, services, woo):
    response = post_delivery(client, woo, "order.updated", order_body(total=41.48))
    assert response.status_code == 422
    assert "total" in response.get_json()["error"]["fields"]
    with unit_of_work(services.sessions) as session:
        delivery = session.execute(select(InboxDelivery)).scalar_one()
        assert delivery.status == "failed" and "total" in delivery.error
    assert count(services, LedgerTransaction) == 0


def test_unknown_topics_are_recorded_as_ignored(client, services, woo):
    response = post_delivery(client, woo, "product.updated", {"id": 5})
    assert response.status_code == 200 and response.get_json()["status"] == "ignored"
    assert count(services, InboxDelivery, InboxDelivery.status == "ignored") == 1


@responses.activate
def test_paid_order_is_pushed_back_with_set_paid_marker_and_note(client, services, woo):
    fund(services, woo, 10_000)
    send_captured(client, woo, "0005")
    shop_order = FakeOrderEndpoint(responses.mock, order_body())
    drain(services.sessions, pushers_for(services), FAST)
    [put] = shop_order.puts
    assert put["set_paid"] is True and put["transaction_id"].startswith("wallet-bridge-")
    assert put["meta_data"][0]["key"] == "_wallet_bridge_payment"
    assert [(without_link(n["note"]), n["customer_note"]) for n in shop_order.notes] == [
        ("Paid €41.48 from your wallet. Wallet balance: €58.52", True)
    ]
    assert outbox(services) == [("order.mark_paid", "delivered", 1, None)]


@responses.activate
def test_shop_down_then_up_the_outbox_drains_without_doubling(client, services, woo):
    fund(services, woo, 1_000)
    send_captured(client, woo, "0005")  # 10.00 of 41.48: a partial payment, a negative fee line
    shop_order = FakeOrderEndpoint(responses.mock, order_body())
    shop_order.fail_next(1)
    drain(services.sessions, pushers_for(services), FAST)
    [(kind, status, attempts, error)] = outbox(services)
    assert (kind, status, attempts) == ("order.add_wallet_fee", "delivered", 2)
    assert len(shop_order.puts) == 1 and shop_order.order["total"] == "31.48"
    fees = [fee for fee in shop_order.order["fee_lines"] if fee["name"] == "Paid from wallet"]
    assert [fee["total"] for fee in fees] == ["-10.00"]


@responses.activate
def test_retry_after_the_put_landed_does_not_add_the_fee_again(client, services, woo):
    fund(services, woo, 1_000)
    send_captured(client, woo, "0005")
    shop_order = FakeOrderEndpoint(responses.mock, order_body())
    shop_order.fail_next(1, on="notes")  # the PUT lands, then the shop goes down before the note
    drain(services.sessions, pushers_for(services), FAST)
    assert len(shop_order.puts) == 1 and len(shop_order.notes) == 1
    assert outbox(services)[0][1:3] == ("delivered", 2)


@responses.activate
def test_fee_cut_by_the_shop_returns_the_difference_to_the_wallet(client, services, woo):
    fund(services, woo, 1_000)
    send_captured(client, woo, "0005")
    shop_order = FakeOrderEndpoint(responses.mock, order_body(total="6.00"))  # the shop's total fell meanwhile
    drain(services.sessions, pushers_for(services), FAST)
    assert shop_order.order["total"] == "0.00"
    assert wallet_balance(services, woo) == 400  # 10.00 paid, the shop applied 6.00


@responses.activate
def test_messages_are_dead_lettered_after_the_last_attempt_and_can_be_retried(client, services, woo):
    fund(services, woo, 10_000)
    send_captured(client, woo, "0005")
    shop_order = FakeOrderEndpoint(responses.mock, order_body())
    shop_order.fail_next(3)
    drain(services.sessions, pushers_for(services), FAST)
    [(kind, status, attempts, error)] = outbox(services)
    assert (status, attempts) == ("dead", 3) and "HTTP 503" in error
    assert retry_dead(services.sessions) == 1
    drain(services.sessions, pushers_for(services), FAST)
    assert outbox(services)[0][1] == "delivered" and len(shop_order.puts) == 1


@responses.activate
def test_order_deleted_on_the_shop_is_dead_lettered_at_once(client, services, woo):
    fund(services, woo, 10_000)
    send_captured(client, woo, "0005")
    missing = {"code": "woocommerce_rest_shop_order_invalid_id", "message": "Invalid ID.", "data": {"status": 404}}
    responses.add(responses.GET, f"{API}/orders/12", status=404, json=missing)
    drain(services.sessions, pushers_for(services), FAST)
    assert outbox(services)[0][1:3] == ("dead", 1)


def test_delivery_body_is_stored_verbatim(client, services, woo):
    body, _ = captured("0005")
    send_captured(client, woo, "0005")
    with unit_of_work(services.sessions) as session:
        assert session.execute(select(InboxDelivery.body)).scalar_one() == body
    assert json.loads(body)["id"] == 12


@responses.activate
def test_a_note_to_the_customer_carries_a_fresh_link_that_opens_their_wallet(client, services, woo):
    fund(services, woo, 10_000)
    send_captured(client, woo, "0005")
    shop_order = FakeOrderEndpoint(responses.mock, order_body())
    drain(services.sessions, pushers_for(services), FAST)
    [note] = shop_order.notes
    told, url = note["note"].split(f"\n\n{NOTE_LINK_LEAD} ")
    assert told == "Paid €41.48 from your wallet. Wallet balance: €58.52"
    public_url = services.settings.public_url
    assert url.startswith(f"{public_url}/statement/")
    page = client.get(url.removeprefix(public_url))
    assert page.status_code == 200 and "€58.52" in page.text


@responses.activate
def test_a_note_pushed_again_with_a_newer_link_is_not_added_twice(client, services, woo):
    fund(services, woo, 10_000)
    send_captured(client, woo, "0005")
    shop_order = FakeOrderEndpoint(responses.mock, order_body())
    earlier = (
        f"Paid €41.48 from your wallet. Wallet balance: €58.52\n\n{NOTE_LINK_LEAD} https://old.example/statement/x"
    )
    shop_order.notes.append({"id": 1, "note": earlier, "customer_note": True})  # an attempt whose answer was lost
    drain(services.sessions, pushers_for(services), FAST)
    assert [n["note"] for n in shop_order.notes] == [earlier]
