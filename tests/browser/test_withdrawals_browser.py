"""The withdrawal queue in a real browser: the merchant turns on approval in settings, a customer's request
waits in the queue, is declined with a reason and another approved; the queue fits a 390 px phone."""

from __future__ import annotations

from playwright.sync_api import expect

from bridge.db import unit_of_work
from bridge.models import Shop
from tests.browser.test_console_browser import sign_in
from tests.chromium import screenshot
from tests.console_support import make_user
from tests.integration.test_api import auth
from tests.integration.test_topups_withdrawals import paid_topup
from tests.woo import connect_for_tests, post_delivery


def test_the_merchant_declines_one_request_and_approves_another(page, services, shop, live_app):
    s = shop.shop
    connect_for_tests(services, s.id)
    client = live_app.test_client()
    post_delivery(client, s.id, "order.updated", paid_topup())  # customer 2 deposits €50.00
    make_user(services, s.id)
    sign_in(page)
    page.goto(f"/shops/{s.id}/settings#withdrawals")
    page.select_option("#withdrawals select[name=withdrawal_approval]", "manual")
    page.fill("#withdrawals input[name=withdrawal_minimum]", "5,00")
    page.click("button:has-text('Save withdrawals')")
    with unit_of_work(services.sessions) as session:
        saved = session.get(Shop, s.id).settings
    assert (saved["withdrawal_approval"], saved["withdrawal_minimum"]) == ("manual", 500)

    for key, amount in (("w1", 1_500), ("w2", 2_000)):
        asked = client.post("/api/v1/customers/2/withdrawals", json={"amount": amount}, headers=auth(shop, key))
        assert asked.get_json()["status"] == "pending"
    page.click("nav.tabs a:has-text('Withdrawals')")
    expect(page.locator("#pending tbody tr")).to_have_count(2)  # the click only starts the page's load
    first = page.locator("#pending tbody tr").first
    first.locator("input[name=reason]").fill("Please use your credit first")
    first.locator("button:has-text('Decline')").click()
    page.wait_for_selector("text=Declined: €15.00 is free again")
    page.locator("#pending tbody tr").first.locator("button:has-text('Approve')").click()
    page.wait_for_selector("text=Approved: €20.00 is refunded")
    assert page.locator("#pending .empty").inner_text() == "No request is waiting."
    decided = page.locator("#decided tbody").inner_text()
    assert "declined" in decided and "Please use your credit first." in decided and "approved" in decided
    assert client.get("/api/v1/customers/2/wallet", headers=auth(shop)).get_json()["balance"] == 3_000

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # tables scroll inside, not the page
    screenshot(page, "withdrawals-phone")
