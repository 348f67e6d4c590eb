"""Every console page fits a 390 px phone (a wide table scrolls inside its card, never the page), and an empty
shop's overview says so in words instead of drawing a flat line at 0. The reports page's screenshot in
docs/screenshots/ is made here, from fixed data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.browser.test_console_browser import sign_in
from tests.chromium import save_screenshot, screenshot
from tests.console_support import make_user, move

DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"  # kept in git
PHONE = {"width": 390, "height": 844}
PAGES = (
    "",
    "customers",
    "customers/c1",
    "reports",
    "exports",
    "withdrawals",
    "settings",
    "operations",
    "audit",
    "team",
)


def test_an_empty_shop_overview_explains_instead_of_a_flat_line(page, services, shop):
    make_user(services, shop.shop.id)
    sign_in(page)
    page.goto(f"/shops/{shop.shop.id}/")
    assert "No wallet money yet" in page.inner_text("#no-customers")
    assert page.locator(".chart-svg").count() == 0
    screenshot(page, "overview-empty")


def test_every_console_page_fits_a_phone(page, services, shop):
    make_user(services, shop.shop.id)
    yesterday = datetime.now(UTC) - timedelta(days=1)
    move(
        services,
        shop.shop,
        "c1",
        "adjustment",
        447_200,
        yesterday,
        "credit",
        name="Maximiliane Mustermann-Ober",
        email="maximiliane.mustermann-oberhausen@example.com",
        reason="Goodwill credit for a parcel lost twice",
    )
    move(services, shop.shop, "c1", "adjustment", -53_658, yesterday, "debit", order="100234")
    page.set_viewport_size(PHONE)
    sign_in(page)
    for path in PAGES:
        page.goto(f"/shops/{shop.shop.id}/{path}")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"/{path} is {width} px wide on a {PHONE['width']} px phone"
    page.goto(f"/shops/{shop.shop.id}/customers/c1")
    screenshot(page, "customer-on-a-phone")


def test_the_reports_page_screenshot_for_the_docs(page, services, shop):
    """docs/screenshots/reports.png, from fixed data: a shop's spring, month by month."""
    make_user(services, shop.shop.id)
    s = shop.shop
    for when, customer, kind, amount, key in [
        (datetime(2025, 3, 2, 9, 0, tzinfo=UTC), "1", "topup", 5_000, "t1"),
        (datetime(2025, 3, 5, 9, 0, tzinfo=UTC), "2", "promotion", 1_000, "b1"),
        (datetime(2025, 3, 20, 9, 0, tzinfo=UTC), "1", "payment", -3_250, "p1"),
        (datetime(2025, 4, 11, 9, 0, tzinfo=UTC), "3", "refund_to_wallet", 2_999, "r1"),
        (datetime(2025, 4, 18, 9, 0, tzinfo=UTC), "2", "adjustment", 1_500, "a1"),
        (datetime(2025, 5, 9, 9, 0, tzinfo=UTC), "3", "payment", -2_000, "p2"),
        (datetime(2025, 5, 30, 9, 0, tzinfo=UTC), "4", "topup", 10_000, "t2"),
        (datetime(2025, 6, 12, 9, 0, tzinfo=UTC), "4", "cashback", 250, "c1"),
        (datetime(2025, 6, 20, 9, 0, tzinfo=UTC), "4", "payment", -6_480, "p3"),
    ]:
        move(services, s, customer, kind, amount, when, key)
    sign_in(page)
    page.goto(f"/shops/{s.id}/reports?start=2025-03-01&end=2025-06-30&granularity=month")
    assert page.locator("#table-wallet svg").count() == 1
    save_screenshot(page, DOCS / "reports.png")
