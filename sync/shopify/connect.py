"""Connecting a Shopify shop: check the Admin API token, keep it and the webhook secret encrypted (the
old secret stays valid while Shopify rotates), and subscribe the webhooks the bridge needs, once."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from bridge.errors import PermanentFailure, ShopCallFailed, ValidationFailed
from bridge.security import SecretBox
from bridge.usecases import shops
from sync.shop_http import REFUSED, ShopAddressRefused
from sync.shopify.client import ShopifyAdmin

TOPICS = ("CUSTOMERS_CREATE", "CUSTOMERS_UPDATE", "ORDERS_PAID", "ORDERS_UPDATED", "ORDERS_CANCELLED", "REFUNDS_CREATE")


def delivery_topic(subscription_topic: str) -> str:
    """ORDERS_PAID → orders/paid: the X-Shopify-Topic of the deliveries a subscription brings."""
    resource, _, event = subscription_topic.lower().partition("_")
    return f"{resource}/{event}"


DELIVERY_TOPICS = tuple(delivery_topic(topic) for topic in TOPICS)

SHOP = "query { shop { name currencyCode myshopifyDomain } }"
SUBSCRIPTIONS = "query { webhookSubscriptions(first: 100) { nodes { id topic uri } } }"
SUBSCRIBE = """
mutation Subscribe($topic: WebhookSubscriptionTopic!, $webhookSubscription: WebhookSubscriptionInput!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $webhookSubscription) {
    webhookSubscription { id topic }
    userErrors { field message }
  }
}"""


@dataclass
class ShopifyConnection:
    shop_id: int
    domain: str
    callback_url: str
    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def callback_url(public_url: str, shop_id: int) -> str:
    """Where Shopify delivers this shop's webhooks."""
    return f"{public_url}/webhooks/shopify/{shop_id}"


def delivery_warnings(delivery_url: str) -> list[str]:
    return (
        []
        if delivery_url.startswith("https://")
        else ["PUBLIC_URL is not https: Shopify delivers webhooks only to https addresses"]
    )


def connect_shopify(
    sessions: sessionmaker[Session],
    secrets: SecretBox,
    shop_id: int,
    *,
    url: str,
    access_token: str,
    webhook_secret: str | None,
    public_url: str,
    timeout: float = 10.0,
) -> ShopifyConnection:
    if webhook_secret:  # before anything is sent: see bridge/webhook_secrets.py
        shops.refuse_secret_of_another_shop(sessions, secrets, shop_id, "shopify", webhook_secret)
    api = ShopifyAdmin(url, access_token, timeout)
    try:
        shop_info = api.graphql(SHOP).get("shop") or {}
    except ShopCallFailed as exc:
        raise _first_call_failed(exc) from exc
    callback = callback_url(public_url, shop_id)
    result = ShopifyConnection(shop_id, shop_info.get("myshopifyDomain") or url, callback)
    nodes = (api.graphql(SUBSCRIPTIONS).get("webhookSubscriptions") or {}).get("nodes") or []
    existing = {(node.get("topic"), node.get("uri")) for node in nodes}
    for topic in TOPICS:
        if (topic, callback) in existing:
            result.unchanged.append(topic)
            continue
        created = api.graphql(SUBSCRIBE, {"topic": topic, "webhookSubscription": {"uri": callback, "format": "JSON"}})
        errors = (created.get("webhookSubscriptionCreate") or {}).get("userErrors") or []
        if errors:
            raise ValidationFailed(f"Shopify refused the {topic} subscription: {errors}", fields={"url": "refused"})
        result.created.append(topic)
    shops.store_keys(sessions, secrets, shop_id, url, secret=access_token, webhook_secret=webhook_secret)
    return result


def _first_call_failed(exc: ShopCallFailed) -> Exception:
    """Say which input is wrong: the token (refused), the URL (nothing answers there), or neither (Shopify is
    busy or down: the same input will do later)."""
    if isinstance(exc, ShopAddressRefused):
        return ValidationFailed(REFUSED, fields={"url": REFUSED})
    if exc.status in (401, 403) or isinstance(exc, PermanentFailure):
        return ValidationFailed(f"Shopify did not accept the token: {exc}", fields={"access_token": "rejected"})
    if exc.status is None:
        return ValidationFailed(f"Nothing answered at this address: {exc}", fields={"url": "unreachable"})
    return exc
