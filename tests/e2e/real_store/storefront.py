"""The shop's front and back office over HTTP, as people use them: the merchant installs and configures the
companion plugin (deploy/woocommerce-plugin) in wp-admin; a customer logs in, reads My Account and checks out
through the Store API (what the block checkout calls)."""

from __future__ import annotations

import html
import re
import secrets
import shutil
from pathlib import Path

import requests

from tests.e2e.real_store.harness import ROOT, RealStore

PLUGIN_SOURCE = ROOT / "deploy" / "woocommerce-plugin"
PLUGIN_FILE = "wallet-bridge/wallet-bridge.php"
PASSWORD = "correct-horse-battery"  # noqa: S105 - a throwaway customer of a throwaway store
ADDRESS = {
    "first_name": "Kim",
    "last_name": "Tester",
    "address_1": "Hauptstr. 1",
    "city": "Berlin",
    "postcode": "10115",
    "country": "DE",
}


class Visitor:
    """A browser without JavaScript: cookies, and the nonces WordPress and the Store API ask for."""

    def __init__(self, store: RealStore):
        self.url = store.url
        self.http = requests.Session()
        self.http.trust_env = False  # everything is on 127.0.0.1
        self.store_nonce = ""

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.http.get(self.url + path, timeout=60, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return self.http.post(self.url + path, timeout=60, **kwargs)

    def log_in(self, user: str, password: str) -> None:
        self.http.cookies.set("wordpress_test_cookie", "WP Cookie check")
        answer = self.post(
            "/wp-login.php",
            data={"log": user, "pwd": password, "wp-submit": "Log In", "testcookie": "1"},
            allow_redirects=False,
        )
        logged_in = any(name.startswith("wordpress_logged_in") for name in self.http.cookies.keys())
        assert answer.status_code == 302 and logged_in, f"login of {user} failed: {answer.status_code}"

    # -- WordPress' REST API with cookie authentication (its wp_rest nonce), and the Store API's own nonce

    def rest(self, method: str, path: str, body: dict | None = None, **headers) -> requests.Response:
        if "X-WP-Nonce" not in self.http.headers:
            self.http.headers["X-WP-Nonce"] = self.get("/wp-admin/admin-ajax.php?action=rest-nonce").text.strip()
        return self.http.request(method, f"{self.url}/wp-json{path}", json=body, headers=headers, timeout=60)

    def store_api(self, method: str, path: str, body: dict | None = None) -> requests.Response:
        answer = self.rest(method, f"/wc/store/v1{path}", body, Nonce=self.store_nonce)
        self.store_nonce = answer.headers.get("Nonce", self.store_nonce)
        return answer

    def cart(self) -> dict:
        answer = self.store_api("get", "/cart")
        assert answer.status_code == 200, answer.text[:500]
        return answer.json()

    def add_to_cart(self, product: dict, quantity: int = 1) -> dict:
        self.cart()  # for the Store API nonce
        answer = self.store_api("post", "/cart/add-item", {"id": product["id"], "quantity": quantity})
        assert answer.status_code == 201, answer.text[:500]
        return answer.json()

    def checkout(self, payment_method: str, email: str) -> requests.Response:
        return self.store_api(
            "post",
            "/checkout",
            {
                "billing_address": {**ADDRESS, "email": email},
                "shipping_address": ADDRESS,
                "payment_method": payment_method,
            },
        )


def classic_checkout_page(admin: Visitor) -> str:
    """A page with the classic checkout's shortcode (the store's own checkout page is the block one)."""
    page = admin.rest(
        "post", "/wp/v2/pages", {"title": "Classic checkout", "status": "publish", "content": "[woocommerce_checkout]"}
    )
    assert page.status_code == 201, page.text[:500]
    return "/" + page.json()["slug"] + "/"


def classic_checkout(visitor: Visitor, page: str, payment_method: str, email: str) -> dict:
    """Place the order as the classic checkout form does (wc-ajax=checkout, with the form's nonce)."""
    form = visitor.get(page).text
    nonce = re.search(r'name="woocommerce-process-checkout-nonce" value="([^"]+)"', form)
    assert nonce, "the classic checkout page has no checkout form"
    fields = {f"billing_{name}": value for name, value in ADDRESS.items()}
    answer = visitor.post(
        "/?wc-ajax=checkout",
        data={
            **fields,
            "billing_email": email,
            "payment_method": payment_method,
            "woocommerce-process-checkout-nonce": nonce.group(1),
            "_wp_http_referer": page,
        },
    )
    assert answer.status_code == 200, answer.text[:500]
    return answer.json()


def new_customer_with_login(store: RealStore, tag: str) -> dict:
    email = f"{tag}-{secrets.token_hex(4)}@example.test"
    return store.post(
        "customers",
        {
            "email": email,
            "first_name": tag.title(),
            "last_name": "Tester",
            "password": PASSWORD,
            "billing": {"country": "DE", "email": email},
        },
    )


def customer_visitor(store: RealStore, customer: dict) -> Visitor:
    visitor = Visitor(store)
    visitor.log_in(customer["email"], PASSWORD)
    return visitor


def install_plugin(store: RealStore) -> Visitor:
    """Copy the plugin into wp-content/plugins and activate it from wp-admin's Plugins page, as a merchant
    does after uploading it. Returns the merchant's logged-in visitor."""
    target = Path(store.dir) / "wp" / "wp-content" / "plugins" / "wallet-bridge"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(PLUGIN_SOURCE, target)
    admin = Visitor(store)
    admin.log_in(store.info["admin_user"], store.info["admin_password"])
    admin.get("/wp-admin/")  # WooCommerce's first admin visit redirects once to its own home
    page = admin.get("/wp-admin/plugins.php").text
    link = re.search(r'href="(plugins\.php\?action=activate&amp;plugin=wallet-bridge%2Fwallet-bridge\.php[^"]*)"', page)
    assert link, "the Plugins page lists no Wallet Bridge to activate"
    answer = admin.get("/wp-admin/" + html.unescape(link.group(1)))
    assert answer.status_code == 200 and "Plugin activated" in answer.text, answer.text[-2000:]
    return admin


def settings_page(admin: Visitor) -> requests.Response:
    return admin.get("/wp-admin/admin.php?page=wc-settings&tab=wallet_bridge")


def save_settings(admin: Visitor, bridge_url: str, api_key: str) -> requests.Response:
    """Fill WooCommerce → Settings → Wallet Bridge and save, with the page's nonce."""
    page = settings_page(admin).text
    nonce = re.search(r'name="_wpnonce" value="([^"]+)"', page)
    assert nonce, "the settings tab has no form"
    return admin.post(
        "/wp-admin/admin.php?page=wc-settings&tab=wallet_bridge",
        data={
            "wallet_bridge_url": bridge_url,
            "wallet_bridge_api_key": api_key,
            "save": "Save changes",
            "_wpnonce": nonce.group(1),
            "_wp_http_referer": "/wp-admin/admin.php?page=wc-settings&tab=wallet_bridge",
        },
    )


def press_test_connection(admin: Visitor) -> str:
    """Press "Test connection" and return the page it comes back to."""
    page = settings_page(admin).text
    link = re.search(r'href="([^"]*admin-post\.php\?action=wallet_bridge_test[^"]*)"', page)
    assert link, "no Test connection button"
    return admin.get(html.unescape(link.group(1)).replace(admin.url, "")).text
