"""The companion plugin in the real store: settings, My Account → Wallet, the `wallet` gateway at the Store API
checkout (reserve, then capture on the order's webhook, once), a short wallet refused before any order exists,
and a store that keeps selling while the bridge is down."""

import html
import re

import pytest
import requests

from tests.chromium import screenshot
from tests.e2e.real_store.harness import CARD_METHOD, WALLET_METHOD, cents
from tests.e2e.real_store.storefront import (
    ADDRESS,
    classic_checkout,
    classic_checkout_page,
    customer_visitor,
    new_customer_with_login,
    press_test_connection,
    settings_page,
)

pytestmark = pytest.mark.real_store

GATEWAY = "wallet"


@pytest.fixture
def shopper(bridge, store, plugin, settings):
    """A customer who can log in, the bridge taking `wallet` orders (the plugin's) beside `cheque` ones.

    Webhooks are queued, as WooCommerce does by default: the kit's synchronous delivery builds the payload
    inside the Store API request, where WooCommerce loads only the Store API's routes, so wc/v3 answers
    rest_no_route. `deliver_queued` runs the queue."""
    settings(wallet_payment_methods=[WALLET_METHOD, GATEWAY])
    customer = new_customer_with_login(store, "pat")
    store.switch("async", True)
    return customer


def deliver_queued(store, bridge) -> None:
    store.ctl("run-queue")
    bridge.settle()


@pytest.fixture(scope="module")
def ebook(store):
    """Virtual: the checkout needs no shipping."""
    return store.post("products", {"name": "E-book", "regular_price": "19.99", "virtual": True})


def test_the_settings_tab_keeps_the_key_server_side_and_tests_the_connection(bridge, plugin):
    page = settings_page(plugin).text
    assert bridge.url in page and bridge.shop["api_key"] not in page
    assert 'Connected to Wallet Bridge: shop "Real Store"' in html.unescape(press_test_connection(plugin))


def test_my_account_shows_the_bridges_balance(bridge, store, shopper):
    bridge.credit(shopper, 5000)
    page = customer_visitor(store, shopper).get("/my-account/wallet/")

    assert page.status_code == 200
    assert 'class="wallet-bridge-balance">€50.00<' in page.text and "test funds" in page.text
    assert "/statement/" in page.text and bridge.shop["api_key"] not in page.text


def submit_account_form(visitor, action: str, **fields) -> requests.Response:
    """Post one of My Account → Wallet's forms as the page rendered it (its nonce and one-time key)."""
    page = visitor.get("/my-account/wallet/").text
    form = re.search(rf'<form method="post" class="wallet-bridge-{action}">(.*?)</form>', page, re.S).group(1)
    hidden = dict(re.findall(r'<input type="hidden"[^>]*name="([^"]+)" value="([^"]*)"', form))
    return visitor.post("/my-account/wallet/", data={**hidden, **fields}, allow_redirects=False)


def test_my_account_tops_up_through_a_shop_order_and_converts_points(bridge, store, shopper, settings, mug):
    topup = submit_account_form(customer_visitor(store, shopper), "topup", wallet_bridge_amount="12.50")

    assert topup.status_code == 302 and "/order-pay/" in topup.headers["Location"], topup.text[:500]
    order_id = topup.headers["Location"].split("/order-pay/")[1].split("/")[0]
    assert cents(store.order(order_id)["total"]) == 1250
    settings(
        wallet_payment_methods=[WALLET_METHOD, GATEWAY],
        points_per_currency_unit=10,
        points_conversion_points=100,
        points_conversion_value=50,
    )
    store.new_order(shopper, [(mug, 1)], payment_method=CARD_METHOD, set_paid=True)  # 19.99 by card: 199 points
    deliver_queued(store, bridge)
    converted = submit_account_form(customer_visitor(store, shopper), "convert")

    assert converted.status_code == 302 and bridge.wallet(shopper)["points"] == 99
    assert bridge.balance(shopper) == 50


def test_a_wallet_checkout_reserves_then_captures_exactly_once(bridge, store, shopper, ebook):
    bridge.credit(shopper, 5000)
    visitor = customer_visitor(store, shopper)
    visitor.add_to_cart(ebook)
    assert GATEWAY in visitor.cart()["payment_methods"]

    answer = visitor.checkout(GATEWAY, shopper["email"])
    assert answer.status_code == 200, answer.text[:1000]
    assert bridge.wallet(shopper)["available"] == 5000 - 1999  # reserved before the order's webhook
    deliver_queued(store, bridge)

    order = store.order(answer.json()["order_id"])
    assert order["status"] == "processing" and order["payment_method"] == GATEWAY and cents(order["total"]) == 1999
    kinds = [line["kind"] for line in bridge.statement(shopper)]
    assert kinds.count("capture") == 1 and "payment" not in kinds
    wallet = bridge.wallet(shopper)
    assert (wallet["balance"], wallet["available"], wallet["open_holds"]) == (5000 - 1999, 5000 - 1999, [])
    store.redeliver(bridge.delivery_url, order["id"])
    bridge.settle()
    assert bridge.balance(shopper) == 5000 - 1999 and bridge.failed_deliveries() == 0


def test_a_short_wallet_without_partial_payments_is_refused_and_no_order_is_left(
    bridge, store, shopper, settings, ebook
):
    settings(wallet_payment_methods=[WALLET_METHOD, GATEWAY], partial_payments=False)
    bridge.credit(shopper, 500)
    visitor = customer_visitor(store, shopper)
    visitor.add_to_cart(ebook)

    answer = visitor.checkout(GATEWAY, shopper["email"])
    deliver_queued(store, bridge)

    assert answer.status_code == 400 and "€5.00 available" in answer.json()["message"], answer.text[:1000]
    # Only the block checkout's own draft of the cart: never placed (no stock held, no e-mail, not in the
    # merchant's order list; WooCommerce deletes stale drafts daily), never sent to the bridge.
    assert {order["status"] for order in store.get("orders", customer=shopper["id"], status="any")} <= {
        "checkout-draft"
    }
    assert [line["kind"] for line in bridge.statement(shopper)] == ["adjustment"]
    assert bridge.wallet(shopper)["available"] == 500 and bridge.balance(shopper) == 500


def test_a_short_wallet_with_partial_payments_pays_its_part_and_the_order_waits_for_the_rest(
    bridge, store, shopper, ebook
):
    bridge.credit(shopper, 1000)
    visitor = customer_visitor(store, shopper)
    visitor.add_to_cart(ebook)

    answer = visitor.checkout(GATEWAY, shopper["email"])
    assert answer.status_code == 200, answer.text[:1000]
    deliver_queued(store, bridge)

    order = store.order(answer.json()["order_id"])
    assert order["status"] == "pending" and cents(order["total"]) == 999
    assert [(fee["name"], fee["total"]) for fee in order["fee_lines"]] == [("Paid from wallet", "-10.00")]
    assert [line["kind"] for line in bridge.statement(shopper)] == ["capture", "adjustment"]
    assert bridge.balance(shopper) == 0


def test_the_classic_checkout_refuses_a_short_wallet_before_the_order_then_pays(
    bridge, store, shopper, settings, plugin, ebook
):
    settings(wallet_payment_methods=[WALLET_METHOD, GATEWAY], partial_payments=False)
    page = classic_checkout_page(plugin)
    bridge.credit(shopper, 1500)
    visitor = customer_visitor(store, shopper)
    visitor.add_to_cart(ebook)

    refused = classic_checkout(visitor, page, GATEWAY, shopper["email"])
    assert refused["result"] == "failure" and "not enough for this order" in refused["messages"]
    assert store.get("orders", customer=shopper["id"], status="any") == []

    bridge.credit(shopper, 1000)
    paid = classic_checkout(visitor, page, GATEWAY, shopper["email"])
    assert paid["result"] == "success", paid
    deliver_queued(store, bridge)
    [order] = store.get("orders", customer=shopper["id"])
    assert order["status"] == "processing" and order["payment_method_title"] == "Wallet"
    assert [line["kind"] for line in bridge.statement(shopper)].count("capture") == 1
    assert bridge.balance(shopper) == 2500 - 1999


def test_with_the_bridge_down_the_checkout_renders_and_offers_other_methods(bridge, store, shopper, plugin, ebook):
    bridge.credit(shopper, 5000)
    visitor = customer_visitor(store, shopper)
    visitor.add_to_cart(ebook)
    bridge.stop("web")
    try:
        methods = visitor.cart()["payment_methods"]
        page = visitor.get("/checkout/")
        account = visitor.get("/my-account/wallet/")
        paid = visitor.checkout(CARD_METHOD, shopper["email"])
        admin_page = settings_page(plugin).text
    finally:
        bridge.start_web()

    assert GATEWAY not in methods and CARD_METHOD in methods
    assert page.status_code == 200 and "critical error" not in page.text and "wc-block-checkout" in page.text
    assert account.status_code == 200 and "Your wallet cannot be shown right now" in account.text
    assert paid.status_code == 200 and paid.json()["payment_method"] == CARD_METHOD, paid.text[:1000]
    deliver_queued(store, bridge)
    assert "Wallet Bridge could not be reached" in admin_page


def test_in_a_browser_the_block_checkout_offers_the_balance_and_pays_with_it(bridge, store, shopper, ebook, chromium):
    """The plugin's script registers the gateway with the block checkout: its title shows the balance, and
    placing the order reserves then captures. Also makes docs/screenshots' two plugin pictures (written to
    test-output/browser/; copy them over when the pages change)."""
    bridge.credit(shopper, 5000)
    store.put(f"customers/{shopper['id']}", {"billing": {**ADDRESS, "email": shopper["email"]}})  # the form is filled
    visitor = customer_visitor(store, shopper)
    visitor.add_to_cart(ebook)
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB", timezone_id="UTC")
    context.set_default_timeout(20_000)
    context.add_cookies([{"name": c.name, "value": c.value, "url": store.url} for c in visitor.http.cookies])
    page = context.new_page()
    try:
        page.goto(store.url + "/my-account/wallet/")
        assert page.locator(".wallet-bridge-balance").inner_text() == "€50.00"
        screenshot(page, "plugin-my-account")

        page.goto(store.url + "/checkout/")
        page.get_by_text("Wallet (€50.00 available)").click()
        page.get_by_text("Your wallet pays the whole order.").wait_for()
        screenshot(page, "plugin-checkout")
        page.get_by_role("button", name="Place order").click()
        page.wait_for_url("**/order-received/**")
    finally:
        context.close()
    deliver_queued(store, bridge)

    [order] = store.get("orders", customer=shopper["id"])
    assert order["status"] == "processing" and order["payment_method"] == GATEWAY
    assert [line["kind"] for line in bridge.statement(shopper)].count("capture") == 1
    assert bridge.balance(shopper) == 5000 - 1999


def test_the_classic_checkout_counts_the_discount_for_paying_by_wallet(bridge, store, shopper, settings, plugin, ebook):
    """2.00 off for paying the whole order by wallet, partial payments off: 18.00 covers the 19.99 order (17.99)."""
    settings(
        wallet_payment_methods=[WALLET_METHOD, GATEWAY],
        partial_payments=False,
        wallet_discount_kind="fixed",
        wallet_discount_value=200,
    )
    page = classic_checkout_page(plugin)
    bridge.credit(shopper, 1800)
    visitor = customer_visitor(store, shopper)
    visitor.add_to_cart(ebook)
    assert "Your wallet pays the whole order: €17.99" in html.unescape(visitor.get(page).text)

    paid = classic_checkout(visitor, page, GATEWAY, shopper["email"])
    assert paid["result"] == "success", paid
    deliver_queued(store, bridge)
    [order] = store.get("orders", customer=shopper["id"])
    assert order["status"] == "processing" and cents(order["total"]) == 1799
    assert (bridge.balance(shopper), bridge.wallet(shopper)["open_holds"]) == (1, [])
