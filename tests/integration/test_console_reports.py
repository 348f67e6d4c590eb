"""Reports: figures per day, week and month; liability over time; a reconciliation that closes; charts and CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import func, select, text

from bridge.accounts import SystemAccount, ensure_customer, system_account, wallet_account
from bridge.db import unit_of_work
from bridge.ledger import Leg, post_transaction
from bridge.models import Entry, ShopOrder
from bridge.reports import balance_at, build_report, daily_movements, make_buckets, report_table, start_of
from tests.console_support import move, posted_at, text_of

pytest_plugins = ("tests.console_fixtures",)  # fixtures: merchant, console

TODAY = datetime.now(UTC).date()
A = TODAY - timedelta(days=30)  # the history starts here
START, END = A + timedelta(days=2), A + timedelta(days=12)


def at(day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=UTC)


@pytest.fixture
def history(services, shop):
    """Before the period: a 100.00 top-up. In it: top-ups 70.00, a payment 30.00, a refund 10.00, an expiry
    5.00, a merchant debit 2.00, 120 points. After it: a payment 40.00. Orders: 4 in the period, 2 by wallet."""
    s = shop.shop
    move(services, s, "c1", "topup", 10_000, at(A), "t0")
    move(services, s, "c1", "topup", 5_000, at(A + timedelta(days=3), 9), "t1")
    move(services, s, "c2", "topup", 2_000, at(A + timedelta(days=3), 10), "t2")
    move(services, s, "c1", "payment", -3_000, at(A + timedelta(days=3), 11), "p1")
    move(services, s, "c2", "refund_to_wallet", 1_000, at(A + timedelta(days=4)), "r1")
    move(services, s, "c2", "expiry", -500, at(A + timedelta(days=4), 23), "e1")
    move(services, s, "c1", "adjustment", -200, at(A + timedelta(days=10)), "a1")
    move(services, s, "c1", "points_earned", 120, at(A + timedelta(days=10)), "pts1")
    move(services, s, "c1", "payment", -4_000, at(A + timedelta(days=15)), "p2")
    with unit_of_work(services.sessions) as session:
        for n, (day, outcome) in enumerate([(3, "paid"), (3, None), (4, "partial"), (11, "unpaid"), (20, "paid")]):
            session.add(
                ShopOrder(
                    shop_id=s.id,
                    external_id=str(500 + n),
                    currency="EUR",
                    status="processing",
                    total=1000,
                    payment_outcome=outcome,
                    created_at=at(A + timedelta(days=day)),
                )
            )
    return s


def report(services, shop_model, granularity="day", start=START, end=END):
    with unit_of_work(services.sessions) as session:
        return build_report(session, shop_model.id, "EUR", start, end, granularity)


def row_for(table, day: date) -> list:
    return next(row for row in table.rows if row[0] == day)


def test_daily_figures_per_kind(services, history):
    wallet = report_table(report(services, history), "wallet")
    assert [c.name for c in wallet.columns] == [
        "period_start",
        "credited_amount",
        "credited_count",
        "debited_amount",
        "debited_count",
        "deposits_amount",
        "deposits_count",
        "topups_net",
        "payments_net",
        "refunds_net",
        "adjustments_net",
        "bonuses_net",
        "conversions_net",
        "withdrawals_net",
        "expiries_net",
        "points_net",
    ]
    assert len(wallet.rows) == 11
    day3, day4, day10 = (row_for(wallet, A + timedelta(days=n)) for n in (3, 4, 10))
    assert day3 == [A + timedelta(days=3), 7_000, 2, 3_000, 1, 7_000, 2, 7_000, -3_000, 0, 0, 0, 0, 0, 0, 0]
    assert day4 == [A + timedelta(days=4), 1_000, 1, 500, 1, 0, 0, 0, 0, 1_000, 0, 0, 0, 0, -500, 0]
    assert day10[1:5] == [0, 0, 200, 1] and day10[10] == -200  # the merchant's debit is money debited too
    points = report_table(report(services, history), "points")
    assert row_for(points, A + timedelta(days=10))[1:] == [120, 0, 120, 0, 0]


def test_reconciliation_closes_per_source(services, history):
    money = report(services, history).money
    assert money.opening == 10_000
    assert {(line.kind, line.credits, line.debits) for line in money.lines} == {
        ("topup", 7_000, 0),
        ("refund_to_wallet", 1_000, 0),
        ("payment", 0, 3_000),
        ("adjustment", 0, 200),
    }
    assert money.expiries == 500
    assert money.closing == 10_000 + 8_000 - 3_200 - 500 == 14_300
    assert money.closes and money.difference == 0
    points = report(services, history).points
    assert (points.opening, points.closing, points.closes) == (0, 120, True)


def test_liability_over_time(services, history):
    liability = report_table(report(services, history), "liability")
    by_end = {row[0]: row[1] for row in liability.rows}
    assert by_end[START] == 10_000
    assert by_end[A + timedelta(days=3)] == 14_000
    assert by_end[A + timedelta(days=4)] == 14_500
    assert by_end[END] == 14_300


def test_weeks_and_months_fold_the_same_days(services, history):
    daily, weekly, monthly = (report(services, history, g) for g in ("day", "week", "month"))
    for folded in (weekly, monthly):
        assert folded.money.closing == daily.money.closing and folded.money.closes
        assert sum(row[1] for row in report_table(folded, "wallet").rows) == 8_000  # top-ups and the refund
        assert sum(row[3] for row in report_table(folded, "wallet").rows) == 3_700  # payment, expiry, merchant
        assert sum(row[5] for row in report_table(folded, "wallet").rows) == 7_000
    weeks = [b.bucket for b in weekly.buckets]
    assert weeks[0].start == START and all(b.start.weekday() == 0 for b in weeks[1:])
    assert weeks[-1].end == END and sum(len(b.days) for b in weeks) == 11
    assert report_table(weekly, "liability").rows[-1][1] == 14_300


def test_buckets_cut_to_the_period():
    months = make_buckets(date(2025, 1, 15), date(2025, 3, 3), "month")
    assert [(b.start, b.end) for b in months] == [
        (date(2025, 1, 15), date(2025, 1, 31)),
        (date(2025, 2, 1), date(2025, 2, 28)),
        (date(2025, 3, 1), date(2025, 3, 3)),
    ]
    weeks = make_buckets(date(2025, 12, 31), date(2026, 1, 12), "week")
    assert [(b.start, b.end) for b in weeks] == [
        (date(2025, 12, 31), date(2026, 1, 4)),
        (date(2026, 1, 5), date(2026, 1, 11)),
        (date(2026, 1, 12), date(2026, 1, 12)),
    ]


def test_usage_rate_counts_orders_paid_wholly_or_partly_by_wallet(services, history):
    result = report(services, history)
    assert (result.total_orders, result.total_wallet_orders) == (4, 2)
    usage = report_table(result, "usage")
    assert row_for(usage, A + timedelta(days=3))[1:] == [2, 1, 0.5]
    assert row_for(usage, A + timedelta(days=5))[1:] == [0, 0, None]


def test_deposits_count_what_customers_paid_not_the_top_up_bonus(services, shop):
    with unit_of_work(services.sessions) as session, posted_at(at(TODAY - timedelta(days=1))):
        customer = ensure_customer(session, shop.shop.id, "c9")
        legs = [
            Leg(wallet_account(session, customer, "EUR"), 11_000),
            Leg(system_account(session, shop.shop.id, SystemAccount.TOPUPS_RECEIVED, "EUR"), -10_000),
            Leg(system_account(session, shop.shop.id, SystemAccount.PROMOTIONS, "EUR"), -1_000),
        ]
        post_transaction(
            session,
            shop_id=shop.shop.id,
            kind="topup",
            reason="top-up with bonus",
            legs=legs,
            idempotency_key="bonus-topup",
        )
    result = report(services, shop.shop, start=TODAY - timedelta(days=3), end=TODAY)
    assert sum(row[5] for row in report_table(result, "wallet").rows) == 10_000
    assert [(line.kind, line.credits) for line in result.money.lines] == [("topup", 11_000)]
    assert result.money.closing == 11_000 and result.money.closes


def test_balance_at_reads_either_side_of_history_with_the_same_answer(services, history):
    with unit_of_work(services.sessions) as session:
        for day in (A, A + timedelta(days=1), A + timedelta(days=4), A + timedelta(days=14), A + timedelta(days=29)):
            moment = start_of(day, "UTC")
            expected = session.scalar(
                select(func.coalesce(func.sum(Entry.amount), 0)).where(
                    Entry.shop_id == history.id,
                    Entry.balance_after.is_not(None),
                    Entry.currency == "EUR",
                    Entry.created_at < moment,
                )
            )
            assert balance_at(session, history.id, "EUR", moment) == expected
            # from the old side (a "now" far in the future) and from the new side (now): the same figure
            far = datetime.now(UTC) + timedelta(days=3650)
            assert balance_at(session, history.id, "EUR", moment, now=far) == expected


def test_another_shops_history_stays_out(services, history, other_shop):
    move(services, other_shop.shop, "c1", "topup", 99_900, at(A + timedelta(days=3)), "x1")
    result = report(services, history)
    assert result.money.closing == 14_300 and row_for(report_table(result, "wallet"), A + timedelta(days=3))[1] == 7_000


def test_the_report_query_is_a_range_scan_on_the_ledger_index(services, history):
    with unit_of_work(services.sessions) as session:
        if session.get_bind().dialect.name != "sqlite":
            pytest.skip("plans on PostgreSQL depend on table sizes: see bench/reports.py")
        captured = []
        from sqlalchemy import event

        def capture(conn, cursor, statement, parameters, context, executemany):
            captured.append((statement, parameters))

        event.listen(session.get_bind(), "before_cursor_execute", capture)
        try:
            daily_movements(session, history.id, "EUR", start_of(START, "UTC"), start_of(END, "UTC"))
        finally:
            event.remove(session.get_bind(), "before_cursor_execute", capture)
        statement, parameters = captured[-1]
        plan = " ".join(
            str(row[-1]) for row in session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        )
    assert "ix_ledger_transactions_shop" in plan and "SCAN ledger_transactions" not in plan
    assert "ix_entries_transaction_id" in plan, plan


# Pages and CSV ------------------------------------------------------------------------------------------------


def period(granularity="day"):
    return {"start": START.isoformat(), "end": END.isoformat(), "granularity": granularity}


def test_report_page_shows_tables_charts_and_a_closing_reconciliation(console, shop, history):
    response = console.get(f"/shops/{shop.shop.id}/reports", query_string=period())
    page = text_of(response)
    assert response.status_code == 200
    assert page.count('<svg class="chart-svg ') == 5
    assert '<rect class="bar s0"' in page and '<polyline class="line s0"' in page
    assert "Owed at the start" in page and "€100.00" in page and "€143.00" in page
    assert ">Closes<" in page and "✓" in page
    for name in ("wallet", "points", "usage", "liability", "reconciliation"):
        assert f"/reports/{name}.csv?" in page


def test_report_defaults_to_the_last_30_days(console, shop, monkeypatch):
    # The shop's clock is pinned: a run crossing midnight would otherwise compare two different days.
    monkeypatch.setattr("bridge.reports.utcnow", lambda: datetime(2025, 6, 15, 23, 59, 59, tzinfo=UTC))
    page = text_of(console.get(f"/shops/{shop.shop.id}/reports"))
    assert "2025-05-17 to 2025-06-15" in page


@pytest.mark.parametrize(
    "query, field, message",
    [
        ({"start": "2025-02-30", "end": "2025-03-01"}, "start", "Enter a date as YYYY-MM-DD."),
        ({"start": "2025-03-02", "end": "2025-03-01"}, "end", "Must not be before the start."),
        (
            {"start": (TODAY - timedelta(days=400)).isoformat(), "end": TODAY.isoformat()},
            "granularity",
            "Choose week or month",
        ),
        (
            {"start": TODAY.isoformat(), "end": TODAY.isoformat(), "granularity": "hour"},
            "granularity",
            "Must be one of",
        ),
        (
            {"start": (TODAY + timedelta(days=2)).isoformat(), "end": (TODAY + timedelta(days=3)).isoformat()},
            "start",
            "Must not be in the future.",
        ),
    ],
)
def test_a_bad_period_is_said_next_to_its_field(console, shop, query, field, message):
    response = console.get(f"/shops/{shop.shop.id}/reports", query_string=query)
    assert response.status_code == 422
    assert f'id="e-{field}">{message}' in text_of(response)
    assert console.get(f"/shops/{shop.shop.id}/reports/wallet.csv", query_string=query).status_code == 422


def csv_rows(response) -> list[dict]:
    assert response.mimetype == "text/csv"
    assert "attachment;" in response.headers["Content-Disposition"]
    return list(csv.DictReader(io.StringIO(text_of(response).removeprefix("\ufeff"))))


def test_wallet_csv_has_one_row_per_day_with_decimal_amounts(console, shop, history):
    rows = csv_rows(console.get(f"/shops/{shop.shop.id}/reports/wallet.csv", query_string=period()))
    assert len(rows) == 11
    day = next(r for r in rows if r["period_start"] == (A + timedelta(days=3)).isoformat())
    assert day == {
        "period_start": (A + timedelta(days=3)).isoformat(),
        "credited_amount": "70.00",
        "credited_count": "2",
        "debited_amount": "30.00",
        "debited_count": "1",
        "deposits_amount": "70.00",
        "deposits_count": "2",
        "topups_net": "70.00",
        "payments_net": "-30.00",
        "refunds_net": "0.00",
        "adjustments_net": "0.00",
        "bonuses_net": "0.00",
        "conversions_net": "0.00",
        "withdrawals_net": "0.00",
        "expiries_net": "0.00",
        "points_net": "0.00",
    }


def test_reconciliation_csv_closes(console, shop, history):
    rows = csv_rows(console.get(f"/shops/{shop.shop.id}/reports/reconciliation.csv", query_string=period("week")))
    money = {r["line"]: r for r in rows if r["unit"] == "EUR"}
    assert money["opening balance"]["balance"] == "100.00"
    assert money["topup"]["credits"] == "70.00" and money["payment"]["debits"] == "30.00"
    assert money["expiry"]["debits"] == "5.00"
    assert money["closing balance"]["balance"] == "143.00" and money["difference"]["balance"] == "0.00"
    points = {r["line"]: r for r in rows if r["unit"] == "PTS"}
    assert points["points_earned"]["credits"] == "120" and points["closing balance"]["balance"] == "120"


def test_liability_and_usage_csv(console, shop, history):
    liability = csv_rows(console.get(f"/shops/{shop.shop.id}/reports/liability.csv", query_string=period("month")))
    assert liability[-1]["period_end"] == END.isoformat() and liability[-1]["liability"] == "143.00"
    usage = csv_rows(console.get(f"/shops/{shop.shop.id}/reports/usage.csv", query_string=period("month")))
    assert sum(int(r["orders"]) for r in usage) == 4 and sum(int(r["wallet_orders"]) for r in usage) == 2


def test_unknown_csv_table_is_a_404(console, shop):
    assert console.get(f"/shops/{shop.shop.id}/reports/passwords.csv").status_code == 404


def test_overview_shows_what_is_owed(console, shop, history):
    page = text_of(console.get(f"/shops/{shop.shop.id}/"))
    assert "Owed to customers" in page and "€103.00" in page and '<svg class="chart-svg ' in page


def test_sqlite_and_postgresql_group_by_utc_day(services, shop):
    """A movement at 23:00 UTC counts on its UTC day whatever the database session's time zone."""
    move(services, shop.shop, "c1", "topup", 1_000, at(TODAY - timedelta(days=2), 23), "late")
    with unit_of_work(services.sessions) as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SET LOCAL TIME ZONE 'Pacific/Auckland'"))  # already the next day there
        result = build_report(session, shop.shop.id, "EUR", TODAY - timedelta(days=3), TODAY, "day")
    assert row_for(report_table(result, "wallet"), TODAY - timedelta(days=2))[1] == 1_000
