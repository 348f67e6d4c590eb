"""Reports on a phone, and a manual credit that the Back button cannot record twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.browser.conftest import screenshot
from tests.browser.test_console_browser import sign_in
from tests.console_support import make_user, move

PHONE = {"width": 390, "height": 844}


def test_report_chart_labels_stay_readable_on_a_phone(page, services, shop):
    make_user(services, shop.shop.id)
    yesterday = datetime.now(UTC) - timedelta(days=1)
    move(services, shop.shop, "c1", "adjustment", 447_200, yesterday, "credit")
    move(services, shop.shop, "c1", "adjustment", -53_658, yesterday, "debit")
    page.set_viewport_size(PHONE)
    sign_in(page)
    page.goto(f"/shops/{shop.shop.id}/reports")
    labels = page.locator("#table-wallet svg text.label")
    assert labels.count() > 0
    heights = [labels.nth(i).bounding_box()["height"] for i in range(labels.count())]
    assert min(heights) >= 11, heights  # 12 px text, not a viewBox of 960 squeezed into 360 px (about 5 px)
    # The chart scrolls inside its card; the page itself keeps to the phone's width.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    empty = page.locator("#table-points .nothing")  # no points moved: said in words, on the screen
    assert empty.is_visible() and empty.bounding_box()["x"] + empty.bounding_box()["width"] <= PHONE["width"]
    screenshot(page, "reports-on-a-phone")
