"""Reports on a phone, and a manual credit that the Back button cannot record twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.browser.test_console_browser import sign_in
from tests.chromium import screenshot
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


def test_back_after_a_credit_neither_refills_the_form_nor_credits_twice_unasked(page, services, shop):
    make_user(services, shop.shop.id)
    move(services, shop.shop, "42", "topup", 1_000, datetime.now(UTC) - timedelta(days=1), "seed")
    sign_in(page)
    page.goto(f"/shops/{shop.shop.id}/customers/42")
    page.fill("#f-amount", "25,50")  # a decimal comma, as many merchants type it
    page.fill("#f-reason", "Goodwill for a late parcel")
    page.click("button:has-text('Record movement')")
    page.wait_for_selector(".flash-success")
    assert page.inner_text("#balance") == "€35.50"
    assert page.input_value("#f-amount") == "" and page.input_value("#f-reason") == ""
    page.go_back()
    page.wait_for_selector("#f-amount")
    assert page.input_value("#f-amount") == "" and page.input_value("#f-reason") == ""
    # Typed again by hand: the same credit this soon is asked about, not recorded.
    page.fill("#f-amount", "25.50")
    page.fill("#f-reason", "Goodwill for a late parcel")
    page.click("button:has-text('Record movement')")
    page.wait_for_selector("#f-confirm")
    assert "The same credit of €25.50" in page.inner_text("#adjust") and page.inner_text("#balance") == "€35.50"
    screenshot(page, "adjust-asks-before-a-repeat")
    page.check("#f-confirm")
    page.click("button:has-text('Record movement')")
    page.wait_for_selector(".flash-success")
    assert page.inner_text("#balance") == "€61.00"


def test_locking_a_wallet_asks_first(page, services, shop):
    make_user(services, shop.shop.id)
    move(services, shop.shop, "42", "topup", 1_000, datetime.now(UTC) - timedelta(days=1), "seed")
    sign_in(page)
    page.goto(f"/shops/{shop.shop.id}/customers/42")
    page.click("button:has-text('Lock wallet')")
    page.wait_for_selector("#confirm-lock")
    assert page.locator(".badge:has-text('wallet locked')").count() == 0
    page.click("button:has-text('Yes, lock the wallet')")
    page.wait_for_selector(".badge:has-text('wallet locked')")
