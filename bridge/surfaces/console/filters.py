"""Jinja filters: money, points, percentages and times as people read them (times in the shop's time zone on
its pages, UTC elsewhere, the zone always said)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from flask import Flask, g

from bridge.money import POINTS, format_amount
from bridge.reports import shop_timezone
from bridge.surfaces.console.wording import delivery_subject, message_purpose, readable
from bridge.surfaces.platforms import PLATFORMS


def money(minor: int | None, currency: str | None = None) -> str:
    if minor is None:
        return "—"
    return format_amount(int(minor), currency or g.shop.currency)


def points(value: int | None) -> str:
    return "—" if value is None else format_amount(int(value), POINTS)


def amount(value: int | None, currency: str) -> str:
    """Money or points, by the unit's code."""
    return points(value) if currency == POINTS else money(value, currency)


def percent_from_bp(bp: int | None) -> str:
    if bp is None:
        return "—"
    return f"{(Decimal(bp) / 100).normalize():f} %"


def rate(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


def page_zone() -> str:
    """The time zone of the shop the page is about (its `timezone` setting), UTC on pages about no shop. Read
    once per request: a page formats a time per row."""
    if "page_zone" not in g:
        shop = g.get("shop")
        g.page_zone = shop_timezone(shop.settings) if shop is not None else "UTC"
    return g.page_zone


def in_zone(moment: datetime, zone: str) -> datetime:
    """A stored moment (UTC, aware or naive) as the clock on the wall in `zone` shows it."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(ZoneInfo(zone))


def when(moment: datetime | None) -> str:
    return "—" if moment is None else in_zone(moment, page_zone()).strftime("%Y-%m-%d %H:%M %Z")


def day(value: date | datetime | None) -> str:
    return "—" if value is None else value.strftime("%Y-%m-%d")


def pretty_json(value) -> str:
    if isinstance(value, bytes):
        try:
            value = json.loads(value)
        except (ValueError, UnicodeDecodeError):
            return value.decode("utf-8", "replace")
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def kind_label(kind: str | None) -> str:
    return (kind or "").replace("_", " ")


def platform(name: str | None) -> str:
    known = PLATFORMS.get(name or "")
    return known.title if known else name or ""


def register(app: Flask) -> None:
    for name, function in {
        "money": money,
        "points": points,
        "amount": amount,
        "percent_bp": percent_from_bp,
        "rate": rate,
        "when": when,
        "day": day,
        "pretty_json": pretty_json,
        "kind_label": kind_label,
        "platform": platform,
        "in_zone": in_zone,
        "readable": readable,
        "message_purpose": message_purpose,
        "delivery_subject": delivery_subject,
    }.items():
        app.jinja_env.filters[name] = function
    app.jinja_env.globals["page_zone"] = page_zone
