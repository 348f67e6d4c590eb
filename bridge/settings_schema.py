"""A shop's rules, validated by one schema shared by the API, the CLI and the merchant console."""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields, validate


class ShopSettingsSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    wallet_payment_methods = fields.List(
        fields.String(validate=validate.Length(min=1, max=60)), load_default=lambda: ["wallet"]
    )
    partial_payments = fields.Boolean(load_default=True)
    wallet_discount_kind = fields.String(validate=validate.OneOf(["none", "percent", "fixed"]), load_default="none")
    wallet_discount_value = fields.Integer(validate=validate.Range(min=0), load_default=0)  # bp or minor units
    unpaid_order_status = fields.String(validate=validate.OneOf(["failed", "on-hold"]), load_default="failed")
    signup_bonus = fields.Integer(validate=validate.Range(min=0), load_default=0)
    points_per_currency_unit = fields.Integer(validate=validate.Range(min=0), load_default=0)
    points_conversion_points = fields.Integer(validate=validate.Range(min=1), load_default=100)
    points_conversion_value = fields.Integer(validate=validate.Range(min=0), load_default=100)  # minor units
    points_conversion_minimum = fields.Integer(validate=validate.Range(min=0), load_default=0)
    points_auto_convert_threshold = fields.Integer(validate=validate.Range(min=0), load_default=0)
    refund_destination = fields.String(
        validate=validate.OneOf(["wallet", "original", "customer_choice"]), load_default="wallet"
    )
    refund_wallet_bonus_bp = fields.Integer(validate=validate.Range(min=0, max=10_000), load_default=0)
    topup_minimum = fields.Integer(validate=validate.Range(min=0), load_default=500)
    topup_maximum = fields.Integer(validate=validate.Range(min=0), load_default=50_000)
    promotional_expiry_days = fields.Integer(validate=validate.Range(min=0), load_default=0)


def default_settings() -> dict:
    return ShopSettingsSchema().load({})


def load_settings(stored: dict | None) -> dict:
    """Stored settings over the defaults (a setting added later gets its default)."""
    return ShopSettingsSchema().load(stored or {})
