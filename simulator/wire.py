"""How WordPress and WooCommerce put things on the wire: JSON bytes, signatures, money strings, dates.

Pure functions, no state. Money is integer minor units everywhere else in the simulator; these helpers
are the only place it becomes or stops being a decimal string.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

WC_VERSION = "10.0.2"
WP_VERSION = "6.8.8"
USER_AGENT = f"WooCommerce/{WC_VERSION} Hookshot (WordPress/{WP_VERSION})"


def wp_json(data: object) -> bytes:
    """Encode like WordPress's wp_json_encode: compact, `/` escaped as `\\/`, non-ASCII as `\\u` and four hex digits.

    A `/` can only occur inside JSON strings, so escaping it in the finished text is exact.
    """
    return json.dumps(data, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/").encode("ascii")


def webhook_signature(body: bytes, secret: str) -> str:
    """X-WC-Webhook-Signature: base64 of HMAC-SHA256(secret, raw body bytes)."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def delivery_id(webhook_id: int, unix_second: int) -> str:
    """X-WC-Webhook-Delivery-ID. WooCommerce hashes `webhook id . time()`, so every delivery of one webhook
    within the same second carries the same value: it is not an idempotency key. (The real hash is keyed
    with the site's salt; a plain MD5 has the same shape and the same collisions.)"""
    return hashlib.md5(f"{webhook_id}{unix_second}".encode(), usedforsecurity=False).hexdigest()


def to_minor(text: str, decimals: int) -> int:
    """A decimal string ("41.48", "-5", "") as minor units, rounded half up to the store's decimals
    like wc_format_decimal. The empty string is 0 (WooCommerce stores fee `amount` as ""). Raises
    ValueError for anything that is not a finite decimal."""
    cleaned = text.strip()
    if not cleaned:
        return 0
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a decimal amount") from None
    if not value.is_finite():
        raise ValueError(f"{text!r} is not a decimal amount")
    return int(value.scaleb(decimals).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def money(minor: int, decimals: int) -> str:
    """Minor units as WooCommerce prints money: "41.48", "-5.00"."""
    return f"{Decimal(minor).scaleb(-decimals):.{decimals}f}"


def price_number(minor: int, quantity: int, decimals: int) -> float:
    """`line_items[].price`: total / quantity as a JSON number (a PHP float), the one place WooCommerce
    sends money as a number."""
    if not quantity:
        return 0.0
    return float(Decimal(minor).scaleb(-decimals) / Decimal(quantity))


def rounded_share(amount: int, numerator: int, denominator: int) -> int:
    """amount × numerator / denominator, rounded half away from zero like PHP's round()."""
    if not denominator:
        return 0
    value = Decimal(amount) * Decimal(numerator) / Decimal(denominator)
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def site_date(moment: datetime | None, utc_offset: timedelta) -> str | None:
    """A WordPress "site time" date: no offset, whole seconds (`2026-11-23T11:47:27`)."""
    if moment is None:
        return None
    return (moment.astimezone(UTC) + utc_offset).strftime("%Y-%m-%dT%H:%M:%S")


def gmt_date(moment: datetime | None) -> str | None:
    """The `*_gmt` twin of a date: the same format in UTC."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def parse_rest_date(text: str, utc_offset: timedelta, *, as_gmt: bool = False) -> datetime:
    """A date-time query parameter. With an offset it means that instant; without one it is site time
    (or UTC when the request says `dates_are_gmt`), as rest_parse_date reads it. Raises ValueError."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC) - (timedelta(0) if as_gmt else utc_offset)
    return value.astimezone(UTC)
