"""settings brought within the limits the console now enforces on every numeric setting: a value saved
before them (a bonus of 10^25, an expiry of a billion days) would otherwise fail every load of the shop's
settings; such values were never usable, so they are lowered to the limit

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# The limits of bridge/settings_schema.py when this was written (a migration must not follow later changes).
MONEY, DAYS, POINTS = 10**10, 3650, 10**9
LIMITS = {
    "wallet_discount_value": MONEY,
    "signup_bonus": MONEY,
    "points_conversion_value": MONEY,
    "topup_minimum": MONEY,
    "topup_maximum": MONEY,
    "topup_bonus_threshold": MONEY,
    "promotional_expiry_days": DAYS,
    "card_refund_days": DAYS,
    "points_conversion_points": POINTS,
    "points_conversion_minimum": POINTS,
    "points_auto_convert_threshold": POINTS,
    "points_per_currency_unit": 1000,
}
WINDOW_LIMITS = {"min_lifetime_spend": MONEY, "days": DAYS}

shops = sa.table("shops", sa.column("id", sa.Integer), sa.column("settings", sa.JSON))


def _within(values: dict, limits: dict) -> dict:
    return {
        key: min(value, limits[key]) if key in limits and isinstance(value, int) else value
        for key, value in values.items()
    }


def upgrade() -> None:
    connection = op.get_bind()
    for shop_id, settings in connection.execute(sa.select(shops.c.id, shops.c.settings)).all():
        lowered = _within(settings or {}, LIMITS)
        if isinstance(lowered.get("return_windows"), list):
            lowered["return_windows"] = [
                _within(window, WINDOW_LIMITS) if isinstance(window, dict) else window
                for window in lowered["return_windows"]
            ]
        if lowered != (settings or {}):
            connection.execute(shops.update().where(shops.c.id == shop_id).values(settings=lowered))


def downgrade() -> None:
    pass  # the values above the limits are gone for good; nothing depends on them
