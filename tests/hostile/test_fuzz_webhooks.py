"""Both webhook endpoints under hostile input: arbitrary and mutated JSON bodies, correctly signed, are never
answered 5xx and, when rejected, move no money; bad signatures are 401 and store nothing; a replayed delivery
is absorbed (200) without a second money movement."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from bridge.db import unit_of_work
from bridge.models import InboxDelivery, Shop
from tests.conftest import make_shop
from tests.hostile import CASES, LEDGER_TABLES, MONEY_TABLES, report, row_counts
from tests.integration.test_api import credit
from tests.woo import CAPTURED, REAL_SECRET, connect_for_tests, delivery_headers, wp_json
from webhooks.signing import sign

SHOPIFY_FIXTURES = Path(__file__).parent.parent / "fixtures" / "shopify"
DOMAIN = "demo.myshopify.com"
SHOPIFY_SECRET = "shpss_hostile_secret"
WOO_TOPICS = ["order.created", "order.updated", "customer.created", "customer.updated", "order.deleted", "x.y"]
SHOPIFY_TOPICS = [
    "orders/paid",
    "orders/updated",
    "orders/cancelled",
    "refunds/create",
    "customers/create",
    "customers/update",
    "app/uninstalled",
]
WOO_ORDER = json.loads((CAPTURED / "0005.body").read_bytes())
SHOPIFY_ORDER = json.loads((SHOPIFY_FIXTURES / "orders_create.json").read_text())
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(
        [
            "",
            "0",
            "-1",
            "41.48",
            "1e309",
            "EUR",
            "wallet",
            "processing",
            "completed",
            "refunded",
            "cancelled",
            "2026-11-23T12:00:00",
            "not a date",
            "99999999999999999999",
        ]
    )
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
DELETE = object()


def mutated(original: dict):
    """The real payload with some top-level fields replaced by arbitrary JSON or removed."""
    changes = st.dictionaries(st.sampled_from(sorted(original)), json_values | st.just(DELETE), min_size=1, max_size=4)

    def apply(change: dict) -> dict:
        data = dict(original)
        for key, value in change.items():
            if value is DELETE:
                data.pop(key, None)
            else:
                data[key] = value
        return data

    return changes.map(apply)


def bodies(original: dict):
    raw = st.binary(max_size=64)
    return st.one_of(json_values.map(lambda v: json.dumps(v).encode()), mutated(original).map(wp_json), raw)


@pytest.fixture
def woo(services, shop, client):
    connect_for_tests(services, shop.shop.id)
    credit(client, shop, customer="2", amount=10_000, key="fund")  # the captured order's customer can pay
    return shop.shop.id


@pytest.fixture
def shopify(services):
    created = make_shop(services, name="Shopify Shop", platform="shopify", url=f"https://{DOMAIN}", currency="USD")
    with unit_of_work(services.sessions) as session:
        shop = session.get(Shop, created.shop.id)
        shop.webhook_secret_enc = services.secrets.seal(SHOPIFY_SECRET)
        shop.consumer_secret_enc = services.secrets.seal("shpat_hostile_token")
        shop.settings = {**shop.settings, "signup_bonus": 500, "points_per_currency_unit": 1}
    return created


def shopify_headers(topic: str, body: bytes, secret: str = SHOPIFY_SECRET, webhook_id: str | None = None) -> dict:
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": sign(body, secret),
        "X-Shopify-Shop-Domain": DOMAIN,
        "X-Shopify-API-Version": "2025-01",
        "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
    }


def check_signed(services, response, before, label) -> None:
    assert response.status_code < 500, f"{label}: {response.status_code} {response.get_data(as_text=True)[:300]}"
    if response.status_code >= 400:
        assert row_counts(services, LEDGER_TABLES) == before, f"{label}: rejected but moved money"


def test_fuzz_woocommerce_signed_bodies(client, services, woo, capsys):
    name = "webhook woocommerce (signed)"

    @FUZZ
    @given(topic=st.sampled_from(WOO_TOPICS), body=bodies(WOO_ORDER))
    def run(topic, body):
        before = row_counts(services, LEDGER_TABLES)
        response = client.post(f"/webhooks/woocommerce/{woo}", data=body, headers=delivery_headers(topic, body))
        CASES[name] += 1
        check_signed(services, response, before, f"{topic} {body[:200]!r}")

    run()
    report(capsys, name, 60)


def test_fuzz_shopify_signed_bodies(client, services, shopify, capsys):
    name = "webhook shopify (signed)"

    @FUZZ
    @given(topic=st.sampled_from(SHOPIFY_TOPICS), body=bodies(SHOPIFY_ORDER))
    def run(topic, body):
        before = row_counts(services, LEDGER_TABLES)
        response = client.post(f"/webhooks/shopify/{shopify.shop.id}", data=body, headers=shopify_headers(topic, body))
        CASES[name] += 1
        check_signed(services, response, before, f"{topic} {body[:200]!r}")

    run()
    report(capsys, name, 60)


@pytest.mark.parametrize("platform", ["woocommerce", "shopify"])
def test_fuzz_unsigned_or_forged_is_401_and_stores_nothing(client, services, woo, shopify, platform, capsys):
    name = f"webhook {platform} (forged)"
    shop_id = woo if platform == "woocommerce" else shopify.shop.id
    header = "X-WC-Webhook-Signature" if platform == "woocommerce" else "X-Shopify-Hmac-Sha256"

    @settings(FUZZ, max_examples=40)
    @given(
        body=bodies(WOO_ORDER if platform == "woocommerce" else SHOPIFY_ORDER),
        signature=st.none() | st.text(max_size=60) | st.binary(max_size=32).map(lambda b: sign(b, "guess")),
    )
    def run(body, signature):
        headers = (
            delivery_headers("order.updated", body)
            if platform == "woocommerce"
            else shopify_headers("orders/updated", body)
        )
        headers.pop(header)
        if signature is not None:
            headers[header] = signature
        before = row_counts(services, MONEY_TABLES + (InboxDelivery,))
        response = client.post(f"/webhooks/{platform}/{shop_id}", data=body, headers=headers)
        CASES[name] += 1
        assert response.status_code == 401, response.get_data(as_text=True)[:300]
        assert row_counts(services, MONEY_TABLES + (InboxDelivery,)) == before

    run()
    report(capsys, name, 40)


# The signature matrix ----------------------------------------------------------------------------------------

TAMPERS = ["missing", "wrong", "truncated", "other_shop_secret", "modified_body"]


def woo_delivery(shop_id):
    body = wp_json(WOO_ORDER)
    return (
        f"/webhooks/woocommerce/{shop_id}",
        body,
        delivery_headers("order.created", body, REAL_SECRET),
        "X-WC-Webhook-Signature",
    )


def shopify_delivery(shop_id, webhook_id=None):
    data = {"id": 77, "email": "jon@example.com", "first_name": "Jon", "last_name": "Snow"}
    body = json.dumps(data).encode()
    return (
        f"/webhooks/shopify/{shop_id}",
        body,
        shopify_headers("customers/create", body, webhook_id=webhook_id),
        "X-Shopify-Hmac-Sha256",
    )


@pytest.mark.parametrize("tamper", TAMPERS)
@pytest.mark.parametrize("platform", ["woocommerce", "shopify"])
def test_signature_matrix_rejects(client, services, woo, shopify, other_shop, platform, tamper):
    url, body, headers, header = woo_delivery(woo) if platform == "woocommerce" else shopify_delivery(shopify.shop.id)
    if tamper == "missing":
        headers.pop(header)
    elif tamper == "wrong":
        headers[header] = "bm90IGEgc2lnbmF0dXJl"
    elif tamper == "truncated":
        headers[header] = headers[header][:20]
    elif tamper == "other_shop_secret":
        headers[header] = sign(body, other_shop.webhook_secret)
    else:  # a valid signature, over the body before it was changed
        body = body.replace(b"41.48", b"0.01") if platform == "woocommerce" else body.replace(b"77", b"78")
    before = row_counts(services, MONEY_TABLES + (InboxDelivery,))
    response = client.post(url, data=body, headers=headers)
    assert response.status_code == 401
    assert row_counts(services, MONEY_TABLES + (InboxDelivery,)) == before


@pytest.mark.parametrize("platform", ["woocommerce", "shopify"])
def test_replayed_delivery_is_absorbed_without_moving_money_again(client, services, woo, shopify, platform):
    if platform == "woocommerce":
        url, body, headers, _ = woo_delivery(woo)
    else:
        url, body, headers, _ = shopify_delivery(shopify.shop.id, webhook_id="replayed-1")
    before = row_counts(services, LEDGER_TABLES)
    first = client.post(url, data=body, headers=headers)
    assert first.status_code == 200, first.get_data(as_text=True)
    after_first = row_counts(services, LEDGER_TABLES)
    assert after_first["ledger_transactions"] > before["ledger_transactions"]  # the first one moved money
    for _ in range(3):  # the same bytes and headers, later
        assert client.post(url, data=body, headers=headers).status_code == 200
    if platform == "shopify":  # and once more under a new webhook id: deduplicated by the customer id
        _, body, headers, _ = shopify_delivery(shopify.shop.id, webhook_id="replayed-2")
        assert client.post(url, data=body, headers=headers).status_code == 200
    assert row_counts(services, LEDGER_TABLES) == after_first
