"""Webhook findings of the audit (docs/security.md): a Shopify delivery replayed at another shop whose secret is
the same (X-Shopify-Shop-Domain is not signed), and answers that told which shop ids exist."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bridge.db import unit_of_work
from bridge.models import InboxDelivery, LedgerTransaction, Shop
from bridge.users import add_membership, find_user
from bridge.webhook_secrets import SHARED
from tests.conftest import make_shop
from tests.console_support import form_post, text_of
from tests.integration.test_shopify import customer, deliver
from tests.woo import captured, connect_for_tests

pytest_plugins = ("tests.console_fixtures",)  # fixtures: console (signed in as `merchant`)

APP_SECRET = "shpss_the_public_apps_client_secret"


def shopify_shop(services, name: str, secret: str):
    created = make_shop(services, name=name, platform="shopify", url=f"https://{name}.myshopify.com", currency="USD")
    with unit_of_work(services.sessions) as session:
        shop = session.get(Shop, created.shop.id)
        shop.webhook_secret_enc = services.secrets.seal(secret)
        shop.consumer_secret_enc = services.secrets.seal(f"shpat_{name}")
        shop.settings = {**shop.settings, "signup_bonus": 500}
    return created.shop.id


def moved(services, shop_id: int) -> tuple[int, int]:
    with unit_of_work(services.sessions) as session:
        deliveries = session.scalar(select(func.count()).where(InboxDelivery.shop_id == shop_id))
        transactions = session.scalar(select(func.count()).where(LedgerTransaction.shop_id == shop_id))
    return deliveries, transactions


def test_a_delivery_replayed_at_another_shop_sharing_the_secret_is_refused(client, services):
    """Two shops of one public app (their rows as a race of two connections, or an older bridge, left them): a
    customers/create for `north`, re-posted to `south`'s URL with the domain header edited, verifies with the
    shared secret. It is refused, and so are `north`'s own deliveries, until each shop has its own secret."""
    north = shopify_shop(services, "north", APP_SECRET)
    south = shopify_shop(services, "south", APP_SECRET)

    replayed = deliver(client, south, "customers/create", customer(7), secret=APP_SECRET, domain="south.myshopify.com")
    honest = deliver(client, north, "customers/create", customer(8), secret=APP_SECRET, domain="north.myshopify.com")

    assert replayed.status_code == honest.status_code == 401
    assert moved(services, south) == moved(services, north) == (0, 0)


def test_with_a_secret_each_the_replay_fails_its_signature(client, services):
    north = shopify_shop(services, "north", "shpss_north_own_app_secret")
    south = shopify_shop(services, "south", "shpss_south_own_app_secret")

    replayed = deliver(
        client,
        south,
        "customers/create",
        customer(7),
        secret="shpss_north_own_app_secret",
        domain="south.myshopify.com",
    )
    honest = deliver(
        client,
        north,
        "customers/create",
        customer(7),
        secret="shpss_north_own_app_secret",
        domain="north.myshopify.com",
    )

    assert (replayed.status_code, honest.status_code) == (401, 200)
    assert moved(services, south) == (0, 0)
    assert moved(services, north) == (1, 1)  # the delivery, and the sign-up bonus


@pytest.mark.parametrize("held_as", ["current", "previous"])
def test_connecting_a_shop_with_another_shops_secret_is_refused(app, console, services, shop, held_as):
    north = shopify_shop(services, "north", APP_SECRET)
    if held_as == "previous":  # north rotated away from it: Shopify may still sign with it for a while
        with unit_of_work(services.sessions) as session:
            stored = session.get(Shop, north)
            stored.previous_webhook_secret_enc = stored.webhook_secret_enc
            stored.webhook_secret_enc = services.secrets.seal("shpss_north_new_secret")
    south = make_shop(services, name="south", platform="shopify", url="https://south.myshopify.com").shop.id
    with unit_of_work(services.sessions) as session:
        add_membership(session, find_user(session, "ann@example.com"), south)

    answer = form_post(
        console,
        f"/shops/{south}/settings/connection/shopify",
        {"url": "https://south.myshopify.com", "access_token": "shpat_south", "webhook_secret": APP_SECRET},
    )
    with app.app_context():
        cli = app.test_cli_runner().invoke(
            args=[
                "shop",
                "connect-shopify",
                str(south),
                "--url",
                "https://south.myshopify.com",
                "--access-token",
                "shpat_south",
                "--webhook-secret",
                APP_SECRET,
            ]
        )

    assert answer.status_code == 422 and SHARED in text_of(answer)
    assert cli.exit_code != 0 and SHARED in cli.output
    with unit_of_work(services.sessions) as session:
        assert session.get(Shop, south).consumer_secret_enc is None  # nothing stored, nothing sent to Shopify


@pytest.mark.parametrize("platform", ["woocommerce", "shopify"])
def test_an_unknown_shop_answers_exactly_like_a_bad_signature(client, services, platform):
    known = shopify_shop(services, "north", APP_SECRET) if platform == "shopify" else make_shop(services).shop.id
    if platform == "woocommerce":
        connect_for_tests(services, known)
        body, headers = captured("0005")
        headers = {**headers, "X-WC-Webhook-Signature": "Zm9yZ2Vk"}  # forged
        post = lambda shop_id: client.post(f"/webhooks/woocommerce/{shop_id}", data=body, headers=headers)  # noqa: E731
    else:
        post = lambda shop_id: deliver(  # noqa: E731
            client,
            shop_id,
            "customers/create",
            customer(7),
            secret="forged",
            domain="north.myshopify.com",
        )

    forged, unknown = post(known), post(known + 1000)

    assert (forged.status_code, forged.get_json()) == (unknown.status_code, unknown.get_json())
    assert forged.status_code == 401
    assert dict(forged.headers).keys() == dict(unknown.headers).keys()


def test_a_woocommerce_ping_is_answered_whether_or_not_the_shop_exists(client, services):
    ping = {"data": "webhook_id=12", "content_type": "application/x-www-form-urlencoded"}
    assert client.post(f"/webhooks/woocommerce/{make_shop(services).shop.id}", **ping).status_code == 200
    assert client.post("/webhooks/woocommerce/987654", **ping).status_code == 200
