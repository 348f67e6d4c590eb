"""Browser tests: the real app served on 127.0.0.1 by werkzeug in a thread, driven by Playwright through
Debian's chromium (/usr/bin/chromium; Playwright's own browser download is never used).

Without the playwright package or chromium these tests are skipped with the reason, except under CI=true,
where a missing browser is a failure (tests/chromium.py). Each test saves a screenshot under test-output/browser/.
"""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
from werkzeug.serving import make_server

from bridge.surfaces.app import create_app


@pytest.fixture
def live_app(settings):
    app = create_app(replace(settings, session_cookie_secure=False))  # served over plain http on 127.0.0.1
    yield app
    app.extensions["wallet_bridge"].engine.dispose()


@pytest.fixture
def services(live_app):
    return live_app.extensions["wallet_bridge"]


@pytest.fixture
def base_url(live_app):
    server = make_server("127.0.0.1", 0, live_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


@pytest.fixture
def page(chromium, base_url, request):
    context = chromium.new_context(
        base_url=base_url,
        viewport={"width": 1280, "height": 900},
        accept_downloads=True,
        locale="en-GB",
        timezone_id="UTC",
    )
    context.set_default_timeout(8000)
    page = context.new_page()
    errors: list[str] = []

    def on_console(message):
        # A form answered 401/422 is logged as a failed load: expected. Anything else (a CSP refusal…) is not.
        if message.type == "error" and not message.text.startswith("Failed to load resource: the server responded"):
            errors.append(message.text)

    page.on("console", on_console)
    yield page
    context.close()
    assert not errors, f"browser console errors: {errors}"
