"""Where the simulator (the suite's stand-in shop) and the real store must answer alike, asked the same thing;
where they disagree the real store is right. And the bridge's paging, which must not follow `Link` headers."""

import pytest
import requests
from woocommerce import API

from simulator import create_simulator
from sync.woocommerce import connect
from sync.woocommerce.client import WooShop
from tests.e2e.real_store.harness import CARD_METHOD

pytestmark = pytest.mark.real_store


@pytest.fixture(scope="module")
def simulated():
    sim = create_simulator(consumer_key="ck_sim", consumer_secret="cs_sim", transport=lambda *args: 200)
    sim.serve()
    yield API(url=sim.base_url, consumer_key="ck_sim", consumer_secret="cs_sim", version="wc/v3", timeout=30)
    sim.shutdown()


def paid_order(api: API, product: dict) -> dict:
    line = {"product_id": product["id"], "quantity": 1, "subtotal": "19.99", "total": "19.99"}
    return api.post("orders", {"payment_method": CARD_METHOD, "line_items": [line], "set_paid": True}).json()


def refund_errors(api: API, product: dict) -> list[tuple]:
    """The answers to a refund beyond what is left, and to an automatic refund on an offline gateway."""
    order = paid_order(api, product)
    answers = [
        api.post(f"orders/{order['id']}/refunds", {"amount": "50.00", "api_refund": False}),
        api.post(f"orders/{order['id']}/refunds", {"amount": "5.00", "api_refund": True}),
    ]
    return [(answer.status_code, answer.json()) for answer in answers]


def test_refund_errors_are_the_same_http_500_with_a_bare_number(store, simulated, mug):
    real = refund_errors(store.api, mug)

    code = "woocommerce_rest_cannot_create_order_refund"
    assert real == [
        (500, {"code": code, "message": "Invalid refund amount.", "data": 500}),
        (
            500,
            {
                "code": code,
                "message": "The payment gateway for this order does not support automatic refunds.",
                "data": 500,
            },
        ),
    ]
    assert refund_errors(simulated, mug) == real


def next_link(api: API, endpoint: str) -> str:
    response = api.get(endpoint, params={"per_page": 1})
    assert int(response.headers["X-WP-TotalPages"]) >= 2
    return next(part.split(";")[0].strip("<> ") for part in response.headers["Link"].split(",") if 'rel="next"' in part)


def test_link_headers_repeat_the_used_oauth_parameters_so_following_them_is_refused(store, simulated, mug):
    for api in (store.api, store.api, simulated, simulated):
        paid_order(api, mug)

    for api in (store.api, simulated):
        link = next_link(api, "orders")
        assert "page=2" in link and "oauth_nonce=" in link and "oauth_signature=" in link
        refused = requests.get(link, timeout=30)
        assert refused.status_code == 401, refused.text


def test_the_bridge_pages_by_page_number_through_the_real_store(store, mug, vase, monkeypatch):
    monkeypatch.setattr(connect, "PAGE_SIZE", 1)  # one product a page: several pages, each freshly signed
    shop = WooShop(store.url, store.info["consumer_key"], store.info["consumer_secret"], timeout=30)

    listed = connect.list_all(shop, "products")

    expected = store.get("products", per_page=100)
    assert len(listed) == len(expected) >= 2
    assert sorted(p["id"] for p in listed) == sorted(p["id"] for p in expected)
