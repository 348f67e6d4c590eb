"""First run in a browser when shops were made before the console's first user (`shop create`, the demo)."""

from __future__ import annotations

from tests.chromium import screenshot
from tests.console_support import PASSWORD


def test_the_first_user_takes_over_the_shops_already_made(page, shop, other_shop):
    page.goto("/")
    assert page.url.endswith("/setup")
    assert page.locator("#f-shop_name").count() == 0
    assert page.locator("input[name=take_over]:checked").count() == 2
    page.fill("#f-name", "Cora Owner")
    page.fill("#f-email", "cora@example.com")
    page.fill("#f-password", PASSWORD)
    page.fill("#f-password_confirm", PASSWORD)
    page.uncheck(f"input[name=take_over][value='{other_shop.shop.id}']")
    screenshot(page, "08-first-run-take-over")
    page.click("button:has-text('Create account and manage these shops')")
    page.wait_for_selector("h1:has-text('Alpha Shop')")
    assert "You manage 1 shop." in page.inner_text(".flashes")
