"""The second outside audit (docs/security.md): taking accounts over. The first-run page of a bridge deployed as
deploy/README.md says — shops made and connected with `wallet-bridge shop create` / `shop connect`, no console user
yet: whoever reached /setup first took every shop over (its customers, its settings, manual credits); only the
bridge's own host may. And the account page's current password, which could be guessed without limit."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bridge import users
from bridge.db import unit_of_work
from bridge.models import LoginAttempt
from bridge.users import any_user_exists
from tests.console_support import PASSWORD, csrf_token, form_post, make_user, sign_in, text_of
from tests.integration.test_console_first_run import ACCOUNT, memberships

INTERNET = {"REMOTE_ADDR": "203.0.113.9"}  # a client straight from the internet
BEHIND_NGINX = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "203.0.113.9"}  # nginx saw 203.0.113.9
SPOOFED = {"REMOTE_ADDR": "203.0.113.9", "HTTP_X_FORWARDED_FOR": "127.0.0.1"}  # believed from loopback only


@pytest.mark.parametrize("client_from", [INTERNET, BEHIND_NGINX, SPOOFED], ids=["internet", "nginx", "spoofed"])
def test_shops_made_on_the_command_line_are_not_taken_over_from_the_internet(client, services, shop, client_from):
    page = client.get("/setup", environ_base=client_from)
    assert page.status_code == 403 and shop.shop.name not in text_of(page)  # not even their names
    token = csrf_token(client, "/setup")  # the session's token, read on the host
    data = {**ACCOUNT, "csrf_token": token, "take_over": [str(shop.shop.id)]}
    response = client.post("/setup", data=data, environ_base=client_from)
    assert response.status_code == 403
    assert memberships(services) == set()
    with unit_of_work(services.sessions) as session:
        assert not any_user_exists(session)


def test_the_operator_takes_them_over_from_the_bridges_own_host(client, services, shop):
    """A browser on the host, or an SSH tunnel to it: the peer is loopback and no proxy named another client."""
    token = csrf_token(client, "/setup")
    data = {**ACCOUNT, "csrf_token": token, "take_over": [str(shop.shop.id)]}
    response = client.post("/setup", data=data, environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert response.status_code == 302
    assert memberships(services) == {(ACCOUNT["email"], shop.shop.id)}


def test_a_fresh_bridge_is_still_set_up_from_anywhere(client, services):
    """No shop waits to be taken over: the first visitor makes their own shop and account, as before."""
    assert client.get("/setup", environ_base=INTERNET).status_code == 200


# The account page -----------------------------------------------------------------------------------------


def test_a_copied_session_cannot_guess_the_password_on_the_account_page(app, services, shop):
    """The current password asked to change it is a guess like a sign-in's: counted with them, so a session cookie
    someone copied tries no more than the limit, and cannot then make the password theirs."""
    make_user(services, shop.shop.id)
    browser = app.test_client()
    assert sign_in(browser).status_code == 302
    token = csrf_token(browser, "/account")

    def change(current: str):
        data = {"csrf_token": token, "current_password": current}
        data |= {"new_password": "the thief's password", "new_password_confirm": "the thief's password"}
        return browser.post("/account", data=data)

    statuses = [change(f"guess {n}").status_code for n in range(users.MAX_FAILURES_PER_EMAIL + 2)]
    assert statuses == [422] * users.MAX_FAILURES_PER_EMAIL + [429] * 2
    assert change(PASSWORD).status_code == 429  # even the right one, until the window ends
    assert sign_in(app.test_client()).status_code == 429  # the sign-in's count is the same


def test_changing_the_password_clears_the_failed_guesses(app, services, shop):
    make_user(services, shop.shop.id)
    browser = app.test_client()
    assert sign_in(browser).status_code == 302
    assert sign_in(app.test_client(), password="one wrong guess").status_code == 401
    new = "a brand new secret"
    data = {"current_password": PASSWORD, "new_password": new, "new_password_confirm": new}
    assert form_post(browser, "/account", data, token_from="/account").status_code == 302
    with unit_of_work(services.sessions) as session:
        assert session.scalar(select(func.count()).select_from(LoginAttempt)) == 0
