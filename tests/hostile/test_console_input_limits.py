"""Console input at and beyond its limits: ids past 64 bits, dates far from now, settings too large for the
money they move, amounts written with a comma; and a session that must not outlive its sign-out."""

from __future__ import annotations

import re

import pytest
from marshmallow import ValidationError, fields

from bridge.settings_schema import ShopSettingsSchema
from bridge.surfaces.console.forms import Invalid, parse_integer, parse_money
from tests.console_support import csrf_token, sign_in, text_of
from tests.integration.test_api import credit
from tests.integration.test_console_settings import save, stored_settings
from tests.integration.test_console_wallets import adjust, balance, customer

pytest_plugins = ("tests.console_fixtures",)  # fixtures: merchant, console

PAST_ANY_ID = "99999999999999999999999"


def error_next_to(response, field: str) -> str:
    found = re.search(rf'<p class="error" id="e-{field}">([^<]*)</p>', text_of(response))
    assert found, f"no error next to {field}"
    return found.group(1)


# Ids past 64 bits ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("before", [PAST_ANY_ID, str(2**63), "-1", "1_000", "٣"])
def test_a_before_cursor_that_is_no_id_is_ignored(console, shop, before):
    credit(console, shop)
    statement = console.get(f"/shops/{shop.shop.id}/customers/42", query_string={"before": before})
    assert statement.status_code == 200 and "goodwill" in text_of(statement)  # the newest page
    assert console.get(f"/shops/{shop.shop.id}/audit", query_string={"before": before}).status_code == 200


def test_a_page_number_past_64_bits_shows_the_first_page(console, shop, services):
    customer(services, shop)
    page = console.get(f"/shops/{shop.shop.id}/customers", query_string={"page": PAST_ANY_ID})
    assert page.status_code == 200 and "cleo@example.com" in text_of(page)


# Dates far from now --------------------------------------------------------------------------------------


@pytest.mark.parametrize("field, day", [("end", "9999-12-31"), ("start", "0001-01-01"), ("start", "1999-12-31")])
def test_a_statement_period_outside_the_supported_years_is_refused_next_to_its_field(console, shop, field, day):
    save(console, shop, "general", timezone="Asia/Tokyo")  # local midnight of year 1 is before year 1 in UTC
    credit(console, shop)
    response = console.get(f"/shops/{shop.shop.id}/customers/42", query_string={field: day})
    assert response.status_code == 200  # the wallet is still shown, as for any filter that is wrong
    assert error_next_to(response, field) == "Enter a date from 2000-01-01 to 9998-12-31."
    assert "goodwill" in text_of(response)  # the filter is dropped, not the statement


@pytest.mark.parametrize(
    "query, field",
    [
        ({"start": "0001-01-01", "end": "0001-01-05"}, "start"),
        ({"start": "2020-01-01", "end": "9999-12-31", "granularity": "month"}, "end"),
    ],
)
def test_a_report_period_outside_the_supported_years_is_refused_next_to_its_field(console, shop, query, field):
    save(console, shop, "general", timezone="Asia/Tokyo")
    response = console.get(f"/shops/{shop.shop.id}/reports", query_string=query)
    assert response.status_code == 422
    assert error_next_to(response, field) == "Enter a date from 2000-01-01 to 9998-12-31."
    assert console.get(f"/shops/{shop.shop.id}/reports/wallet.csv", query_string=query).status_code == 422


# Settings too large for the money they move --------------------------------------------------------------


def _numeric_fields(schema) -> list[tuple[str, fields.Integer]]:
    found = []
    for name, field in schema.fields.items():
        inner = getattr(field, "inner", field)
        if isinstance(inner, fields.Nested):
            found += [(f"{name}.{n}", f) for n, f in _numeric_fields(inner.schema)]
        elif isinstance(inner, fields.Integer):
            found.append((name, inner))
    return found


def _with_value(name: str, value: int) -> dict:
    """Settings where the field `name` (`return_windows.days`: a field of a tier) holds `value`."""
    outer, _, inner = name.partition(".")
    if inner:
        return {outer: [{"tier": "Standard", "min_lifetime_spend": 0, "days": 30, inner: value}]}
    return {outer: [value] if isinstance(ShopSettingsSchema().fields[outer], fields.List) else value}


@pytest.mark.parametrize("name", [name for name, _ in _numeric_fields(ShopSettingsSchema())])
def test_every_numeric_setting_has_an_upper_limit_within_64_bits(name):
    field = dict(_numeric_fields(ShopSettingsSchema()))[name]
    limits = [v.max for v in field.validators if getattr(v, "max", None) is not None]
    assert limits and max(limits) <= 10**12, f"{name} has no upper limit"
    with pytest.raises(ValidationError) as refused:
        ShopSettingsSchema().load(_with_value(name, 2**63))
    assert name.partition(".")[0] in refused.value.messages


@pytest.mark.parametrize(
    "section, values, field, message",
    [
        (
            "funding",
            {"promotional_expiry_days": "999999999999"},
            "promotional_expiry_days",
            "Must be between 0 and 3650.",
        ),
        (
            "funding",
            {"points_conversion_value": "99999999999999999999999999.00"},
            "points_conversion_value",
            "Must be between 0.00 EUR and 100000000.00 EUR.",
        ),
        (
            "funding",
            {"signup_bonus": "9999999999999999.00"},
            "signup_bonus",
            "Must be between 0.00 EUR and 100000000.00 EUR.",
        ),
        ("funding", {"points_per_currency_unit": "1000000"}, "points_per_currency_unit", "Must be between 0 and 1000."),
        (
            "refunds",
            {
                "refund_destination": "wallet",
                "refund_wallet_bonus_bp": "0",
                "card_refund_days": "999999999999",
                "tier_0_name": "Standard",
                "tier_0_spend": "0",
                "tier_0_days": "30",
            },
            "card_refund_days",
            "Must be between 0 and 3650.",
        ),
    ],
)
def test_a_setting_too_large_is_refused_next_to_its_field(console, shop, services, section, values, field, message):
    before = stored_settings(services, shop)
    response = save(console, shop, section, **values)
    assert response.status_code == 422
    assert error_next_to(response, field) == message
    assert stored_settings(services, shop) == before


# Amounts written with a comma ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed, currency, minor",
    [
        ("12,50", "EUR", 1250),
        ("12,5", "EUR", 1250),
        ("0,99", "EUR", 99),
        ("1,234.50", "EUR", 123450),
        ("1,234,567", "EUR", 123456700),
        (" 12.50 ", "EUR", 1250),
        ("1,25", "KWD", 1250),
        ("1,234,567", "JPY", 1234567),
    ],
)
def test_a_comma_is_read_as_what_it_can_only_mean(typed, currency, minor):
    assert parse_money(typed, currency) == minor


@pytest.mark.parametrize(
    "typed, currency, message",
    [
        ("1,250", "EUR", "1250.00 or 1.25"),
        ("1,250", "JPY", "1250.00 or 1.25"),
        ("12,500", "KWD", "1250.00 or 1.25"),
        ("1.234,50", "EUR", "1250.00 or 1.25"),
        ("1,2,3", "EUR", "1250.00 or 1.25"),
        ("12,50", "JPY", "Too many decimals"),
    ],
)
def test_a_comma_that_could_mean_either_is_refused(typed, currency, message):
    with pytest.raises(Invalid) as refused:
        parse_money(typed, currency)
    assert message in str(refused.value)


def test_a_whole_number_takes_a_thousands_separator_but_never_a_decimal_comma():
    assert parse_integer("1,000") == 1000
    with pytest.raises(Invalid):
        parse_integer("1,5")


def test_a_decimal_comma_credits_the_amount_typed(console, shop, services):
    customer(services, shop)
    assert adjust(console, shop, amount="12,50").status_code == 302
    assert balance(services, shop) == 1250


def test_an_ambiguous_comma_credits_nothing_and_says_why(console, shop, services):
    customer(services, shop)
    response = adjust(console, shop, amount="1,250")
    assert response.status_code == 422
    assert "1250.00 or 1.25" in error_next_to(response, "amount")
    assert balance(services, shop) == 0


def test_a_decimal_comma_in_a_money_setting_is_stored_as_typed(console, shop, services):
    assert save(console, shop, "funding", signup_bonus="2,50").status_code == 302
    assert stored_settings(services, shop)["signup_bonus"] == 250


# A session that must not outlive its sign-out ------------------------------------------------------------


def test_a_session_cookie_copied_before_sign_out_is_refused_after_it(client, merchant, shop):
    sign_in(client)
    copied = client.get_cookie("wallet_bridge_session").value
    client.post("/logout", data={"csrf_token": csrf_token(client, "/account")})
    client.set_cookie("wallet_bridge_session", copied)
    response = client.get(f"/shops/{shop.shop.id}/settings")
    assert response.status_code == 302 and "/login" in response.location


def test_signing_out_signs_out_the_users_other_sessions(app, console, shop):
    other_browser = app.test_client()
    sign_in(other_browser)
    console.post("/logout", data={"csrf_token": csrf_token(console, "/account")})
    assert other_browser.get(f"/shops/{shop.shop.id}/").status_code == 302
    assert sign_in(other_browser).status_code == 302  # signing in again starts a session that works
    assert other_browser.get(f"/shops/{shop.shop.id}/").status_code == 200
