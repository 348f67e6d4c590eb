"""The merchant copies a customer's statement link from the customer page (a static script: the CSP allows no
inline one), and the link opens that customer's wallet."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.browser.test_console_browser import sign_in
from tests.chromium import screenshot
from tests.console_support import make_user, move


def test_the_merchant_copies_the_customers_statement_link(page, services, shop, base_url):
    s = shop.shop
    make_user(services, s.id)
    move(services, s, "7", "adjustment", 1_250, datetime.now(UTC), "a", name="Lea Link", email="lea@example.com")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url)
    sign_in(page)
    page.goto(f"/shops/{s.id}/customers/7")
    page.click("button:has-text('Copy link')")
    page.wait_for_selector("button:has-text('Copied')")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == page.input_value("#statement-link-url")
    assert copied.startswith(f"{services.settings.public_url}/statement/")
    screenshot(page, "customer-statement-link")

    page.goto(copied.replace(services.settings.public_url, base_url))
    assert "€12.50" in page.inner_text("body")
