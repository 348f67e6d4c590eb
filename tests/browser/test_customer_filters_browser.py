"""The customer list's filters and the exports page in a real browser."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from bridge.db import unit_of_work
from bridge.models import Account
from tests.browser.test_console_browser import sign_in
from tests.chromium import screenshot
from tests.console_support import make_user, move


def test_filtering_customers_then_downloading_the_journal(page, services, shop):
    s = shop.shop
    make_user(services, s.id)
    yesterday = datetime.now(UTC) - timedelta(days=1)
    move(services, s, "1", "adjustment", 1_000, yesterday, "a", name="Jürgen Müller", email="jm@example.de")
    move(services, s, "2", "adjustment", 500, yesterday, "b", name="Ida Locked", email="ida@example.com")
    move(services, s, "3", "adjustment", 100, yesterday, "c1", name="Zero Zed", email="zed@example.com")
    move(services, s, "3", "adjustment", -100, yesterday, "c2")
    with unit_of_work(services.sessions) as session:
        ida = update(Account).where(Account.code.like("wallet:%"), Account.balance == 500)
        session.execute(ida.values(locked=True))
    sign_in(page)
    page.click("nav.tabs a:has-text('Customers')")
    page.check("input[name=locked]")
    page.click("button:has-text('Search')")
    page.wait_for_selector("text=1 customer matching the filters")
    assert page.locator("table.table tbody tr").all_inner_texts()[0].startswith("Ida Locked")
    page.uncheck("input[name=locked]")
    page.check("input[name=balance]")
    page.fill("input[type=search]", "MÜLLER")
    page.click("button:has-text('Search')")
    page.wait_for_selector("text=1 customer matching “MÜLLER”")
    screenshot(page, "customers-filtered")

    page.click("nav.tabs a:has-text('Exports')")
    page.click("button:has-text('Show liability')")
    assert page.inner_text("[data-liability=EUR]") == "€15.00"
    with page.expect_download() as download:
        page.click("button:has-text('Journal CSV')")
    rows = list(csv.DictReader(io.StringIO(open(download.value.path(), encoding="utf-8-sig").read())))
    assert len(rows) == 8 and sum(float(r["debit"] or 0) for r in rows) == sum(float(r["credit"] or 0) for r in rows)
    screenshot(page, "exports")
