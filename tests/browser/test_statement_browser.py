"""The customer's statement page in a real browser, at a desktop's width and a phone's (390 px): styled (the
page's Content-Security-Policy refuses inline styles, so only its stylesheet can), readable, and the page an
expired link shows. The two screenshots in docs/screenshots/ are made here, from fixed data."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge.statement_links import make_statement_token
from tests.chromium import save_screenshot
from tests.console_support import move

DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"  # kept in git
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def statement_url(services, shop):
    """A customer's year: fixed dates and amounts, so the screenshots come out the same on every run."""
    s = shop.shop
    for when, kind, amount, key, reason, order in [
        (datetime(2025, 3, 2, 9, 14, tzinfo=UTC), "promotion", 1_000, "bonus", "Welcome bonus", None),
        (datetime(2025, 3, 9, 18, 40, tzinfo=UTC), "topup", 5_000, "t1", "Top-up", "1038"),
        (datetime(2025, 4, 21, 12, 5, tzinfo=UTC), "payment", -3_250, "p1", "Paid with your wallet", "1042"),
        (datetime(2025, 5, 3, 16, 30, tzinfo=UTC), "refund_to_wallet", 1_299, "r1", "Refund to your wallet", "1042"),
        (datetime(2025, 6, 14, 10, 0, tzinfo=UTC), "adjustment", 500, "a1", "Goodwill for a late parcel", None),
    ]:
        move(services, s, "42", kind, amount, when, key, email="cleo@example.com", reason=reason, order=order)
    return f"/statement/{make_statement_token(services.settings.secret_key, s.id, '42')}"


def test_the_statement_is_styled_and_reads_well_on_a_desktop(page, statement_url):
    response = page.goto(statement_url)
    assert response.status == 200
    # The stylesheet applied (the console's fixture also fails the test on any CSP refusal in the console).
    assert page.eval_on_selector("body", "e => getComputedStyle(e).backgroundColor") == "rgb(246, 247, 249)"
    assert page.locator("table.movements thead").is_visible()
    assert page.inner_text("#balance") == "€45.49"
    amounts = page.locator("td.amount").all_inner_texts()
    assert amounts == ["+€5.00", "+€12.99", "-€32.50", "+€50.00", "+€10.00"]  # newest first
    save_screenshot(page, DOCS / "statement-desktop.png")


def test_the_statement_reads_well_on_a_phone(page, statement_url):
    page.set_viewport_size(PHONE)
    page.goto(statement_url)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # nothing runs off the side
    line_height = page.eval_on_selector("td.when", "e => parseFloat(getComputedStyle(e).lineHeight)")
    for box in (cell.bounding_box() for cell in page.locator("td.when").all()):
        assert box["height"] < 2 * line_height  # a date and time on one line, never a word per line
    amount, date = page.locator("td.amount").first.bounding_box(), page.locator("td.when").first.bounding_box()
    assert amount["x"] > date["x"] + date["width"]  # the amount beside the date, at the right
    save_screenshot(page, DOCS / "statement-phone.png")


def test_an_expired_link_shows_a_page_not_json(page, statement_url):
    page.set_viewport_size(PHONE)
    response = page.goto(statement_url[:-4] + "AAAA")
    assert response.status == 404 and response.headers["content-type"].startswith("text/html")
    assert page.inner_text("h1") == "This link has expired"
    assert "ask the shop to send you one" in page.inner_text("main")
    assert page.eval_on_selector(".notice", "e => getComputedStyle(e).backgroundColor") == "rgb(255, 255, 255)"
