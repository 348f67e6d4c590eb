"""First run when shops were made before the console had a user (`wallet-bridge shop create`, the demo): the
first user chooses which of them to manage; nobody after them can."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from bridge.db import unit_of_work
from bridge.models import AuditEvent, MerchantUser, Shop, ShopMembership
from tests.console_support import PASSWORD, form_post, text_of

ACCOUNT = {"name": "Cora", "email": "cora@example.com", "password": PASSWORD, "password_confirm": PASSWORD}


def memberships(services) -> set[tuple[str, int]]:
    with unit_of_work(services.sessions) as session:
        rows = session.execute(
            select(MerchantUser.email, ShopMembership.shop_id).join(
                ShopMembership, ShopMembership.user_id == MerchantUser.id
            )
        ).all()
        return {tuple(row) for row in rows}


def shop_count(services) -> int:
    with unit_of_work(services.sessions) as session:
        return session.scalar(select(func.count()).select_from(Shop))


def test_the_first_run_page_offers_the_shops_already_made(client, shop, other_shop):
    page = text_of(client.get("/setup"))
    ticked = re.findall(r'name="take_over" value="(\d+)" checked', page)
    assert ticked == [str(shop.shop.id), str(other_shop.shop.id)]
    assert "Alpha Shop" in page and "Beta Shop" in page and "wallet-bridge shop create" in page
    assert 'name="shop_name"' not in page  # no second shop asked for
    assert "Create account and manage these shops" in page


def test_the_first_user_takes_over_the_shops_they_choose(client, services, shop, other_shop):
    response = form_post(client, "/setup", {**ACCOUNT, "take_over": [str(shop.shop.id)]}, token_from="/setup")
    assert response.status_code == 302 and response.location.endswith("/")
    assert memberships(services) == {("cora@example.com", shop.shop.id)}
    assert shop_count(services) == 2  # none created
    assert client.get("/").location.endswith(f"/shops/{shop.shop.id}/")
    overview = client.get(f"/shops/{shop.shop.id}/")
    assert overview.status_code == 200 and "You manage 1 shop." in text_of(overview)
    assert client.get(f"/shops/{other_shop.shop.id}/").status_code == 404  # not chosen: not theirs
    with unit_of_work(services.sessions) as session:
        audit = session.execute(select(AuditEvent.action, AuditEvent.shop_id, AuditEvent.actor)).all()
    assert [tuple(row) for row in audit] == [("team.add", shop.shop.id, "cora@example.com")]


def test_choosing_no_shop_or_a_shop_not_offered_creates_nothing(client, services, shop):
    for chosen in ([], ["99"], ["x"]):
        response = form_post(client, "/setup", {**ACCOUNT, "take_over": chosen}, token_from="/setup")
        assert response.status_code == 422
        assert 'id="e-take_over"' in text_of(response) and "Choose at least one shop" in text_of(response)
    with unit_of_work(services.sessions) as session:
        assert session.scalar(select(func.count()).select_from(MerchantUser)) == 0
    assert memberships(services) == set()


def test_only_the_very_first_user_can_take_shops_over(client, services, shop, other_shop):
    form_post(client, "/setup", {**ACCOUNT, "take_over": [str(shop.shop.id)]}, token_from="/setup")
    client.post(
        "/logout",
        data={"csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', text_of(client.get("/shops"))).group(1)},
    )
    assert client.get("/setup").location.endswith("/")
    intruder = {**ACCOUNT, "email": "intruder@example.com", "take_over": [str(other_shop.shop.id)]}
    form_post(client, "/setup", intruder, token_from="/login")
    assert memberships(services) == {("cora@example.com", shop.shop.id)}


def test_a_new_shop_is_told_the_next_steps_of_its_own_platform(client):
    def new_shop(platform: str, page: str) -> str:  # the first on the first-run page, the next once signed in
        answer = form_post(
            client,
            page,
            {
                "shop_name": f"A {platform} shop",
                "platform": platform,
                "url": f"https://{platform}.example",
                "currency": "EUR",
                "email": "sam@example.test",
                "name": "Sam",
                "password": PASSWORD,
                "password_confirm": PASSWORD,
            },
            token_from=page,
        )
        assert answer.status_code == 200
        return text_of(answer)

    shopify, woocommerce = new_shop("shopify", "/setup"), new_shop("woocommerce", "/shops/new")

    assert "Admin API access token" in shopify and "REST API keys" not in shopify
    assert "REST API keys" in woocommerce and "Admin API access token" not in woocommerce
    assert "/webhooks/shopify/" in shopify and "/webhooks/woocommerce/" in woocommerce


def test_a_new_shop_is_refused_on_a_field_too_long_never_cut(client, services):
    """Cut to its 3 characters, "usdt" made a shop in US dollars."""
    answer = form_post(
        client,
        "/setup",
        {**ACCOUNT, "shop_name": "S" * 201, "platform": "woocommerce", "url": "https://s.example", "currency": "usdt"},
        token_from="/setup",
    )
    page = text_of(answer)
    assert answer.status_code == 422 and shop_count(services) == 0
    assert '<p class="error" id="e-currency">Enter a three-letter currency code' in page
    assert '<p class="error" id="e-shop_name">At most 200 characters.' in page
