"""The WooCommerce simulator against the official `woocommerce` client (OAuth 1.0a over http on 127.0.0.1),
with webhook deliveries posted into a small Flask receiver through its test client. No network."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import woocommerce
from flask import Flask, request

from simulator import ManualClock, create_simulator

# No database here: the SQLite pass of `make test` runs these, the PostgreSQL pass need not run them again.
pytestmark = pytest.mark.database_free

CAPTURED = Path(__file__).parents[1] / "fixtures" / "woocommerce" / "captured"
SECRET = "realwoo-webhook-secret"
HOOK_URL = "http://bridge.test/hooks"


class Receiver:
    """Stands in for the bridge: records every POST (raw body and headers) and answers `status`."""

    def __init__(self):
        self.status = 200
        self.received: list[tuple[bytes, dict]] = []
        app = Flask("receiver")

        @app.post("/hooks")
        def hook():
            self.received.append((request.get_data(), dict(request.headers)))
            return "", self.status

        self.client = app.test_client()

    def transport(self, url: str, body: bytes, headers: dict) -> int:
        return self.client.post(urlsplit(url).path, data=body, headers=headers).status_code

    def topics(self) -> list[str | None]:
        return [headers.get("X-Wc-Webhook-Topic") for _, headers in self.received]


@pytest.fixture
def receiver():
    return Receiver()


@pytest.fixture
def sim(receiver):
    simulator = create_simulator(consumer_key="ck_test", consumer_secret="cs_test", transport=receiver.transport)
    simulator.serve()
    yield simulator
    simulator.shutdown()


@pytest.fixture
def api(sim):
    return woocommerce.API(url=sim.base_url, consumer_key="ck_test", consumer_secret="cs_test", version="wc/v3")


def admin(sim):
    """The REST API through Flask's test client, with basic auth (which the simulator accepts over http)."""
    client = sim.app.test_client()
    keys = f"{sim.credentials.consumer_key}:{sim.credentials.consumer_secret}".encode()
    client.environ_base["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(keys).decode()
    return client


def subscribe(sim, *topics: str) -> None:
    for topic in topics:
        sim.create_webhook(topic, HOOK_URL, secret=SECRET)


def new_order(api, total: str = "19.99", **fields) -> dict:
    body = {"payment_method": "wallet", "line_items": [{"name": "Item", "quantity": 1, "total": total}], **fields}
    response = api.post("orders", body)
    assert response.status_code == 201, response.text
    return response.json()


# --- REST basics -------------------------------------------------------------------------------------------------


def test_lists_orders_with_pagination_headers(sim, api):
    for _ in range(3):
        sim.place_order(total="10.00")

    first = api.get("orders", params={"per_page": 2})
    second = api.get("orders", params={"per_page": 2, "page": 2})

    assert first.status_code == 200
    assert (first.headers["X-WP-Total"], first.headers["X-WP-TotalPages"]) == ("3", "2")
    assert len(first.json()) == 2 and len(second.json()) == 1
    assert {o["id"] for o in first.json()} | {o["id"] for o in second.json()} == set(range(100, 103))
    # Like WordPress, the next-page link repeats this request's oauth_* parameters: build pages from page=.
    assert "page=2" in first.headers["Link"] and "oauth_signature=" in first.headers["Link"]


def test_per_page_above_100_is_refused(api):
    response = api.get("orders", params={"per_page": 101})

    assert response.status_code == 400
    assert response.json()["code"] == "rest_invalid_param"


def test_modified_after_filters_on_modification_time(receiver):
    clock = ManualClock()
    sim = create_simulator(clock=clock, transport=receiver.transport)
    old = sim.place_order(total="5.00")
    clock.advance(10)
    sim.set_status(old["id"], "on-hold")
    clock.advance(10)
    sim.place_order(total="6.00")
    response = admin(sim).get("/wp-json/wc/v3/orders?modified_after=2026-11-23T11:47:40")

    assert [o["total"] for o in response.get_json()] == ["6.00"]


@pytest.mark.parametrize("key, secret", [("ck_test", "wrong"), ("ck_wrong", "cs_test")])
def test_wrong_credentials_get_401(sim, key, secret):
    client = woocommerce.API(url=sim.base_url, consumer_key=key, consumer_secret=secret, version="wc/v3")

    response = client.get("orders", params={"per_page": 1})

    assert response.status_code == 401
    assert response.json()["code"] == "woocommerce_rest_cannot_view"
    assert response.json()["data"] == {"status": 401}


def test_keys_in_the_query_string_are_refused_over_http(sim):
    keys = {"consumer_key": "ck_test", "consumer_secret": "cs_test"}

    response = requests.get(f"{sim.base_url}/wp-json/wc/v3/orders", params=keys, timeout=5)

    assert response.status_code == 401


def test_unknown_order_is_404(api):
    response = api.get("orders/999")

    assert response.status_code == 404
    assert response.json() == {
        "code": "woocommerce_rest_shop_order_invalid_id",
        "message": "Invalid ID.",
        "data": {"status": 404},
    }


# --- fees and totals ---------------------------------------------------------------------------------------------


def test_put_with_fee_lines_twice_adds_the_fee_twice(api):
    order = new_order(api, "19.99")
    fee = {"fee_lines": [{"name": "Paid from wallet", "total": "-5.00", "tax_status": "none"}]}

    api.put(f"orders/{order['id']}", fee)
    stored = api.put(f"orders/{order['id']}", fee).json()

    assert [f["total"] for f in stored["fee_lines"]] == ["-5.00", "-5.00"]
    assert stored["total"] == "9.99"


def test_negative_fee_beyond_what_is_left_is_cut_to_a_zero_total(api):
    order = new_order(api, "19.99")

    stored = api.put(f"orders/{order['id']}", {"fee_lines": [{"name": "Wallet", "total": "-25.00"}]}).json()

    assert stored["total"] == "0.00"
    assert stored["fee_lines"][0]["total"] == "-19.99"  # not what was sent: read back and trust the store


def test_negative_fee_takes_tax_off_even_with_tax_status_none(receiver):
    sim = create_simulator(tax_rate_bp=1900, transport=receiver.transport)
    order = sim.place_order(total="19.99")
    assert order["total"] == "23.79"

    fee = {"name": "Paid from wallet", "total": "-5.00", "tax_status": "none"}

    stored = admin(sim).put(f"/wp-json/wc/v3/orders/{order['id']}", json={"fee_lines": [fee]}).get_json()

    assert stored["fee_lines"][0]["total_tax"] == "-0.95"
    assert stored["total"] == "17.84"  # 23.79 - 5.95


def test_meta_data_is_merged_by_key(api):
    order = new_order(api, meta_data=[{"key": "marker", "value": "a"}])

    stored = api.put(
        f"orders/{order['id']}", {"meta_data": [{"key": "marker", "value": "b"}, {"key": "x", "value": 1}]}
    )

    assert [(m["key"], m["value"]) for m in stored.json()["meta_data"]] == [("marker", "b"), ("x", 1)]


def test_set_paid_moves_a_pending_order_to_processing_but_not_an_on_hold_one(api):
    pending, on_hold = new_order(api), new_order(api, status="on-hold")

    paid = api.put(f"orders/{pending['id']}", {"set_paid": True, "transaction_id": "t-1"}).json()
    untouched = api.put(f"orders/{on_hold['id']}", {"set_paid": True}).json()

    assert (paid["status"], paid["transaction_id"], paid["date_paid"] is not None) == ("processing", "t-1", True)
    assert (untouched["status"], untouched["date_paid"]) == ("on-hold", None)


def test_an_order_without_line_items_is_completed_when_paid(api):
    """As on the real store: a top-up order (one fee line, nothing to ship) goes straight to completed."""
    order = api.post("orders", {"payment_method": "bacs", "fee_lines": [{"name": "Wallet top-up", "total": "20.00"}]})

    paid = api.put(f"orders/{order.json()['id']}", {"set_paid": True}).json()

    assert (paid["status"], paid["date_paid"] is not None) == ("completed", True)


def test_api_refund_on_an_offline_gateway_fails_like_the_real_store(api):
    """The store's "Wallet" is its cheque gateway: installed, but it cannot refund by itself."""
    order = new_order(api, payment_method="cheque", set_paid=True)

    response = api.post(f"orders/{order['id']}/refunds", {"amount": "5.00", "api_refund": True})

    assert (response.status_code, response.json()) == (
        500,
        {
            "code": "woocommerce_rest_cannot_create_order_refund",
            "message": "The payment gateway for this order does not support automatic refunds.",
            "data": 500,
        },
    )


def test_money_sent_as_a_number_is_refused_like_wordpress_does(api):
    order = new_order(api)

    response = api.put(f"orders/{order['id']}", {"fee_lines": [{"name": "W", "total": -5.0}]})

    assert response.status_code == 400
    assert response.json()["code"] == "rest_invalid_param"


# --- refunds -----------------------------------------------------------------------------------------------------


def test_api_refund_on_a_wallet_order_fails_with_the_real_message(sim, api):
    order = new_order(api, "19.99")

    response = api.post(f"orders/{order['id']}/refunds", {"amount": "5.00", "api_refund": True})

    assert response.status_code == 500
    assert response.json() == {
        "code": "woocommerce_rest_cannot_create_order_refund",
        "message": "The payment gateway for this order does not exist.",
        "data": 500,
    }
    assert api.get(f"orders/{order['id']}").json()["refunds"] == []
    # WooCommerce saved the refund before asking the gateway: its id stays used.
    assert new_order(api)["id"] == order["id"] + 2


def test_refund_above_what_is_left_is_invalid(sim, api):
    order = new_order(api, "19.99")
    sim.refund(order["id"], "15.00")

    response = api.post(f"orders/{order['id']}/refunds", {"amount": "5.00", "api_refund": False})

    assert response.status_code == 500
    assert response.json()["message"] == "Invalid refund amount."


def test_refund_shows_on_the_order_with_a_negative_total(api):
    order = new_order(api, "19.99")

    refund = api.post(f"orders/{order['id']}/refunds", {"amount": "5.00", "reason": "r1", "api_refund": False})
    after_full = api.post(f"orders/{order['id']}/refunds", {"amount": "14.99", "api_refund": False})
    stored = api.get(f"orders/{order['id']}").json()

    assert refund.status_code == 201 and refund.json()["amount"] == "5.00"
    assert refund.json()["id"] == order["id"] + 1  # the same id sequence as orders
    assert stored["refunds"] == [
        {"id": refund.json()["id"], "reason": "r1", "total": "-5.00"},
        {"id": after_full.json()["id"], "reason": "", "total": "-14.99"},
    ]
    assert stored["status"] == "refunded"


def test_refund_keeps_its_meta_data_like_an_order(api):
    order = new_order(api, "19.99", meta_data=[{"key": "_note", "value": "x"}])
    url = f"orders/{order['id']}/refunds"
    marker = {"key": "_wallet_bridge_withdrawal", "value": "w-7"}

    created = api.post(url, {"amount": "5.00", "api_refund": False, "meta_data": [marker]}).json()

    [meta] = created["meta_data"]
    assert {"key": meta["key"], "value": meta["value"]} == marker
    assert isinstance(meta["id"], int) and meta["id"] > order["meta_data"][0]["id"]  # the orders' meta sequence
    assert api.get(url).json()[0]["meta_data"] == [meta]
    assert api.get(f"{url}/{created['id']}").json()["meta_data"] == [meta]


# --- webhooks ----------------------------------------------------------------------------------------------------


def test_creating_a_webhook_sends_the_unsigned_ping(sim, api, receiver):
    response = api.post("webhooks", {"name": "h", "topic": "order.updated", "delivery_url": HOOK_URL, "secret": SECRET})

    body, headers = receiver.received[0]
    assert response.status_code == 201
    assert body == f"webhook_id={response.json()['id']}".encode()
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert not [name for name in headers if name.lower().startswith("x-wc-")]
    assert sim.webhook(response.json()["id"]).pending_delivery is False


def test_a_ping_not_answered_200_is_repeated_after_each_delivery(sim, receiver):
    receiver.status = 204
    subscribe(sim, "order.updated")
    order = sim.place_order()
    receiver.status = 200
    sim.set_status(order["id"], "on-hold")
    sim.set_status(order["id"], "processing")

    assert [(d.kind, d.status) for d in sim.deliveries] == [
        ("ping", 204),
        ("delivery", 204),
        ("ping", 204),  # a 204 delivers, but does not clear the ping
        ("delivery", 200),
        ("ping", 200),  # the 200 ping clears it
        ("delivery", 200),
    ]


def test_deliveries_are_signed_over_the_raw_body(sim, receiver):
    subscribe(sim, "customer.created")
    sim.create_customer("alice@example.test", "Alice", "Tester")

    body, headers = receiver.received[-1]
    expected = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    assert headers["X-Wc-Webhook-Signature"] == expected
    assert headers["X-Wc-Webhook-Topic"] == "customer.created"
    assert (headers["X-Wc-Webhook-Resource"], headers["X-Wc-Webhook-Event"]) == ("customer", "created")
    assert headers["X-Wc-Webhook-Id"] == "1"
    assert headers["X-Wc-Webhook-Source"] == sim.url + "/"
    assert headers["User-Agent"] == "WooCommerce/10.0.2 Hookshot (WordPress/6.8.8)"


def test_delivery_ids_repeat_within_one_second(receiver):
    clock = ManualClock()
    sim = create_simulator(clock=clock, transport=receiver.transport)
    subscribe(sim, "order.updated")
    order = sim.place_order()
    sim.set_status(order["id"], "on-hold")
    clock.advance(1)
    sim.set_status(order["id"], "processing")

    ids = [d.headers["X-WC-Webhook-Delivery-ID"] for d in sim.deliveries_for("order.updated")]
    assert ids[0] == ids[1] != ids[2]  # hash(webhook id + unix second): no idempotency key
    expected = hashlib.md5(f"1{int(clock.now.timestamp())}".encode(), usedforsecurity=False).hexdigest()
    assert ids[2] == expected


def test_bodies_escape_slashes_and_non_ascii_like_wp_json_encode(sim, receiver):
    subscribe(sim, "customer.created")
    sim.create_customer("zoe@example.test", "Zoë", "A/B")

    body = receiver.received[-1][0]
    assert b'"first_name":"Zo\\u00eb"' in body and b'"last_name":"A\\/B"' in body
    assert body.isascii()
    assert json.dumps(json.loads(body)).encode() != body  # re-serialising never gives the signed bytes


def test_order_created_through_rest_delivers_created_and_updated_with_identical_bodies(sim, api, receiver):
    subscribe(sim, "order.created", "order.updated")
    receiver.received.clear()

    new_order(api)

    assert receiver.topics() == ["order.created", "order.updated"]
    assert receiver.received[0][0] == receiver.received[1][0]


def test_notes_deliver_nothing_and_refunds_deliver_order_updated(sim, api, receiver):
    subscribe(sim, "order.updated")
    order = new_order(api)
    receiver.received.clear()

    api.post(f"orders/{order['id']}/notes", {"note": "hello", "customer_note": True})
    assert receiver.received == []
    sim.refund(order["id"], "1.00", "r")
    assert receiver.topics() == ["order.updated"]
    assert json.loads(receiver.received[0][0])["refunds"][0]["total"] == "-1.00"


def test_a_receiver_can_call_the_shop_back_during_its_delivery(sim, api):
    # The bridge reads the order back while handling order.updated: deliveries must not hold the shop's lock.
    read_back = []

    def transport(url, body, headers):
        if headers["Content-Type"] == "application/json":  # not the ping
            read_back.append(api.get(f"orders/{json.loads(body)['id']}"))
        return 200

    sim.transport = transport
    sim.create_webhook("order.updated", HOOK_URL, secret=SECRET)

    order = new_order(api)

    assert [r.status_code for r in read_back] == [200]
    assert read_back[0].json()["id"] == order["id"]


def test_the_seventh_failure_in_a_row_disables_the_webhook_and_later_events_are_lost(sim, receiver):
    subscribe(sim, "order.updated")
    order = sim.place_order()
    receiver.status = 500
    hook = sim.webhook(1)
    for status in ("on-hold", "pending") * 3 + ("on-hold",):
        sim.set_status(order["id"], status)

    assert (hook.status, hook.failure_count) == ("disabled", 6)
    assert len(sim.deliveries_for("order.updated")) == 8
    receiver.status = 200
    sim.set_status(order["id"], "processing")
    sim.set_webhook_status(1, "active")
    assert len(sim.deliveries_for("order.updated")) == 8  # nothing replayed, ever


def test_held_deliveries_can_be_reordered_and_coalesced(sim, receiver):
    subscribe(sim, "order.updated")
    order = sim.place_order()
    receiver.received.clear()

    sim.hold_deliveries()
    sim.set_status(order["id"], "on-hold")
    sim.set_status(order["id"], "processing")
    sim.pending_deliveries.reverse()
    sim.flush()
    assert [json.loads(body)["status"] for body, _ in receiver.received] == ["processing", "on-hold"]

    receiver.received.clear()
    sim.hold_deliveries(coalesce=True)
    sim.set_status(order["id"], "completed")
    sim.refund(order["id"], "1.00")
    sim.release_deliveries()
    assert [json.loads(body)["status"] for body, _ in receiver.received] == ["completed"]
    assert json.loads(receiver.received[0][0])["refunds"] != []  # the final state only


# --- fault injection and the journal -----------------------------------------------------------------------------


def test_fail_rest_makes_calls_fail_until_restored(sim, api):
    sim.fail_rest(503)
    assert api.get("orders").status_code == 503
    sim.restore_rest()
    assert api.get("orders").status_code == 200


def test_fail_rest_timeout_outlasts_the_client(sim):
    client = woocommerce.API(url=sim.base_url, consumer_key="ck_test", consumer_secret="cs_test", timeout=0.2)
    sim.fail_rest(timeout=2)
    with pytest.raises(requests.Timeout):
        client.get("orders")
    sim.restore_rest()


def test_fail_after_apply_loses_the_answer_but_keeps_the_change(sim, api):
    order = new_order(api)
    sim.fail_rest(502, after_apply=True, times=1)

    response = api.put(f"orders/{order['id']}", {"fee_lines": [{"name": "W", "total": "-1.00"}]})

    assert response.status_code == 502
    assert len(sim.order(order["id"])["fee_lines"]) == 1
    put = sim.calls("PUT", f"orders/{order['id']}")
    assert len(put) == 1 and put[0].injected and put[0].json["fee_lines"][0]["total"] == "-1.00"
    assert put[0].shop_status == 200
    assert "oauth_signature" not in put[0].query


def test_a_call_the_shop_refused_then_lost_its_answer_is_journaled_as_refused(sim, api):
    """The bank test counted such a refund as made: the shop refused it, a proxy answered 502 instead."""
    order = new_order(api)
    sim.fail_rest(502, after_apply=True, times=1)

    response = api.post(f"orders/{order['id']}/refunds", {"amount": "1000.00", "api_refund": False})

    assert response.status_code == 502 and sim.refunds(order["id"]) == []
    [post] = sim.calls("POST", f"orders/{order['id']}/refunds")
    assert post.injected and post.shop_status >= 400


# --- fidelity to the captured store -----------------------------------------------------------------------------


def test_reproduces_the_captured_order_deliveries_byte_for_byte(receiver):
    clock = ManualClock()  # 2026-11-23T11:47:27Z, as in the captures
    sim = create_simulator(url="http://127.0.0.1:8080", clock=clock, first_order_id=12, transport=receiver.transport)
    subscribe(sim, "order.created", "order.updated")
    alice = sim.create_customer("alice@example.test", "Alice", "Tester", billing={"country": "DE"})
    admin(sim).post(
        "/wp-json/wc/v3/orders",
        json={
            "customer_id": alice["id"],
            "payment_method": "wallet",
            "payment_method_title": "Wallet",
            "billing": alice["billing"],
            "line_items": [{"name": "Wallet test item", "product_id": 11, "quantity": 2, "total": "39.98"}],
            "fee_lines": [{"name": "Handling / fee", "total": "1.50", "tax_status": "none"}],
            "meta_data": [{"key": "wallet_ref", "value": 'w/ref "quoted" <tag> & \u00fcn\u00efcode'}],
        },
    )
    created = receiver.received[-2][0]
    key = json.loads(created)["order_key"].encode()  # random per order: the only byte allowed to differ
    assert created.replace(key, b"wc_order_vC1IIgnEgQAZb") == (CAPTURED / "0005.body").read_bytes()

    clock.advance(1)
    sim.set_status(12, "on-hold")
    sim.refund(12, "5.00", "partial refund one")
    sim.refund(12, "3.25", "partial refund two")
    updated = receiver.received[-1][0]
    assert updated.replace(key, b"wc_order_vC1IIgnEgQAZb") == (CAPTURED / "0009.body").read_bytes()


def test_customer_payload_has_the_captured_shape(sim, receiver):
    subscribe(sim, "customer.created")
    sim.create_customer("alice@example.test", "Alice", "Tester", username="alice", billing={"country": "DE"})

    mine, real = json.loads(receiver.received[-1][0]), json.loads((CAPTURED / "0004.body").read_bytes())
    assert list(mine) == list(real) and list(mine["billing"]) == list(real["billing"])
    assert mine["avatar_url"] == real["avatar_url"]
