"""POST /webhooks/shopify/<shop_id>: HMAC on the raw body (the old secret too, during a rotation), the
shop's domain, a secret no other shop holds, dedupe on X-Shopify-Webhook-Id, then the same inbox as every platform.

Shopify retries a failed delivery 8 times over 4 hours with the original payload and delivers at least
once, in any order, and wants an answer within 5 seconds: deliveries are applied inline (no call to
Shopify happens on this path) and a repeat of a delivery already applied is answered 200 at once."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, request

from webhooks.payload_fields import resource_id
from webhooks.receive import already_applied, parse_json, reject_signature, shares_secret, shop_keys, store_and_apply
from webhooks.shopify.handlers import HANDLERS
from webhooks.signing import is_valid_signature

shopify_webhooks = Blueprint("shopify_webhooks", __name__)


def shop_domain(url: str) -> str:
    """"https://demo.myshopify.com/" or "demo.myshopify.com" → "demo.myshopify.com"."""
    return urlsplit(url if "//" in url else f"https://{url}").hostname or ""


@shopify_webhooks.post("/webhooks/shopify/<int:shop_id>")
def receive(shop_id: int):
    raw = request.get_data(cache=False)
    keys = shop_keys(shop_id, "shopify")
    topic = request.headers.get("X-Shopify-Topic", "")
    if not is_valid_signature(raw, request.headers.get("X-Shopify-Hmac-Sha256"), keys.secrets):
        return reject_signature("shopify", shop_id, topic)
    # The domain header is not signed: it only sorts out honest mistakes. What keeps one shop's deliveries from
    # being replayed at another is that no two shops hold the same secret.
    domain = request.headers.get("X-Shopify-Shop-Domain", "").lower()
    if domain != shop_domain(keys.url) or shares_secret(shop_id, keys):
        return reject_signature("shopify", shop_id, topic)
    webhook_id = request.headers.get("X-Shopify-Webhook-Id", "")[:100] or None
    if webhook_id and already_applied(shop_id, "shopify", webhook_id):
        return {"status": "duplicate"}, 200
    data, failure = parse_json(raw)
    if failure:
        return failure
    return store_and_apply(
        shop_id=shop_id, platform="shopify", topic=topic, data=data, raw=raw, handlers=HANDLERS,
        delivery_id=webhook_id, resource_id=resource_id(data),
    )  # fmt: skip
