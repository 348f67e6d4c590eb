"""/api/v1: authentication, tenant isolation, validation that names the field and writes nothing."""

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

import bridge.usecases.wallets as wallets
from bridge.db import unit_of_work
from bridge.models import Customer, Entry, Hold, LedgerTransaction


def auth(shop, key=None):
    headers = {"Authorization": f"Bearer {shop.api_key}"}
    if key:
        headers["Idempotency-Key"] = key
    return headers


def credit(client, shop, customer="42", amount=10_000, key="fund-1", direction="credit"):
    return client.post(
        f"/api/v1/customers/{customer}/adjustments",
        json={"direction": direction, "amount": amount, "reason": "goodwill"},
        headers=auth(shop, key),
    )


def row_counts(services):
    with unit_of_work(services.sessions) as session:
        models = (Customer, LedgerTransaction, Entry, Hold)
        return tuple(session.scalar(select(func.count()).select_from(model)) for model in models)


def test_openapi_document_lists_the_routes(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert "/api/v1/customers/{customer_id}/wallet" in spec["paths"]
    assert "/api/v1/holds/{hold_id}/capture" in spec["paths"]


def test_healthz_checks_the_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json()["database"] == "ok"


def test_metrics_are_exposed(client):
    client.get("/healthz")
    assert b"wallet_bridge_http_requests_total" in client.get("/metrics").data


@pytest.mark.parametrize("header", [None, "Bearer ", "Basic abc", "Bearer wb_not_a_key"])
def test_api_requires_a_valid_key(client, shop, header):
    headers = {"Authorization": header} if header else {}
    response = client.get("/api/v1/customers/42/wallet", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_credit_then_read_wallet_and_statement(client, shop):
    assert credit(client, shop).status_code == 201
    wallet = client.get("/api/v1/customers/42/wallet", headers=auth(shop)).get_json()
    assert (wallet["balance"], wallet["available"], wallet["currency"]) == (10_000, 10_000, "EUR")
    assert wallet["balance_formatted"] == "€100.00"
    lines = client.get("/api/v1/customers/42/transactions", headers=auth(shop)).get_json()["lines"]
    assert [(line["kind"], line["amount"], line["balance_after"], line["actor"]) for line in lines] == [
        ("adjustment", 10_000, 10_000, "api_key")
    ]


def test_adjustment_replay_returns_first_result(client, shop):
    first = credit(client, shop).get_json()
    second = credit(client, shop).get_json()
    assert second["replayed"] and second["transaction_id"] == first["transaction_id"]
    assert second["balance"] == 10_000


def test_adjustment_key_reused_with_other_content_conflicts(client, shop):
    credit(client, shop)
    response = credit(client, shop, amount=5)
    assert response.status_code == 409
    assert response.get_json()["error"]["fields"] == {"idempotency_key": "already used with different content"}


def test_overdraft_is_refused_with_a_clear_error(client, shop, services):
    credit(client, shop, amount=100)
    before = row_counts(services)
    response = credit(client, shop, amount=101, key="debit-1", direction="debit")
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "insufficient_funds"
    assert row_counts(services) == before


def test_statement_pages_with_a_cursor(client, shop):
    for n in range(5):
        credit(client, shop, amount=100 + n, key=f"k{n}")
    first = client.get("/api/v1/customers/42/transactions?limit=2", headers=auth(shop)).get_json()
    assert [line["amount"] for line in first["lines"]] == [104, 103]
    second = client.get(
        f"/api/v1/customers/42/transactions?limit=2&cursor={first['next_cursor']}", headers=auth(shop)
    ).get_json()
    assert [line["amount"] for line in second["lines"]] == [102, 101]
    third = client.get(
        f"/api/v1/customers/42/transactions?limit=2&cursor={second['next_cursor']}", headers=auth(shop)
    ).get_json()
    assert [line["amount"] for line in third["lines"]] == [100] and third["next_cursor"] is None


def test_hold_capture_and_void_through_the_api(client, shop):
    credit(client, shop, amount=5_000)
    hold = client.post(
        "/api/v1/customers/42/holds", json={"amount": 3_000, "reason": "order 9"}, headers=auth(shop, "hold-1")
    ).get_json()
    assert hold["available"] == 2_000
    captured = client.post(f"/api/v1/holds/{hold['hold_id']}/capture", json={"amount": 1_000}, headers=auth(shop))
    assert captured.status_code == 200 and captured.get_json()["status"] == "captured"
    wallet = client.get("/api/v1/customers/42/wallet", headers=auth(shop)).get_json()
    assert (wallet["balance"], wallet["available"], wallet["open_holds"]) == (4_000, 4_000, [])
    second = client.post(
        "/api/v1/customers/42/holds", json={"amount": 500, "reason": "order 10"}, headers=auth(shop, "hold-2")
    ).get_json()
    voided = client.post(f"/api/v1/holds/{second['hold_id']}/void", headers=auth(shop)).get_json()
    assert voided["status"] == "voided"


def test_another_shop_sees_nothing(client, shop, other_shop):
    credit(client, shop)
    hold = client.post(
        "/api/v1/customers/42/holds", json={"amount": 100, "reason": "x"}, headers=auth(shop, "h")
    ).get_json()
    for response in (
        client.get("/api/v1/customers/42/wallet", headers=auth(other_shop)),
        client.get("/api/v1/customers/42/transactions", headers=auth(other_shop)),
        client.post(f"/api/v1/holds/{hold['hold_id']}/capture", json={}, headers=auth(other_shop)),
        client.post(f"/api/v1/holds/{hold['hold_id']}/void", headers=auth(other_shop)),
        client.get("/api/v1/customers/nobody/wallet", headers=auth(other_shop)),
    ):
        assert response.status_code == 404
        assert response.get_json()["error"] == {"code": "not_found", "message": response.get_json()["error"]["message"]}
    assert client.get("/api/v1/customers/42/wallet", headers=auth(shop)).get_json()["available"] == 9_900


@pytest.mark.parametrize(
    ("body", "headers_key", "field"),
    [
        ({"direction": "credit", "amount": 100, "reason": "x"}, None, "Idempotency-Key"),
        ({"direction": "sideways", "amount": 100, "reason": "x"}, "k", "direction"),
        ({"direction": "credit", "amount": "1.00", "reason": "x"}, "k", "amount"),
        ({"direction": "credit", "amount": 1.5, "reason": "x"}, "k", "amount"),
        ({"direction": "credit", "amount": 0, "reason": "x"}, "k", "amount"),
        ({"direction": "credit", "amount": -5, "reason": "x"}, "k", "amount"),
        ({"direction": "credit", "amount": 100}, "k", "reason"),
        ({"direction": "credit", "amount": 100, "reason": ""}, "k", "reason"),
        ({"direction": "credit", "amount": 100, "reason": "x", "extra": 1}, "k", "extra"),
        ({"direction": "credit", "amount": True, "reason": "x"}, "k", "amount"),
    ],
)
def test_bad_adjustments_name_the_field_and_write_nothing(client, shop, services, body, headers_key, field):
    before = row_counts(services)
    response = client.post("/api/v1/customers/42/adjustments", json=body, headers=auth(shop, headers_key))
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "validation_failed" and field in error["fields"]
    assert row_counts(services) == before


@pytest.mark.parametrize("raw", [b"not json", b"[1,2]", b"null", b'{"direction":'])
def test_malformed_json_is_a_4xx(client, shop, raw):
    response = client.post(
        "/api/v1/customers/42/adjustments", data=raw, headers={**auth(shop, "k"), "Content-Type": "application/json"}
    )
    assert 400 <= response.status_code < 500
    assert "error" in response.get_json()


def test_bad_cursor_names_the_field(client, shop):
    credit(client, shop)
    response = client.get("/api/v1/customers/42/transactions?cursor=%%%", headers=auth(shop))
    assert response.status_code == 422 and "cursor" in response.get_json()["error"]["fields"]


def test_points_convert_to_wallet_money_once_per_key(client, shop, services):
    from bridge.accounts import ensure_customer
    from bridge.models import Shop
    from bridge.order_rules import apply_order
    from tests.integration.test_order_rules import ACTOR, paid

    with unit_of_work(services.sessions) as session:
        stored = session.get(Shop, shop.shop.id)
        stored.settings = {
            **stored.settings,
            "points_per_currency_unit": 10,
            "points_conversion_points": 100,
            "points_conversion_value": 50,
        }
        ensure_customer(session, stored.id, "2")
        apply_order(session, stored, paid(payment_method="stripe"), ACTOR)  # 414 points
    for _ in range(2):
        response = client.post(
            "/api/v1/customers/2/points/conversions", json={"points": 300}, headers=auth(shop, "conv-1")
        )
        assert response.status_code == 201
    assert (response.get_json()["points"], response.get_json()["balance"]) == (114, 150)
    too_many = client.post("/api/v1/customers/2/points/conversions", json={"points": 500}, headers=auth(shop, "c2"))
    assert too_many.status_code == 409 and "points" in too_many.get_json()["error"]["fields"]
    too_few = client.post("/api/v1/customers/2/points/conversions", json={"points": 50}, headers=auth(shop, "c3"))
    assert too_few.status_code == 422 and "points" in too_few.get_json()["error"]["fields"]


def test_a_database_that_drops_the_connection_answers_503_and_the_retry_moves_money_once(client, shop, monkeypatch):
    adjust = wallets.adjust_wallet

    def dropped(*args, **kwargs):
        monkeypatch.setattr(wallets, "adjust_wallet", adjust)  # the next request finds the database back
        raise OperationalError("UPDATE accounts", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(wallets, "adjust_wallet", dropped)
    first = credit(client, shop, key="drop-1")
    again = credit(client, shop, key="drop-1")

    assert first.status_code == 503 and first.headers["Retry-After"] == "1"
    assert first.get_json()["error"]["code"] == "database_unavailable"
    assert again.status_code == 201
    assert client.get("/api/v1/customers/42/wallet", headers=auth(shop)).get_json()["balance"] == 10_000
