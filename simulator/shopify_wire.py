"""How Shopify puts things on the wire: JSON bytes, money strings, global ids, dates, topic names.

Pure functions, no state. Money is integer minor units everywhere else in the Shopify simulator; these
helpers are the only place it becomes or stops being a decimal string. Two money formats exist:
REST resources (webhook bodies) print the currency's decimals ("41.48", "10.00", "1500" for JPY),
GraphQL `Decimal` drops trailing zeros but keeps one decimal ("10.0", "41.48", "1500.0").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from iso4217 import Currency

API_VERSION = "2026-01"
USER_AGENT = "Shopify-Captain-Hook"
STORE_CREDIT_GATEWAY = "shopify_store_credit"
_DECIMALS = {c.code: c.exponent for c in Currency if c.exponent is not None}  # ISO 4217's, as Shopify's money
_DECIMAL_RE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_GID_RE = re.compile(r"gid://shopify/([A-Za-z]+)/([0-9]{1,19})")


def shopify_json(data: object) -> bytes:
    """Webhook bodies: compact JSON, UTF-8, `/` and non-ASCII left as they are."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def hmac_sha256(body: bytes, secret: str) -> str:
    """X-Shopify-Hmac-Sha256: base64 of HMAC-SHA256(secret, raw body bytes)."""
    return base64.b64encode(hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()).decode("ascii")


# --- money --------------------------------------------------------------------------------------------------


def is_currency(code: object) -> bool:
    return isinstance(code, str) and len(code) == 3 and code.isupper() and code in _DECIMALS


def decimals(currency: str) -> int:
    return _DECIMALS[currency]


def to_minor(text: object, currency: str) -> int:
    """A decimal string ("41.48", "10", "10.0") in minor units. Raises ValueError for anything else:
    numbers (floats lose cents), malformed text, or more decimals than the currency has."""
    if not isinstance(text, str) or not _DECIMAL_RE.fullmatch(text.strip()) or len(text) > 40:
        raise ValueError(f"{text!r} is not a decimal string")
    try:
        scaled = Decimal(text.strip()).scaleb(decimals(currency))
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a decimal string") from None
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{text!r} has more decimals than {currency} allows")
    return int(scaled)


def money(minor: int, currency: str) -> str:
    """Minor units as REST resources print money: "41.48", "-5.00", "1500"."""
    places = decimals(currency)
    return f"{Decimal(minor).scaleb(-places):.{places}f}"


def graphql_decimal(minor: int, currency: str) -> str:
    """Minor units as GraphQL `Decimal` (MoneyV2.amount): "10.0", "41.48", "0.0"."""
    text = f"{Decimal(minor).scaleb(-decimals(currency)):f}"
    if "." in text:
        text = text.rstrip("0")
    return text + "0" if text.endswith(".") else text if "." in text else text + ".0"


def money_v2(minor: int, currency: str) -> dict:
    return {"amount": graphql_decimal(minor, currency), "currencyCode": currency}


# A checkout in another currency than the shop's (Shopify Markets) is converted at these rates, units per US dollar;
# a currency not listed counts one unit to the dollar.
RATES = {"USD": Decimal(1), "EUR": Decimal("0.9"), "GBP": Decimal("0.8"), "CAD": Decimal("1.4"), "JPY": Decimal(150)}


def in_shop_money(minor: int, paid_in: str, shop: str) -> int:
    """Money of a checkout in `paid_in` (the presentment currency) in the shop's currency, half to even."""
    if paid_in == shop:
        return minor
    major = Decimal(minor).scaleb(-decimals(paid_in)) * RATES.get(shop, Decimal(1)) / RATES.get(paid_in, Decimal(1))
    return int(major.scaleb(decimals(shop)).quantize(Decimal(1), ROUND_HALF_EVEN))


def money_set(minor: int, currency: str, shop: str | None = None) -> dict:
    """A REST `*_set`: `minor` of the order's (presentment) `currency`, in the shop's money and in it."""
    shop = shop or currency
    return {
        "shop_money": {"amount": money(in_shop_money(minor, currency, shop), shop), "currency_code": shop},
        "presentment_money": {"amount": money(minor, currency), "currency_code": currency},
    }


# --- ids, dates, topics -------------------------------------------------------------------------------------


def gid(kind: str, number: int) -> str:
    return f"gid://shopify/{kind}/{number}"


def parse_gid(value: object) -> tuple[str, int] | None:
    """("Customer", 123) for "gid://shopify/Customer/123"; None for anything else."""
    if not isinstance(value, str):
        return None
    match = _GID_RE.fullmatch(value)
    return (match[1], int(match[2])) if match else None


def rest_date(moment: datetime | None, utc_offset: timedelta) -> str | None:
    """REST resources: whole seconds in the shop's time zone, with its offset ("2021-12-31T19:00:00-05:00")."""
    if moment is None:
        return None
    return moment.astimezone(timezone(utc_offset)).isoformat(timespec="seconds")


def graphql_date(moment: datetime | None) -> str | None:
    """GraphQL `DateTime`: UTC, whole seconds, "Z"."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def triggered_at(moment: datetime) -> str:
    """X-Shopify-Triggered-At: UTC with fractional seconds and "Z"."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_datetime(value: object) -> datetime | None:
    """An ISO 8601 date-time with an offset (or "Z") as an aware datetime; None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def topic_name(enum_value: str) -> str:
    """WebhookSubscriptionTopic → the X-Shopify-Topic form: ORDERS_PAID → orders/paid."""
    resource, _, event = enum_value.lower().partition("_")
    return f"{resource}/{event}"


def topic_enum(name: str) -> str:
    """orders/paid → ORDERS_PAID (the inverse of topic_name)."""
    return name.replace("/", "_").upper()


# The topics the simulator accepts for subscriptions (a subset of WebhookSubscriptionTopic).
TOPICS = frozenset(
    {
        "APP_UNINSTALLED",
        "CUSTOMERS_CREATE",
        "CUSTOMERS_DELETE",
        "CUSTOMERS_DISABLE",
        "CUSTOMERS_ENABLE",
        "CUSTOMERS_UPDATE",
        "ORDERS_CANCELLED",
        "ORDERS_CREATE",
        "ORDERS_DELETE",
        "ORDERS_EDITED",
        "ORDERS_FULFILLED",
        "ORDERS_PAID",
        "ORDERS_PARTIALLY_FULFILLED",
        "ORDERS_UPDATED",
        "REFUNDS_CREATE",
        "SHOP_UPDATE",
    }
)
