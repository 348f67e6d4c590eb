"""Tenant isolation matrix: shop A's API key against shop B's resources on every API route of the OpenAPI
document, and user A (member of shop A only) on every console page and form of shop B — 404 each time, never
B's data, and nothing changes in B."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from bridge.db import unit_of_work
from bridge.models import (
    AuditEvent,
    Customer,
    Hold,
    InboxDelivery,
    OutboxMessage,
    Shop,
    ShopMembership,
    WithdrawalRequest,
)
from tests.console_support import csrf_token, make_user, sign_in
from tests.hostile import MONEY_TABLES, row_counts
from tests.integration.test_api import auth, credit
from tests.woo import connect_for_tests, order_body, post_delivery

TABLES = MONEY_TABLES + (AuditEvent, InboxDelivery, ShopMembership, WithdrawalRequest)
B_CUSTOMER = "2"  # the captured order's customer
VALID_BODIES = {  # a body that passes validation, so the ownership check is what answers
    "adjustments": {"direction": "debit", "amount": 100, "reason": "cross-shop"},
    "holds": {"amount": 100, "reason": "cross-shop"},
    "capture": {"amount": 100},
    "void": {},
    "conversions": {"points": 1},
    "topups": {"amount": 1_000},
    "withdrawals": {"amount": 100},
    "refunds": {"amount": 100, "destination": "wallet", "reason": "cross-shop"},
    "tips": {"amount": 100},
    "statement-link": {},
    "reservation": {"customer_id": B_CUSTOMER, "amount": 100},
}
OWN_SHOP = "/api/v1/shop"  # names no resource: it answers about the key's own shop (tested below)


@pytest.fixture
def tenants(client, services, shop, other_shop):
    """Shop B with a customer, a funded wallet, an open hold, a paid order, an inbox delivery, an outbox row."""
    a, b = shop, other_shop
    connect_for_tests(services, b.shop.id, secret="beta-secret")
    assert credit(client, b, customer=B_CUSTOMER, amount=50_000, key="b-fund").status_code == 201
    hold = client.post(
        f"/api/v1/customers/{B_CUSTOMER}/holds", json={"amount": 1_000, "reason": "b"}, headers=auth(b, "b-hold")
    )
    assert hold.status_code == 201
    order = order_body()
    assert post_delivery(client, b.shop.id, "order.created", order, secret="beta-secret").status_code == 200
    with unit_of_work(services.sessions) as session:
        customer = session.scalar(select(Customer.id).where(Customer.shop_id == b.shop.id))
        session.add(
            WithdrawalRequest(
                shop_id=b.shop.id,
                customer_id=customer,
                idempotency_key="b-withdraw",
                amount=100,
                currency="EUR",
                status="pending",
            )
        )
    with unit_of_work(services.sessions) as session:
        ids = {
            "request_id": session.scalar(select(WithdrawalRequest.id).where(WithdrawalRequest.shop_id == b.shop.id)),
            "hold_id": session.scalar(select(Hold.id).where(Hold.shop_id == b.shop.id)),
            "order_id": str(order["id"]),
            "customer_id": B_CUSTOMER,
            "external_id": B_CUSTOMER,
            "message_id": session.scalar(select(OutboxMessage.id).where(OutboxMessage.shop_id == b.shop.id)),
            "delivery_id": session.scalar(select(InboxDelivery.id).where(InboxDelivery.shop_id == b.shop.id)),
            "shop_id": b.shop.id,
            "section_key": "funding",
            "name": "wallet",
        }
    assert all(value is not None for value in ids.values()), ids
    with unit_of_work(services.sessions) as session:  # so that a tip is refused for the order, not the setting
        shop_a = session.get(Shop, a.shop.id)
        shop_a.settings = {**shop_a.settings, "tips_enabled": True}
    make_user(services, a.shop.id, email="ann@example.com")
    ids["user_id"] = make_user(services, b.shop.id, email="bob@example.com", name="Bob Beta").id
    return a, b, ids


def b_state(services, b):
    with unit_of_work(services.sessions) as session:
        settings = session.get(Shop, b.shop.id).settings
    return row_counts(services, TABLES), settings


def fill(pattern: str, ids: dict) -> str:
    return re.sub(r"[{<](?:\w+:)?(\w+)[}>]", lambda m: str(ids[m.group(1)]), pattern)


NOWHERE = {"hold_id": 999_999, "order_id": "999999", "customer_id": "999999"}


def test_api_key_of_shop_a_on_every_route_for_shop_b_is_as_if_nothing_existed(client, services, tenants):
    """Hold and order ids are global: 404. Customer ids are the shop's own namespace (shop A may have a
    customer "2" of its own), so shop B's customer must look exactly like a customer that exists nowhere:
    the same 4xx and the same body — no hint, no write."""
    a, b, ids = tenants
    spec = client.get("/api/v1/openapi.json").get_json()
    before = b_state(services, b)
    b_balance = client.get(f"/api/v1/customers/{B_CUSTOMER}/wallet", headers=auth(b)).get_json()["balance"]
    tried = []
    for path, operations in spec["paths"].items():
        if path == OWN_SHOP:
            assert client.get(path, headers=auth(a)).get_json()["name"] != "Beta Shop"
            continue
        for method in operations:
            if method == "parameters":
                continue
            body = VALID_BODIES.get(path.rstrip("/").split("/")[-1])
            answers = []
            for where in (ids, {**ids, **NOWHERE}):
                url = fill(path, where)
                response = client.open(
                    url,
                    method=method.upper(),
                    json=body if method == "post" else None,
                    headers=auth(a, f"x-{len(tried)}-{len(answers)}"),
                )
                text = response.get_data(as_text=True)
                label = f"{method} {url}: {response.status_code} {text[:300]}"
                assert 400 <= response.status_code < 500, label
                assert str(b_balance) not in text and "Beta Shop" not in text
                for value in where.values():
                    text = text.replace(str(value), "<id>")
                answers.append((response.status_code, text))
            tried.append((method, path, answers[0][0]))
            assert answers[0] == answers[1], f"{method} {path}: B's resource answers differently: {answers}"
            if "{customer_id}" not in path:
                assert answers[0][0] == 404, f"{method} {path}: {answers[0]}"
    assert len(tried) == 15, tried
    assert b_state(services, b) == before


def console_rules(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("console.") and "shop_id" in rule.arguments:
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield rule.rule, method


def test_user_a_gets_404_on_every_console_page_and_form_of_shop_b(app, client, services, tenants):
    a, b, ids = tenants
    assert sign_in(client, "ann@example.com").status_code == 302
    token = csrf_token(client, f"/shops/{a.shop.id}/settings")
    before = b_state(services, b)
    tried = []
    for pattern, method in console_rules(app):
        url = fill(pattern, ids)
        data = {
            "csrf_token": token,
            "direction": "credit",
            "amount": "5.00",
            "reason": "x",
            "token": "a" * 32,
            "action": "lock",
            "signup_bonus": "99.00",
            "email": "eve@example.com",
            "name": "Eve",
            "password": "correct horse battery staple",
            "url": "https://evil.example",
        }
        response = client.open(url, method=method, data=data if method == "POST" else None)
        tried.append((method, url, response.status_code))
        text = response.get_data(as_text=True)
        assert response.status_code == 404, f"{method} {url}: {response.status_code} {response.location}"
        assert "Beta Shop" not in text and "bob@example.com" not in text
    assert len(tried) >= 15, tried
    assert b_state(services, b) == before
    # and the pages that are not about one shop show only shop A
    for url in ("/", "/shops", "/account", f"/shops/{a.shop.id}/", f"/shops/{a.shop.id}/customers"):
        response = client.get(url, follow_redirects=True)
        assert response.status_code == 200 and "Beta Shop" not in response.get_data(as_text=True), url


def test_user_b_sees_shop_b_so_the_matrix_is_not_vacuous(client, services, tenants):
    a, b, ids = tenants
    assert sign_in(client, "bob@example.com").status_code == 302
    assert client.get(f"/shops/{b.shop.id}/customers/{B_CUSTOMER}").status_code == 200
    assert client.get(f"/api/v1/customers/{B_CUSTOMER}/wallet", headers=auth(b)).status_code == 200
    assert client.get(f"/shops/{a.shop.id}/").status_code == 404
