"""POST /webhooks/woocommerce/<shop_id>: ping, signature, inbox, apply; always a JSON answer.

WooCommerce never retries a failed delivery and disables the webhook after repeated failures, so
everything that was signed is stored before it is answered, and only a bad signature, an unknown shop
or a body that cannot be read gets an error status."""

from __future__ import annotations

import json
import logging

from flask import Blueprint, request

from bridge.inbox import apply_delivery, record_delivery
from bridge.models import Shop
from bridge.web.errors import error_response
from bridge.web.runtime import services
from webhooks.signing import is_valid_signature
from webhooks.woocommerce.handlers import HANDLERS
from webhooks.woocommerce.payloads import PayloadInvalid, resource_id
from webhooks.woocommerce.ping import is_ping

woocommerce_webhooks = Blueprint("woocommerce_webhooks", __name__)
security_log = logging.getLogger("wallet_bridge.security")


def _shop_secrets(shop_id: int) -> list[str] | None:
    box = services().secrets
    with services().sessions() as session:
        shop = session.get(Shop, shop_id)
        if shop is None or shop.platform != "woocommerce":
            return None
        return [box.open(token) for token in (shop.webhook_secret_enc, shop.previous_webhook_secret_enc) if token]


@woocommerce_webhooks.post("/webhooks/woocommerce/<int:shop_id>")
def receive(shop_id: int):
    raw = request.get_data(cache=False)
    secrets = _shop_secrets(shop_id)
    if secrets is None:
        return error_response(404, "not_found", "unknown shop")
    if is_ping(request.content_type, raw, request.headers):
        return {"status": "pong"}, 200  # only HTTP 200 clears a WooCommerce ping
    topic = request.headers.get("X-WC-Webhook-Topic", "")
    if not is_valid_signature(raw, request.headers.get("X-WC-Webhook-Signature"), secrets):
        security_log.warning(
            "rejected woocommerce delivery: bad signature shop=%s topic=%r from=%s", shop_id, topic[:60],
            request.remote_addr,
        )  # fmt: skip
        return error_response(401, "invalid_signature", "missing or invalid X-WC-Webhook-Signature")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return error_response(400, "invalid_json", "the body is not JSON", {"body": "not JSON"})
    return _store_and_apply(shop_id, topic, data, raw)


def _store_and_apply(shop_id: int, topic: str, data, raw: bytes):
    sessions = services().sessions
    stored = dict(shop_id=shop_id, platform="woocommerce", topic=topic, resource_id=resource_id(topic, data),
                  delivery_id=request.headers.get("X-WC-Webhook-Delivery-ID"), body=raw)  # fmt: skip
    if topic not in HANDLERS:
        record_delivery(sessions, **stored, status="ignored")
        return {"status": "ignored", "topic": topic}, 200
    parse, apply = HANDLERS[topic]
    try:
        snapshot = parse(data)
    except PayloadInvalid as exc:
        record_delivery(sessions, **stored, status="failed", error=f"invalid payload: {exc.fields}")
        return error_response(422, "validation_failed", exc.message, exc.fields)
    delivery_id = record_delivery(sessions, **stored)
    return {"status": apply_delivery(sessions, delivery_id, apply, snapshot), "delivery": delivery_id}, 200
