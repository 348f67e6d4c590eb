"""Shopify deliveries: topics → the same domain rules as every platform.

Shopify retries a failed delivery 8 times over 4 hours with the original payload, delivers at least once, in
any order, and wants an answer within 5 seconds: deliveries are applied inline (no call to Shopify happens on
this path) and a repeat of a delivery already applied (same X-Shopify-Webhook-Id) is answered 200 at once.
The HMAC covers the body only and X-Shopify-Shop-Domain is not signed: the header only sorts out honest
mistakes, and what keeps one shop's deliveries from being replayed at another is that no two shops hold the
same secret (bridge/webhook_secrets.py)."""

from __future__ import annotations

from urllib.parse import urlsplit

from bridge.currencies import ensure_accepted_currency
from bridge.customer_rules import apply_customer, apply_new_customer
from bridge.order_rules import apply_order, apply_refund_event, find_order
from webhooks.inbound import Inbound, Topic
from webhooks.shopify.payloads import parse_customer, parse_order, parse_refund


def _apply_refund(session, shop, parsed, actor) -> None:
    known = find_order(session, shop.id, parsed.order_external_id)
    if parsed.in_customers_currency(known.currency if known else shop.currency):
        return  # the order's update listing this refund is read with the order's own rate (payloads._Presentment)
    refund = parsed.refund
    if parsed.currency is not None:
        ensure_accepted_currency(shop, parsed.currency, "refund")
    elif known is not None:  # every transaction said `currency: null`: read in the order's own (¥100 is not 100.00)
        refund = parse_refund(parsed.body, currency=known.currency).refund
    apply_refund_event(session, shop, parsed.order_external_id, refund, actor)


def shop_domain(url: str) -> str:
    """ "https://demo.myshopify.com/" or "demo.myshopify.com" → "demo.myshopify.com"."""
    return urlsplit(url if "//" in url else f"https://{url}").hostname or ""


def names_the_shop(headers, shop_url: str) -> bool:
    return headers.get("X-Shopify-Shop-Domain", "").lower() == shop_domain(shop_url)


SHOPIFY = Inbound(
    name="shopify",
    topic_header="X-Shopify-Topic",
    signature_header="X-Shopify-Hmac-Sha256",
    delivery_id_header="X-Shopify-Webhook-Id",
    topics={
        "customers/create": Topic(parse_customer, apply_new_customer),
        "customers/update": Topic(parse_customer, apply_customer),
        "orders/paid": Topic(parse_order, apply_order),
        "orders/updated": Topic(parse_order, apply_order),
        "orders/cancelled": Topic(parse_order, apply_order),
        "refunds/create": Topic(parse_refund, _apply_refund),
    },
    names_the_shop=names_the_shop,
    one_secret_per_shop=True,
    delivery_ids_unique=True,
)
