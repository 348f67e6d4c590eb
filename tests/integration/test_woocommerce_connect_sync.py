"""Connecting a WooCommerce shop (keys checked, stored encrypted, webhooks registered idempotently) and
the periodic order pull, against a fake wc/v3 API served by `responses` (no network)."""

from __future__ import annotations

import base64
import copy
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from sqlalchemy import func, select, text
from tenacity import wait_none

from bridge.accounts import ensure_customer, find_wallet, points_account
from bridge.db import unit_of_work
from bridge.errors import TemporaryFailure, ValidationFailed
from bridge.ledger import Actor
from bridge.models import LedgerTransaction, OutboxMessage, Shop
from bridge.wallets import adjust_wallet
from sync.woocommerce import pull
from sync.woocommerce.client import NotConnected
from sync.woocommerce.connect import WEBHOOK_TOPICS, connect_shop
from sync.woocommerce.pull import sync_shop

WOO = "https://woo.example"
KEY = "ck_4f1d0c3e8a9b7d6c5e4f3a2b1c0d9e8f7a6b5c4d"
SECRET = "cs_9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d"
PUBLIC_URL = "https://bridge.example.test"  # the settings fixture's PUBLIC_URL
CAPTURED_ORDER = json.loads((Path(__file__).parents[1] / "fixtures/woocommerce/captured/0005.body").read_bytes())
NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


def order_json(order_id: int, **changes) -> dict:
    """The captured `order.created` body (= the REST order) with another id and the given changes."""
    data = copy.deepcopy(CAPTURED_ORDER)
    data.update(id=order_id, number=str(order_id), **changes)
    return data


class FakeWoo:
    """A wc/v3 API with webhooks and orders, answering like the real store (see WOOCOMMERCE_NOTES.md)."""

    def __init__(self, mock: responses.RequestsMock, url: str = WOO):
        self.mock = mock
        self.url, self.api = url, f"{url}/wp-json/wc/v3"
        self.webhooks: list[dict] = []
        self.order_pages: list[list[dict]] = [[]]
        self.order_failures: list = []  # served first, one per request: an exception raised or an HTTP status
        self.customers: list[dict] = []  # GET /customers lists them newest first, 2 per page
        self.accept_keys = True
        self.can_write = True
        self._next_id = 1
        mock.add_callback("GET", f"{self.api}/orders", callback=self._orders)
        mock.add_callback("GET", f"{self.api}/customers", callback=self._customers)
        mock.add_callback("GET", f"{self.api}/webhooks", callback=self._list_webhooks)
        mock.add_callback("POST", f"{self.api}/webhooks", callback=self._create_webhook)
        mock.add_callback("PUT", re.compile(rf"{re.escape(self.api)}/webhooks/\d+"), callback=self._update_webhook)

    def add_webhook(self, topic: str, delivery_url: str, status: str = "active") -> int:
        webhook = {
            "id": self._next_id,
            "name": f"Other {topic}",
            "status": status,
            "topic": topic,
            "delivery_url": delivery_url,
        }
        self._next_id += 1
        self.webhooks.append(webhook)
        return webhook["id"]

    # --- request handling ---

    def _authorised(self, request) -> bool:
        if not self.accept_keys:
            return False
        if self.url.startswith("https"):
            expected = "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
            return request.headers.get("Authorization") == expected
        return query(request).get("oauth_consumer_key") == KEY and "oauth_signature" in query(request)

    def _refused(self, code="woocommerce_rest_cannot_view", message="Sorry, you cannot list resources."):
        return 401, {}, json.dumps({"code": code, "message": message, "data": {"status": 401}})

    @staticmethod
    def _page(items: list, page: int, pages: int, total: int):
        headers = {"X-WP-Total": str(total), "X-WP-TotalPages": str(pages)}
        return 200, headers, json.dumps(items)

    def _orders(self, request):
        if not self._authorised(request):
            return self._refused()
        if self.order_failures:
            failure = self.order_failures.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return failure, {}, "<html><body><h1>Service Unavailable</h1></body></html>"
        page = int(query(request).get("page", "1"))
        per_page = int(query(request).get("per_page", "10"))
        pages = self.order_pages
        items = pages[page - 1] if page <= len(pages) else []
        return self._page(items[:per_page], page, len(pages), sum(map(len, pages)))

    def _customers(self, request):
        asked = query(request)
        if not self._authorised(request) or (asked["orderby"], asked["order"]) != ("registered_date", "desc"):
            return self._refused()
        newest = sorted(self.customers, key=lambda c: c["date_created_gmt"], reverse=True)
        page, pages = int(asked.get("page", "1")), max(1, -(-len(newest) // 2))
        return self._page(newest[(page - 1) * 2 : page * 2], page, pages, len(newest))

    def _list_webhooks(self, request):
        if not self._authorised(request):
            return self._refused()
        page, per_page = int(query(request).get("page", "1")), int(query(request).get("per_page", "10"))
        pages = max(1, -(-len(self.webhooks) // per_page))
        return self._page(self.webhooks[(page - 1) * per_page : page * per_page], page, pages, len(self.webhooks))

    def _create_webhook(self, request):
        if not self._authorised(request) or not self.can_write:
            return self._refused("woocommerce_rest_cannot_create", "Sorry, you are not allowed to create resources.")
        body = json.loads(request.body)
        webhook = {"id": self._next_id, **{k: v for k, v in body.items() if k != "secret"}}
        self._next_id += 1
        self.webhooks.append(webhook)
        return 201, {}, json.dumps(webhook)

    def _update_webhook(self, request):
        if not self._authorised(request) or not self.can_write:
            return self._refused("woocommerce_rest_cannot_edit", "Sorry, you are not allowed to edit this resource.")
        webhook_id = int(urlsplit(request.url).path.rsplit("/", 1)[1])
        webhook = next(w for w in self.webhooks if w["id"] == webhook_id)
        webhook.update({k: v for k, v in json.loads(request.body).items() if k != "secret"})
        return 200, {}, json.dumps(webhook)

    def calls(self, method: str, path: str) -> list:
        """The requests made with this method to a path ending in `path`."""
        return [
            c for c in self.mock.calls if c.request.method == method and urlsplit(c.request.url).path.endswith(path)
        ]


def query(request) -> dict[str, str]:
    # over http the woocommerce client puts every parameter in the URL twice (its own and requests'): first wins
    return {key: values[0] for key, values in parse_qs(urlsplit(request.url).query).items()}


@pytest.fixture
def woo():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield FakeWoo(mock)


def connect(services, shop_id, url=WOO, key=KEY, secret=SECRET):
    return connect_shop(services.sessions, services.secrets, shop_id, url, key, secret, PUBLIC_URL, 5.0)


def load_shop(services, shop_id) -> Shop:
    with unit_of_work(services.sessions) as session:
        return session.get(Shop, shop_id)


def delivery_url(shop_id: int) -> str:
    return f"{PUBLIC_URL}/webhooks/woocommerce/{shop_id}"


# --- connect ------------------------------------------------------------------------------------------


def test_connect_stores_encrypted_keys_and_registers_its_webhooks(services, shop, woo):
    result = connect(services, shop.shop.id)

    stored = load_shop(services, shop.shop.id)
    assert stored.url == WOO
    assert services.secrets.open(stored.consumer_key_enc) == KEY
    assert services.secrets.open(stored.consumer_secret_enc) == SECRET
    with unit_of_work(services.sessions) as session:
        raw = session.execute(
            text("SELECT consumer_key_enc, consumer_secret_enc FROM shops WHERE id = :id"), {"id": shop.shop.id}
        ).one()
    for column in raw:
        assert KEY.encode() not in bytes(column) and SECRET.encode() not in bytes(column)

    assert woo.calls("GET", "/orders")[0].request.url == f"{woo.api}/orders?per_page=1"
    bodies = [json.loads(c.request.body) for c in woo.calls("POST", "/webhooks")]
    assert [b["topic"] for b in bodies] == list(WEBHOOK_TOPICS)
    for body in bodies:
        assert body == {
            "name": f"Wallet Bridge {body['topic']}",
            "topic": body["topic"],
            "delivery_url": delivery_url(shop.shop.id),
            "secret": shop.webhook_secret,
            "status": "active",
        }
    assert result.webhooks.created == [1, 2, 3, 4, 5, 6] and result.webhooks.unchanged == []
    assert result.warnings == []
    assert SECRET not in repr(result) and shop.webhook_secret not in repr(result)


def test_connecting_again_creates_no_webhooks(services, shop, woo):
    first = connect(services, shop.shop.id)
    second = connect(services, shop.shop.id)
    assert len(woo.calls("POST", "/webhooks")) == len(WEBHOOK_TOPICS)
    assert second.webhooks.created == [] and second.webhooks.reactivated == []
    assert sorted(second.webhooks.unchanged) == sorted(first.webhooks.created)


def test_paused_or_disabled_webhooks_are_reactivated_with_our_secret(services, shop, woo):
    for n in range(150):  # another plugin's webhooks: the listing takes two pages of 100
        woo.add_webhook("product.updated", f"https://elsewhere.example/hook/{n}")
    foreign = woo.add_webhook("order.updated", "https://elsewhere.example/orders", status="disabled")
    disabled = woo.add_webhook("order.updated", delivery_url(shop.shop.id), status="disabled")
    paused = woo.add_webhook("customer.created", delivery_url(shop.shop.id) + "/", status="paused")

    result = connect(services, shop.shop.id)

    pages = [query(c.request)["page"] for c in woo.calls("GET", "/webhooks")]
    assert pages == ["1", "2"]
    assert sorted(result.webhooks.reactivated) == sorted([disabled, paused])
    puts = {urlsplit(c.request.url).path.rsplit("/", 1)[1]: json.loads(c.request.body) for c in woo.calls("PUT", "")}
    assert puts == {str(i): {"status": "active", "secret": shop.webhook_secret} for i in (disabled, paused)}
    assert [json.loads(c.request.body)["topic"] for c in woo.calls("POST", "/webhooks")] == [
        "customer.updated",
        "order.created",
        "order.deleted",
        "order.restored",
    ]
    assert next(w for w in woo.webhooks if w["id"] == foreign)["status"] == "disabled"


def test_refused_keys_are_a_clear_error_and_nothing_is_stored(services, shop, woo):
    woo.accept_keys = False
    with pytest.raises(ValidationFailed) as refused:
        connect(services, shop.shop.id)
    assert refused.value.fields == {"consumer_key": "rejected by the shop"}
    assert "HTTP 401" in refused.value.message
    stored = load_shop(services, shop.shop.id)
    assert (stored.url, stored.consumer_key_enc, stored.consumer_secret_enc) == ("https://alpha.example", None, None)
    assert woo.calls("GET", "/webhooks") == [] and woo.calls("POST", "/webhooks") == []


def test_read_only_keys_are_refused_before_anything_is_stored(services, shop, woo):
    woo.can_write = False
    with pytest.raises(ValidationFailed) as refused:
        connect(services, shop.shop.id)
    assert refused.value.fields == {"consumer_key": "needs Read/Write permission"}
    assert load_shop(services, shop.shop.id).consumer_key_enc is None


def test_an_unreachable_shop_is_named_and_nothing_is_stored(services, shop):
    with responses.RequestsMock() as mock:
        mock.add("GET", "https://down.example/wp-json/wc/v3/orders", body=requests.ConnectionError("refused"))
        with pytest.raises(ValidationFailed) as unreachable:
            connect(services, shop.shop.id, url="https://down.example/")
    assert "https://down.example" in unreachable.value.message
    assert unreachable.value.fields == {"url": "unreachable"}
    assert load_shop(services, shop.shop.id).consumer_key_enc is None


def test_connect_over_http_signs_with_oauth_query_parameters(services, shop):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        woo = FakeWoo(mock, url="http://woo.example")
        for n in range(120):
            woo.add_webhook("product.updated", f"https://elsewhere.example/hook/{n}")
        connect(services, shop.shop.id, url="http://woo.example")
        connect(services, shop.shop.id, url="http://woo.example")
        assert len(woo.calls("POST", "/webhooks")) == len(WEBHOOK_TOPICS)
        assert [query(c.request)["page"] for c in woo.calls("GET", "/webhooks")] == ["1", "2", "1", "2"]
        for call in woo.mock.calls:
            assert "oauth_signature" in query(call.request) and "Authorization" not in call.request.headers
            assert SECRET not in call.request.url
    assert load_shop(services, shop.shop.id).url == "http://woo.example"


# --- sync ---------------------------------------------------------------------------------------------


def configure(services, shop_id, **settings):
    with unit_of_work(services.sessions) as session:
        stored = session.get(Shop, shop_id)
        stored.settings = {**stored.settings, **settings}


def fund(services, shop_id, customer, amount):
    with unit_of_work(services.sessions) as session:
        adjust_wallet(
            session,
            session.get(Shop, shop_id),
            customer,
            direction="credit",
            amount=amount,
            reason="fund",
            idempotency_key=f"fund-{customer}",
            actor=Actor("merchant", "test"),
        )


def balances(services, shop_id, customer) -> tuple[int, int]:
    """(wallet balance, points balance) of a shop customer."""
    with unit_of_work(services.sessions) as session:
        found = ensure_customer(session, shop_id, customer)
        wallet = find_wallet(session, found, "EUR")
        return (wallet.balance if wallet else 0), points_account(session, found).balance


@pytest.fixture
def connected(services, shop, woo):
    """A connected shop that earns 1 point per euro; customer 3 has €100 in the wallet; never synced."""
    connect(services, shop.shop.id)
    with unit_of_work(services.sessions) as session:
        session.get(Shop, shop.shop.id).last_synced_at = None  # as if connected before sync points existed
    configure(services, shop.shop.id, points_per_currency_unit=1)
    fund(services, shop.shop.id, "3", 10_000)
    woo.mock.calls.reset()
    woo.order_pages = [
        [order_json(20, status="processing", payment_method="stripe", payment_method_title="Card")],
        [order_json(21, customer_id=3, billing={**CAPTURED_ORDER["billing"], "email": "bob@example.test"})],
    ]
    return shop.shop.id


def sync(services, shop_id, now=NOW, **kwargs):
    return sync_shop(
        services.sessions, services.secrets, shop_id, timeout=5.0, public_url=PUBLIC_URL, now=lambda: now, **kwargs
    )


def test_sync_pulls_every_page_and_applies_each_order(services, connected, woo):
    progress = []
    result = sync(services, connected, progress=lambda done, total: progress.append((done, total)))

    requested = [query(c.request) for c in woo.calls("GET", "/orders")]
    assert [(q["page"], q["per_page"], q["orderby"], q["order"]) for q in requested] == [
        ("1", "100", "id", "asc"),
        ("2", "100", "id", "asc"),
    ]
    assert "modified_after" not in requested[0]  # the first sync reads everything
    assert (result.orders_seen, result.applied, result.skipped) == (2, 2, [])
    assert progress == [(1, 2), (2, 2)]
    assert balances(services, connected, "2") == (0, 39)  # card order: its €39.98 of items earn 39 points
    assert balances(services, connected, "3")[0] == 10_000 - 4148  # wallet order: debited
    with unit_of_work(services.sessions) as session:
        [message] = session.execute(select(OutboxMessage)).scalars()
        assert (message.kind, message.payload["order_id"]) == ("order.mark_paid", "21")
    assert load_shop(services, connected).last_synced_at == NOW - timedelta(minutes=5)
    assert result.last_synced_at == NOW - timedelta(minutes=5)


def test_sync_reads_a_page_again_when_the_busy_shop_times_out_or_fails(services, connected, woo, monkeypatch):
    monkeypatch.setattr(pull._read_page.retry, "wait", wait_none())
    woo.order_failures = [requests.ReadTimeout("read timed out"), 503, 429]

    result = sync(services, connected)

    assert woo.order_failures == [] and (result.orders_seen, result.applied) == (2, 2)
    assert load_shop(services, connected).last_synced_at == NOW - timedelta(minutes=5)


def test_sync_gives_up_on_a_shop_that_keeps_failing_and_keeps_its_window(services, connected, woo, monkeypatch):
    monkeypatch.setattr(pull._read_page.retry, "wait", wait_none())
    woo.order_failures = [503] * 5

    with pytest.raises(TemporaryFailure, match="HTTP 503"):
        sync(services, connected)

    assert woo.order_failures == [503]  # read four times, then the sync stops
    assert load_shop(services, connected).last_synced_at is None


def test_syncing_twice_moves_money_once(services, connected, woo):
    sync(services, connected)
    with unit_of_work(services.sessions) as session:
        transactions = session.scalar(select(LedgerTransaction.id).order_by(LedgerTransaction.id.desc()).limit(1))
    woo.mock.calls.reset()

    later = NOW + timedelta(minutes=15)
    second = sync(services, connected, now=later)

    first_request = query(woo.calls("GET", "/orders")[0].request)
    assert first_request["modified_after"] == "2026-11-23T11:55:00" and first_request["dates_are_gmt"] == "true"
    assert (second.orders_seen, second.applied) == (2, 2)
    assert balances(services, connected, "3")[0] == 10_000 - 4148
    assert balances(services, connected, "2")[1] == 39
    with unit_of_work(services.sessions) as session:
        assert session.scalar(select(LedgerTransaction.id).order_by(LedgerTransaction.id.desc()).limit(1)) == (
            transactions
        )
        assert len(session.execute(select(OutboxMessage)).scalars().all()) == 1
    assert load_shop(services, connected).last_synced_at == later - timedelta(minutes=5)


def registered(customer_id: int, when: str) -> dict:
    return {
        "id": customer_id,
        "email": f"c{customer_id}@example.test",
        "first_name": "C",
        "last_name": "D",
        "date_created_gmt": when,
        "billing": {},
        "shipping": {},
        "meta_data": [],
    }


def test_sync_gives_the_signup_bonus_a_lost_delivery_did_not_and_reads_no_older_page(services, connected, woo):
    """`customer.created` is delivered once or never: sync reads the customers registered since the last sync."""
    configure(services, connected, signup_bonus=500)
    sync(services, connected)  # the window now starts at NOW - 5 min
    later = NOW + timedelta(hours=1)
    woo.customers = [
        registered(7, "2026-11-23T12:57:00"),
        registered(6, "2026-11-23T11:56:00"),
        registered(5, "2026-11-23T11:50:00"),
        registered(4, "2026-11-20T09:00:00"),
        registered(3, "2026-11-01T09:00:00"),
    ]
    woo.mock.calls.reset()

    result = sync(services, connected, now=later)
    again = sync(services, connected, now=later)

    assert result.signups_seen == 2 and result.skipped_customers == []
    assert [balances(services, connected, c)[0] for c in ("7", "6", "5")] == [500, 500, 0]
    assert balances(services, connected, "3")[0] == 10_000 - 4148  # registered long before: no bonus
    assert again.signups_seen == 1  # 7 again (within the overlap): its bonus is keyed, given once
    pages = [query(c.request)["page"] for c in woo.calls("GET", "/customers")]
    assert pages == ["1", "2", "1"]  # page 2 reaches customer 5, registered before the window: no page 3


def test_the_first_sync_opens_the_wallets_of_customers_registered_since_the_shop_joined(services, connected, woo):
    """A `customer.created` lost before the first sync still opens the wallet with its bonus, once; customers
    the shop had before it joined the bridge get none."""
    configure(services, connected, signup_bonus=500)
    with unit_of_work(services.sessions) as session:
        session.get(Shop, connected).created_at = NOW - timedelta(hours=2)
    woo.customers = [
        registered(9, "2026-11-23T11:30:00"),
        registered(8, "2026-11-23T09:59:00"),
        registered(7, "2026-11-01T09:00:00"),
    ]

    result = sync(services, connected)
    sync(services, connected, now=NOW + timedelta(minutes=1))  # 9 again, within the overlap

    assert result.signups_seen == 1 and balances(services, connected, "9") == (500, 0)
    assert balances(services, connected, "8") == (0, 0)
    with unit_of_work(services.sessions) as session:
        assert session.scalar(select(func.count()).where(LedgerTransaction.kind == "signup_bonus")) == 1
    pages = [query(c.request)["page"] for c in woo.calls("GET", "/customers")]
    assert pages == ["1", "1"]  # page 1 reaches customer 8, registered before the shop joined: no page 2


def test_a_malformed_order_is_skipped_and_counted(services, connected, woo):
    woo.order_pages[0].append(order_json(22, total=41.48))  # a number: amounts must be strings

    result = sync(services, connected)

    assert (result.orders_seen, result.applied) == (3, 2)
    [skipped] = result.skipped
    assert skipped.id == 22 and "total" in skipped.error
    assert result.as_dict()["skipped_orders"] == [{"id": 22, "error": skipped.error}]
    assert load_shop(services, connected).last_synced_at == NOW - timedelta(minutes=5)


def test_sync_reactivates_webhooks_the_shop_disabled(services, connected, woo):
    for webhook in woo.webhooks:
        if webhook["topic"] == "order.updated":
            webhook["status"] = "disabled"  # 7 failed deliveries in a row

    result = sync(services, connected)

    assert result.webhooks_reactivated == 1 and result.webhooks.created == []
    assert {w["status"] for w in woo.webhooks} == {"active"}


def test_sync_needs_a_connected_shop(services, shop):
    with pytest.raises(NotConnected):
        sync(services, shop.shop.id)


# --- CLI ----------------------------------------------------------------------------------------------


def test_cli_shop_connect_takes_keys_from_the_environment(app, services, shop, woo):
    with app.app_context():  # the `wallet-bridge` FlaskGroup pushes one; app.cli alone does not
        result = app.test_cli_runner().invoke(
            args=["shop", "connect", str(shop.shop.id), "--url", WOO, "--json"],
            env={"WB_CONSUMER_KEY": KEY, "WB_CONSUMER_SECRET": SECRET},
        )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["webhooks"]["created"] == [1, 2, 3, 4, 5, 6] and data["delivery_url"] == delivery_url(shop.shop.id)
    assert KEY not in result.output and SECRET not in result.output and shop.webhook_secret not in result.output
    assert services.secrets.open(load_shop(services, shop.shop.id).consumer_secret_enc) == SECRET


def test_cli_sync_shows_progress_and_counts(app, services, connected, woo):
    with app.app_context():
        result = app.test_cli_runner().invoke(args=["sync", str(connected)])
        as_json = app.test_cli_runner().invoke(args=["sync", str(connected), "--json"])
    assert result.exit_code == 0, result.output
    assert f"shop {connected}: orders" in result.output
    assert "orders_seen: 2" in result.output and "applied: 2" in result.output and "skipped: 0" in result.output
    assert as_json.exit_code == 0 and json.loads(as_json.output)["applied"] == 2


def test_connect_starts_the_sync_window_now(services, shop, woo):
    connect(services, shop.shop.id)
    with unit_of_work(services.sessions) as session:
        assert session.get(Shop, shop.shop.id).last_synced_at is not None


def test_cli_shop_list_shows_which_shops_are_connected_and_no_secret(app, services, connected, other_shop):
    with app.app_context():
        listed = json.loads(app.test_cli_runner().invoke(args=["shop", "list", "--json"]).output)
        lines = app.test_cli_runner().invoke(args=["shop", "list"]).output.splitlines()

    expected = [(connected, "woocommerce", True), (other_shop.shop.id, "woocommerce", False)]
    assert [(s["id"], s["platform"], s["connected"]) for s in listed] == expected
    assert [line.split()[:4] for line in lines[1:]] == [
        [str(connected), "woocommerce", "EUR", "yes"],
        [str(other_shop.shop.id), "woocommerce", "EUR", "no"],
    ]
    assert SECRET not in json.dumps(listed) and KEY not in json.dumps(listed)
