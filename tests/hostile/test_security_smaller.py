"""The audit's smaller findings (docs/security.md): the sign-in throttle under parallel guesses, statement tokens
in access logs and caches, Secure cookies and HSTS on https, idempotency keys reused with other fields."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from sqlalchemy import func, select

from bridge import users
from bridge.config import Settings
from bridge.db import unit_of_work
from bridge.models import LoginAttempt
from bridge.surfaces.app import create_app
from bridge.surfaces.web.access_log import REDACTED, TokenFreeGunicornLogger
from tests.conftest import FERNET_KEY
from tests.console_support import TOKEN_RE, make_user, sign_in
from tests.integration.test_api import auth, credit
from tests.integration.test_refund_requests_tips import card_order, woo  # noqa: F401 (fixture)
from tests.woo import post_delivery

ROOT = Path(__file__).resolve().parents[2]


# Sign-in throttle ----------------------------------------------------------------------------------------


@pytest.mark.postgres_only
def test_parallel_wrong_passwords_get_no_more_password_checks_than_the_limit(app, shop, monkeypatch):
    """40 guesses at once (the audit's), each password check slowed so they overlap: at most 5 are checked.
    SQLite serialises whole sign-ins (BEGIN IMMEDIATE), so the race is PostgreSQL's."""
    make_user(app.extensions["wallet_bridge"], shop.shop.id)
    checks, real = [], users._hasher

    class SlowHasher:
        def verify(self, hashed, password):
            checks.append(password)
            time.sleep(0.05)
            return real.verify(hashed, password)

        def __getattr__(self, name):
            return getattr(real, name)

    monkeypatch.setattr(users, "_hasher", SlowHasher())
    browsers = [app.test_client() for _ in range(40)]
    tokens = [TOKEN_RE.search(b.get("/login").get_data(as_text=True)).group(1) for b in browsers]

    def guess(n: int) -> int:
        data = {"csrf_token": tokens[n], "email": "ann@example.com", "password": f"guess {n}"}
        return browsers[n].post("/login", data=data).status_code

    with ThreadPoolExecutor(max_workers=40) as pool:
        statuses = list(pool.map(guess, range(40)))

    assert len(checks) <= users.MAX_FAILURES_PER_EMAIL
    assert statuses.count(401) == len(checks) and statuses.count(429) == 40 - len(checks)


def test_a_throttled_guess_gives_its_slot_back(client, services, shop):
    """Guessing on while throttled does not keep the window open: the count stays at the limit."""
    make_user(services, shop.shop.id)
    statuses = [sign_in(client, password="guess").status_code for _ in range(users.MAX_FAILURES_PER_EMAIL + 3)]
    assert statuses == [401] * users.MAX_FAILURES_PER_EMAIL + [429] * 3
    with unit_of_work(services.sessions) as session:
        assert session.scalar(select(func.count()).select_from(LoginAttempt)) == users.MAX_FAILURES_PER_EMAIL


# Statement links -----------------------------------------------------------------------------------------


def statement_path(client, shop) -> tuple[str, str]:
    url = client.post("/api/v1/customers/42/statement-link", headers=auth(shop)).get_json()["url"]
    path = url.split("https://bridge.example.test", 1)[1]
    return path, path.rsplit("/", 1)[1]


def test_the_statement_is_never_cached_nor_sent_on_as_a_referer(client, shop):
    credit(client, shop, amount=1_000)
    path, _token = statement_path(client, shop)
    for response in (client.get(path), client.get(path + ".json"), client.get("/statement/not-a-token")):
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Referrer-Policy"] == "no-referrer"


def test_the_development_server_logs_through_the_token_free_logger(settings):
    from bridge.surfaces.serving import BridgeServer

    server = BridgeServer(settings, bind="127.0.0.1:0", threads=1)
    assert server.cfg.logger_class is TokenFreeGunicornLogger and server.cfg.accesslog == "-"


def test_gunicorns_access_log_holds_no_token(database_url, shop, client, tmp_path):
    """The real gunicorn with deploy/gunicorn.conf.py: the access lines of statement requests are written with
    the token replaced."""
    credit(client, shop, amount=1_000)
    path, token = statement_path(client, shop)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-secret-key",
        "FERNET_KEYS": FERNET_KEY,
        "INSTANCE_PATH": str(tmp_path),
        "PUBLIC_URL": "https://bridge.example.test",
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
        "EMBEDDED_WORKER": "false",
    }
    log = tmp_path / "gunicorn.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                requests.get(base + "/healthz", timeout=2)
                break
            except requests.RequestException:  # not listening yet, or its worker still booting
                time.sleep(0.1)
        referer = {"Referer": f"https://bridge.example.test{path}"}
        assert requests.get(base + path, headers=referer, timeout=5).status_code == 200
        requests.post(base + path + "/convert", data={}, allow_redirects=False, timeout=5)
    finally:
        server.terminate()
        server.wait(10)
    written = log.read_text()
    assert f'"GET {REDACTED} HTTP/1.1" 200' in written and f'"POST {REDACTED}/convert HTTP/1.1"' in written
    assert token not in written


def test_every_gunicorn_atom_is_redacted():
    token = "eyJhIjoxfQ.Zk9xYw.abc-def_123"
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": f"/statement/{token}.json?x=1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "PATH_INFO": f"/statement/{token}.json",
        "QUERY_STRING": "x=1",
        "HTTP_REFERER": f"https://b.example/statement/{token}",
    }
    response = SimpleNamespace(status="303 See Other", sent=0, headers=[("Location", f"/statement/{token}?m=1")])
    request = SimpleNamespace(headers=[("REFERER", f"https://b.example/statement/{token}")])
    logger = TokenFreeGunicornLogger.__new__(TokenFreeGunicornLogger)  # atoms() reads no configuration
    atoms = logger.atoms(response, request, environ, SimpleNamespace(seconds=0, microseconds=1))
    assert token not in repr(atoms)
    assert atoms["r"] == f"GET {REDACTED}?x=1 HTTP/1.1" and atoms["{location}o"] == f"{REDACTED}?m=1"


# Secure cookies and HSTS -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("public_url", "cookie_setting", "secure", "hsts"),
    [
        ("https://bridge.example.test", None, True, "max-age=31536000"),
        ("https://bridge.example.test", "false", False, "max-age=31536000"),
        ("http://127.0.0.1:8000", None, False, None),
    ],
)
def test_https_means_secure_cookies_and_hsts_by_default(
    settings, services, shop, public_url, cookie_setting, secure, hsts
):
    env = {
        "DATABASE_URL": settings.database_url,
        "SECRET_KEY": "k",
        "FERNET_KEYS": FERNET_KEY,
        "INSTANCE_PATH": str(settings.instance_path),
        "PUBLIC_URL": public_url,
    }
    if cookie_setting:
        env["SESSION_COOKIE_SECURE"] = cookie_setting
    app = create_app(Settings.from_env(env))
    make_user(services, shop.shop.id)
    client = app.test_client()
    page = client.get("/login")
    token = TOKEN_RE.search(page.get_data(as_text=True)).group(1)
    signed_in = client.post(
        "/login", data={"csrf_token": token, "email": "ann@example.com", "password": "correct horse battery staple"}
    )
    assert signed_in.status_code == 302
    assert ("; Secure" in signed_in.headers["Set-Cookie"]) is secure
    assert page.headers.get("Strict-Transport-Security") == hsts
    assert client.get("/healthz").headers.get("Strict-Transport-Security") == hsts
    app.extensions["wallet_bridge"].engine.dispose()


# Idempotency ---------------------------------------------------------------------------------------------


def post(client, shop, path: str, body: dict, key: str = "same-key"):
    return client.post(f"/api/v1/{path}", json=body, headers=auth(shop, key))


ADJUSTMENT = {"direction": "credit", "amount": 1_000, "reason": "goodwill"}
HOLD = {"amount": 500, "reason": "order 7", "expires_in_seconds": 3600, "order_id": "7"}


@pytest.mark.parametrize("change", [{"reason": "another reason"}, {"amount": 2_000}, {"direction": "debit"}])
def test_an_adjustment_key_is_the_whole_request(client, shop, change):
    assert post(client, shop, "customers/42/adjustments", ADJUSTMENT).status_code == 201
    assert post(client, shop, "customers/42/adjustments", ADJUSTMENT).get_json()["replayed"] is True

    other = post(client, shop, "customers/42/adjustments", {**ADJUSTMENT, **change})

    assert other.status_code == 409 and other.get_json()["error"]["code"] == "idempotency_conflict"


@pytest.mark.parametrize(
    "change", [{"reason": "order 8"}, {"expires_in_seconds": 7200}, {"order_id": "8"}, {"amount": 600}]
)
def test_a_hold_key_is_the_whole_request(client, shop, change):
    credit(client, shop, amount=5_000)
    assert post(client, shop, "customers/42/holds", HOLD).status_code == 201
    assert post(client, shop, "customers/42/holds", HOLD).get_json()["replayed"] is True

    assert post(client, shop, "customers/42/holds", {**HOLD, **change}).status_code == 409


def test_a_refund_request_key_is_the_whole_request(client, woo):  # noqa: F811
    post_delivery(client, woo.shop.id, "order.created", card_order())
    request = {"amount": 1_000, "destination": "wallet", "reason": "too small"}
    assert post(client, woo, "orders/60/refunds", request).status_code == 202
    assert post(client, woo, "orders/60/refunds", request).status_code == 202

    assert post(client, woo, "orders/60/refunds", {**request, "reason": "broken"}).status_code == 409
