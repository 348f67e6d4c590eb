"""Cashback settings in a real browser (a decimal comma, every error at once), then an order completed in the
shop shows its cashback on the customer's page."""

from __future__ import annotations

from playwright.sync_api import expect

from bridge.db import unit_of_work
from bridge.models import Shop
from tests.browser.test_console_browser import sign_in
from tests.chromium import screenshot
from tests.console_support import make_user
from tests.integration.test_points_base import TAXED_CARD_ORDER
from tests.woo import connect_for_tests, post_delivery


def test_the_merchant_sets_up_cashback_and_sees_it_credited(page, services, shop, live_app):
    s = shop.shop
    connect_for_tests(services, s.id)
    make_user(services, s.id)
    sign_in(page)
    page.goto(f"/shops/{s.id}/settings#cashback")
    section = page.locator("section#cashback")
    section.locator("select[name=cashback_kind]").select_option("percent")
    section.locator("input[name=cashback_value]").fill("250")  # 250 % is refused …
    section.locator("input[name=cashback_cap]").fill("abc")  # … and so is this, on the same submit
    section.locator("button:has-text('Save cashback')").click()
    expect(section.locator(".error")).to_have_count(2)  # the click only starts the page's load
    section.locator("input[name=cashback_value]").fill("2,5")
    section.locator("input[name=cashback_cap]").fill("5,00")
    section.locator("button:has-text('Save cashback')").click()
    with unit_of_work(services.sessions) as session:
        saved = session.get(Shop, s.id).settings
    assert (saved["cashback_kind"], saved["cashback_value"], saved["cashback_cap"]) == ("percent", 250, 500)

    client = live_app.test_client()
    assert post_delivery(client, s.id, "order.updated", {**TAXED_CARD_ORDER, "status": "completed"}).status_code == 200
    page.goto(f"/shops/{s.id}/customers/2")
    assert page.inner_text("#balance") == "€0.75"  # 2.5 % of the €30.00 of goods
    assert "Cashback on order #70" in page.inner_text("#statement")
    screenshot(page, "cashback-customer")
