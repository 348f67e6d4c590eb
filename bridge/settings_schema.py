"""A shop's rules, validated by one schema shared by the API, the CLI and the merchant console."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate, validates_schema

from bridge.money import POINTS, is_currency

# Upper limits, far above any shop's use: what the rules compute from a setting (now plus its days, a bonus on a
# top-up, points times their worth) must stay a date and fit the ledger's 64-bit integers.
MAX_MONEY = 10**10  # minor units: 100,000,000.00 of a two-decimal currency
MAX_DAYS = 3650  # ten years
MAX_POINTS = 10**9
MAX_POINTS_PER_UNIT = 1000


class ReturnWindowSchema(Schema):
    """A loyalty tier: customers whose lifetime spend reaches the threshold may return goods for `days`."""

    class Meta:
        unknown = EXCLUDE

    tier = fields.String(required=True, validate=validate.Length(min=1, max=40))
    min_lifetime_spend = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=MAX_MONEY))
    days = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=MAX_DAYS))


@cache
def timezone_names() -> frozenset[str]:
    """The IANA names of this host's tz database, less `localtime` (whatever zone the host is set to). A
    PostgreSQL built on the system's tz database, as Debian's is, knows each of them in `timezone()`."""
    return frozenset(available_timezones()) - {"localtime"}


def _known_timezone(name: str) -> None:
    if name in timezone_names():
        try:
            ZoneInfo(name)
            return
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    raise ValidationError("Unknown time zone: enter an IANA name such as Europe/Paris or America/New_York.")


def _accepted_currency(code: str) -> None:
    if not (len(code) == 3 and code.isascii() and code.isupper() and code != POINTS and is_currency(code)):
        raise ValidationError(f"{code!r} is not an ISO 4217 currency code in capitals, such as USD.")


class ShopSettingsSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    wallet_payment_methods = fields.List(
        fields.String(validate=validate.Length(min=1, max=60)), load_default=lambda: ["wallet"]
    )
    partial_payments = fields.Boolean(load_default=True)
    wallet_discount_kind = fields.String(validate=validate.OneOf(["none", "percent", "fixed"]), load_default="none")
    wallet_discount_value = fields.Integer(validate=validate.Range(min=0, max=MAX_MONEY), load_default=0)  # bp or minor
    unpaid_order_status = fields.String(validate=validate.OneOf(["failed", "on-hold"]), load_default="failed")
    signup_bonus = fields.Integer(validate=validate.Range(min=0, max=MAX_MONEY), load_default=0)
    points_per_currency_unit = fields.Integer(validate=validate.Range(min=0, max=MAX_POINTS_PER_UNIT), load_default=0)
    # What earns points: the items, or the items and shipping; without tax either way.
    points_base = fields.String(validate=validate.OneOf(["items", "items_and_shipping"]), load_default="items")
    points_conversion_points = fields.Integer(validate=validate.Range(min=1, max=MAX_POINTS), load_default=100)
    points_conversion_value = fields.Integer(validate=validate.Range(min=0, max=MAX_MONEY), load_default=100)  # minor
    points_conversion_minimum = fields.Integer(validate=validate.Range(min=0, max=MAX_POINTS), load_default=0)
    points_auto_convert_threshold = fields.Integer(validate=validate.Range(min=0, max=MAX_POINTS), load_default=0)
    refund_destination = fields.String(
        validate=validate.OneOf(["wallet", "original", "customer_choice"]), load_default="wallet"
    )
    refund_wallet_bonus_bp = fields.Integer(validate=validate.Range(min=0, max=10_000), load_default=0)
    topup_minimum = fields.Integer(validate=validate.Range(min=0, max=MAX_MONEY), load_default=500)
    topup_maximum = fields.Integer(validate=validate.Range(min=0, max=MAX_MONEY), load_default=50_000)
    # Cashback on paid orders, as promotional credit: a percentage (basis points) or a fixed amount (minor units).
    cashback_kind = fields.String(validate=validate.OneOf(["none", "percent", "fixed"]), load_default="none")
    cashback_value = fields.Integer(validate=validate.Range(min=0, max=MAX_MONEY), load_default=0)
    cashback_minimum_order = fields.Integer(validate=validate.Range(min=0, max=MAX_MONEY), load_default=0)
    cashback_cap = fields.Integer(validate=validate.Range(min=0, max=MAX_MONEY), load_default=0)  # 0: no cap
    cashback_on = fields.String(validate=validate.OneOf(["paid", "completed"]), load_default="completed")
    # Withdrawals of deposited money: paid out at once, or held until the merchant approves them in the console.
    withdrawal_approval = fields.String(validate=validate.OneOf(["automatic", "manual"]), load_default="automatic")
    withdrawal_minimum = fields.Integer(validate=validate.Range(min=0, max=MAX_MONEY), load_default=0)  # minor
    withdrawal_maximum = fields.Integer(validate=validate.Range(min=0, max=MAX_MONEY), load_default=0)  # 0: no limit
    promotional_expiry_days = fields.Integer(validate=validate.Range(min=0, max=MAX_DAYS), load_default=0)
    # A failed order's wallet part goes back after this many days without news (0: never by itself).
    failed_order_release_days = fields.Integer(validate=validate.Range(min=0, max=MAX_DAYS), load_default=7)
    # Refunds to the card only within this many days of the order (0: the whole return window); after
    # that, within the window, to the wallet only.
    card_refund_days = fields.Integer(validate=validate.Range(min=0, max=MAX_DAYS), load_default=0)
    topup_bonus_bp = fields.Integer(validate=validate.Range(min=0, max=10_000), load_default=0)
    topup_bonus_threshold = fields.Integer(validate=validate.Range(min=0, max=MAX_MONEY), load_default=0)  # minor
    return_windows = fields.List(
        fields.Nested(ReturnWindowSchema),
        validate=validate.Length(max=10),
        load_default=lambda: [{"tier": "Standard", "min_lifetime_spend": 0, "days": 30}],
    )
    # Currencies accepted besides the shop's own: an order in any other moves nothing (bridge/currencies.py).
    extra_currencies = fields.List(
        fields.String(validate=_accepted_currency), validate=validate.Length(max=20), load_default=list
    )
    # Stored webhook bodies hold customers' names and addresses: those applied are emptied after this many days.
    webhook_body_retention_days = fields.Integer(validate=validate.Range(min=1, max=MAX_DAYS), load_default=30)
    # The shop's own days: reports and the console's overview count from midnight to midnight here.
    timezone = fields.String(validate=_known_timezone, load_default="UTC")
    tips_enabled = fields.Boolean(load_default=False)
    tip_presets_bp = fields.List(  # basis points: 1500 = 15 %
        fields.Integer(strict=True, validate=validate.Range(min=1, max=10_000)),
        validate=validate.Length(min=1, max=6),
        load_default=lambda: [1500, 2000, 2500],
    )

    @validates_schema
    def _check_together(self, data, **kwargs):
        """Rules that involve two settings; each error names the field a person would correct."""
        errors: dict[str, list[str]] = {}
        if data.get("topup_maximum", 1) and data.get("topup_minimum", 0) > data.get("topup_maximum", 0):
            errors["topup_maximum"] = ["Must be at least the top-up minimum."]
        if data.get("withdrawal_maximum", 0) and data.get("withdrawal_minimum", 0) > data.get("withdrawal_maximum", 0):
            errors["withdrawal_maximum"] = ["Must be at least the withdrawal minimum, or 0 for no limit."]
        if data.get("cashback_kind") == "percent" and data.get("cashback_value", 0) > 10_000:
            errors["cashback_value"] = ["A percent cashback is at most 100 %."]
        if data.get("wallet_discount_kind") == "percent" and data.get("wallet_discount_value", 0) > 10_000:
            errors["wallet_discount_value"] = ["A percent discount is at most 100 %."]
        presets = data.get("tip_presets_bp") or []
        if len(set(presets)) != len(presets):
            errors["tip_presets_bp"] = ["Each preset may appear once."]
        windows = data.get("return_windows") or []
        thresholds = [w["min_lifetime_spend"] for w in windows]
        if len(set(thresholds)) != len(thresholds):
            errors["return_windows"] = ["Two tiers have the same lifetime-spend threshold."]
        elif windows and min(thresholds) != 0:
            errors["return_windows"] = ["The lowest tier must start at 0, so that every customer has a window."]
        elif len({w["tier"].strip().lower() for w in windows}) != len(windows):
            errors["return_windows"] = ["Two tiers have the same name."]
        if errors:
            raise ValidationError(errors)

    @post_load
    def _order(self, data, **kwargs):
        if data.get("return_windows"):
            data["return_windows"] = sorted(data["return_windows"], key=lambda w: w["min_lifetime_spend"])
        return data


def default_settings() -> dict:
    return ShopSettingsSchema().load({})


LOADED_KEPT = 4096  # settings a process remembers by content; a save leaves the old content behind, so bounded
_loaded: dict[str, dict] = {}
_shop_settings: dict[str, ShopSettings] = {}


def load_settings(stored: dict | None) -> dict:
    """Stored settings over the defaults (a setting added later gets its default): the dict the console's
    forms edit and the shop stores. The rules read `ShopSettings` instead. Remembered by content: the same
    stored settings load the same, and a save (in any process) is new content, so never stale. Each caller
    gets its own copy to change."""
    loaded = _remembered(_loaded, stored, lambda: ShopSettingsSchema().load(stored or {}))
    return copy.deepcopy(loaded)


def _remembered(kept: dict, stored: dict | None, load):
    key = json.dumps(stored or {}, sort_keys=True)
    loaded = kept.get(key)
    if loaded is None:
        loaded = load()
        if len(kept) >= LOADED_KEPT:
            kept.clear()
        kept[key] = loaded
    return loaded


@dataclass(frozen=True)
class ReturnWindow:
    tier: str
    min_lifetime_spend: int  # minor units
    days: int


@dataclass(frozen=True)
class ShopSettings:
    """A shop's rules as the code reads them: built once from the stored dict by `ShopSettingsSchema` (checked,
    defaults filled in), then immutable. One attribute per schema field, with the same name and meaning."""

    wallet_payment_methods: tuple[str, ...]
    partial_payments: bool
    wallet_discount_kind: str  # none | percent | fixed
    wallet_discount_value: int  # basis points (percent) or minor units (fixed)
    unpaid_order_status: str  # failed | on-hold
    signup_bonus: int
    points_per_currency_unit: int
    points_base: str  # items | items_and_shipping
    points_conversion_points: int
    points_conversion_value: int  # minor units
    points_conversion_minimum: int
    points_auto_convert_threshold: int
    refund_destination: str  # wallet | original | customer_choice
    refund_wallet_bonus_bp: int
    topup_minimum: int
    topup_maximum: int
    cashback_kind: str  # none | percent | fixed
    cashback_value: int  # basis points (percent) or minor units (fixed)
    cashback_minimum_order: int
    cashback_cap: int  # 0: no cap
    cashback_on: str  # paid | completed
    withdrawal_approval: str  # automatic | manual
    withdrawal_minimum: int
    withdrawal_maximum: int  # 0: no limit
    promotional_expiry_days: int
    failed_order_release_days: int
    card_refund_days: int
    topup_bonus_bp: int
    topup_bonus_threshold: int
    return_windows: tuple[ReturnWindow, ...]  # by lifetime-spend threshold, the lowest first
    extra_currencies: tuple[str, ...]
    webhook_body_retention_days: int
    timezone: str
    tips_enabled: bool
    tip_presets_bp: tuple[int, ...]

    @classmethod
    def load(cls, stored: dict | None) -> ShopSettings:
        """The stored settings, validated, over the defaults; remembered by content like `load_settings` (the
        value is frozen, so every caller can share it)."""
        return _remembered(_shop_settings, stored, lambda: cls._build(load_settings(stored)))

    @classmethod
    def _build(cls, loaded: dict) -> ShopSettings:
        values = {field.name: loaded[field.name] for field in dataclass_fields(cls)}
        values = {name: tuple(value) if isinstance(value, list) else value for name, value in values.items()}
        values["return_windows"] = tuple(ReturnWindow(**window) for window in values["return_windows"])
        return cls(**values)
