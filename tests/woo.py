"""Helpers for tests that play a WooCommerce store: captured deliveries, signed bodies, REST mocks."""

from __future__ import annotations

import json
from pathlib import Path

import responses

from bridge.db import unit_of_work
from bridge.models import Shop
from bridge.money import parse_amount, to_decimal_string
from webhooks.signing import sign

CAPTURED = Path(__file__).parent / "fixtures" / "woocommerce" / "captured"
REAL_SECRET = "realwoo-webhook-secret"
SHOP_URL = "https://alpha.example"
API = f"{SHOP_URL}/wp-json/wc/v3"


def captured(number: str) -> tuple[bytes, dict]:
    """A delivery captured from a real store: raw body and its headers (signed with REAL_SECRET)."""
    meta = json.loads((CAPTURED / f"{number}.json").read_text())
    headers = {name: value for name, value in meta["headers"] if name.lower() not in ("host", "content-length")}
    return (CAPTURED / f"{number}.body").read_bytes(), headers


def wp_json(data) -> bytes:
    """Encode like WordPress's wp_json_encode: compact, `\\/` escaped, non-ASCII as \\uXXXX."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/").encode()


def delivery_headers(topic: str, body: bytes, secret: str = REAL_SECRET) -> dict:
    resource, event = topic.split(".")
    return {
        "Content-Type": "application/json",
        "X-WC-Webhook-Source": "https://alpha.example/",
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Resource": resource,
        "X-WC-Webhook-Event": event,
        "X-WC-Webhook-Signature": sign(body, secret),
        "X-WC-Webhook-ID": "2",
        "X-WC-Webhook-Delivery-ID": "b38adff61d52595ab4ed6aff627730db",
    }


# The "Paid from wallet" fee line the bridge's push puts on a partly paid order (€10.00 of the captured €41.48).
WALLET_PART_FEE = [{"id": 90, "name": "Paid from wallet", "tax_status": "none", "total": "-10.00", "total_tax": "0.00"}]
# What is left of that order to pay with its fee line on (€31.48), paid by card.
THE_REST_BY_CARD = {"total": "31.48", "fee_lines": WALLET_PART_FEE, "payment_method": "stripe"}


def order_body(number: str = "0005", **changes) -> dict:
    data = json.loads(captured(number)[0])
    data.update(changes)
    return data


def connect_for_tests(services, shop_id: int, secret: str = REAL_SECRET) -> None:
    """Give the shop REST credentials and the webhook secret the captured deliveries were signed with."""
    with unit_of_work(services.sessions) as session:
        shop = session.get(Shop, shop_id)
        shop.url = SHOP_URL
        shop.webhook_secret_enc = services.secrets.seal(secret)
        shop.consumer_key_enc = services.secrets.seal("ck_test")
        shop.consumer_secret_enc = services.secrets.seal("cs_test")


def post_delivery(client, shop_id: int, topic: str, data: dict | bytes, secret: str = REAL_SECRET):
    body = data if isinstance(data, bytes) else wp_json(data)
    return client.post(f"/webhooks/woocommerce/{shop_id}", data=body, headers=delivery_headers(topic, body, secret))


class FakeOrderEndpoint:
    """A stateful /orders/<id> on `responses`: PUT merges like WooCommerce (fee_lines appended,
    meta_data merged by key), notes are kept; `fail_next(n, status, on)` makes the next n calls to
    "order" or "notes" (or any) fail."""

    def __init__(self, mock: responses.RequestsMock, order: dict):
        self.order, self.notes, self.failures, self.puts = dict(order), [], [], []
        base = f"{API}/orders/{order['id']}"
        mock.add_callback(responses.GET, base, callback=lambda r: self._reply("order", lambda: self.order))
        mock.add_callback(responses.PUT, base, callback=lambda r: self._reply("order", lambda: self._put(r)))
        notes = f"{base}/notes"
        mock.add_callback(responses.GET, notes, callback=lambda r: self._reply("notes", lambda: self.notes))
        mock.add_callback(responses.POST, notes, callback=lambda r: self._reply("notes", lambda: self._note(r)))

    def fail_next(self, count: int, status: int = 503, on: str | None = None) -> None:
        self.failures += [(status, on)] * count

    def _reply(self, resource: str, produce):
        if self.failures and self.failures[0][1] in (None, resource):
            status, _ = self.failures.pop(0)
            return status, {}, json.dumps({"code": "down", "message": "unavailable", "data": status})
        return 200, {}, json.dumps(produce())

    def _put(self, request) -> dict:
        change = json.loads(request.body)
        self.puts.append(change)
        for fee in change.get("fee_lines", []):
            self._add_fee(fee)
        meta = {m["key"]: m for m in self.order.get("meta_data", [])}
        for item in change.get("meta_data", []):
            meta[item["key"]] = {"id": len(meta) + 100, **item}
        self.order["meta_data"] = list(meta.values())
        if change.get("set_paid"):
            self.order["status"] = "processing"
        self.order.update({key: change[key] for key in ("status", "transaction_id") if key in change})
        return self.order

    def _add_fee(self, fee: dict) -> None:
        currency = self.order["currency"]
        total = parse_amount(self.order["total"], currency)
        applied = max(parse_amount(fee["total"], currency), -total)  # WooCommerce cuts a negative fee at 0.00
        stored = {**fee, "total": to_decimal_string(applied, currency), "total_tax": "0.00"}
        self.order["fee_lines"] = [*self.order.get("fee_lines", []), stored]
        self.order["total"] = to_decimal_string(total + applied, currency)

    def _note(self, request) -> dict:
        self.notes.append({"id": len(self.notes) + 1, **json.loads(request.body)})
        return self.notes[-1]
