"""The merchant console in a real browser: first run, signing in, a setting, a wallet credit, a report."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, time, timedelta

from bridge.db import unit_of_work
from bridge.models import ShopOrder
from tests.chromium import screenshot
from tests.console_support import PASSWORD, make_user, move


def sign_in(page, email="ann@example.com", password=PASSWORD):
    page.goto("/")
    page.fill("#f-email", email)
    page.fill("#f-password", password)
    page.click("button:has-text('Sign in')")


def test_first_run_creates_the_shop_and_the_first_user(page):
    page.goto("/")
    assert page.url.endswith("/setup")
    page.fill("#f-shop_name", "Corner Shop")
    page.fill("#f-url", "https://corner.example")
    page.fill("#f-currency", "EUR")
    page.fill("#f-name", "Cora Owner")
    page.fill("#f-email", "cora@example.com")
    page.fill("#f-password", PASSWORD)
    page.fill("#f-password_confirm", PASSWORD)
    page.click("button:has-text('Create shop and account')")
    page.wait_for_selector("h1:has-text('Your shop is ready')")
    assert page.inner_text("#api-key").startswith("wb_")
    screenshot(page, "01-first-run-shop-created")
    page.click("a:has-text('Go to the shop')")
    page.wait_for_selector("h1:has-text('Corner Shop')")
    assert "not connected yet" in page.inner_text("main")
    screenshot(page, "02-overview")


def test_a_failed_sign_in_then_a_sign_in(page, services, shop):
    make_user(services, shop.shop.id)
    sign_in(page, password="not my password")
    error = page.wait_for_selector(".alert-error")
    assert error.inner_text() == "Wrong e-mail address or password."
    assert page.input_value("#f-email") == "ann@example.com" and page.input_value("#f-password") == ""
    screenshot(page, "03-sign-in-failed")
    page.fill("#f-password", PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_selector("h1:has-text('Alpha Shop')")
    assert page.url.endswith(f"/shops/{shop.shop.id}/")
    screenshot(page, "04-signed-in-overview")


def test_changing_a_setting_shows_its_audit_line(page, services, shop):
    make_user(services, shop.shop.id)
    sign_in(page)
    page.click("nav.tabs a:has-text('Settings')")
    funding = page.locator("section#funding")
    funding.locator("#f-topup_minimum").fill("ten euros")
    funding.locator("button:has-text('Save funding')").click()
    assert page.locator("#e-topup_minimum").inner_text() == "Enter an amount such as 12.50."
    page.locator("section#funding #f-topup_minimum").fill("12.50")
    page.locator("section#funding button:has-text('Save funding')").click()
    page.wait_for_selector(".flash-success:has-text('Funding: 1 change saved.')")
    line = page.locator("section#changes .audit-line").first
    assert re.search(r"ann@example\.com.*Top-up minimum.*5\.00 EUR.*12\.50 EUR", line.inner_text(), re.S)
    assert page.locator("section#funding #f-topup_minimum").input_value() == "12.50"
    page.locator("section#changes").scroll_into_view_if_needed()
    screenshot(page, "05-setting-changed-audit")


def test_crediting_a_wallet_shows_in_the_statement(page, services, shop):
    make_user(services, shop.shop.id)
    move(
        services,
        shop.shop,
        "42",
        "topup",
        5_000,
        datetime.now(UTC) - timedelta(days=2),
        "t1",
        email="cleo@example.com",
        name="Cleo Customer",
    )
    sign_in(page)
    page.click("nav.tabs a:has-text('Customers')")
    page.fill("input[name=q]", "cleo@")
    page.click("button:has-text('Search')")
    page.click("a:has-text('Cleo Customer')")
    page.check("input[value=credit]")
    page.fill("#f-amount", "25.00")
    page.fill("#f-reason", "Goodwill for a late parcel")
    # The same form is sent twice (a double click, a flaky network): first straight from the page's fields…
    form = page.locator("section#adjust form")
    fields = {
        name: form.locator(f"[name={name}]").first.input_value() for name in ("csrf_token", "token", "amount", "reason")
    }
    first = page.request.post(form.get_attribute("action"), form={**fields, "direction": "credit"}, max_redirects=0)
    assert first.status == 302
    # …then by the button: the money moves once.
    page.click("button:has-text('Record movement')")
    page.wait_for_selector(".flash-info:has-text('already been sent')")
    first_row = page.locator("table.statement tbody tr").first
    text = first_row.inner_text()
    assert "Goodwill for a late parcel" in text and "merchant" in text and "ann@example.com" in text
    assert "+€25.00" in text and "€75.00" in text
    assert page.inner_text("#balance") == "€75.00"
    assert page.locator("table.statement tbody tr").count() == 2
    screenshot(page, "06-wallet-credited-statement")


def test_the_report_draws_its_charts_and_downloads_csv(page, services, shop, monkeypatch):
    make_user(services, shop.shop.id)
    # A fixed afternoon, the report read that evening: each day's movements fall on that day, at any hour.
    now = datetime(2025, 6, 15, 15, tzinfo=UTC)
    monkeypatch.setattr("bridge.reports.utcnow", lambda: now.replace(hour=22))
    for n in range(12):
        when = now - timedelta(days=n * 2, hours=3)
        move(services, shop.shop, f"c{n % 3}", "topup", 2_000 + n * 150, when, f"t{n}")
        move(services, shop.shop, f"c{n % 3}", "payment", -(700 + n * 40), when + timedelta(hours=2), f"p{n}")
        if n % 4 == 0:
            move(services, shop.shop, f"c{n % 3}", "refund_to_wallet", 300, when + timedelta(hours=3), f"r{n}")
    with unit_of_work(services.sessions) as session:
        for n in range(10):
            session.add(
                ShopOrder(
                    shop_id=shop.shop.id,
                    external_id=str(900 + n),
                    currency="EUR",
                    status="processing",
                    total=1000,
                    payment_outcome="paid" if n % 2 else None,
                    created_at=datetime.combine(now.date() - timedelta(days=n), time(9), tzinfo=UTC),
                )
            )
    sign_in(page)
    page.click("nav.tabs a:has-text('Reports')")
    chart = page.locator("#table-wallet svg.chart-svg")
    chart.wait_for()
    assert chart.locator("rect.bar").count() >= 30  # credited and debited, each day
    assert page.locator("#table-liability polyline.line").count() == 1
    assert chart.bounding_box()["height"] > 150
    assert page.locator("text=Closes").count() >= 1
    screenshot(page, "07-report")
    with page.expect_download() as download_info:
        page.locator("#table-wallet a:has-text('Download CSV')").click()
    download = download_info.value
    assert download.suggested_filename.startswith("alpha-shop-wallet-")
    rows = list(csv.DictReader(io.StringIO(open(download.path(), encoding="utf-8-sig").read())))
    assert len(rows) == 30
    latest_day = (now - timedelta(hours=3)).date().isoformat()
    today = next(r for r in rows if r["period_start"] == latest_day)
    assert (today["deposits_amount"], today["deposits_count"]) == ("20.00", "1")
    assert (today["payments_net"], today["refunds_net"]) == ("-7.00", "3.00")
    assert (today["credited_amount"], today["debited_amount"]) == ("23.00", "7.00")  # the top-up and the refund
    assert sum(int(r["deposits_count"]) for r in rows) == 12  # a top-up every other day
