"""Outside audit, session 10: tenancy through ids named under one's own shop's URLs, hostile input on the API, the
console's forms and the customer's statement page, CSRF on every state-changing console route, the sign-in
redirect, and webhook bodies (size, encoding, content type, re-serialisation).

Its findings were fixed in the same session (each test failed before); the other tests pin behaviour that held and
that no earlier test covered."""

from __future__ import annotations

import gzip
import json
import re
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from bridge.db import unit_of_work
from bridge.models import Hold, InboxDelivery, MerchantUser, Shop, WithdrawalRequest
from bridge.statement_links import StatementLinks
from tests.console_support import PASSWORD, csrf_token, make_user, sign_in, text_of
from tests.hostile import MONEY_TABLES, row_counts
from tests.hostile.test_tenant_isolation import b_state, tenants  # noqa: F401 - the fixture
from tests.integration.test_api import auth, credit
from tests.integration.test_topups_withdrawals import paid_topup, wallet, woo  # noqa: F401 - the fixture
from tests.woo import connect_for_tests, delivery_headers, order_body, post_delivery, wp_json

# The API ----------------------------------------------------------------------------------------------------

VALID_POSTS = {  # a body each route accepts, so that only the field under test is wrong
    "/api/v1/customers/42/adjustments": {"direction": "credit", "amount": 100, "reason": "x"},
    "/api/v1/customers/42/holds": {"amount": 100, "reason": "x"},
    "/api/v1/customers/42/points/conversions": {"points": 1},
    "/api/v1/customers/42/topups": {"amount": 1_000},
    "/api/v1/customers/42/withdrawals": {"amount": 100},
    "/api/v1/orders/7/refunds": {"amount": 100, "destination": "wallet"},
    "/api/v1/orders/7/tips": {"amount": 100},
    "/api/v1/orders/7/reservation": {"customer_id": "42", "amount": 100},
    "/api/v1/holds/1/capture": {"amount": 100},
}
HUGE_INTEGER_LITERAL = b'{"amount": 1' + b"0" * 5_000 + b"}"  # valid JSON; past CPython's 4300-digit int limit


def _money_rows(services):
    return row_counts(services, MONEY_TABLES)


@pytest.mark.parametrize("url", sorted(VALID_POSTS))
def test_a_json_integer_longer_than_python_reads_is_a_4xx_not_a_500(client, services, shop, url):
    assert credit(client, shop, amount=50_000, key="seed").status_code == 201
    before = _money_rows(services)
    response = client.post(url, data=HUGE_INTEGER_LITERAL, content_type="application/json", headers=auth(shop, "huge"))
    assert 400 <= response.status_code < 500, (response.status_code, response.get_data(as_text=True)[:200])
    assert response.get_json()["error"]["code"] in ("validation_failed", "bad_request", "invalid_json")
    assert _money_rows(services) == before


@pytest.mark.parametrize("url", ["/api/v1/customers/42/holds", "/api/v1/orders/7/reservation"])
@pytest.mark.parametrize("value", [120.7, "120"])
def test_a_hold_expiry_of_the_wrong_type_is_refused_naming_it(client, services, shop, url, value):
    assert credit(client, shop, amount=50_000, key="seed").status_code == 201
    before = _money_rows(services)
    body = {**VALID_POSTS[url], "expires_in_seconds": value}
    response = client.post(url, json=body, headers=auth(shop, f"expiry-{value}"))
    assert response.status_code == 422, response.get_data(as_text=True)[:200]
    assert "expires_in_seconds" in response.get_json()["error"]["fields"]
    assert _money_rows(services) == before


WRONG_BODIES = [
    [],
    "x",
    None,
    1,
    [{"amount": 1}],
    {"amount": 1.5},
    {"amount": 100.0},
    {"amount": "100"},
    {"amount": 2**63},
    {"amount": 2**64 + 1},
    {"amount": -1},
    {"amount": 0},
    {"amount": True},
    {"amount": 1e308},
    {"amount": None},
    {"amount": [100]},
    {"amount": {"v": 1}},
    {"amount": "1e2"},
]


def test_wrong_typed_money_on_every_json_route_is_a_422_and_writes_nothing(client, services, shop):
    """Strings, floats, booleans, nulls, arrays, numbers past 64 bits and bodies that are no object, on each route
    that takes money: a 422 JSON error, no row written."""
    assert credit(client, shop, amount=50_000, key="seed").status_code == 201
    hold = client.post("/api/v1/customers/42/holds", json={"amount": 1_000, "reason": "h"}, headers=auth(shop, "h"))
    capture = f"/api/v1/holds/{hold.get_json()['hold_id']}/capture"  # a real hold: the body is what is refused
    tried = 0
    for url, valid in VALID_POSTS.items():
        url = capture if url.endswith("/capture") else url
        for index, wrong in enumerate(WRONG_BODIES):
            if url == capture and wrong is None:
                continue  # `null` is no body: a capture without an amount captures the whole hold, as documented
            body = {**valid, **wrong} if isinstance(wrong, dict) else wrong
            if url.endswith("/conversions") and isinstance(wrong, dict):
                body = {"points": wrong["amount"]}
            before = _money_rows(services)
            response = client.post(url, json=body, headers=auth(shop, f"wrong-{index}"))
            label = f"POST {url} {body!r:.80}: {response.status_code} {response.get_data(as_text=True)[:200]}"
            assert response.status_code == 422, label
            assert response.get_json()["error"]["code"] == "validation_failed", label
            assert _money_rows(services) == before, label
            tried += 1
    assert tried == len(VALID_POSTS) * len(WRONG_BODIES) - 1


@pytest.mark.parametrize(
    "query",
    [
        "limit=abc",
        "limit=-1",
        "limit=0",
        "limit=1e3",
        "limit=99999999999999999999999",
        "limit=1.5",
        "cursor=abc",
        "cursor=-1",
        "cursor=" + "9" * 40,
        "cursor=9223372036854775808",
        "cursor=%ff",
        "cursor=1.5",
    ],
)
def test_a_statement_query_that_means_nothing_is_a_422_naming_it(client, shop, query):
    assert credit(client, shop, amount=500, key="seed").status_code == 201
    response = client.get(f"/api/v1/customers/42/transactions?{query}", headers=auth(shop))
    assert response.status_code == 422, response.get_data(as_text=True)[:200]
    assert query.split("=")[0] in response.get_json()["error"]["fields"]


def test_a_body_over_the_limit_is_a_413_in_json(client, services, shop):
    before = _money_rows(services)
    response = client.post(
        "/api/v1/customers/42/adjustments",
        data=b"x" * (3 * 1024 * 1024),
        content_type="application/json",
        headers=auth(shop, "big"),
    )
    assert response.status_code == 413 and response.get_json()["error"]["code"] == "request_entity_too_large"
    assert _money_rows(services) == before


def test_a_blank_idempotency_key_is_refused_naming_it(client, services, shop):
    before = _money_rows(services)
    response = client.post(
        "/api/v1/customers/42/adjustments",
        json=VALID_POSTS["/api/v1/customers/42/adjustments"],
        headers={**auth(shop, "x"), "Idempotency-Key": "   "},
    )
    assert response.status_code == 422
    assert "Idempotency-Key" in response.get_json()["error"]["fields"]
    assert _money_rows(services) == before


def test_the_same_idempotency_key_in_two_shops_is_two_requests(client, services, shop, other_shop):
    """Keys are unique per shop: shop B reusing shop A's key (other content) is neither a 409 nor A's replay."""
    answers = {}
    for current, amount in ((shop, 5_000), (other_shop, 7_000)):
        first = credit(client, current, amount=amount, key="shared")
        hold = client.post(
            "/api/v1/customers/42/holds",
            json={"amount": amount // 10, "reason": "r"},
            headers=auth(current, "shared-hold"),
        )
        reservation = client.post(
            "/api/v1/orders/9/reservation",
            json={"customer_id": "42", "amount": amount // 100},
            headers=auth(current, "shared-reservation"),
        )
        answers[current.shop.id] = (first.get_json(), hold.get_json(), reservation.get_json())
        assert (first.status_code, hold.status_code, reservation.status_code) == (201, 201, 201)
        assert not first.get_json()["replayed"] and not hold.get_json()["replayed"]
    b = answers[other_shop.shop.id]
    assert b[0]["balance"] == 7_000 and b[1]["amount"] == 700 and b[2]["amount"] == 70
    assert wallet(client, shop, "42")["balance"] == 5_000


# The console -------------------------------------------------------------------------------------------------


def _fill(rule: str, shop_id: int) -> str:
    values = {"shop_id": shop_id, "external_id": "42", "section_key": "funding"}
    return re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values.get(m.group(1), 1)), rule)


def test_every_state_changing_console_route_refuses_a_request_without_its_csrf_token(app, client, services, shop):
    """Each POST route of the console (sign-in, sign-out, set-up, account, new shop, team, settings, wallets,
    operations, withdrawals): 400 without the token, nothing written, and the session still signed in."""
    make_user(services, shop.shop.id)
    assert credit(client, shop, amount=10_000, key="seed").status_code == 201
    assert sign_in(client).status_code == 302
    with unit_of_work(services.sessions) as session:
        settings_before = dict(session.get(Shop, shop.shop.id).settings)
    before = row_counts(services)
    tried = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("console.") or "POST" not in rule.methods:
            continue
        url = _fill(rule.rule, shop.shop.id)
        data = {
            "email": "eve@example.com",
            "name": "Eve",
            "password": PASSWORD,
            "password_confirm": PASSWORD,
            "direction": "credit",
            "amount": "5.00",
            "reason": "x",
            "token": "a" * 32,
            "action": "lock",
            "confirm": "yes",
            "signup_bonus": "99.00",
        }
        for extra in ({}, {"csrf_token": "forged"}):
            response = client.post(url, data={**data, **extra})
            assert response.status_code == 400, f"POST {url} {extra}: {response.status_code}"
        tried.append(url)
    assert len(tried) >= 19, tried
    assert "/logout" in tried
    assert row_counts(services) == before
    with unit_of_work(services.sessions) as session:
        assert dict(session.get(Shop, shop.shop.id).settings) == settings_before
    assert client.get(f"/shops/{shop.shop.id}/").status_code == 200  # the forged sign-out signed nobody out


def test_shop_bs_ids_named_under_shop_as_own_urls_change_nothing_of_b(client, services, tenants):  # noqa: F811
    """User A is a member of A: every id-bearing form and page of A's own URLs, given B's withdrawal request, inbox
    delivery, outbox message, team member and customer, finds nothing (B's state unchanged, none of it shown)."""
    a, b, ids = tenants
    assert sign_in(client, "ann@example.com").status_code == 302
    token = csrf_token(client, f"/shops/{a.shop.id}/settings")
    before = b_state(services, b)
    sid = a.shop.id
    posts = [
        f"/shops/{sid}/withdrawals/{ids['request_id']}/approve",
        f"/shops/{sid}/withdrawals/{ids['request_id']}/decline",
        f"/shops/{sid}/operations/inbox/{ids['delivery_id']}/retry",
        f"/shops/{sid}/operations/outbox/{ids['message_id']}/retry",
        f"/shops/{sid}/team/{ids['user_id']}/remove",
    ]
    for url in posts:
        response = client.post(url, data={"csrf_token": token, "reason": "no"}, follow_redirects=True)
        text = text_of(response)
        assert response.status_code in (200, 404), f"{url}: {response.status_code}"
        assert "Beta Shop" not in text and "bob@example.com" not in text, url
        assert not re.search(r"Approved:|Declined:|queued again|can no longer manage", text), url
    for url in (
        f"/shops/{sid}/customers/{ids['customer_id']}/statement.csv",
        f"/shops/{sid}/customers/{ids['customer_id']}/personal-data.json",
        f"/shops/{sid}/customers/{ids['customer_id']}",
    ):
        assert client.get(url).status_code == 404, url
    assert b_state(services, b) == before
    with unit_of_work(services.sessions) as session:
        assert session.get(WithdrawalRequest, ids["request_id"]).status == "pending"


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "https:evil.example",
        "https://evil.example",
        "\t//evil.example",
        "///evil.example",
    ],
)
def test_signing_in_never_redirects_off_the_site(client, services, shop, target):
    make_user(services, shop.shop.id)
    token = csrf_token(client, "/login")
    response = client.post(
        "/login?" + urlencode({"next": target}),
        data={"csrf_token": token, "email": "ann@example.com", "password": PASSWORD},
    )
    assert response.status_code == 302
    location = response.headers["Location"]
    cleaned = re.sub(r"[\t\r\n]", "", location)  # what a browser does to a URL before following it
    assert cleaned.startswith("/") and not cleaned.startswith("//") and "\\" not in cleaned, location


@pytest.mark.parametrize("target", ["/\r//evil.example", "/x\r\nSet-Cookie: a=b"])
@pytest.mark.parametrize("signed_in_already", [False, True])
def test_a_next_with_a_line_break_is_ignored_not_a_500(client, services, shop, target, signed_in_already):
    make_user(services, shop.shop.id)
    if signed_in_already:
        assert sign_in(client).status_code == 302
        response = client.get("/login?" + urlencode({"next": target}))
    else:
        token = csrf_token(client, "/login")
        response = client.post(
            "/login?" + urlencode({"next": target}),
            data={"csrf_token": token, "email": "ann@example.com", "password": PASSWORD},
        )
    assert response.status_code == 302, response.status_code
    assert "\r" not in response.headers["Location"] and "\n" not in response.headers["Location"]


def test_a_first_run_take_over_value_that_is_no_number_is_a_form_error(client, services, shop):
    token = csrf_token(client, "/setup")  # the test client is 127.0.0.1: the operator's own host
    response = client.post(
        "/setup",
        data={
            "csrf_token": token,
            "take_over": ["²", str(shop.shop.id)],
            "email": "op@example.com",
            "name": "Operator",
            "password": PASSWORD,
            "password_confirm": PASSWORD,
        },
    )
    assert response.status_code in (302, 422), response.status_code


def test_a_team_e_mail_address_too_long_is_refused_not_cut(client, services, shop):
    make_user(services, shop.shop.id)
    assert sign_in(client).status_code == 302
    typed = "new.member@example.com" + "m" * 400
    token = csrf_token(client, f"/shops/{shop.shop.id}/team")
    response = client.post(
        f"/shops/{shop.shop.id}/team",
        data={"csrf_token": token, "email": typed, "name": "New", "password": PASSWORD},
    )
    with unit_of_work(services.sessions) as session:
        users = session.scalar(select(func.count()).select_from(MerchantUser))
    assert response.status_code == 422
    assert users == 1


# The customer's statement page --------------------------------------------------------------------------------


def _statement(client, services, shop, customer="2"):
    url = "/statement/" + StatementLinks(services.settings.secret_key, "").url(shop.shop.id, customer).rsplit("/", 1)[1]
    return url


def _withdraw(client, url, amount):
    html = text_of(client.get(url))
    form = {name: re.search(rf'name="{name}" value="([^"]*)"', html).group(1) for name in ("csrf_token", "form_token")}
    return client.post(url + "/withdraw", data={**form, "amount": amount}, follow_redirects=True)


def _withdrawal_requests(services):
    with unit_of_work(services.sessions) as session:
        return [(r.amount, r.status) for r in session.scalars(select(WithdrawalRequest).order_by(WithdrawalRequest.id))]


def test_a_withdrawal_of_nothing_is_refused(client, services, woo):  # noqa: F811
    _zero_withdrawal_is_refused(client, services, woo, "automatic")


def test_a_withdrawal_of_nothing_waiting_for_approval_is_refused(client, services, woo):  # noqa: F811
    """Under manual approval the zero hold is refused, so nothing is recorded (the automatic path above differs)."""
    _zero_withdrawal_is_refused(client, services, woo, "manual")


def _zero_withdrawal_is_refused(client, services, woo, approval):  # noqa: F811
    with unit_of_work(services.sessions) as session:
        stored = session.get(Shop, woo.shop.id)
        stored.settings = {**stored.settings, "withdrawal_approval": approval}
    post_delivery(client, woo.shop.id, "order.updated", paid_topup())  # customer 2 tops up €50.00
    url = _statement(client, services, woo)
    before = row_counts(services, MONEY_TABLES + (WithdrawalRequest, Hold))
    answer = _withdraw(client, url, "0")
    assert _withdrawal_requests(services) == []
    assert "Nothing was withdrawn" in text_of(answer)
    assert row_counts(services, MONEY_TABLES + (WithdrawalRequest, Hold)) == before


def test_an_ambiguous_comma_on_the_statement_page_withdraws_nothing(client, services, woo):  # noqa: F811
    post_delivery(client, woo.shop.id, "order.updated", paid_topup())
    url = _statement(client, services, woo)
    answer = _withdraw(client, url, "1,250")
    assert _withdrawal_requests(services) == [], text_of(answer)[:200]
    assert wallet(client, woo)["balance"] == 5_000


@pytest.mark.parametrize("amount", ["1e1", "²", "1_0", "5.001", "-5", "9" * 40, "NaN", "Infinity", ""])
def test_a_statement_withdrawal_that_is_no_amount_withdraws_nothing(client, services, woo, amount):  # noqa: F811
    post_delivery(client, woo.shop.id, "order.updated", paid_topup())
    url = _statement(client, services, woo)
    answer = _withdraw(client, url, amount)
    assert answer.status_code == 200
    assert _withdrawal_requests(services) == []
    assert wallet(client, woo)["balance"] == 5_000


def test_the_statement_page_says_only_what_its_own_forms_did(client, services, woo):  # noqa: F811
    """A link with a made-up `message` (anyone holding the customer's link could send one) shows nothing of it;
    what a form did is still said on the page it returns to."""
    post_delivery(client, woo.shop.id, "order.updated", paid_topup())
    url = _statement(client, services, woo)
    forged = text_of(client.get(url + "?" + urlencode({"message": "Your wallet is locked: call +1 555 0100"})))
    assert "Your wallet is locked" not in forged
    answer = _withdraw(client, url, "1,250")
    assert "Nothing was withdrawn" in text_of(answer)


# Webhooks -----------------------------------------------------------------------------------------------------


@pytest.fixture
def two_woo_shops(services, shop, other_shop):
    connect_for_tests(services, shop.shop.id, secret="alpha-secret")
    connect_for_tests(services, other_shop.shop.id, secret="beta-secret")
    return shop, other_shop


def _inbox_and_money(services):
    return row_counts(services, MONEY_TABLES + (InboxDelivery,))


def test_a_delivery_signed_by_shop_a_and_sent_to_shop_b_is_refused(client, services, two_woo_shops):
    a, b = two_woo_shops
    body = wp_json(order_body())
    before = _inbox_and_money(services)
    response = client.post(
        f"/webhooks/woocommerce/{b.shop.id}", data=body, headers=delivery_headers("order.created", body, "alpha-secret")
    )
    assert response.status_code == 401
    assert _inbox_and_money(services) == before


def test_a_delivery_re_serialised_after_signing_is_refused(client, services, two_woo_shops):
    a, _ = two_woo_shops
    body = wp_json(order_body())
    same_json_other_bytes = json.dumps(json.loads(body), indent=1).encode()
    before = _inbox_and_money(services)
    response = client.post(
        f"/webhooks/woocommerce/{a.shop.id}",
        data=same_json_other_bytes,
        headers=delivery_headers("order.created", body, "alpha-secret"),
    )
    assert response.status_code == 401
    assert _inbox_and_money(services) == before


def test_a_delivery_over_the_size_limit_is_a_413_in_json_and_stores_nothing(client, services, two_woo_shops):
    a, _ = two_woo_shops
    body = b'{"id": 1, "x": "' + b"a" * (3 * 1024 * 1024) + b'"}'
    before = _inbox_and_money(services)
    response = client.post(
        f"/webhooks/woocommerce/{a.shop.id}", data=body, headers=delivery_headers("order.created", body, "alpha-secret")
    )
    assert response.status_code == 413 and response.is_json
    assert _inbox_and_money(services) == before


def test_a_gzipped_body_is_never_inflated(client, services, two_woo_shops):
    """A signed gzip body (a bomb of 100 MB of zeros here) is read as the bytes it is: not JSON, 400, no money."""
    a, _ = two_woo_shops
    bomb = gzip.compress(b"0" * (100 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 2 * 1024 * 1024
    headers = {**delivery_headers("order.created", bomb, "alpha-secret"), "Content-Encoding": "gzip"}
    before = row_counts(services, MONEY_TABLES)
    response = client.post(f"/webhooks/woocommerce/{a.shop.id}", data=bomb, headers=headers)
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid_json"
    assert row_counts(services, MONEY_TABLES) == before


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None]
)
def test_a_signed_delivery_is_read_from_its_raw_bytes_whatever_its_content_type(
    client, services, two_woo_shops, content_type
):
    """The signature is over the raw bytes, so a content type that would make Flask parse a form must not eat them
    (the delivery is applied once, and once only when repeated)."""
    a, _ = two_woo_shops
    body = wp_json(order_body())
    headers = delivery_headers("order.created", body, "alpha-secret")
    if content_type is None:
        headers.pop("Content-Type")
    else:
        headers["Content-Type"] = content_type
    first = client.post(f"/webhooks/woocommerce/{a.shop.id}", data=body, headers=headers)
    assert first.status_code == 200 and first.get_json()["status"] == "applied", first.get_data(as_text=True)
    after = row_counts(services, MONEY_TABLES)
    again = client.post(f"/webhooks/woocommerce/{a.shop.id}", data=body, headers=headers)
    assert again.status_code == 200
    assert row_counts(services, MONEY_TABLES) == after


# Parallel requests (PostgreSQL) ----------------------------------------------------------------------------------


def _in_parallel(app, count, call):
    """`call(client, n)` from `count` threads released together, each with its own test client."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    barrier = Barrier(count)

    def run(n):
        own = app.test_client()
        barrier.wait()
        return call(own, n).status_code

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


@pytest.mark.postgres_only
def test_parallel_refund_requests_never_ask_for_more_than_the_order_total(app, client, services, shop, postgres_url):
    """Eight refund requests of €30.00 at once, each with its own key, against a €40.00 card order, three times:
    "no more than is left to refund" must hold across them (at most one accepted per order)."""
    from bridge.models import RefundRequest, ShopOrder

    connect_for_tests(services, shop.shop.id)
    for order_id in (60, 61, 62):
        order = order_body(id=order_id, status="processing", payment_method="stripe", total="40.00")
        assert post_delivery(client, shop.shop.id, "order.created", order).status_code == 200

        def ask(own, n, order_id=order_id):
            return own.post(
                f"/api/v1/orders/{order_id}/refunds",
                json={"amount": 3_000, "destination": "card", "reason": "parallel"},
                headers=auth(shop, f"parallel-{order_id}-{n}"),
            )

        statuses = _in_parallel(app, 8, ask)
        assert all(status < 500 for status in statuses), statuses
    with unit_of_work(services.sessions) as session:
        asked = session.execute(
            select(ShopOrder.external_id, func.sum(RefundRequest.amount))
            .join(ShopOrder, ShopOrder.id == RefundRequest.shop_order_id)
            .group_by(ShopOrder.external_id)
        ).all()
    assert all(total <= 4_000 for _, total in asked), asked


@pytest.mark.postgres_only
def test_parallel_reservations_for_one_order_leave_one_open_hold(app, client, services, shop, postgres_url):
    """The order has one open reservation, whatever the key: eight asked at once leave one open hold."""
    assert credit(client, shop, amount=50_000, key="seed").status_code == 201

    def reserve(own, n):
        return own.post(
            "/api/v1/orders/70/reservation",
            json={"customer_id": "42", "amount": 1_000},
            headers=auth(shop, f"reserve-{n}"),
        )

    statuses = _in_parallel(app, 8, reserve)
    assert all(status < 500 for status in statuses), statuses
    with unit_of_work(services.sessions) as session:
        open_holds = session.scalars(select(Hold).where(Hold.status == "open")).all()
    assert len(open_holds) == 1, (statuses, [(h.id, h.amount, h.order_ref) for h in open_holds])
    assert wallet(client, shop, "42")["available"] == 49_000


@pytest.mark.postgres_only
def test_a_refund_request_retried_while_in_flight_gets_the_first_answer(app, client, services, shop, postgres_url):
    from bridge.models import RefundRequest

    connect_for_tests(services, shop.shop.id)
    order = order_body(id=60, status="processing", payment_method="stripe", total="40.00")
    assert post_delivery(client, shop.shop.id, "order.created", order).status_code == 200
    statuses = []
    for attempt in range(3):

        def ask(own, n, attempt=attempt):
            return own.post(
                "/api/v1/orders/60/refunds",
                json={"amount": 1_000, "destination": "card", "reason": "retried"},
                headers=auth(shop, f"same-{attempt}"),
            )

        statuses += _in_parallel(app, 8, ask)
    assert all(status == 202 for status in statuses), statuses
    with unit_of_work(services.sessions) as session:
        assert len(session.scalars(select(RefundRequest)).all()) == 3


@pytest.mark.postgres_only
def test_a_withdrawal_retried_while_in_flight_gets_the_first_answer(app, client, services, woo, postgres_url):  # noqa: F811
    post_delivery(client, woo.shop.id, "order.updated", paid_topup())  # customer 2 tops up €50.00
    statuses = []
    for attempt in range(3):

        def ask(own, n, attempt=attempt):
            return own.post(
                "/api/v1/customers/2/withdrawals", json={"amount": 100}, headers=auth(woo, f"same-{attempt}")
            )

        statuses += _in_parallel(app, 8, ask)
    assert all(status in (201, 409) for status in statuses), statuses
    assert len(_withdrawal_requests(services)) == 3
    assert wallet(client, woo)["balance"] == 5_000 - 300
