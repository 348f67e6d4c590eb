"""Connecting a WooCommerce shop: check its REST keys, store them encrypted, register our webhooks.

Webhook registration is idempotent: a webhook is matched by topic and delivery URL, so running
`wallet-bridge shop connect` again creates nothing new and only re-activates webhooks the shop has
paused or disabled (it disables one after 7 failed deliveries, and never sends what it missed).
Secrets are decrypted only in memory, sent only to the shop, and never logged or returned.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests
from sqlalchemy.orm import Session, sessionmaker

from bridge.errors import PermanentFailure, TemporaryFailure, ValidationFailed
from bridge.security import SecretBox
from bridge.usecases import shops
from sync.shop_http import REFUSED, ShopAddressRefused, ShopAnswerTooLarge, ShopTooSlow
from sync.woocommerce.client import WooResponse, WooShop

log = logging.getLogger(__name__)

WEBHOOK_TOPICS = (
    "customer.created",
    "customer.updated",
    "order.created",
    "order.updated",
    "order.deleted",
    "order.restored",
)
PAGE_SIZE = 100
MAX_PAGES = 50  # 5,000 webhooks: a shop that lists more (or whose pages never end) is not read to the end


@dataclass
class WebhookResult:
    """Webhook ids by what was done to them."""

    created: list[int] = field(default_factory=list)
    reactivated: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"created": self.created, "reactivated": self.reactivated, "unchanged": self.unchanged}


@dataclass
class ConnectResult:
    shop_id: int
    url: str
    delivery_url: str
    webhooks: WebhookResult
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "shop_id": self.shop_id,
            "url": self.url,
            "delivery_url": self.delivery_url,
            "webhooks": self.webhooks.as_dict(),
            "warnings": self.warnings,
        }


def delivery_url_for(public_url: str, shop_id: int) -> str:
    return f"{public_url.rstrip('/')}/webhooks/woocommerce/{shop_id}"


def connect_shop(
    sessions: sessionmaker[Session],
    secrets: SecretBox,
    shop_id: int,
    url: str,
    consumer_key: str,
    consumer_secret: str,
    public_url: str,
    timeout: float,
) -> ConnectResult:
    """Check the keys against the shop, register the webhooks, then store url and encrypted keys.

    Nothing is stored unless the keys work and every webhook is in place, so a failed connect can
    simply be run again. Raises ValidationFailed for refused keys or an unreachable/unsuitable url.
    """
    url = url.strip().rstrip("/")
    consumer_key, consumer_secret = consumer_key.strip(), consumer_secret.strip()
    _check_input(url, consumer_key, consumer_secret)
    webhook_secret = shops.shop_state(sessions, secrets, shop_id, "woocommerce").webhook_secret

    api = WooShop(url, consumer_key, consumer_secret, timeout)
    check_credentials(api, url)
    delivery_url = delivery_url_for(public_url, shop_id)
    try:
        webhooks = ensure_webhooks(api, delivery_url, webhook_secret)
    except (TemporaryFailure, PermanentFailure) as exc:
        message = f"could not register webhooks on {url}: {exc}"
        if " HTTP 401 " in str(exc) or " HTTP 403 " in str(exc):
            raise ValidationFailed(
                message + " (the REST API key needs Read/Write permission)",
                fields={"consumer_key": "needs Read/Write permission"},
            ) from exc
        raise

    shops.store_keys(sessions, secrets, shop_id, url, key=consumer_key, secret=consumer_secret)
    log.info(
        "shop %s connected to %s: webhooks created=%s reactivated=%s unchanged=%s",
        shop_id,
        url,
        webhooks.created,
        webhooks.reactivated,
        webhooks.unchanged,
    )
    return ConnectResult(shop_id, url, delivery_url, webhooks, delivery_warnings(delivery_url))


def _check_input(url: str, consumer_key: str, consumer_secret: str) -> None:
    problems: dict[str, str] = {}
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problems["url"] = "not an http(s) URL"
    if not consumer_key:
        problems["consumer_key"] = "required"
    if not consumer_secret:
        problems["consumer_secret"] = "required"  # noqa: S105 (a message, not a password)
    if problems:
        raise ValidationFailed(f"cannot connect: {', '.join(sorted(problems))}", fields=problems)


def check_credentials(api: WooShop, url: str) -> None:
    """`GET orders?per_page=1` with the keys. Raises ValidationFailed naming what is wrong."""
    try:
        # The raw response is needed to tell refused keys (401/403) from other answers.
        response = api._send("get", "orders", params={"per_page": 1})
    except (requests.ConnectionError, requests.Timeout) as exc:
        # Only the exception's class: its text can hold the request URL, which over http carries OAuth data.
        raise ValidationFailed(
            f"could not reach {url} ({exc.__class__.__name__})", fields={"url": "unreachable"}
        ) from exc
    except ShopAddressRefused as exc:  # refused before the socket opened
        raise ValidationFailed(REFUSED, fields={"url": REFUSED}) from exc
    except ShopAnswerTooLarge as exc:
        raise ValidationFailed(f"{url}: {exc}", fields={"url": "answers too much"}) from exc
    except ShopTooSlow as exc:
        raise ValidationFailed(f"{url}: {exc}", fields={"url": "answers too slowly"}) from exc
    status = response.status_code
    if 300 <= status < 400:
        raise ValidationFailed(
            f"{url} answered with a redirect (HTTP {status}), which the bridge does not follow: enter the address "
            "the site redirects to",
            fields={"url": "redirects elsewhere"},
        )
    if status in (401, 403):
        raise ValidationFailed(
            f"{url} refused the REST API keys (HTTP {status}): check the consumer key and secret",
            fields={"consumer_key": "rejected by the shop"},
        )
    if status == 404:
        raise ValidationFailed(
            f"{url} has no WooCommerce REST API (HTTP 404 on wp-json/wc/v3/orders)",
            fields={"url": "no WooCommerce REST API here"},
        )
    if status >= 400:
        raise ValidationFailed(f"{url} answered HTTP {status} to GET orders", fields={"url": f"HTTP {status}"})
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, list):
        raise ValidationFailed(
            f"{url} did not answer GET orders with a JSON list: is this a WooCommerce site?",
            fields={"url": "not a WooCommerce REST API"},
        )


def list_all(api: WooShop, endpoint: str, **params) -> list:
    """Every page of a collection: page URLs are built with `page=` (never the Link header, whose URLs
    carry the previous request's oauth_* parameters), until X-WP-TotalPages or an empty page."""
    items: list = []
    page = 1
    while True:
        response = api.get(endpoint, **params, per_page=PAGE_SIZE, page=page)
        body = response.body if isinstance(response.body, list) else []
        items.extend(body)
        if page >= total_pages(response) or not body:
            return items
        if page >= MAX_PAGES:  # pages without end would hold a web process's thread and memory for ever
            raise PermanentFailure(
                f"GET {endpoint}: more than {MAX_PAGES} pages of {PAGE_SIZE}, which the bridge does not read"
            )
        page += 1


def total_pages(response: WooResponse) -> int:
    return int_header(response, "x-wp-totalpages", default=1)


def int_header(response: WooResponse, name: str, *, default: int) -> int:
    value = next((v for k, v in response.headers.items() if k.lower() == name), None)
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def ensure_webhooks(api: WooShop, delivery_url: str, secret: str) -> WebhookResult:
    """One active webhook per topic pointing at `delivery_url`: created if missing, re-activated (with
    our secret) if the shop paused or disabled it, otherwise left alone."""
    result = WebhookResult()
    listed = list_all(api, "webhooks")
    ours = [w for w in listed if isinstance(w, dict) and _same_url(w.get("delivery_url"), delivery_url)]
    for topic in WEBHOOK_TOPICS:
        matching = [w for w in ours if w.get("topic") == topic]
        active = next((w for w in matching if w.get("status") == "active"), None)
        if active is not None:
            result.unchanged.append(active["id"])
        elif matching:
            webhook_id = matching[0]["id"]
            api.put(f"webhooks/{webhook_id}", {"status": "active", "secret": secret})
            result.reactivated.append(webhook_id)
        else:
            created = api.post(
                "webhooks",
                {
                    "name": f"Wallet Bridge {topic}",
                    "topic": topic,
                    "delivery_url": delivery_url,
                    "secret": secret,
                    "status": "active",
                },
            ).body
            result.created.append(created.get("id") if isinstance(created, dict) else None)
    return result


def _same_url(a, b: str) -> bool:
    return isinstance(a, str) and a.strip().rstrip("/") == b.rstrip("/")


def delivery_warnings(delivery_url: str) -> list[str]:
    """WordPress delivers only to ports 80, 443 and 8080, and not to private or loopback addresses."""
    parts = urlsplit(delivery_url)
    warnings = []
    if parts.scheme != "https":
        warnings.append("PUBLIC_URL is not https: deliveries (and their signatures) travel in clear text")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if port not in (80, 443, 8080):
        warnings.append(f"WordPress delivers webhooks only to ports 80, 443 and 8080, not {port}")
    host = parts.hostname or ""
    try:
        private = ipaddress.ip_address(host).is_private or ipaddress.ip_address(host).is_loopback
    except ValueError:
        private = host == "localhost" or host.endswith(".localhost")
    if private:
        warnings.append(f"WordPress does not deliver webhooks to private or loopback addresses ({host})")
    return warnings
