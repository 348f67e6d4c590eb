"""Settings pages: validated by the shared ShopSettingsSchema with messages next to the field, nothing written on
a bad value, every change audited; the connection buttons run the same code as `wallet-bridge shop connect`."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
import responses
from marshmallow import ValidationError
from sqlalchemy import func, select

from bridge.db import unit_of_work
from bridge.models import AuditEvent, Shop
from bridge.settings_schema import ShopSettingsSchema
from tests.console_support import form_post, text_of
from tests.inbox import record_delivery

pytest_plugins = ("tests.console_fixtures",)  # fixtures: merchant, console

WOO = "https://alpha.example"
API = f"{WOO}/wp-json/wc/v3"
KEY, SECRET = "ck_0123456789abcdef0123456789abcdef01234567", "cs_fedcba9876543210fedcba9876543210fedcba98"

FUNDING = {
    "topup_minimum": "5.00",
    "topup_maximum": "500.00",
    "topup_bonus_bp": "0",
    "topup_bonus_threshold": "0.00",
    "signup_bonus": "0.00",
    "points_per_currency_unit": "0",
    "points_conversion_points": "100",
    "points_conversion_value": "1.00",
    "points_conversion_minimum": "0",
    "points_auto_convert_threshold": "0",
    "promotional_expiry_days": "0",
    "points_base": "items",
}


def stored_settings(services, shop) -> dict:
    with unit_of_work(services.sessions) as session:
        return dict(session.get(Shop, shop.shop.id).settings)


def audit_rows(services) -> list[tuple]:
    with unit_of_work(services.sessions) as session:
        return session.execute(
            select(
                AuditEvent.actor, AuditEvent.action, AuditEvent.field, AuditEvent.old_value, AuditEvent.new_value
            ).order_by(AuditEvent.id)
        ).all()


GATEWAY = {"failed_order_release_days": "7"}  # the fields a test of the section does not set, as the form sends them


def save(console, shop, section, **values):
    data = dict({"funding": FUNDING, "gateway": GATEWAY}.get(section, {}))
    data.update(values)
    return form_post(console, f"/shops/{shop.shop.id}/settings/{section}", data)


def test_settings_page_shows_every_section_with_stored_values(console, shop):
    page = text_of(console.get(f"/shops/{shop.shop.id}/settings"))
    for title in ("Connection", "Wallet gateway", "Funding", "Refunds", "Tips", "Recent changes"):
        assert f">{title}</h2>" in page
    assert 'name="topup_minimum" type="text"\n             value="5.00"' in page
    assert 'value="15, 20, 25"' in page  # tip presets in percent


def test_a_change_is_saved_audited_and_listed_on_the_page(console, shop, services):
    response = save(console, shop, "funding", topup_minimum="10.00")
    assert response.status_code == 302 and response.location.endswith("/settings#funding")
    assert stored_settings(services, shop)["topup_minimum"] == 1000
    assert audit_rows(services) == [("ann@example.com", "settings.funding", "topup_minimum", "5.00 EUR", "10.00 EUR")]
    page = text_of(console.get(f"/shops/{shop.shop.id}/settings"))
    assert "Funding: 1 change saved." in page
    line = re.search(r'<li class="audit-line">.*?</li>', page, re.S).group(0)
    assert "ann@example.com" in line and "Top-up minimum" in line and "5.00 EUR" in line and "10.00 EUR" in line


def test_only_changed_fields_are_audited(console, shop, services):
    save(console, shop, "funding", topup_maximum="500.00")
    assert [(row[2], row[3], row[4]) for row in audit_rows(services)] == []
    save(console, shop, "funding", topup_maximum="600.00", signup_bonus="2.50")
    assert [(row[2], row[3], row[4]) for row in audit_rows(services)] == [
        ("signup_bonus", "0.00 EUR", "2.50 EUR"),
        ("topup_maximum", "500.00 EUR", "600.00 EUR"),
    ]


def test_saving_the_same_values_changes_nothing(console, shop, services):
    response = save(console, shop, "funding")
    assert response.status_code == 302
    assert "nothing changed" in text_of(console.get(response.location))
    assert audit_rows(services) == []


@pytest.mark.parametrize(
    "section, values, field, message",
    [
        ("funding", {"topup_minimum": "ten"}, "topup_minimum", "Enter an amount such as 12.50."),
        ("funding", {"topup_minimum": "1.005"}, "topup_minimum", "Too many decimals for EUR."),
        # read whole, never cut to the field's length, and exactly (not to Decimal's 28 digits): not 7.00 / 12 %
        ("funding", {"topup_minimum": "7." + "0" * 300 + "1"}, "topup_minimum", "Too many decimals for EUR."),
        ("funding", {"topup_bonus_bp": "12." + "0" * 30 + "1"}, "topup_bonus_bp", "At most two decimals."),
        ("funding", {"topup_bonus_bp": "1e-999999999"}, "topup_bonus_bp", "Enter a percentage"),
        ("funding", {"signup_bonus": "0" * 1_000 + "1"}, "signup_bonus", "At most 1000 characters."),
        ("funding", {"signup_bonus": "-1.00"}, "signup_bonus", "Must be between 0.00 EUR and 100000000.00 EUR."),
        (
            "funding",
            {"topup_minimum": "80.00", "topup_maximum": "50.00"},
            "topup_maximum",
            "Must be at least the top-up minimum.",
        ),
        ("funding", {"points_conversion_points": "0"}, "points_conversion_points", "Must be between 1 and 1000000000."),
        ("funding", {"promotional_expiry_days": "2.5"}, "promotional_expiry_days", "Enter a whole number."),
        (
            "refunds",
            {
                "refund_destination": "bank",
                "refund_wallet_bonus_bp": "0",
                "card_refund_days": "0",
                "tier_0_name": "Standard",
                "tier_0_spend": "0",
                "tier_0_days": "30",
            },
            "refund_destination",
            "Must be one of",
        ),
        (
            "refunds",
            {
                "refund_destination": "wallet",
                "refund_wallet_bonus_bp": "150",
                "card_refund_days": "0",
                "tier_0_name": "Standard",
                "tier_0_spend": "0",
                "tier_0_days": "30",
            },
            "refund_wallet_bonus_bp",
            "Must be between 0 % and 100 %.",
        ),
        (
            "gateway",
            {
                "wallet_payment_methods": "wallet",
                "wallet_discount_kind": "percent",
                "wallet_discount_value": "120",
                "unpaid_order_status": "failed",
            },
            "wallet_discount_value",
            "A percent discount is at most 100 %.",
        ),
        ("tips", {"tips_enabled": "on", "tip_presets_bp": "15, 15"}, "tip_presets_bp", "Each preset may appear once."),
        ("tips", {"tip_presets_bp": "15, lots"}, "tip_presets_bp", "Enter a percentage"),
        ("tips", {"tip_presets_bp": ""}, "tip_presets_bp", "Enter between 1 and 6 values."),
        ("general", {"timezone": "Mars/Olympus_Mons"}, "timezone", "Unknown time zone"),
        ("general", {"timezone": "../../etc/passwd"}, "timezone", "Unknown time zone"),
        (
            "general",
            {"timezone": "UTC", "extra_currencies": "USD, usd"},
            "extra_currencies",
            "'usd' is not an ISO 4217 currency code in capitals",
        ),
    ],
)
def test_a_bad_value_is_shown_next_to_its_field_and_nothing_is_written(
    console, shop, services, section, values, field, message
):
    before = stored_settings(services, shop)
    response = save(console, shop, section, **values)
    assert response.status_code == 422
    page = text_of(response)
    error = re.search(rf'<p class="error" id="e-{field}">([^<]*)</p>', page)
    assert error, f"no error next to {field}"
    assert message.replace("'", "&#39;") in error.group(1)
    assert "Nothing was saved" in page
    assert stored_settings(services, shop) == before
    assert audit_rows(services) == []


def test_a_value_that_does_not_parse_hides_no_other_fields_problem(console, shop, services):
    before = stored_settings(services, shop)
    response = save(console, shop, "funding", promotional_expiry_days="2.5", points_conversion_points="0")
    assert response.status_code == 422
    page = text_of(response)
    assert '<p class="error" id="e-promotional_expiry_days">Enter a whole number.' in page
    assert '<p class="error" id="e-points_conversion_points">Must be between 1 and 1000000000.' in page
    assert stored_settings(services, shop) == before


def test_a_decimal_comma_is_read_alike_in_money_and_percent_fields(console, shop, services):
    assert (
        save(console, shop, "funding", **{**FUNDING, "topup_minimum": "7,50", "topup_bonus_bp": "2,5"}).status_code
        == 302
    )
    stored = stored_settings(services, shop)
    assert (stored["topup_minimum"], stored["topup_bonus_bp"]) == (750, 250)
    refused = text_of(save(console, shop, "funding", **{**FUNDING, "topup_bonus_bp": "1,250"}))
    assert '<p class="error" id="e-topup_bonus_bp">Write it without thousands separators' in refused


def test_the_form_and_the_schema_agree_on_a_rule(console, shop):
    """The console's message for a cross-field rule is the schema's own message."""
    with pytest.raises(ValidationError) as refused:
        ShopSettingsSchema().load({"topup_minimum": 8000, "topup_maximum": 5000})
    response = save(console, shop, "funding", topup_minimum="80.00", topup_maximum="50.00")
    assert refused.value.messages["topup_maximum"][0] in text_of(response)


def test_gateway_discount_is_a_percent_or_an_amount_by_its_kind(console, shop, services):
    gateway = {"wallet_payment_methods": "wallet, cheque", "partial_payments": "on", "unpaid_order_status": "on-hold"}
    save(console, shop, "gateway", **gateway, wallet_discount_kind="percent", wallet_discount_value="2.5")
    stored = stored_settings(services, shop)
    assert (stored["wallet_discount_kind"], stored["wallet_discount_value"]) == ("percent", 250)
    assert stored["wallet_payment_methods"] == ["wallet", "cheque"] and stored["unpaid_order_status"] == "on-hold"
    save(console, shop, "gateway", **gateway, wallet_discount_kind="fixed", wallet_discount_value="3.00")
    assert stored_settings(services, shop)["wallet_discount_value"] == 300


def test_unchecked_box_turns_a_setting_off(console, shop, services):
    save(
        console,
        shop,
        "gateway",
        wallet_payment_methods="wallet",
        wallet_discount_kind="none",
        wallet_discount_value="",
        unpaid_order_status="failed",
    )
    assert stored_settings(services, shop)["partial_payments"] is False
    assert ("partial_payments", "on", "off") in [(r[2], r[3], r[4]) for r in audit_rows(services)]


def test_tips_presets_are_typed_in_percent_and_stored_in_basis_points(console, shop, services):
    assert save(console, shop, "tips", tips_enabled="on", tip_presets_bp="10, 12.5, 18").status_code == 302
    stored = stored_settings(services, shop)
    assert stored["tips_enabled"] is True and stored["tip_presets_bp"] == [1000, 1250, 1800]
    rows = {r[2]: (r[3], r[4]) for r in audit_rows(services)}
    assert rows["tip_presets_bp"] == ("15 %, 20 %, 25 %", "10 %, 12.5 %, 18 %")
    assert rows["tips_enabled"] == ("off", "on")


def test_return_windows_per_tier(console, shop, services):
    refunds = {"refund_destination": "customer_choice", "refund_wallet_bonus_bp": "5", "card_refund_days": "14"}
    tiers = {
        "tier_0_name": "Standard",
        "tier_0_spend": "0",
        "tier_0_days": "30",
        "tier_1_name": "Gold",
        "tier_1_spend": "1000.00",
        "tier_1_days": "90",
        "tier_2_name": "Silver",
        "tier_2_spend": "250",
        "tier_2_days": "60",
        "tier_3_name": "",
        "tier_3_spend": "",
        "tier_3_days": "",
    }
    assert save(console, shop, "refunds", **refunds, **tiers).status_code == 302
    stored = stored_settings(services, shop)
    assert stored["return_windows"] == [
        {"tier": "Standard", "min_lifetime_spend": 0, "days": 30},
        {"tier": "Silver", "min_lifetime_spend": 25_000, "days": 60},
        {"tier": "Gold", "min_lifetime_spend": 100_000, "days": 90},
    ]
    assert (stored["refund_wallet_bonus_bp"], stored["card_refund_days"]) == (500, 14)
    page = text_of(console.get(f"/shops/{shop.shop.id}/settings"))
    assert "Silver: from 250.00 EUR, 60 days" in page


def test_a_bad_tier_row_is_marked_on_its_own_cell(console, shop, services):
    refunds = {"refund_destination": "wallet", "refund_wallet_bonus_bp": "0", "card_refund_days": "0"}
    response = save(
        console,
        shop,
        "refunds",
        **refunds,
        tier_0_name="Standard",
        tier_0_spend="0",
        tier_0_days="30",
        tier_1_name="Gold",
        tier_1_spend="500",
        tier_1_days="forever",
    )
    assert response.status_code == 422
    assert re.search(r'name="tier_1_days" value="forever"[^>]*aria-invalid="true"', text_of(response))
    duplicate = save(
        console,
        shop,
        "refunds",
        **refunds,
        tier_0_name="Standard",
        tier_0_spend="0",
        tier_0_days="30",
        tier_1_name="Gold",
        tier_1_spend="0",
        tier_1_days="60",
    )
    assert "Two tiers have the same lifetime-spend threshold." in text_of(duplicate)
    assert audit_rows(services) == []


def test_the_time_zone_is_chosen_by_its_iana_name_and_audited(console, shop, services):
    page = text_of(console.get(f"/shops/{shop.shop.id}/settings"))
    assert ">General</h2>" in page and 'name="timezone" type="text"\n             value="UTC"' in page
    assert 'list="timezones"' in page and '<option value="Asia/Kathmandu">' in page
    response = save(console, shop, "general", timezone="Europe/Paris")
    assert response.status_code == 302 and response.location.endswith("/settings#general")
    assert stored_settings(services, shop)["timezone"] == "Europe/Paris"
    assert audit_rows(services) == [("ann@example.com", "settings.general", "timezone", "UTC", "Europe/Paris")]
    assert "Time zone" in text_of(console.get(f"/shops/{shop.shop.id}/settings"))


@pytest.mark.parametrize("name", ["Europe/Pariss", "europe/paris", "localtime", "", "Europe/Paris\x00", "+01:00"])
def test_the_schema_refuses_an_unknown_time_zone_by_its_field(name):
    assert ShopSettingsSchema().load({})["timezone"] == "UTC"
    assert ShopSettingsSchema().load({"timezone": "Asia/Kathmandu"})["timezone"] == "Asia/Kathmandu"
    with pytest.raises(ValidationError) as refused:
        ShopSettingsSchema().load({"timezone": name})
    assert list(refused.value.messages) == ["timezone"]


def test_an_unknown_section_is_a_404(console, shop):
    assert form_post(console, f"/shops/{shop.shop.id}/settings/everything", {}).status_code == 404


# Connection --------------------------------------------------------------------------------------------------


class FakeWoo:
    """Just enough of wc/v3 for the connection buttons: the keys check, and webhooks."""

    def __init__(self, mock: responses.RequestsMock, accept: bool = True, webhooks: list | None = None):
        self.accept, self.webhooks = accept, list(webhooks or [])
        mock.add_callback("GET", f"{API}/orders", callback=self.orders)
        mock.add_callback("GET", f"{API}/webhooks", callback=self.list_webhooks)
        mock.add_callback("POST", f"{API}/webhooks", callback=self.create_webhook)
        mock.add_callback("PUT", re.compile(rf"{re.escape(API)}/webhooks/\d+"), callback=self.update_webhook)

    def orders(self, request):
        if not self.accept:
            return 401, {}, json.dumps({"code": "woocommerce_rest_cannot_view", "message": "Sorry"})
        return 200, {}, "[]"

    def list_webhooks(self, request):
        return 200, {"X-WP-TotalPages": "1"}, json.dumps(self.webhooks)

    def create_webhook(self, request):
        hook = dict(json.loads(request.body), id=len(self.webhooks) + 1)
        self.webhooks.append(hook)
        return 201, {}, json.dumps(hook)

    def update_webhook(self, request):
        hook = next(w for w in self.webhooks if w["id"] == int(request.url.rsplit("/", 1)[-1]))
        hook.update(json.loads(request.body))
        return 200, {}, json.dumps(hook)


DELIVERY_URL = "https://bridge.example.test/webhooks/woocommerce/{}"


def test_test_connection_checks_the_keys_and_reads_webhook_states_but_stores_no_key(console, shop, services):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        FakeWoo(
            mock,
            webhooks=[
                {
                    "id": 7,
                    "topic": "order.updated",
                    "status": "disabled",
                    "delivery_url": DELIVERY_URL.format(shop.shop.id),
                }
            ],
        )
        response = form_post(
            console,
            f"/shops/{shop.shop.id}/settings/connection/test",
            {"url": WOO, "consumer_key": KEY, "consumer_secret": SECRET},
        )
    page = text_of(response)
    assert response.status_code == 200 and "The shop accepted the keys. Webhooks active: 0 of 6." in page
    assert re.search(r"<code>order.updated</code></td>\s*<td><span class=\"badge badge-bad\">disabled", page)
    with unit_of_work(services.sessions) as session:
        assert session.get(Shop, shop.shop.id).consumer_key_enc is None
    assert [row[1] for row in audit_rows(services)] == ["connection.check"]
    assert KEY not in page and SECRET not in page


def test_refused_keys_are_said_next_to_the_key_field(console, shop, services):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        FakeWoo(mock, accept=False)
        response = form_post(
            console,
            f"/shops/{shop.shop.id}/settings/connection/test",
            {"url": WOO, "consumer_key": KEY, "consumer_secret": SECRET},
        )
    assert response.status_code == 422
    assert re.search(r'id="e-consumer_key">rejected by the shop<', text_of(response))


def test_a_url_that_is_not_one_is_refused_before_any_request(console, shop):
    with responses.RequestsMock() as mock:  # any request would fail this test
        response = form_post(
            console,
            f"/shops/{shop.shop.id}/settings/connection/install",
            {"url": "alpha.example", "consumer_key": KEY, "consumer_secret": SECRET},
        )
        assert len(mock.calls) == 0
    assert response.status_code == 422 and 'id="e-url">not an http(s) URL<' in text_of(response)


def test_connect_installs_webhooks_stores_keys_encrypted_and_shows_them_masked(console, shop, services):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        fake = FakeWoo(mock)
        response = form_post(
            console,
            f"/shops/{shop.shop.id}/settings/connection/install",
            {"url": WOO + "/", "consumer_key": KEY, "consumer_secret": SECRET},
        )
    assert response.status_code == 302
    assert sorted(w["topic"] for w in fake.webhooks) == [
        "customer.created",
        "customer.updated",
        "order.created",
        "order.deleted",
        "order.restored",
        "order.updated",
    ]
    with unit_of_work(services.sessions) as session:
        stored = session.get(Shop, shop.shop.id)
        assert services.secrets.open(stored.consumer_key_enc) == KEY and KEY.encode() not in stored.consumer_key_enc
    page = text_of(console.get(f"/shops/{shop.shop.id}/settings"))
    assert "Webhooks created: 6" in page
    assert KEY not in page and SECRET not in page
    assert "ck_…4567" in page  # masked: recognisable, not usable
    changes = {row[2]: (row[3], row[4]) for row in audit_rows(services) if row[1] == "connection.update"}
    assert changes == {"consumer_key": ("—", "ck_…4567"), "consumer_secret": ("—", "(replaced)")}
    assert all(KEY not in str(row) and SECRET not in str(row) for row in audit_rows(services))


def test_blank_key_fields_keep_the_stored_keys(console, shop, services):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        FakeWoo(mock)
        form_post(
            console,
            f"/shops/{shop.shop.id}/settings/connection/install",
            {"url": WOO, "consumer_key": KEY, "consumer_secret": SECRET},
        )
        again = form_post(
            console,
            f"/shops/{shop.shop.id}/settings/connection/test",
            {"url": WOO, "consumer_key": "", "consumer_secret": ""},
        )
    assert again.status_code == 200 and "Webhooks active: 6 of 6" in text_of(again)


def test_webhook_health_shows_the_last_delivery_per_topic(console, shop, services):
    record_delivery(
        services.sessions,
        shop_id=shop.shop.id,
        platform="woocommerce",
        topic="order.updated",
        resource_id="12",
        delivery_id="d1",
        body=b"{}",
        status="applied",
    )
    with unit_of_work(services.sessions) as session:
        count = session.scalar(select(func.count()).select_from(AuditEvent))
    page = text_of(console.get(f"/shops/{shop.shop.id}/settings"))
    row = re.search(r"<code>order.updated</code>.*?</tr>", page, re.S).group(0)
    assert datetime.now(UTC).strftime("%Y-%m-%d") in row and "applied" in row
    assert count == 0
