"""WooShop's OAuth over plain http: a fresh 128-bit nonce per call, still signed the way the store checks."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from simulator import create_simulator
from sync.woocommerce.client import WooShop

# No database here: the SQLite pass of `make test` runs these, the PostgreSQL pass need not run them again.
pytestmark = pytest.mark.database_free

KEY, SECRET = "ck_client0123456789abcdef", "cs_client0123456789abcdef"


@pytest.fixture
def repeating_digits(monkeypatch):
    """The official client's nonce comes from 8 random digits, which repeat about once in 10^4 calls (the
    birthday bound): make them repeat on every call, so only a nonce of our own can differ."""
    monkeypatch.setattr("woocommerce.oauth.randint", lambda low, high: 7)


@pytest.fixture
def sim():
    simulator = create_simulator(consumer_key=KEY, consumer_secret=SECRET, basic_auth_over_http=False)
    simulator.serve()  # 127.0.0.1, a free port: the client signs with OAuth over http
    yield simulator
    simulator.shutdown()


@responses.activate
def test_each_call_over_http_sends_a_fresh_128_bit_nonce(repeating_digits):
    responses.add(responses.GET, "http://woo.example/wp-json/wc/v3/orders", json=[])
    shop = WooShop("http://woo.example", KEY, SECRET)

    shop.get("orders", per_page=1)
    shop.get("orders", per_page=1)

    nonces = [parse_qs(urlsplit(call.request.url).query)["oauth_nonce"][0] for call in responses.calls]
    assert nonces[0] != nonces[1]
    assert all(re.fullmatch(r"[0-9a-f]{32,}", nonce) for nonce in nonces)


def test_the_store_accepts_the_signature_and_never_sees_a_nonce_twice(sim, repeating_digits):
    shop = WooShop(sim.base_url, KEY, SECRET, timeout=5)

    answers = [shop.get("orders", per_page=1).status for _ in range(2)]

    assert answers == [200, 200]  # the official nonce would be refused the second time: 401 "Invalid nonce"
