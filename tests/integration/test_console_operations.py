"""Operations: failed webhook deliveries and dead-lettered outbox messages, with their error, payload and a retry."""

from __future__ import annotations

import json
import re

from sqlalchemy import select

from bridge.accounts import find_customer
from bridge.db import unit_of_work
from bridge.models import AuditEvent, InboxDelivery, OutboxMessage
from tests.console_support import form_post, text_of
from tests.inbox import record_delivery
from tests.woo import captured

pytest_plugins = ("tests.console_fixtures",)  # fixtures: merchant, console


def dead_letter(services, shop_id: int, key: str = "note-1") -> int:
    with unit_of_work(services.sessions) as session:
        message = OutboxMessage(
            shop_id=shop_id,
            kind="order.note",
            payload={"order_id": "12", "note": "Refunded"},
            dedupe_key=key,
            status="dead",
            attempts=8,
            last_error="PermanentFailure: POST orders/12/notes: HTTP 404 Invalid ID",
        )
        session.add(message)
        session.flush()
        return message.id


def failed_delivery(services, shop_id: int, body: bytes, topic: str = "customer.created") -> int:
    return record_delivery(
        services.sessions,
        shop_id=shop_id,
        platform="woocommerce",
        topic=topic,
        resource_id="9",
        delivery_id="d-1",
        body=body,
        status="failed",
        error="internal error: OperationalError",
    )


def test_operations_lists_dead_letters_and_failed_deliveries_with_error_and_payload(console, shop, services):
    dead_letter(services, shop.shop.id)
    failed_delivery(services, shop.shop.id, b'{"id": 9, "email": "x@example.com"}')
    page = text_of(console.get(f"/shops/{shop.shop.id}/operations"))
    assert "HTTP 404 Invalid ID" in page and "&#34;note&#34;: &#34;Refunded&#34;" in page
    assert "internal error: OperationalError" in page and "x@example.com" in page
    assert page.count(">Retry</button>") == 2


def test_retrying_a_dead_letter_queues_it_again_once(console, shop, services):
    message_id = dead_letter(services, shop.shop.id)
    response = form_post(console, f"/shops/{shop.shop.id}/operations/outbox/{message_id}/retry")
    assert response.status_code == 302
    assert "queued again" in text_of(console.get(response.location))
    with unit_of_work(services.sessions) as session:
        message = session.get(OutboxMessage, message_id)
        assert (message.status, message.attempts) == ("pending", 0)
    again = form_post(console, f"/shops/{shop.shop.id}/operations/outbox/{message_id}/retry")
    assert "already queued again" in text_of(console.get(again.location))
    with unit_of_work(services.sessions) as session:
        actions = session.execute(select(AuditEvent.action, AuditEvent.target)).all()
    assert actions == [("operations.outbox_retry", f"message {message_id}")]


def test_retry_all_queues_only_this_shops_dead_letters(console, shop, other_shop, services):
    mine = [dead_letter(services, shop.shop.id, f"n{n}") for n in range(2)]
    theirs = dead_letter(services, other_shop.shop.id, "other")
    form_post(console, f"/shops/{shop.shop.id}/operations/outbox/retry-all")
    with unit_of_work(services.sessions) as session:
        assert [session.get(OutboxMessage, i).status for i in mine] == ["pending", "pending"]
        assert session.get(OutboxMessage, theirs).status == "dead"
    assert form_post(console, f"/shops/{shop.shop.id}/operations/outbox/{theirs}/retry").status_code == 404


def test_retrying_a_failed_delivery_applies_it(console, shop, services):
    body, _headers = captured("0004")
    delivery_id = failed_delivery(services, shop.shop.id, body)
    response = form_post(console, f"/shops/{shop.shop.id}/operations/inbox/{delivery_id}/retry")
    assert f"Delivery {delivery_id} applied." in text_of(console.get(response.location))
    with unit_of_work(services.sessions) as session:
        assert session.get(InboxDelivery, delivery_id).status == "applied"
        assert find_customer(session, shop.shop.id, str(json.loads(body)["id"])) is not None
    page = text_of(console.get(f"/shops/{shop.shop.id}/operations"))
    assert "Webhook deliveries that failed" in page and re.search(
        r"<h2>Webhook deliveries that failed</h2>.*None\.", page, re.S
    )


def test_a_delivery_that_still_fails_says_why(console, shop, services):
    delivery_id = failed_delivery(services, shop.shop.id, b'{"id": "not a customer"}')
    response = form_post(console, f"/shops/{shop.shop.id}/operations/inbox/{delivery_id}/retry")
    assert f"Delivery {delivery_id} still fails" in text_of(console.get(response.location))
    with unit_of_work(services.sessions) as session:
        delivery = session.get(InboxDelivery, delivery_id)
        assert delivery.status == "failed" and delivery.error.startswith("on retry:")


def test_another_shops_delivery_is_a_404(console, shop, other_shop, services):
    delivery_id = failed_delivery(services, other_shop.shop.id, b"{}")
    assert form_post(console, f"/shops/{shop.shop.id}/operations/inbox/{delivery_id}/retry").status_code == 404


def test_operations_and_audit_rows_read_as_words_not_json(console, shop, services):
    dead_letter(services, shop.shop.id)
    failed_delivery(services, shop.shop.id, b'{"id": 9}', topic="order.updated")
    with unit_of_work(services.sessions) as session:
        session.add(
            AuditEvent(
                shop_id=shop.shop.id,
                actor="ann@example.com",
                action="connection.check",
                new_value=json.dumps(
                    {
                        "ok": True,
                        "url": "https://alpha.example",
                        "error": None,
                        "webhooks": {
                            "order.created": "active",
                            "order.updated": "active",
                            "customer.created": "disabled",
                        },
                    }
                ),
            )
        )
    page = text_of(console.get(f"/shops/{shop.shop.id}/operations"))
    assert "Note on order #12: “Refunded”" in page and "Order #9 updated" in page
    audit_page = text_of(console.get(f"/shops/{shop.shop.id}/audit"))
    assert "ok: yes; url: https://alpha.example; webhooks: 2 active, 1 disabled" in audit_page
    assert "&#34;ok&#34;" not in audit_page
