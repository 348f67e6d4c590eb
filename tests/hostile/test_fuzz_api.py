"""schemathesis over the app's own OpenAPI document, in-process (WSGI), with a valid API key: no generated
request is answered 5xx, and a request answered 4xx leaves no row behind in the money tables."""

from __future__ import annotations

import pytest
import responses
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from bridge.db import unit_of_work
from bridge.models import Shop
from bridge.surfaces.console.forms import SECTIONS
from tests.console_support import csrf_token, make_user, sign_in
from tests.hostile import CASES, MONEY_TABLES, report, row_counts
from tests.integration.test_api import auth, credit
from tests.woo import API, connect_for_tests

NAME = "api (schemathesis)"
EXAMPLES = 12


def seed(client, shop) -> None:
    """Some state to hit: a funded wallet and an open hold, so that not every id is unknown."""
    assert credit(client, shop, customer="42", amount=10_000, key="seed-1").status_code == 201
    hold = client.post(
        "/api/v1/customers/42/holds", json={"amount": 1_000, "reason": "seed"}, headers=auth(shop, "seed-hold")
    )
    assert hold.status_code == 201, hold.get_data(as_text=True)


@pytest.fixture
def woo_orders():
    """A connected shop's REST API, for top-ups (the bridge creates a shop order)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(
            responses.POST,
            f"{API}/orders",
            json={"id": 9001, "payment_url": "https://alpha.example/pay/9001"},
            status=201,
        )
        yield mock


def test_generated_requests_never_5xx_and_rejections_write_nothing(app, client, shop, services, woo_orders, capsys):
    connect_for_tests(services, shop.shop.id)
    seed(client, shop)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    failures: list[str] = []

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case):
            headers = {**auth(shop), "Idempotency-Key": f"fuzz-{CASES[NAME]}"}
            before = row_counts(services, MONEY_TABLES)
            response = case.call(headers=headers)
            CASES[NAME] += 1
            label = f"{case.method} {case.formatted_path} {case.body!r:.200}"
            assert response.status_code < 500, f"{label}: {response.status_code} {response.text[:300]}"
            if response.status_code >= 400:
                assert row_counts(services, MONEY_TABLES) == before, f"{label}: {response.status_code} wrote rows"

        try:
            run()
        except AssertionError as exc:  # every operation is tried; all failures reported together
            failures.append(str(exc))
    report(capsys, NAME, len(operations) * 5)
    assert not failures, "\n".join(failures)


# Bugs the fuzzer found ---------------------------------------------------------------------------------------


BIG = 2**63  # beyond any integer column: 2**31 is enough on PostgreSQL (INTEGER ids), not on SQLite


@pytest.mark.parametrize(
    "method, url",
    [
        ("POST", "/api/v1/holds/{big}/capture"),
        ("POST", "/api/v1/holds/{big}/void"),
        ("POST", "/webhooks/woocommerce/{big}"),
        ("POST", "/webhooks/shopify/{big}"),
        ("GET", "/shops/{big}/"),
        ("POST", "/shops/{shop}/operations/outbox/{big}/retry"),
        ("POST", "/shops/{shop}/operations/inbox/{big}/retry"),
    ],
)
def test_id_beyond_the_integer_range_is_404(client, services, shop, method, url):
    token = signed_in_console(client, services, shop)
    before = row_counts(services)
    url = url.format(big=BIG, shop=shop.shop.id)
    data = {"csrf_token": token} if url.startswith("/shops") else None
    response = client.open(
        url, method=method, data=data, json={} if url.startswith("/api") else None, headers=auth(shop, "big-id")
    )
    assert response.status_code in (401, 404), f"{method} {url}: {response.status_code}"
    assert row_counts(services) == before


def test_topup_on_an_unconnected_shop_is_a_4xx(client, shop, services):
    before = row_counts(services, MONEY_TABLES)
    response = client.post("/api/v1/customers/42/topups", json={"amount": 1_000}, headers=auth(shop, "topup-1"))
    assert 400 <= response.status_code < 500
    assert row_counts(services, MONEY_TABLES) == before


# Merchant forms (console, signed in, CSRF token taken from the form) ----------------------------------------

FORM_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            "0",
            "-1",
            "1",
            "5.00",
            "0.001",
            "1e9",
            "9" * 30,
            "NaN",
            "inf",
            "credit",
            "debit",
            "on",
            "off",
            "percent",
            "fixed",
            "none",
            "wallet",
            "failed",
            "15, 20, 25",
            "<script>",
            "€1,00",
        ]
    ),
)


def signed_in_console(client, services, shop):
    make_user(services, shop.shop.id)
    assert sign_in(client).status_code == 302
    return csrf_token(client, f"/shops/{shop.shop.id}/settings")


def test_fuzz_adjustment_form(client, services, shop, capsys):
    name = "console adjustment form"
    token = signed_in_console(client, services, shop)
    assert credit(client, shop, customer="42", amount=10_000, key="seed").status_code == 201
    url = f"/shops/{shop.shop.id}/customers/42/adjust"

    @settings(
        max_examples=40,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(
        direction=FORM_TEXT,
        amount=FORM_TEXT,
        reason=FORM_TEXT,
        form_token=st.one_of(st.text(max_size=40), st.binary(min_size=16, max_size=16).map(bytes.hex)),
    )
    def run(direction, amount, reason, form_token):
        before = row_counts(services)
        data = {"csrf_token": token, "direction": direction, "amount": amount, "reason": reason, "token": form_token}
        response = client.post(url, data=data)
        CASES[name] += 1
        assert response.status_code < 500, f"{data}: {response.status_code}"
        if response.status_code != 302:  # rejected: the page again, with the problems
            assert response.status_code in (409, 422), f"{data}: {response.status_code}"
            assert row_counts(services) == before, f"{data}: rejected but wrote"

    run()
    report(capsys, name, 40)


@pytest.mark.parametrize("section_key", list(SECTIONS))
def test_fuzz_settings_section(client, services, shop, section_key, capsys):
    name = f"console settings {section_key}"
    token = signed_in_console(client, services, shop)
    section = SECTIONS[section_key]
    names = [spec.name for spec in section.fields if spec.unit != "tiers"]
    if any(spec.unit == "tiers" for spec in section.fields):
        names += [f"tier_{i}_{column}" for i in range(3) for column in ("name", "spend", "days")]
    url = f"/shops/{shop.shop.id}/settings/{section_key}"

    @settings(
        max_examples=15,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(values=st.fixed_dictionaries({}, optional={field: FORM_TEXT for field in names}))
    def run(values):
        before = row_counts(services), stored_settings(services, shop)
        response = client.post(url, data={"csrf_token": token, **values})
        CASES[name] += 1
        assert response.status_code < 500, f"{values}: {response.status_code}"
        if response.status_code != 302:
            assert response.status_code == 422, f"{values}: {response.status_code}"
            assert (row_counts(services), stored_settings(services, shop)) == before, f"{values}: rejected but wrote"

    run()
    report(capsys, name, 15)


def test_form_without_csrf_token_is_refused_and_writes_nothing(client, services, shop):
    signed_in_console(client, services, shop)
    assert credit(client, shop, customer="42", amount=10_000, key="seed").status_code == 201
    before = row_counts(services), stored_settings(services, shop)
    for url, data in (
        (
            f"/shops/{shop.shop.id}/customers/42/adjust",
            {"direction": "credit", "amount": "5.00", "reason": "x", "token": "a" * 32},
        ),
        (f"/shops/{shop.shop.id}/settings/funding", {"signup_bonus": "5.00"}),
    ):
        assert client.post(url, data=data).status_code == 400
        assert client.post(url, data={**data, "csrf_token": "forged"}).status_code == 400
    assert (row_counts(services), stored_settings(services, shop)) == before


def stored_settings(services, shop) -> dict:
    with unit_of_work(services.sessions) as session:
        return dict(session.get(Shop, shop.shop.id).settings)
