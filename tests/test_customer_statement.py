"""The customer's statement through a signed, expiring link: page, JSON, points conversion."""

import re

import itsdangerous.timed
from sqlalchemy import select

from bridge.db import unit_of_work
from bridge.models import LedgerTransaction, Shop
from tests.test_api import auth, credit


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


def test_points_convert_from_the_statement_once(client, services, shop):
    from bridge.order_rules import apply_order
    from tests.test_order_rules import ACTOR, paid

    with unit_of_work(services.sessions) as session:
        stored = session.get(Shop, shop.shop.id)
        stored.settings = {**stored.settings, "points_per_currency_unit": 10, "points_conversion_points": 100,
                           "points_conversion_value": 50}  # fmt: skip
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
