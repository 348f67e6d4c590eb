"""The console's access rules: first run, sign-in with throttling, sessions, CSRF, headers, tenant isolation."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from bridge import users
from bridge.db import unit_of_work
from bridge.models import AuditEvent, LoginAttempt, MerchantUser, Shop, ShopMembership
from bridge.users import MAX_FAILURES_PER_EMAIL, MAX_FAILURES_PER_IP
from tests.console_support import PASSWORD, csrf_token, form_post, make_user, sign_in, text_of

pytest_plugins = ("tests.console_fixtures",)  # fixtures: merchant, console

SETUP = {
    "shop_name": "Corner Shop",
    "platform": "woocommerce",
    "url": "https://corner.example",
    "currency": "eur",
    "name": "Cora",
    "email": "Cora@Example.com",
    "password": PASSWORD,
    "password_confirm": PASSWORD,
}


def count(services, model) -> int:
    with unit_of_work(services.sessions) as session:
        return session.scalar(select(func.count()).select_from(model))


# First run -------------------------------------------------------------------------------------------------


def test_empty_database_leads_to_first_run_setup(client):
    assert client.get("/").location.endswith("/setup")
    assert client.get("/login").location.endswith("/setup")
    page = client.get("/setup")
    assert page.status_code == 200 and "Welcome to Wallet Bridge" in text_of(page)
    assert client.head("/setup").status_code == 200  # a HEAD is a GET without the body, never a form submission


def test_first_run_creates_shop_user_membership_and_signs_in(client, services):
    response = form_post(client, "/setup", SETUP, token_from="/setup")
    assert response.status_code == 200
    body = text_of(response)
    assert "Your shop is ready" in body and "wb_" in body  # the API key, shown once
    with unit_of_work(services.sessions) as session:
        user = session.execute(select(MerchantUser)).scalar_one()
        shop = session.execute(select(Shop)).scalar_one()
        assert (user.email, shop.currency) == ("cora@example.com", "EUR")
        assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash
        assert (
            session.execute(select(ShopMembership.shop_id).where(ShopMembership.user_id == user.id)).scalar() == shop.id
        )
    assert client.get("/").location.endswith(f"/shops/{shop.id}/")
    assert client.get(f"/shops/{shop.id}/").status_code == 200


def test_first_run_shows_each_problem_next_to_its_field_and_creates_nothing(client, services):
    bad = dict(SETUP, url="corner.example", currency="ZZZ", email="nope", password="short", password_confirm="other")
    response = form_post(client, "/setup", bad, token_from="/setup")
    assert response.status_code == 422
    body = text_of(response)
    for field, message in [
        ("url", "starting with https://"),
        ("currency", "three-letter currency"),
        ("email", "valid e-mail"),
        ("password", "At least 10 characters"),
    ]:
        assert f'id="e-{field}"' in body and message in body
    assert count(services, MerchantUser) == 0 and count(services, Shop) == 0


def test_first_run_is_closed_once_a_user_exists(client, services, shop, merchant):
    assert client.get("/setup").location.endswith("/")
    form_post(client, "/setup", dict(SETUP, email="intruder@example.com"), token_from="/login")
    assert count(services, MerchantUser) == 1


# Signing in --------------------------------------------------------------------------------------------------


def test_pages_require_sign_in(client, shop, merchant):
    shop_id = shop.shop.id
    for path in (
        f"/shops/{shop_id}/",
        f"/shops/{shop_id}/settings",
        f"/shops/{shop_id}/customers",
        f"/shops/{shop_id}/reports",
        f"/shops/{shop_id}/reports/wallet.csv",
        f"/shops/{shop_id}/operations",
        f"/shops/{shop_id}/audit",
        f"/shops/{shop_id}/team",
        "/account",
        "/shops",
    ):
        response = client.get(path)
        assert response.status_code == 302 and "/login?next=" in response.location, path
    token = csrf_token(client)
    response = client.post(f"/shops/{shop_id}/settings/funding", data={"csrf_token": token, "topup_minimum": "1"})
    assert response.status_code == 302 and "/login" in response.location


def test_sign_in_redirects_to_the_page_asked_for_but_never_off_site(client, shop, merchant):
    response = sign_in(client, query_string={"next": f"/shops/{shop.shop.id}/reports"})
    assert response.location == f"/shops/{shop.shop.id}/reports"
    client.post("/logout", data={"csrf_token": csrf_token(client, f"/shops/{shop.shop.id}/")})
    for evil in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        assert sign_in(client, query_string={"next": evil}).location == "/"
        client.post("/logout", data={"csrf_token": csrf_token(client, f"/shops/{shop.shop.id}/")})


def test_wrong_password_is_refused_without_saying_which_part_was_wrong(client, shop, merchant, services):
    wrong_password = sign_in(client, password="not the password")
    unknown_user = sign_in(client, email="nobody@example.com")
    for response in (wrong_password, unknown_user):
        assert response.status_code == 401
        assert "Wrong e-mail address or password." in text_of(response)
    assert count(services, LoginAttempt) == 2
    assert client.get(f"/shops/{shop.shop.id}/").status_code == 302


def test_failed_sign_ins_are_throttled_per_email_in_the_database(client, shop, merchant, services):
    for _ in range(MAX_FAILURES_PER_EMAIL):
        assert sign_in(client, password="guess").status_code == 401
    # Even the right password is refused now: the count lives in the database, shared by every process.
    throttled = sign_in(client)
    assert throttled.status_code == 429 and "Too many failed sign-ins" in text_of(throttled)
    assert int(throttled.headers["Retry-After"]) > 60
    # Another address is not affected by this e-mail's failures.
    other = make_user(services, shop.shop.id, email="bob@example.com", name="Bob")
    assert sign_in(client, email=other.email).status_code == 302


def test_failed_sign_ins_are_throttled_per_client_address(client, shop, merchant, services, monkeypatch):
    assert MAX_FAILURES_PER_IP > MAX_FAILURES_PER_EMAIL  # one address may hold several people's typos
    monkeypatch.setattr(users, "MAX_FAILURES_PER_IP", 4)  # fewer argon2 checks; the rule is the same
    for n in range(4):
        sign_in(client, email=f"guess{n}@example.com", headers={"X-Forwarded-For": "203.0.113.9"})
    blocked = sign_in(client, headers={"X-Forwarded-For": "203.0.113.9"})
    assert blocked.status_code == 429
    assert sign_in(client, headers={"X-Forwarded-For": "198.51.100.7"}).status_code == 302


def test_a_successful_sign_in_clears_the_failures_of_that_email(client, shop, merchant, services):
    for _ in range(MAX_FAILURES_PER_EMAIL - 1):
        sign_in(client, password="guess")
    assert sign_in(client).status_code == 302
    with unit_of_work(services.sessions) as session:
        left = session.scalar(
            select(func.count()).select_from(LoginAttempt).where(LoginAttempt.email == "ann@example.com")
        )
    assert left == 0


def test_session_cookie_is_http_only_and_same_site(client, shop, merchant):
    cookie = sign_in(client).headers["Set-Cookie"]
    assert "wallet_bridge_session=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_logout_ends_the_session(console, shop):
    token = csrf_token(console, f"/shops/{shop.shop.id}/")
    assert console.post("/logout", data={"csrf_token": token}).location.endswith("/login")
    assert console.get(f"/shops/{shop.shop.id}/").status_code == 302


def test_changing_the_password_signs_out_other_sessions(app, console, shop, services):
    other_browser = app.test_client()
    assert sign_in(other_browser).status_code == 302
    response = form_post(
        console,
        "/account",
        {
            "current_password": PASSWORD,
            "new_password": "a brand new secret",
            "new_password_confirm": "a brand new secret",
        },
        token_from="/account",
    )
    assert response.status_code == 302
    assert console.get(f"/shops/{shop.shop.id}/").status_code == 200
    assert other_browser.get(f"/shops/{shop.shop.id}/").status_code == 302


# CSRF and headers --------------------------------------------------------------------------------------------


def test_forms_without_a_csrf_token_are_refused_and_change_nothing(app, console, shop, services):
    assert app.config.get("WTF_CSRF_ENABLED", True) is True
    response = console.post(f"/shops/{shop.shop.id}/settings/funding", data={"topup_minimum": "1.00"})
    assert response.status_code == 400 and "The form expired" in text_of(response)
    forged = console.post(
        f"/shops/{shop.shop.id}/settings/funding", data={"csrf_token": "forged", "topup_minimum": "1"}
    )
    assert forged.status_code == 400
    assert count(services, AuditEvent) == 0
    assert console.post("/login", data={"email": "ann@example.com", "password": PASSWORD}).status_code == 400


def test_api_and_webhooks_need_no_csrf_token(client, shop):
    response = client.post(
        "/api/v1/customers/42/adjustments",
        json={"direction": "credit", "amount": 100, "reason": "goodwill"},
        headers={"Authorization": f"Bearer {shop.api_key}", "Idempotency-Key": "k1"},
    )
    assert response.status_code == 201
    unsigned = client.post(f"/webhooks/woocommerce/{shop.shop.id}", json={"id": 1})
    assert unsigned.status_code == 401  # reached the signature check: no CSRF refusal before it
    assert unsigned.get_json()["error"]["code"] == "invalid_signature"
    # Exempt by path: any webhook surface, including one added later, is never refused for a CSRF token.
    elsewhere = client.post("/webhooks/another-platform/1", json={})
    assert elsewhere.status_code == 404 and elsewhere.get_json()["error"]["code"] == "not_found"


def test_security_headers_on_console_pages(console, shop):
    response = console.get(f"/shops/{shop.shop.id}/")
    headers = response.headers
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    # Scripts only from the console's own static files: no inline script, no eval, nothing from elsewhere.
    assert "script-src 'self';" in headers["Content-Security-Policy"]
    assert "unsafe-inline" not in headers["Content-Security-Policy"]
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["Cache-Control"] == "no-store"


# Tenant isolation --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/settings",
        "/customers",
        "/customers/42",
        "/reports",
        "/reports/wallet.csv",
        "/operations",
        "/audit",
        "/team",
    ],
)
def test_another_shop_is_a_404_on_every_page(console, other_shop, path):
    response = console.get(f"/shops/{other_shop.shop.id}{path}")
    assert response.status_code == 404
    assert other_shop.shop.name not in text_of(response)


def test_another_shops_forms_are_a_404_and_write_nothing(console, shop, other_shop, services):
    token = csrf_token(console, f"/shops/{shop.shop.id}/settings")
    other = other_shop.shop.id
    for path, data in [
        ("/settings/funding", {"topup_minimum": "1.00", "topup_maximum": "100.00"}),
        ("/settings/connection/test", {"url": "https://beta.example"}),
        ("/customers/42/adjust", {"direction": "credit", "amount": "5", "reason": "x", "token": "a" * 32}),
        ("/customers/42/lock", {"action": "lock"}),
        ("/operations/outbox/retry-all", {}),
        ("/team", {"email": "ann@example.com"}),
    ]:
        assert console.post(f"/shops/{other}{path}", data={"csrf_token": token, **data}).status_code == 404, path
    assert count(services, AuditEvent) == 0


def test_a_user_with_two_shops_picks_one(client, services, shop, other_shop):
    make_user(services, shop.shop.id, other_shop.shop.id)
    sign_in(client)
    assert client.get("/").location.endswith("/shops")
    page = text_of(client.get("/shops"))
    assert "Alpha Shop" in page and "Beta Shop" in page
    assert client.get(f"/shops/{other_shop.shop.id}/").status_code == 200


def test_unknown_pages_answer_html_to_people_and_json_to_machines(client):
    assert "Page not found" in text_of(client.get("/no/such/page"))
    assert client.get("/api/v1/no/such").get_json()["error"]["code"] == "not_found"


# Adding people -------------------------------------------------------------------------------------------------


def test_team_page_adds_a_new_user_to_the_shop(console, shop, services, app):
    response = form_post(
        console,
        f"/shops/{shop.shop.id}/team",
        {"email": "Bob@example.com", "name": "Bob", "password": "bobs password 1"},
    )
    assert response.status_code == 302
    bob = app.test_client()
    assert sign_in(bob, email="bob@example.com", password="bobs password 1").status_code == 302
    assert bob.get(f"/shops/{shop.shop.id}/").status_code == 200
    assert "team · add" in text_of(console.get(f"/shops/{shop.shop.id}/audit"))


def test_a_removed_member_loses_the_shop_at_once_and_the_last_member_stays(console, shop, services, app, merchant):
    bob = make_user(services, shop.shop.id, email="bob@example.com", name="Bob")
    bobs_browser = app.test_client()
    assert sign_in(bobs_browser, email="bob@example.com").status_code == 302

    team = f"/shops/{shop.shop.id}/team"
    removed = form_post(console, f"{team}/{bob.id}/remove", token_from=team)
    assert "bob@example.com can no longer manage Alpha Shop." in text_of(console.get(removed.location))
    assert bobs_browser.get(f"/shops/{shop.shop.id}/").status_code == 404  # his session is still signed in
    assert "team · remove" in text_of(console.get(f"/shops/{shop.shop.id}/audit"))

    alone = form_post(console, f"{team}/{merchant.id}/remove", token_from=team)
    assert "Not removed: the shop&#39;s only member cannot be removed." in text_of(console.get(alone.location))
    assert console.get(f"/shops/{shop.shop.id}/").status_code == 200
    assert form_post(console, f"{team}/{bob.id}/remove").status_code == 404  # not a member any more


def test_another_shops_member_cannot_be_removed(console, shop, other_shop, services):
    carol = make_user(services, other_shop.shop.id, email="carol@example.com", name="Carol")
    make_user(services, other_shop.shop.id, email="dave@example.com", name="Dave")

    assert form_post(console, f"/shops/{other_shop.shop.id}/team/{carol.id}/remove").status_code == 404
    assert form_post(console, f"/shops/{shop.shop.id}/team/{carol.id}/remove").status_code == 404
    with unit_of_work(services.sessions) as session:
        assert (
            session.scalar(
                select(func.count()).select_from(ShopMembership).where(ShopMembership.shop_id == other_shop.shop.id)
            )
            == 2
        )
    assert count(services, AuditEvent) == 0


def test_cli_user_create_makes_a_member_of_the_shop(app, services, shop, client):
    runner = CliRunner()
    from bridge.surfaces.cli import user_create

    with app.app_context():
        result = runner.invoke(
            user_create,
            ["--email", "dev@example.com", "--name", "Dev", "--shop", str(shop.shop.id), "--json"],
            env={"WB_USER_PASSWORD": PASSWORD},
        )
        assert result.exit_code == 0, result.output
        again = runner.invoke(
            user_create,
            ["--email", "dev@example.com", "--name", "Dev", "--shop", str(shop.shop.id)],
            env={"WB_USER_PASSWORD": PASSWORD},
        )
        assert again.exit_code != 0 and "already exists" in again.output
        short = runner.invoke(
            user_create,
            ["--email", "x@example.com", "--name", "X", "--shop", str(shop.shop.id)],
            env={"WB_USER_PASSWORD": "short"},
        )
        assert short.exit_code != 0 and "At least 10 characters" in short.output
    assert sign_in(client, email="dev@example.com").status_code == 302


def test_cli_user_create_refuses_an_unknown_shop(app, services):
    from bridge.surfaces.cli import user_create

    with app.app_context():
        result = CliRunner().invoke(
            user_create,
            ["--email", "dev@example.com", "--name", "Dev", "--shop", "999"],
            env={"WB_USER_PASSWORD": PASSWORD},
        )
    assert result.exit_code != 0 and "unknown shop" in result.output
    assert count(services, MerchantUser) == 0
