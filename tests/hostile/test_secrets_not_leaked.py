"""Shop secrets never leak: a representative flow (shop created and connected from the CLI, deliveries with bad
signatures, good deliveries, outbox failures whose errors are recorded, every console page) with all logging
captured at DEBUG and every HTTP response body kept — none holds the API key, the webhook secret, the REST
consumer key or secret, or the Shopify token. The one place a key is shown — `shop create` — is excluded."""

from __future__ import annotations

import json
import logging
import re

import pytest
import responses
from flask import request_finished
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from bridge.db import unit_of_work
from bridge.models import AuditEvent, Customer, InboxDelivery, OutboxMessage, Shop
from bridge.surfaces.platforms import pushers_for
from bridge.usecases.pushes import RetryPolicy
from sync.worker import drain
from tests.conftest import make_shop
from tests.console_support import csrf_token, make_user, sign_in
from tests.hostile.test_fuzz_webhooks import DOMAIN, shopify_headers
from tests.integration.test_api import auth
from tests.integration.test_woocommerce_connect_sync import KEY, SECRET, WOO, FakeWoo
from tests.woo import delivery_headers, order_body, wp_json
from webhooks.signing import sign

CONSUMER_KEY = KEY  # the keys FakeWoo accepts
CONSUMER_SECRET = SECRET
SHOPIFY_TOKEN = "shpat_0123456789abcdef0123456789abcdef"
SHOPIFY_SECRET = "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"
FAST = RetryPolicy(max_attempts=2, base_delay_seconds=0)


def test_no_secret_in_logs_errors_or_pages(app, client, services, caplog):
    caplog.set_level(logging.DEBUG)
    bodies: list[str] = []

    def keep(sender, response, **extra):
        if not response.direct_passthrough:
            bodies.append(response.get_data(as_text=True))

    request_finished.connect(keep, app)
    outputs: list[str] = []

    def cli(args, env=None):
        with app.app_context():
            return app.test_cli_runner().invoke(args=args, env=env)

    # shop create --json shows the key and secret once: that output is the one excluded from the scan
    created = cli(
        [
            "shop",
            "create",
            "--name",
            "Leak Shop",
            "--platform",
            "woocommerce",
            "--url",
            WOO,
            "--currency",
            "EUR",
            "--json",
        ]
    )
    assert created.exit_code == 0, created.output
    shop = json.loads(created.output)
    shop_id, api_key, webhook_secret = shop["id"], shop["api_key"], shop["webhook_secret"]

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        FakeWoo(mock)
        connected = cli(
            ["shop", "connect", str(shop_id), "--url", WOO],
            {"WB_CONSUMER_KEY": CONSUMER_KEY, "WB_CONSUMER_SECRET": CONSUMER_SECRET},
        )
        assert connected.exit_code == 0, connected.output
        outputs.append(connected.output)
        # a bad REST key: connect refuses, and says so without echoing it
        refused = cli(
            ["shop", "connect", str(shop_id), "--url", "https://nowhere.example"],
            {"WB_CONSUMER_KEY": CONSUMER_KEY, "WB_CONSUMER_SECRET": CONSUMER_SECRET},
        )
        outputs.append(refused.output)

        headers = {"Authorization": f"Bearer {api_key}"}
        key_headers = {**headers, "Idempotency-Key": "fund"}
        fund = {"direction": "credit", "amount": 10_000, "reason": "fund"}
        assert client.post("/api/v1/customers/2/adjustments", headers=key_headers, json=fund).status_code == 201
        # deliveries: bad signatures, one signed with the secret's first half, then a good wallet order
        body = wp_json(order_body())
        for secret in ("wrong", webhook_secret[:10], webhook_secret + "x"):
            response = client.post(
                f"/webhooks/woocommerce/{shop_id}", data=body, headers=delivery_headers("order.created", body, secret)
            )
            assert response.status_code == 401
        sent = client.post(
            f"/webhooks/woocommerce/{shop_id}",
            data=body,
            headers=delivery_headers("order.created", body, webhook_secret),
        )
        assert sent.status_code == 200
        # the API with wrong keys, near-miss keys, and the webhook secret as a key
        for bad in ("wb_nope", api_key[:-1], webhook_secret, CONSUMER_SECRET):
            assert (
                client.get("/api/v1/customers/2/wallet", headers={"Authorization": f"Bearer {bad}"}).status_code == 401
            )
        # the shop's REST API fails: the order endpoint is not mocked (connection refused), then 401 with a body
        drain(services.sessions, pushers_for(services), FAST)
        mock.add(
            responses.GET,
            re.compile(rf"{WOO}/wp-json/wc/v3/orders/\d+"),
            status=401,
            json={"code": "woocommerce_rest_authentication_error", "message": "Invalid signature"},
        )
        with unit_of_work(services.sessions) as session:
            for message in session.scalars(select(OutboxMessage)):
                message.status, message.attempts = "pending", 0
        drain(services.sessions, pushers_for(services), FAST)

    # a Shopify shop: bad deliveries, a mirrored sign-up bonus that cannot reach Shopify
    shopify = make_shop(services, name="Leaky Shopify", platform="shopify", url=f"https://{DOMAIN}", currency="USD")
    with unit_of_work(services.sessions) as session:
        stored = session.get(Shop, shopify.shop.id)
        stored.webhook_secret_enc = services.secrets.seal(SHOPIFY_SECRET)
        stored.consumer_secret_enc = services.secrets.seal(SHOPIFY_TOKEN)
        stored.settings = {**stored.settings, "signup_bonus": 500}
    customer = json.dumps({"id": 7, "email": "jon@example.com", "first_name": "Jon", "last_name": "Snow"}).encode()
    for secret in ("wrong", SHOPIFY_SECRET[:8], SHOPIFY_TOKEN):
        response = client.post(
            f"/webhooks/shopify/{shopify.shop.id}",
            data=customer,
            headers=shopify_headers("customers/create", customer, secret),
        )
        assert response.status_code == 401
    bad_json = b"{" + SHOPIFY_SECRET.encode()
    assert (
        client.post(
            f"/webhooks/shopify/{shopify.shop.id}",
            data=bad_json,
            headers=shopify_headers("customers/create", bad_json, "nope"),
        ).status_code
        == 401
    )
    good = shopify_headers("customers/create", customer, SHOPIFY_SECRET)
    assert client.post(f"/webhooks/shopify/{shopify.shop.id}", data=customer, headers=good).status_code == 200
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        refusal = {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
        mock.add(responses.POST, re.compile(rf"https://{DOMAIN}/admin/api/.*/graphql.json"), status=401, json=refusal)
        drain(services.sessions, pushers_for(services), FAST)

    # the console, signed in as a member of both shops: every page, the settings with their masked secrets
    make_user(services, shop_id, shopify.shop.id)
    assert sign_in(client).status_code == 302
    for sid in (shop_id, shopify.shop.id):
        for page in (
            "/",
            "/settings",
            "/customers",
            "/customers/2",
            "/customers/7",
            "/reports",
            "/operations",
            "/audit",
            "/team",
            "/reports/wallet.csv",
        ):
            client.get(f"/shops/{sid}{page}")
    token = csrf_token(client, f"/shops/{shop_id}/settings")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(responses.GET, re.compile(rf"{WOO}/.*"), status=401, json={"message": "Consumer key is invalid."})
        client.post(f"/shops/{shop_id}/settings/connection/test", data={"csrf_token": token, "url": WOO})
    client.get("/account")
    client.get("/shops")

    with unit_of_work(services.sessions) as session:
        errors = [m.last_error or "" for m in session.scalars(select(OutboxMessage))]
        errors += [d.error or "" for d in session.scalars(select(InboxDelivery))]
        audit = [f"{a.old_value} {a.new_value}" for a in session.scalars(select(AuditEvent))]
    assert any(errors), "no failure was recorded: the scan of recorded errors would prove nothing"
    assert len(bodies) >= 35

    secrets = {
        "API key": api_key,
        "webhook secret": webhook_secret,
        "consumer key": CONSUMER_KEY,
        "consumer secret": CONSUMER_SECRET,
        "Shopify token": SHOPIFY_TOKEN,
        "Shopify secret": SHOPIFY_SECRET,
    }
    places = {
        "logs": caplog.text,
        "CLI output": "\n".join(outputs),
        "outbox/inbox errors": "\n".join(errors),
        "audit trail": "\n".join(audit),
    }
    places |= {f"response {n}": body for n, body in enumerate(bodies)}
    leaks = [
        f"{what} in {where}"
        for what, secret in secrets.items()
        for where, text in places.items()
        if secret in text or secret[-12:] in text
    ]
    assert not leaks, leaks
    # and the flow was real: the key does authenticate, the signature check does pass
    assert client.get("/api/v1/customers/2/wallet", headers={"Authorization": f"Bearer {api_key}"}).status_code == 200
    assert sign(body, webhook_secret) and auth  # imported helpers used


def test_a_database_error_names_no_value_it_was_given(services):
    """A database error is logged with its statement (the worker's recovery, a 500): never with the values bound
    to it, which hold customers' names and e-mails and the shops' encrypted keys."""
    shop = make_shop(services)
    customer = {"shop_id": shop.shop.id, "external_id": "c-1", "email": "private.person@example.net"}
    with unit_of_work(services.sessions) as session:
        session.execute(insert(Customer), customer)
    with pytest.raises(IntegrityError) as refused, unit_of_work(services.sessions) as session:
        session.execute(insert(Customer), customer)  # the same customer again: the unique key refuses it

    assert "INSERT INTO customers" in str(refused.value)
    assert "private.person@example.net" not in str(refused.value)
