"""Reports, the overview and statement filters count days in the shop's time zone (its `timezone` setting):
exactly, across DST changes and in half-hour zones, with the same figures on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import text

from bridge.db import unit_of_work
from bridge.models import Customer, Shop, ShopOrder
from bridge.reports import build_report, local_today, report_table, start_of
from bridge.surfaces.console.queries import statement_page
from tests.console_support import move, text_of
from tests.integration.test_api import auth

pytest_plugins = ("tests.console_fixtures",)  # fixtures: merchant, console

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)  # "now" of the reports built here: after every movement below


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def set_timezone(services, shop_model, name: str) -> None:
    with unit_of_work(services.sessions) as session:
        stored = session.get(Shop, shop_model.id)
        stored.settings = {**(stored.settings or {}), "timezone": name}


def deposits_by_day(services, shop_model, tz: str, start: date, end: date, *, session_zone: str | None = None):
    """Day → deposits of the report by day in `tz` (days without any left out)."""
    with unit_of_work(services.sessions) as session:
        if session_zone and session.get_bind().dialect.name == "postgresql":
            session.execute(text(f"SET LOCAL TIME ZONE '{session_zone}'"))  # must not matter
        report = build_report(session, shop_model.id, "EUR", start, end, "day", now=NOW, tz=tz)
    return {row[0]: row[1] for row in report_table(report, "wallet").rows if row[1]}, report


# The bounds of a day ------------------------------------------------------------------------------------


def test_a_day_starts_at_local_midnight_in_utc():
    assert start_of(date(2026, 3, 2), "UTC") == utc(2026, 3, 2)
    assert start_of(date(2026, 3, 2), "Europe/Paris") == utc(2026, 3, 1, 23)
    assert start_of(date(2026, 3, 2), "America/New_York") == utc(2026, 3, 2, 5)
    assert start_of(date(2026, 3, 2), "Asia/Kolkata") == utc(2026, 3, 1, 18, 30)
    assert start_of(date(2026, 3, 2), "Asia/Kathmandu") == utc(2026, 3, 1, 18, 15)


def test_dst_days_last_23_and_25_hours():
    def length(day: date, tz: str) -> timedelta:
        return start_of(day + timedelta(days=1), tz) - start_of(day, tz)

    assert length(date(2026, 3, 29), "Europe/Paris") == timedelta(hours=23)
    assert start_of(date(2026, 3, 30), "Europe/Paris") == utc(2026, 3, 29, 22)  # CEST from then on
    assert length(date(2026, 10, 25), "Europe/Paris") == timedelta(hours=25)
    assert length(date(2026, 3, 8), "America/New_York") == timedelta(hours=23)
    assert length(date(2026, 11, 1), "America/New_York") == timedelta(hours=25)
    # where the clocks jump at midnight, the day starts when they jump (Havana: 00:00 → 01:00, 8 March 2026)
    assert start_of(date(2026, 3, 8), "America/Havana") == utc(2026, 3, 8, 5)
    assert length(date(2026, 3, 8), "America/Havana") == timedelta(hours=23)


def test_today_is_the_date_in_the_zone():
    late = utc(2026, 3, 1, 23, 30)
    assert local_today("UTC", late) == date(2026, 3, 1)
    assert local_today("Europe/Paris", late) == date(2026, 3, 2)
    assert local_today("America/New_York", late) == date(2026, 3, 1)
    assert local_today("Asia/Kathmandu", utc(2026, 3, 1, 18, 15)) == date(2026, 3, 2)
    assert local_today("Asia/Kathmandu", utc(2026, 3, 1, 18, 14)) == date(2026, 3, 1)


# Grouping by local day, on either database ----------------------------------------------------------------


@pytest.fixture
def late_evening(services, shop):
    """A top-up at 23:30 UTC on 1 March and one at 18:45 UTC on 5 March; an order at 23:30 UTC on 1 March."""
    s = shop.shop
    move(services, s, "c1", "topup", 1_000, utc(2026, 3, 1, 23, 30), "late")
    move(services, s, "c1", "topup", 20_000, utc(2026, 3, 5, 18, 45), "kathmandu")
    with unit_of_work(services.sessions) as session:
        session.add(
            ShopOrder(
                shop_id=s.id,
                external_id="700",
                currency="EUR",
                status="processing",
                total=1000,
                payment_outcome="paid",
                created_at=utc(2026, 3, 1, 23, 30),
            )
        )
    return s


@pytest.mark.parametrize(
    "tz, late_day, kathmandu_day",
    [
        ("UTC", date(2026, 3, 1), date(2026, 3, 5)),
        ("Europe/Paris", date(2026, 3, 2), date(2026, 3, 5)),  # 00:30 on the 2nd there
        ("America/New_York", date(2026, 3, 1), date(2026, 3, 5)),  # 18:30 on the 1st there
        ("Asia/Kathmandu", date(2026, 3, 2), date(2026, 3, 6)),  # +05:45: 00:30 on the 6th there
        ("Asia/Kolkata", date(2026, 3, 2), date(2026, 3, 6)),  # +05:30: 00:15 on the 6th there
    ],
)
def test_movements_and_orders_count_on_the_local_day(services, late_evening, tz, late_day, kathmandu_day):
    days, report = deposits_by_day(
        services, late_evening, tz, date(2026, 2, 27), date(2026, 3, 8), session_zone="Pacific/Auckland"
    )
    assert days == {late_day: 1_000, kathmandu_day: 20_000}
    usage = {row[0]: row[1] for row in report_table(report, "usage").rows if row[1]}
    assert usage == {late_day: 1}
    assert report.timezone == tz


def test_half_hour_zones_are_told_apart(services, shop):
    """18:20 UTC is 00:05 the next day in Kathmandu (+05:45) but 23:50 the same day in Kolkata (+05:30)."""
    move(services, shop.shop, "c1", "topup", 500, utc(2026, 3, 7, 18, 20), "between")
    kathmandu, _ = deposits_by_day(services, shop.shop, "Asia/Kathmandu", date(2026, 3, 6), date(2026, 3, 9))
    kolkata, _ = deposits_by_day(services, shop.shop, "Asia/Kolkata", date(2026, 3, 6), date(2026, 3, 9))
    assert (kathmandu, kolkata) == ({date(2026, 3, 8): 500}, {date(2026, 3, 7): 500})


@pytest.fixture
def dst_changes(services, shop):
    """Around Paris's two DST changes of 2026: 29 March (23 hours) and 25 October (25 hours)."""
    s = shop.shop
    for amount, moment in [
        (1, utc(2026, 3, 28, 22, 59)),  # 23:59 CET, 28 March
        (10, utc(2026, 3, 28, 23, 0)),  # 00:00 CET, 29 March
        (100, utc(2026, 3, 29, 21, 59)),  # 23:59 CEST, 29 March (a fixed +01:00 would say 22:59 the same day)
        (1_000, utc(2026, 3, 29, 22, 0)),  # 00:00 CEST, 30 March (a fixed +01:00 would say 23:00 on the 29th)
        (10_000, utc(2026, 10, 24, 21, 59)),  # 23:59 CEST, 24 October
        (100_000, utc(2026, 10, 25, 22, 30)),  # 23:30 CET, 25 October (a fixed +02:00 would say the 26th)
        (1_000_000, utc(2026, 10, 25, 23, 0)),  # 00:00 CET, 26 October
    ]:
        move(services, s, "c1", "topup", amount, moment, f"dst-{amount}")
    return s


def test_a_dst_change_day_buckets_its_transactions_right(services, dst_changes):
    march, _ = deposits_by_day(services, dst_changes, "Europe/Paris", date(2026, 3, 27), date(2026, 3, 31))
    assert march == {date(2026, 3, 28): 1, date(2026, 3, 29): 110, date(2026, 3, 30): 1_000}
    october, _ = deposits_by_day(services, dst_changes, "Europe/Paris", date(2026, 10, 23), date(2026, 10, 27))
    assert october == {date(2026, 10, 24): 10_000, date(2026, 10, 25): 100_000, date(2026, 10, 26): 1_000_000}


def test_a_period_is_bounded_by_local_midnights(services, dst_changes):
    """A report of 29 March alone in Paris: only that day's movements, and balances at its two midnights."""
    days, report = deposits_by_day(services, dst_changes, "Europe/Paris", date(2026, 3, 29), date(2026, 3, 29))
    assert days == {date(2026, 3, 29): 110}
    assert (report.money.opening, report.money.closing, report.money.closes) == (1, 111, True)
    assert report_table(report, "liability").rows == [[date(2026, 3, 29), 111, 0]]
    utc_days, utc_report = deposits_by_day(services, dst_changes, "UTC", date(2026, 3, 29), date(2026, 3, 29))
    assert utc_days == {date(2026, 3, 29): 1_100} and utc_report.money.opening == 11


def test_weeks_and_months_fold_local_days(services, late_evening):
    """A top-up at 23:30 UTC on 28 February is in March for a Paris shop's monthly report."""
    move(services, late_evening, "c1", "topup", 3, utc(2026, 2, 28, 23, 30), "month-edge")  # 1 March in Paris
    with unit_of_work(services.sessions) as session:
        paris = build_report(
            session, late_evening.id, "EUR", date(2026, 2, 1), date(2026, 3, 31), "month", now=NOW, tz="Europe/Paris"
        )
        plain = build_report(
            session, late_evening.id, "EUR", date(2026, 2, 1), date(2026, 3, 31), "month", now=NOW, tz="UTC"
        )
    assert [row[1] for row in report_table(paris, "wallet").rows] == [0, 21_003]
    assert [row[1] for row in report_table(plain, "wallet").rows] == [3, 21_000]


def test_the_statement_filter_uses_the_shops_days(services, late_evening):
    def lines(tz: str) -> list[int]:
        set_timezone(services, late_evening, tz)
        with unit_of_work(services.sessions) as session:
            shop_model = session.get(Shop, late_evening.id)
            customer = session.query(Customer).filter_by(shop_id=late_evening.id, external_id="c1").one()
            found, _ = statement_page(session, shop_model, customer, start=date(2026, 3, 2), end=date(2026, 3, 2))
        return [line.amount for line in found]

    assert lines("UTC") == []
    assert lines("Europe/Paris") == [1_000]
    assert lines("America/New_York") == []


# The console ------------------------------------------------------------------------------------------------


@pytest.fixture
def clock(monkeypatch):
    """The reports' "now": 23:30 UTC on 1 March 2026 (already 2 March in Paris)."""
    now = utc(2026, 3, 1, 23, 30)
    monkeypatch.setattr("bridge.reports.utcnow", lambda: now)
    return now


@pytest.mark.parametrize(
    "tz, today", [("UTC", "2026-03-01"), ("Europe/Paris", "2026-03-02"), ("America/New_York", "2026-03-01")]
)
def test_today_and_the_default_period_follow_the_shops_zone(console, services, shop, clock, tz, today):
    set_timezone(services, shop.shop, tz)
    page = text_of(console.get(f"/shops/{shop.shop.id}/reports"))
    first = (date.fromisoformat(today) - timedelta(days=29)).isoformat()
    assert f"{first} to {today} · by day · days in {tz}" in page
    assert f"start={(date.fromisoformat(today) - timedelta(days=6)).isoformat()}&amp;end={today}" in page  # preset
    tomorrow_there = {"start": "2026-03-02", "end": "2026-03-02"}
    response = console.get(f"/shops/{shop.shop.id}/reports", query_string=tomorrow_there)
    if today == "2026-03-02":
        assert response.status_code == 200
    else:
        assert response.status_code == 422
        assert 'id="e-start">Must not be in the future.' in text_of(response)


def test_csv_rows_carry_local_dates(console, services, shop):
    move(services, shop.shop, "c1", "topup", 1_000, utc(2026, 3, 1, 23, 30), "late")
    set_timezone(services, shop.shop, "Europe/Paris")
    response = console.get(
        f"/shops/{shop.shop.id}/reports/wallet.csv", query_string={"start": "2026-03-01", "end": "2026-03-02"}
    )
    rows = list(csv.DictReader(io.StringIO(text_of(response).removeprefix("\ufeff"))))
    assert [(r["period_start"], r["deposits_amount"]) for r in rows] == [
        ("2026-03-01", "0.00"),
        ("2026-03-02", "10.00"),
    ]


def test_the_overview_counts_the_shops_last_30_days(console, services, shop, clock):
    """Its 30 days end today in the shop's zone: in Paris (today 2 March) they start at 23:00 UTC on 31 January,
    so a top-up at noon UTC that day is in a UTC shop's 30 days but not in a Paris shop's."""
    move(services, shop.shop, "c1", "topup", 11_111, utc(2026, 1, 31, 12), "edge")
    move(services, shop.shop, "c1", "topup", 2_222, utc(2026, 2, 15, 12), "inside")

    def deposits() -> str:
        page = text_of(console.get(f"/shops/{shop.shop.id}/"))
        return re.search(r'Deposits, 30 days</span><span class="stat-value">([^<]*)<', page).group(1)

    assert deposits() == "€133.33"
    set_timezone(services, shop.shop, "Europe/Paris")
    assert deposits() == "€22.22"


# Times shown ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "shown"),
    [
        ("UTC", "2026-03-01 23:30 UTC"),
        ("Europe/Paris", "2026-03-02 00:30 CET"),
        ("Asia/Kathmandu", "2026-03-02 05:15 +0545"),
    ],
)
def test_the_console_shows_times_on_the_shops_clock_and_says_whose(console, services, shop, tz, shown):
    set_timezone(services, shop.shop, tz)
    move(services, shop.shop, "42", "adjustment", 1_000, utc(2026, 3, 1, 23, 30), "late")

    page = text_of(console.get(f"/shops/{shop.shop.id}/customers/42"))

    assert shown in page and f"times in {tz}" in page


def test_the_customers_statement_shows_times_on_the_shops_clock(client, services, shop):
    set_timezone(services, shop.shop, "America/New_York")
    move(services, shop.shop, "42", "adjustment", 1_000, utc(2026, 3, 1, 3, 15), "night")
    link = client.post("/api/v1/customers/42/statement-link", headers=auth(shop)).get_json()["url"]

    page = client.get(link.split("https://bridge.example.test", 1)[1]).get_data(as_text=True)

    assert "28 Feb 2026 <small>22:15 EST</small>" in page
