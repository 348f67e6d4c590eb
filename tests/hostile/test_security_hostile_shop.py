"""The second outside audit (docs/security.md): a shop URL is the merchant's to choose, and what answers there is not
trusted either. A server that answered without end — one body of gigabytes, or pages of webhooks that never end —
held a web process's thread and filled its memory from the console's Test connection, for every shop it serves; one
that answered a byte at a time held it for as long as it liked."""

from __future__ import annotations

import http.server
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sync.shop_http import MAX_ANSWER_BYTES
from sync.woocommerce.connect import MAX_PAGES
from tests.console_support import form_post, text_of

pytest_plugins = ("tests.console_fixtures",)  # fixtures: merchant, console

CHUNK = b"[" + b'{"id": 1},' * 6_000  # ~60 kB of a JSON list that never closes
SAFETY_PAGES = 4 * MAX_PAGES  # the hostile shop ends its pages here, so a test without the limit still ends
DRIP_SECONDS = 8.0  # and its byte-at-a-time answer here


class HostileShop(http.server.BaseHTTPRequestHandler):
    """GET orders answers `[]` (the keys "work"); webhooks, as the test sets: `body` or `pages`. `endless orders`: the
    orders' answer never ends; `drip`: every answer comes a byte at a time."""

    protocol_version = "HTTP/1.0"  # a body without Content-Length: it ends when the connection closes
    mode = "body"
    sent = 0
    webhook_pages = 0

    def do_GET(self):  # noqa: N802 (http.server's name)
        if type(self).mode == "drip":
            return self._drip()
        if "/wc/v3/orders" in self.path and type(self).mode != "endless orders":
            return self._answer(b"[]")
        if type(self).mode == "pages":
            type(self).webhook_pages += 1
            page = [] if type(self).webhook_pages > SAFETY_PAGES else [{"id": type(self).webhook_pages}]
            return self._answer(json.dumps(page).encode(), {"X-WP-TotalPages": "1000000"})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        try:
            while type(self).sent < 4 * MAX_ANSWER_BYTES:  # the safety end again
                self.wfile.write(CHUNK)
                type(self).sent += len(CHUNK)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the bridge stopped reading

    def _drip(self) -> None:
        """A header a byte at a time, each byte well within any read timeout, then the answer `[]`."""
        ends = time.monotonic() + DRIP_SECONDS
        try:
            self.wfile.write(b"HTTP/1.0 200 OK\r\nX-Drip: ")
            while time.monotonic() < ends:
                self.wfile.write(b"a")
                time.sleep(0.05)
            self.wfile.write(b"\r\nContent-Type: application/json\r\n\r\n[]")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the bridge hung up

    def _answer(self, body: bytes, headers: dict | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@contextmanager
def hostile_shop(mode: str) -> Iterator[type[HostileShop]]:
    handler = type("Handler", (HostileShop,), {"mode": mode, "sent": 0, "webhook_pages": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield handler, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def _test_connection(console, shop, url: str):
    return form_post(
        console,
        f"/shops/{shop.shop.id}/settings/connection/test",
        {"url": url, "consumer_key": "ck_hostile", "consumer_secret": "cs_hostile"},
    )


def test_an_answer_without_end_is_read_no_further_than_the_limit(console, shop):
    """Orders answer `[]`, then the webhooks' list never ends: the bridge stops reading past MAX_ANSWER_BYTES."""
    with hostile_shop("body") as (handler, url):
        answer = _test_connection(console, shop, url)
    assert answer.status_code == 422
    assert "which the bridge does not read" in text_of(answer)
    assert handler.sent < 2 * MAX_ANSWER_BYTES  # the limit and what the sockets took in; without it, 4 times it


def test_an_orders_answer_without_end_is_said_as_too_large(console, shop):
    with hostile_shop("endless orders") as (_handler, url):
        answer = _test_connection(console, shop, url)
    assert answer.status_code == 422
    assert "which the bridge does not read" in text_of(answer)


def test_pages_without_end_are_read_no_further_than_the_limit(console, shop):
    with hostile_shop("pages") as (handler, url):
        answer = _test_connection(console, shop, url)
    assert answer.status_code == 422
    assert f"more than {MAX_PAGES} pages" in text_of(answer)
    assert handler.webhook_pages == MAX_PAGES


def test_an_answer_sent_a_byte_at_a_time_is_cut_at_the_deadline(console, shop, monkeypatch):
    monkeypatch.setattr("sync.shop_http.ANSWER_DEADLINE_SECONDS", 1.0)
    started = time.monotonic()
    with hostile_shop("drip") as (_handler, url):
        answer = _test_connection(console, shop, url)
        took = time.monotonic() - started

    assert answer.status_code == 422
    said = re.search(r"did not finish its answer to GET (/wp-json/wc/v3/\S+) within 1 seconds", text_of(answer))
    assert said is not None and "?" not in said[1]  # the call by its path: a query string may carry the shop's keys
    assert took < DRIP_SECONDS / 2  # without the deadline: the whole drip, then the answer
