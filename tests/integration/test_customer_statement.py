"""The customer's statement through a signed, expiring link: page, JSON, points conversion."""

import re
from datetime import UTC, datetime

import itsdangerous.timed
from sqlalchemy import select

from bridge.db import unit_of_work
from bridge.models import LedgerTransaction, Shop
from tests.console_support import move
from tests.integration.test_api import auth, credit


def link(client, shop, customer="42"):
    response = client.post(f"/api/v1/customers/{customer}/statement-link", headers=auth(shop))
    assert response.status_code == 201
    return response.get_json()["url"].split("https://bridge.example.test", 1)[1]


def test_the_link_shows_balance_and_every_movement(client, shop):
    credit(client, shop, amount=2_500)
    page = client.get(link(client, shop))
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "€25.00" in html and "goodwill" in html and "Alpha Shop" in html


def test_the_json_form_matches_the_api(client, shop):
    credit(client, shop, amount=2_500)
    data = client.get(link(client, shop) + ".json").get_json()
    assert data["wallet"]["balance"] == 2_500 and data["lines"][0]["reason"] == "goodwill"


def test_a_tampered_or_foreign_link_reveals_nothing(client, shop, other_shop):
    credit(client, shop, amount=2_500)
    url = link(client, shop)
    assert client.get(url[:-3] + "abc").status_code == 404
    assert client.post("/api/v1/customers/42/statement-link", headers=auth(other_shop)).status_code == 404


def test_an_expired_link_is_refused(client, shop, monkeypatch):
    credit(client, shop, amount=2_500)
    url = link(client, shop)
    later = itsdangerous.timed.time.time() + 3 * 3600
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: later)
    assert client.get(url).status_code == 404


def assert_link_expired_page(response) -> None:
    html = response.get_data(as_text=True)
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert "<h1>This link has expired</h1>" in html and "fresh link" in html and "ask the shop" in html
    assert "€" not in html and '"error"' not in html


def test_an_expired_or_tampered_link_shows_people_a_page_saying_how_to_get_a_fresh_one(
    client, services, shop, monkeypatch
):
    credit(client, shop, amount=2_500)
    url = link(client, shop)
    assert_link_expired_page(client.get(url[:-3] + "abc"))
    move(services, shop.shop, "42", "points_earned", 10_000, datetime.now(UTC), "points")  # the page has a form
    csrf = re.search(r'name="csrf_token" value="([^"]*)"', client.get(url).get_data(as_text=True)).group(1)
    later = itsdangerous.timed.time.time() + 3 * 3600
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: later)
    assert_link_expired_page(client.get(url))
    # The page was left open past the hour, then its button clicked.
    assert_link_expired_page(client.post(url + "/convert", data={"csrf_token": csrf, "form_token": "0" * 32}))
    as_json = client.get(url + ".json")  # the storefront's script still reads JSON
    assert as_json.status_code == 404 and as_json.get_json()["error"]["code"] == "not_found"


def test_the_page_is_styled_by_its_stylesheet_not_inline_styles(client, shop):
    credit(client, shop, amount=2_500)
    html = client.get(link(client, shop)).get_data(as_text=True)
    assert "<style" not in html and "style=" not in html  # refused by the page's style-src 'self'
    stylesheet = re.search(r'<link rel="stylesheet" href="([^"]+)"', html).group(1)
    response = client.get(stylesheet)
    assert response.status_code == 200 and response.mimetype == "text/css"
    assert ".movements" in response.get_data(as_text=True)


def test_credits_show_a_plus_and_debits_a_minus(client, shop):
    credit(client, shop, amount=2_500)
    credit(client, shop, amount=500, key="fund-2", direction="debit")
    html = client.get(link(client, shop)).get_data(as_text=True)
    assert re.search(r'class="num amount credit">\+€25\.00<', html)
    assert re.search(r'class="num amount debit">-€5\.00<', html)


def test_points_convert_from_the_statement_once(client, services, shop):
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
        apply_order(session, stored, paid(payment_method="stripe", customer_external_id="42"), ACTOR)  # 414 points
    url = link(client, shop)
    html = client.get(url).get_data(as_text=True)
    form = {name: re.search(rf'name="{name}" value="([^"]*)"', html).group(1) for name in ("csrf_token", "form_token")}
    for _ in range(2):  # a double-clicked button
        assert client.post(url + "/convert", data=form).status_code == 303
    data = client.get(url + ".json").get_json()
    assert (data["wallet"]["points"], data["wallet"]["balance"]) == (14, 200)
    with unit_of_work(services.sessions) as session:
        kinds = session.execute(select(LedgerTransaction.kind)).scalars().all()
        assert kinds.count("points_conversion") == 1
