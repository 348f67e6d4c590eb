"""What every platform's webhook endpoint does once a delivery is authentic: store it in the inbox, parse
it into a snapshot, apply it once, and answer with JSON. Bad payloads are kept as failed (422)."""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass

from flask import request
from sqlalchemy import select

from bridge.errors import ValidationFailed
from bridge.inbox import apply_delivery, record_delivery
from bridge.models import InboxDelivery, Shop
from bridge.states import InboxStatus
from bridge.surfaces.web.errors import error_response
from bridge.surfaces.web.runtime import services
from bridge.webhook_secrets import shops_sharing

security_log = logging.getLogger("wallet_bridge.security")

# topic → (parse the JSON body into a snapshot, apply it: (session, shop, snapshot, actor) -> None)
Handlers = dict


@dataclass(frozen=True)
class ShopKeys:
    secrets: list[str]  # current, and the previous one during a rotation
    url: str


def shop_keys(shop_id: int, platform: str) -> ShopKeys:
    """What a delivery for this shop is checked against. No such shop on this platform: a secret nobody holds,
    so the delivery fails its signature check like any forged one and the answer never says which shops exist."""
    box = services().secrets
    with services().sessions() as session:
        shop = session.get(Shop, shop_id)
        if shop is None or shop.platform != platform:
            return ShopKeys([secrets.token_urlsafe(32)], "")
        tokens = (shop.webhook_secret_enc, shop.previous_webhook_secret_enc)
        return ShopKeys([box.open(token) for token in tokens if token], shop.url)


def shares_secret(shop_id: int, keys: ShopKeys) -> bool:
    """True (and logged) when another Shopify shop holds one of these secrets (bridge/webhook_secrets.py)."""
    with services().sessions() as session:
        others = shops_sharing(session, services().secrets, shop_id, keys.secrets)
    if others:
        security_log.warning("refused shopify delivery: shop=%s shares its webhook secret with shop(s) %s",
                             shop_id, others)  # fmt: skip
    return bool(others)


def reject_signature(platform: str, shop_id: int, topic: str):
    """401 with a security log line that names the shop and source, never a secret or the body."""
    security_log.warning("rejected %s delivery: bad signature shop=%s topic=%r from=%s", platform, shop_id,
                         topic[:60], request.remote_addr)  # fmt: skip
    return error_response(401, "invalid_signature", "missing or invalid webhook signature")


def parse_json(raw: bytes):
    """(data, None), or (None, a 400 answer) for a body that is not JSON."""
    try:
        return json.loads(raw), None
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested deeper than Python goes
        return None, error_response(400, "invalid_json", "the body is not JSON", {"body": "not JSON"})


def already_applied(shop_id: int, platform: str, delivery_id: str) -> bool:
    """For platforms whose delivery ids are unique per delivery (Shopify), a retried delivery is known."""
    with services().sessions() as session:
        return session.execute(
            select(InboxDelivery.id).where(
                InboxDelivery.shop_id == shop_id, InboxDelivery.platform == platform,
                InboxDelivery.delivery_id == delivery_id,
                InboxDelivery.status.in_((InboxStatus.APPLIED, InboxStatus.IGNORED)),
            ).limit(1)
        ).first() is not None  # fmt: skip


def store_and_apply(*, shop_id: int, platform: str, topic: str, data, raw: bytes, delivery_id: str | None,
                    resource_id: str | None, handlers: Handlers):  # fmt: skip
    sessions = services().sessions
    stored = dict(shop_id=shop_id, platform=platform, topic=topic, resource_id=resource_id,
                  delivery_id=delivery_id, body=raw)  # fmt: skip
    if topic not in handlers:
        record_delivery(sessions, **stored, status=InboxStatus.IGNORED)
        return {"status": InboxStatus.IGNORED, "topic": topic}, 200
    parse, apply = handlers[topic]
    try:
        snapshot = parse(data)
    except ValidationFailed as exc:
        record_delivery(sessions, **stored, status=InboxStatus.FAILED, error=f"invalid payload: {exc.fields}")
        return error_response(422, "validation_failed", exc.message, exc.fields)
    inbox_id = record_delivery(sessions, **stored)
    return {"status": apply_delivery(sessions, inbox_id, apply, snapshot), "delivery": inbox_id}, 200
