"""Shops (tenants): creation with their keys, lookup by API key, decrypted credentials."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.errors import NotFound, ValidationFailed
from bridge.models import Shop
from bridge.money import is_currency
from bridge.security import SecretBox, hash_api_key, new_api_key, new_webhook_secret
from bridge.settings_schema import default_settings


@dataclass(frozen=True)
class NewShop:
    shop: Shop
    api_key: str
    webhook_secret: str


def create_shop(
    session: Session, box: SecretBox, *, name: str, platform: str, url: str, currency: str, platforms: Collection[str]
) -> NewShop:
    """A new tenant with a fresh API key (returned once, stored hashed) and webhook secret; `platforms` are the
    names of the platforms this process knows (the surfaces' table)."""
    if platform not in platforms:
        raise ValidationFailed(f"platform must be one of {sorted(platforms)}", fields={"platform": "unknown platform"})
    currency = currency.upper()
    if not is_currency(currency) or len(currency) != 3:
        raise ValidationFailed(f"unknown currency {currency!r}", fields={"currency": "unknown currency"})
    if not name.strip():
        raise ValidationFailed("a shop needs a name", fields={"name": "required"})
    api_key, webhook_secret = new_api_key(), new_webhook_secret()
    shop = Shop(
        name=name.strip(),
        platform=platform,
        url=url.rstrip("/"),
        currency=currency,
        api_key_hash=hash_api_key(api_key),
        webhook_secret_enc=box.seal(webhook_secret),
        settings=default_settings(),
    )
    session.add(shop)
    session.flush()
    return NewShop(shop, api_key, webhook_secret)


def shop_for_api_key(session: Session, api_key: str) -> Shop | None:
    return session.execute(select(Shop).where(Shop.api_key_hash == hash_api_key(api_key))).scalar_one_or_none()


def get_shop(session: Session, shop_id: int) -> Shop:
    shop = session.get(Shop, shop_id)
    if shop is None:
        raise NotFound("shop not found")
    return shop
