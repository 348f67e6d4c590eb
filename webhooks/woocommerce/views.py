"""POST /webhooks/woocommerce/<shop_id>: ping, signature, inbox, apply; always a JSON answer.

WooCommerce never retries a failed delivery and disables the webhook after repeated failures, so
everything that was signed is stored before it is answered, and only a bad signature (an unknown shop's
too, so that answers never tell which shops exist) or a body that cannot be read gets an error status."""

from __future__ import annotations

from flask import Blueprint, request

from webhooks.payload_fields import resource_id
from webhooks.receive import parse_json, reject_signature, shop_keys, store_and_apply
from webhooks.signing import is_valid_signature
from webhooks.woocommerce.handlers import HANDLERS
from webhooks.woocommerce.ping import is_ping

woocommerce_webhooks = Blueprint("woocommerce_webhooks", __name__)


@woocommerce_webhooks.post("/webhooks/woocommerce/<int:shop_id>")
def receive(shop_id: int):
    raw = request.get_data(cache=False)
    if is_ping(request.content_type, raw, request.headers):  # unsigned, stores nothing: pong, shop or no shop
        return {"status": "pong"}, 200  # only HTTP 200 clears a WooCommerce ping
    keys = shop_keys(shop_id, "woocommerce")
    topic = request.headers.get("X-WC-Webhook-Topic", "")
    if not is_valid_signature(raw, request.headers.get("X-WC-Webhook-Signature"), keys.secrets):
        return reject_signature("woocommerce", shop_id, topic)
    data, failure = parse_json(raw)
    if failure:
        return failure
    return store_and_apply(
        shop_id=shop_id, platform="woocommerce", topic=topic, data=data, raw=raw, handlers=HANDLERS,
        delivery_id=request.headers.get("X-WC-Webhook-Delivery-ID"), resource_id=resource_id(data),
    )  # fmt: skip
