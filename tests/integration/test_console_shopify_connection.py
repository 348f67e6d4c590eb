"""Connecting a Shopify shop from the settings page: the same `connect_shopify` as the CLI, against the Shopify
simulator's Admin API (answered in process through `responses`), the token and secret never shown again."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
import requests
import responses
from sqlalchemy import select

from bridge.db import unit_of_work
from bridge.models import AuditEvent, Shop
from simulator.shopify import create_shopify_simulator
from sync.shopify.connect import TOPICS
from tests.conftest import make_shop
from tests.console_support import csrf_token, form_post, make_user, text_of
from tests.inbox import record_delivery

pytest_plugins = ("tests.console_fixtures",)  # fixtures: console (signed in as `merchant`)

DOMAIN = "demo.myshopify.com"
URL = f"https://{DOMAIN}"
TOKEN = "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"
SECRET = "shpss_client_secret_of_the_app_0123"
CALLBACK = "https://bridge.example.test/webhooks/shopify/{}"


@pytest.fixture
def shopify(services):
    return make_shop(services, name="Shopify Shop", platform="shopify", url=URL, currency="USD")


@pytest.fixture
def merchant(services, shop, shopify):
    """Ann manages the WooCommerce shop and the Shopify one (overrides console_fixtures' merchant)."""
    return make_user(services, shop.shop.id, shopify.shop.id)


@pytest.fixture
def sim():
    return create_shopify_simulator(access_token=TOKEN, webhook_secret=SECRET, shop_domain=DOMAIN, currency="USD")


@pytest.fixture
def shopify_api(sim):
    """https://demo.myshopify.com answered by the simulator's Flask app; any other address fails to connect."""
    admin = sim.app.test_client()

    def forward(request):
        headers = {
            name: request.headers[name]
            for name in ("Content-Type", "X-Shopify-Access-Token")
            if name in request.headers
        }
        answer = admin.post(urlsplit(request.url).path, data=request.body, headers=headers)
        return answer.status_code, {}, answer.get_data()

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback("POST", re.compile(rf"{re.escape(URL)}/.*"), callback=forward)
        yield mock


def connect(console, shop_id: int, **values):
    data = {"url": URL, "access_token": TOKEN, "webhook_secret": SECRET, **values}
    return form_post(console, f"/shops/{shop_id}/settings/connection/shopify", data)


def stored(services, shop_id: int) -> Shop:
    with unit_of_work(services.sessions) as session:
        return session.get(Shop, shop_id)


def audit_rows(services) -> list[tuple]:
    with unit_of_work(services.sessions) as session:
        return session.execute(
            select(AuditEvent.action, AuditEvent.field, AuditEvent.old_value, AuditEvent.new_value).order_by(
                AuditEvent.id
            )
        ).all()


def no_secret_in(text: str) -> bool:
    return all(part not in text for secret in (TOKEN, SECRET) for part in (secret, secret[-8:], secret[6:14]))


def test_a_shopify_shop_gets_the_shopify_form_and_a_woocommerce_shop_the_woocommerce_one(console, shop, shopify):
    shopify_page = text_of(console.get(f"/shops/{shopify.shop.id}/settings"))
    assert f'action="/shops/{shopify.shop.id}/settings/connection/shopify"' in shopify_page
    assert 'name="access_token"' in shopify_page and 'name="webhook_secret"' in shopify_page
    assert "consumer_key" not in shopify_page and "/connection/install" not in shopify_page
    assert "not available yet" not in shopify_page
    assert CALLBACK.format(shopify.shop.id) in shopify_page
    woo_page = text_of(console.get(f"/shops/{shop.shop.id}/settings"))
    assert f'action="/shops/{shop.shop.id}/settings/connection/install"' in woo_page
    assert "/connection/shopify" not in woo_page and 'name="access_token"' not in woo_page


def test_connecting_subscribes_the_webhooks_and_stores_the_token_encrypted(
    console, shopify, services, sim, shopify_api
):
    response = connect(console, shopify.shop.id, url=URL + "/")
    assert response.status_code == 302 and response.location.endswith("/settings#connection")
    callback = CALLBACK.format(shopify.shop.id)
    assert sorted((s.topic, s.callback_url) for s in sim.subscriptions) == sorted((t, callback) for t in TOPICS)
    assert all(call.status == 200 for call in sim.requests)
    shop = stored(services, shopify.shop.id)
    assert shop.url == URL
    assert services.secrets.open(shop.consumer_secret_enc) == TOKEN and TOKEN.encode() not in shop.consumer_secret_enc
    assert services.secrets.open(shop.webhook_secret_enc) == SECRET
    page = text_of(console.get(f"/shops/{shopify.shop.id}/settings"))
    assert f"Connected to {DOMAIN}. Webhooks created: {len(TOPICS)}." in page
    assert "(stored)" in page and no_secret_in(page)
    changes = {row[1]: (row[2], row[3]) for row in audit_rows(services) if row[0] == "connection.update"}
    assert changes == {"access_token": ("—", "(replaced)"), "webhook_secret": ("(stored)", "(replaced)")}
    assert [row[0] for row in audit_rows(services)][-2:] == ["connection.install", "connection.check"]
    assert no_secret_in(str(audit_rows(services)))


def test_reconnecting_keeps_the_subscriptions_and_a_blank_secret_keeps_the_stored_one(
    console, shopify, services, sim, shopify_api
):
    connect(console, shopify.shop.id)
    again = connect(console, shopify.shop.id, webhook_secret="")
    assert again.status_code == 302
    assert len(sim.subscriptions) == len(TOPICS)
    assert f"Webhooks already subscribed: {len(TOPICS)}." in text_of(console.get(again.location))
    shop = stored(services, shopify.shop.id)
    assert services.secrets.open(shop.webhook_secret_enc) == SECRET
    assert [row[0] for row in audit_rows(services)].count("connection.update") == 2  # the first time only


def test_a_refused_token_is_said_next_to_the_token_field_and_nothing_is_stored(
    console, shopify, services, sim, shopify_api
):
    response = connect(console, shopify.shop.id, access_token="shpat_not_the_token_0000")
    assert response.status_code == 422
    page = text_of(response)
    assert re.search(r'<p class="error" id="e-access_token">rejected</p>', page)
    assert "Shopify did not accept the token" in page
    assert "shpat_not_the_token_0000" not in page and 'value=""' in page
    assert [call.status for call in sim.requests] == [401] and sim.subscriptions == []
    shop = stored(services, shopify.shop.id)
    assert shop.consumer_secret_enc is None and services.secrets.open(shop.webhook_secret_enc) != SECRET
    assert [(row[0], '"ok": false' in row[3]) for row in audit_rows(services)] == [("connection.check", True)]
    assert "not_the_token" not in str(audit_rows(services))


@pytest.mark.parametrize(
    "url",
    [
        "https://demo.example.com",
        "http://demo.myshopify.com",
        "demo.myshopify.com",
        "https://myshopify.com",
        "https://demo.myshopify.com.evil.example",
        "https://demo.myshopify.com/admin",
    ],
)
def test_an_address_that_is_not_a_myshopify_one_is_refused_before_any_call(
    console, shopify, services, sim, shopify_api, url
):
    response = connect(console, shopify.shop.id, url=url)
    assert response.status_code == 422
    page = text_of(response)
    assert 'id="e-url">Enter the shop&#39;s address as https://&lt;name&gt;.myshopify.com<' in page
    assert len(shopify_api.calls) == 0 and sim.requests == []
    assert no_secret_in(page)
    assert stored(services, shopify.shop.id).consumer_secret_enc is None and audit_rows(services) == []


def test_the_token_is_required_and_so_is_the_secret_the_first_time(console, shopify, services, shopify_api):
    response = connect(console, shopify.shop.id, access_token="", webhook_secret="")
    assert response.status_code == 422
    page = text_of(response)
    assert 'id="e-access_token">Required.<' in page and 'id="e-webhook_secret">Required for the first' in page
    assert len(shopify_api.calls) == 0 and audit_rows(services) == []


def test_without_a_csrf_token_the_form_is_refused(console, shopify, services, sim, shopify_api):
    path = f"/shops/{shopify.shop.id}/settings/connection/shopify"
    data = {"url": URL, "access_token": TOKEN, "webhook_secret": SECRET}
    for forged in ({}, {"csrf_token": "forged"}):
        response = console.post(path, data={**data, **forged})
        assert response.status_code == 400 and "The form expired" in text_of(response)
    assert sim.requests == [] and stored(services, shopify.shop.id).consumer_secret_enc is None
    assert audit_rows(services) == []
    assert connect(console, shopify.shop.id).status_code == 302  # the same post, with its token, is accepted


def test_another_shops_shopify_form_is_a_404_and_writes_nothing(console, shopify, services, sim, shopify_api):
    other = make_shop(services, name="Gamma Shop", platform="shopify", url="https://gamma.myshopify.com")
    token = csrf_token(console, f"/shops/{shopify.shop.id}/settings")
    data = {"csrf_token": token, "url": URL, "access_token": TOKEN, "webhook_secret": SECRET}
    response = console.post(f"/shops/{other.shop.id}/settings/connection/shopify", data=data)
    assert response.status_code == 404 and "Gamma Shop" not in text_of(response)
    assert sim.requests == [] and stored(services, other.shop.id).consumer_secret_enc is None
    assert audit_rows(services) == []
    own = console.post(f"/shops/{shopify.shop.id}/settings/connection/shopify", data=data)
    assert own.status_code == 302  # the route exists: the 404 is the shop's, not the path's


def test_a_woocommerce_shop_cannot_use_the_shopify_form(console, shop, services, shopify_api):
    response = connect(console, shop.shop.id)
    assert response.status_code == 302 and response.location.endswith(f"/shops/{shop.shop.id}/settings")
    assert "Only Shopify shops can be connected" in text_of(console.get(response.location))
    assert len(shopify_api.calls) == 0 and audit_rows(services) == []
    assert stored(services, shop.shop.id).url == "https://alpha.example"


@pytest.mark.parametrize("form", ["install", "test"])
def test_a_shopify_shop_cannot_use_the_woocommerce_forms(console, shopify, services, form):
    with responses.RequestsMock() as mock:  # any call to a shop would fail the test
        response = form_post(
            console,
            f"/shops/{shopify.shop.id}/settings/connection/{form}",
            {"url": URL, "consumer_key": "ck_x", "consumer_secret": "cs_x"},
        )
        assert len(mock.calls) == 0
    assert response.status_code == 302
    assert "Only WooCommerce shops can be connected" in text_of(console.get(response.location))
    assert audit_rows(services) == []


@pytest.mark.parametrize(
    ("answer", "field", "message"),
    [
        (requests.ConnectionError("Name or service not known"), "url", "Nothing answered at this address"),
        ((503, "<html>Service Unavailable</html>"), None, "Shopify answered HTTP 503"),
    ],
)
def test_a_shop_that_cannot_answer_is_not_blamed_on_the_token(console, shopify, services, answer, field, message):
    with responses.RequestsMock() as mock:
        if isinstance(answer, Exception):
            mock.add("POST", re.compile(rf"{re.escape(URL)}/.*"), body=answer)
        else:
            mock.add("POST", re.compile(rf"{re.escape(URL)}/.*"), status=answer[0], body=answer[1])
        response = connect(console, shopify.shop.id)
    page = text_of(response)
    assert response.status_code == 422 and message in page
    assert 'id="e-access_token"' not in page
    assert (f'id="e-{field}"' in page) if field else 'class="error" id="e-' not in page
    assert stored(services, shopify.shop.id).consumer_secret_enc is None


def test_webhook_health_lists_the_shopify_topics_their_last_delivery_and_state(
    console, shopify, services, sim, shopify_api
):
    record_delivery(
        services.sessions,
        shop_id=shopify.shop.id,
        platform="shopify",
        topic="orders/paid",
        resource_id="12",
        delivery_id="w1",
        body=b"{}",
        status="applied",
    )
    connect(console, shopify.shop.id)

    page = text_of(console.get(f"/shops/{shopify.shop.id}/settings"))

    topics = re.findall(r"<tr><td><code>([a-z_./]+)</code></td>", page)
    assert topics == [
        "customers/create",
        "customers/update",
        "orders/paid",
        "orders/updated",
        "orders/cancelled",
        "refunds/create",
    ]
    paid = re.search(r"<code>orders/paid</code>.*?</tr>", page, re.S).group(0)
    assert "active" in paid and "applied" in paid
    assert "order.updated" not in page and CALLBACK.format(shopify.shop.id) in page
