"""`wallet-bridge demo`: one customer's story against a simulated WooCommerce shop, printed step by step
(`--platform shopify`: the same story against a simulated Shopify shop, the wallet mirrored to the
customer's native store credit and spent at Shopify's own checkout).

Everything stays on 127.0.0.1: the simulator serves the wc/v3 REST API (or Shopify's GraphQL Admin API)
on a free port, and the bridge app is served in this process on another, so the simulator's signed
webhooks really travel over HTTP into the bridge and the outbox really pushes back through the official
`woocommerce` client (or GraphQL over `requests`). The demo shop is created in the configured database
(or `--database-url`), connected with `connect_shop` (or `connect_shopify`) like a real one, and
disconnected at the end (its simulated store is gone once the demo exits).

Like `cli.py` this is an entry point, not domain code: it wires Flask, HTTP and the simulator together.
"""

from __future__ import annotations

import importlib
import logging
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from urllib.parse import urlsplit

import requests
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from werkzeug.serving import WSGIRequestHandler, make_server

from bridge.db import unit_of_work
from bridge.ledger import verify
from bridge.migrate import upgrade
from bridge.models import OutboxMessage, Shop, utcnow
from bridge.money import format_amount, parse_amount
from bridge.services import Services
from bridge.shops import create_shop
from bridge.statement_links import without_link
from bridge.states import OutboxStatus
from bridge.surfaces.platforms import PLATFORMS, pushers_for
from bridge.usecases.pushes import RetryPolicy, claim
from bridge.wallets import statement
from sync.shop_http import private_addresses_allowed
from sync.shopify.connect import connect_shopify
from sync.shopify.store_credit import reconcile
from sync.woocommerce.connect import connect_shop
from sync.worker import deliver

HOST = "127.0.0.1"
CURRENCY = "EUR"
DEMO_RULES = {
    "signup_bonus": 500,  # €5.00
    "points_per_currency_unit": 1,  # 1 point per euro paid
    "points_conversion_points": 100,  # 100 points …
    "points_conversion_value": 100,  # … are worth €1.00
    "partial_payments": True,
    "refund_destination": "wallet",
}
QUIET_LOGGERS = ("alembic", "bridge", "sync", "webhooks", "simulator", "werkzeug", "woocommerce")
OUTBOX_DEADLINE_SECONDS = 10.0

Echo = Callable[[str], None]


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:  # the story is the output, not the access log
        pass


def run_demo(app: Flask, *, database_url: str | None = None, echo: Echo = print, platform: str = "woocommerce") -> bool:
    """Play the story against a simulated `platform` shop; True when every push was delivered and the ledger
    verifies (and, for Shopify, every wallet equals the customer's store credit)."""
    stories = {"woocommerce": Story, "shopify": ShopifyStory}  # the platforms a simulator exists for
    if platform not in stories:
        raise DemoFailed(f"no simulated shop for platform {platform!r} (one of: {', '.join(stories)})")
    with ExitStack() as stack:
        stack.enter_context(_quiet_logs())
        stack.enter_context(_no_proxy_for_loopback())
        app = stack.enter_context(_demo_app(app, database_url))
        # The one explicit exception to refusing loopback shops (ALLOW_PRIVATE_SHOP_URLS), for this process and
        # run only (after _demo_app, whose app factory sets the process's rule): the demo's shop is its own
        # simulator on 127.0.0.1, and is disconnected when the demo ends.
        stack.enter_context(private_addresses_allowed())
        svc: Services = app.extensions["wallet_bridge"]
        upgrade(svc.settings.database_url)  # safe to repeat; a fresh clone may not have run `make run` yet
        bridge_url = stack.enter_context(_serve(app))
        story = stories[platform](svc, bridge_url, echo)
        stack.callback(story.close)
        return story.play()


@contextmanager
def _demo_app(app: Flask, database_url: str | None) -> Iterator[Flask]:
    """The running app, or one built on another database with the same settings otherwise."""
    settings = app.extensions["wallet_bridge"].settings
    if not database_url or database_url == settings.database_url:
        yield app
        return
    from bridge.surfaces.app import create_app

    other = create_app(replace(settings, database_url=database_url, embedded_worker=False))
    try:
        yield other
    finally:
        other.extensions["wallet_bridge"].engine.dispose()


@contextmanager
def _serve(app: Flask) -> Iterator[str]:
    """The bridge on 127.0.0.1, a free port, in a background thread: the simulator delivers here."""
    server = make_server(HOST, 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=lambda: server.serve_forever(poll_interval=0.05), name="demo-bridge", daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def _quiet_logs() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@contextmanager
def _no_proxy_for_loopback() -> Iterator[None]:
    """`requests` (under the woocommerce client) honours HTTP(S)_PROXY: keep 127.0.0.1 off any proxy."""
    saved = {name: os.environ.get(name) for name in ("NO_PROXY", "no_proxy")}
    for name, value in saved.items():
        os.environ[name] = ",".join(filter(None, [value, HOST, "localhost"]))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def loopback_transport(session: requests.Session) -> Callable[[str, bytes, dict], int]:
    """The simulator's webhook transport for the demo: a real POST, to 127.0.0.1 only, no proxies."""

    def post(url: str, body: bytes, headers: dict) -> int:
        if urlsplit(url).hostname != HOST:
            raise ConnectionError(f"the demo delivers to {HOST} only, not {urlsplit(url).hostname}")
        return session.post(url, data=body, headers=headers, timeout=10, allow_redirects=False).status_code

    return post


@dataclass
class DemoShop:
    id: int
    api_key: str


def _simulator(module: str = "simulator"):
    """The simulator package (only the demo needs it), or a DemoFailed that says how to get it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:  # an editable install made before simulator/ existed
        if exc.name != "simulator":
            raise
        raise DemoFailed(
            "the `simulator` package is not importable from this virtualenv (installed before it existed): "
            "reinstall the project with `.venv/bin/pip install -e '.[dev]'`"
        ) from exc


class Story:
    """The steps, each printed with what the bridge and the shop did, and the balances after it."""

    PLATFORM = "woocommerce"

    def __init__(self, svc: Services, bridge_url: str, echo: Echo):
        create_simulator = _simulator().create_simulator
        self.svc, self.bridge_url, self.echo = svc, bridge_url, echo
        self.http = requests.Session()
        self.http.trust_env = False  # never a proxy, never a .netrc: everything is on 127.0.0.1
        self.key, self.secret = f"ck_demo_{secrets.token_hex(16)}", f"cs_demo_{secrets.token_hex(16)}"
        self.sim = create_simulator(
            consumer_key=self.key, consumer_secret=self.secret, transport=loopback_transport(self.http)
        )
        self.shop_url = self.sim.serve(HOST, 0)
        self.shop: DemoShop | None = None
        self.problems: list[str] = []

    def close(self) -> None:
        self.sim.shutdown()
        self.http.close()
        if self.shop is not None:  # its store is gone: no worker or sync should try to reach it later
            with unit_of_work(self.svc.sessions) as session:
                stored = session.get(Shop, self.shop.id)
                stored.consumer_key_enc = stored.consumer_secret_enc = None

    # --- the story -------------------------------------------------------------------------------------------

    def play(self) -> bool:
        say = self.echo
        database = make_url(self.svc.settings.database_url).render_as_string(hide_password=True)
        say("Wallet Bridge demo: a simulated WooCommerce shop and the bridge, both on 127.0.0.1")
        say(f"  database: {database}")
        say(f"  shop (simulated WooCommerce): {self.shop_url}    bridge: {self.bridge_url}")

        self.step(1, "The merchant creates a shop in the bridge and connects it")
        self.shop = self.create_shop()
        result = connect_shop(
            self.svc.sessions,
            self.svc.secrets,
            self.shop.id,
            self.shop_url,
            self.key,
            self.secret,
            self.bridge_url,
            self.svc.settings.shop_timeout_seconds,
        )
        say(
            f'  shop #{self.shop.id} "Demo Shop" ({CURRENCY}): sign-up bonus {self.money(500)}, '
            f"1 point per {self.money(100)} paid, 100 points = {self.money(100)}"
        )
        say(
            f"  REST keys checked; {len(result.webhooks.created)} webhooks registered on the shop, "
            f"delivering to {result.delivery_url}"
        )
        pings = self.sim.deliveries_for(kind="ping")
        say(f"  the shop pinged each one: {', '.join(f'HTTP {p.status}' for p in pings)}")

        self.step(2, "Alice registers on the shop")
        alice = self.sim.create_customer("alice@example.test", "Alice", "Example", username="alice")["id"]
        self.delivered("customer.created")
        self.balance(alice, "wallet opened with the sign-up bonus")

        self.step(3, "The merchant credits her wallet through the API (an adjustment with a reason)")
        answer = self.api(
            "post",
            f"customers/{alice}/adjustments",
            idempotency_key="demo-welcome-credit",
            json={"direction": "credit", "amount": 5000, "reason": "Welcome gift"},
        )
        say(f"  POST /api/v1/customers/{alice}/adjustments → transaction #{answer['transaction_id']}")
        self.balance(alice, f"{self.money(5000)} credited")

        self.step(4, "Alice checks out for €41.48 and pays with her wallet")
        paid = self.sim.place_order(alice, total="41.48", payment_method="wallet")["id"]
        self.delivered("order.created", "order.updated")
        self.balance(alice, f"order #{paid} is pending on the shop; the bridge debited {self.money(4148)}")
        self.push()
        order = self.sim.order(paid)
        say(f"  on the shop: order #{paid} is {order['status']}, transaction id {order['transaction_id']}")
        say(f"  note to the customer: {self.last_note(paid)}")
        self.balance(alice, "the shop's order.updated (processing) earned points on the €41.48 paid")

        self.step(5, "The merchant refunds €10.00 of that order in wp-admin")
        self.sim.refund(paid, "10.00", reason="One mug arrived chipped")
        self.delivered("order.updated")
        self.push()
        self.balance(alice, "the wallet-paid refund went back to the wallet; points taken back pro rata")
        say(f"  note to the customer: {self.last_note(paid)}")

        self.step(6, "Alice buys for €75.00 by card")
        card = self.sim.place_order(alice, total="75.00", payment_method="stripe")["id"]
        self.sim.set_status(card, "processing")  # the card gateway took the payment
        self.delivered("order.created", "order.updated", "order.updated")
        self.push()
        self.balance(alice, f"order #{card} paid by card: no wallet money moved, points earned")

        self.step(7, "Alice converts her points to wallet money")
        answer = self.api("post", f"customers/{alice}/points/conversions", json={}, idempotency_key="demo-points-1")
        say(f"  POST /api/v1/customers/{alice}/points/conversions → transaction #{answer['transaction_id']}")
        self.balance(alice, "whole steps of 100 points converted")
        self.push()

        self.print_statement(alice)
        return self.conclude(alice)

    # --- pieces --------------------------------------------------------------------------------------------

    def create_shop(self) -> DemoShop:
        with unit_of_work(self.svc.sessions) as session:
            created = create_shop(
                session,
                self.svc.secrets,
                platforms=PLATFORMS,
                name="Demo Shop",
                platform=self.PLATFORM,
                url=self.shop_url,
                currency=CURRENCY,
            )
            created.shop.settings = {**created.shop.settings, **DEMO_RULES}
            return DemoShop(created.shop.id, created.api_key)

    def api(self, method: str, path: str, *, idempotency_key: str | None = None, json: dict | None = None) -> dict:
        headers = {"Authorization": f"Bearer {self.shop.api_key}"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        response = self.http.request(method, f"{self.bridge_url}/api/v1/{path}", headers=headers, json=json, timeout=10)
        if response.status_code >= 400:
            raise DemoFailed(f"{method.upper()} /api/v1/{path}: HTTP {response.status_code} {response.text[:300]}")
        return response.json()

    def wallet(self, customer_id: int) -> dict:
        return self.api("get", f"customers/{customer_id}/wallet")

    def money(self, minor: int) -> str:
        return format_amount(minor, CURRENCY)

    def step(self, number: int, title: str) -> None:
        self.echo("")
        self.echo(f"{number}. {title}")

    def balance(self, customer_id: int, what: str) -> None:
        wallet = self.wallet(customer_id)
        self.echo(f"  {what}")
        self.echo(f"  → wallet {wallet['balance_formatted']}, {wallet['points']} points")

    def delivered(self, *topics: str) -> None:
        """Print the deliveries just made (the last len(topics)) with the bridge's answers."""
        sent = self.sim.deliveries_for()[-len(topics) :]
        shown = ", ".join(f"{d.topic} → HTTP {d.status}" for d in sent)
        self.echo(f"  webhooks: {shown}")
        if [d.topic for d in sent] != list(topics) or not all(d.ok for d in sent):
            self.problems.append(f"deliveries not all accepted: {shown}")

    def last_note(self, order_id: int) -> str:
        """The newest note to the customer, its link to their wallet on a line of its own."""
        notes = [n["note"] for n in self.sim.notes(order_id) if n["customer_note"]]  # newest first
        if not notes:
            return '"(none)"'
        link = notes[0].removeprefix(without_link(notes[0])).strip()
        return f'"{without_link(notes[0])}"' + (f"\n  {link}" if link else "")

    def push(self) -> None:
        """The outbox worker for this shop only (the configured database may hold real shops' messages)."""
        delivered, failed = push_shop_outbox(self.svc, self.shop.id)
        if delivered:
            self.echo(f"  outbox worker: {delivered} message(s) pushed to the shop")
        for message in failed:
            self.problems.append(f"outbox: {message}")
            self.echo(f"  outbox worker: NOT delivered: {message}")

    def print_statement(self, customer_id: int) -> None:
        self.echo("")
        self.echo(f"Statement of customer {customer_id} (bridge.wallets.statement, oldest first)")
        with unit_of_work(self.svc.sessions) as session:
            lines = statement(session, session.get(Shop, self.shop.id), str(customer_id), limit=200).lines
        for line in reversed(lines):
            money, after = line["unit"] == "money", line["balance_after"]
            amount = line["amount_formatted"] if money else f"{line['amount']:,} points"
            if after is not None:
                after = line["balance_after_formatted"] if money else f"{after:,} points"
            sign = "+" if line["amount"] > 0 else ""
            self.echo(f"  {line['kind']:<19} {sign + amount:>12}  → {after or '':<10}  {line['reason']}")

    def conclude(self, customer_id: int) -> bool:
        with unit_of_work(self.svc.sessions) as session:
            mismatches = verify(session)
        self.echo("")
        if mismatches:
            self.problems.append(f"ledger verify: {len(mismatches)} mismatch(es)")
            for mismatch in mismatches:
                self.echo(f"ledger verify: MISMATCH {mismatch.__dict__}")
        else:
            self.echo("ledger verify: ok (every balance equals the sum of its entries)")
        self.echo(self.final_balance(customer_id))
        for problem in self.problems:
            self.echo(f"problem: {problem}")
        self.echo(f"The demo shop #{self.shop.id} stays in the database, disconnected (its simulated store is gone).")
        return not self.problems

    def final_balance(self, customer_id: int) -> str:
        wallet = self.wallet(customer_id)
        return f"Final balance of customer {customer_id}: {wallet['balance_formatted']} and {wallet['points']} points"


class ShopifyStory(Story):
    """The same story against a simulated Shopify shop. Every wallet movement the bridge makes is mirrored to
    the customer's native store credit (credit and debit mutations through the outbox); what Shopify does
    itself (its refunds to store credit, by webhook; spending at its checkout, read from the order's
    transactions by the worker, as webhooks do not say) is followed by the ledger without being sent back.
    Each step prints both balances."""

    PLATFORM = "shopify"

    def __init__(self, svc: Services, bridge_url: str, echo: Echo):
        create_shopify_simulator = _simulator("simulator.shopify").create_shopify_simulator
        self.svc, self.bridge_url, self.echo = svc, bridge_url, echo
        self.http = requests.Session()
        self.http.trust_env = False  # never a proxy, never a .netrc: everything is on 127.0.0.1
        self.token, self.secret = f"shpat_demo_{secrets.token_hex(16)}", f"shpss_demo_{secrets.token_hex(16)}"
        # The shop's domain is the host it is served on: the bridge checks X-Shopify-Shop-Domain against it.
        self.sim = create_shopify_simulator(
            access_token=self.token,
            webhook_secret=self.secret,
            shop_domain=HOST,
            currency=CURRENCY,
            transport=loopback_transport(self.http),
        )
        self.shop_url = self.sim.serve(HOST, 0)
        self.shop: DemoShop | None = None
        self.problems: list[str] = []
        self.reported: set[int] = set()  # outbox messages already shown as not delivered

    def play(self) -> bool:
        say = self.echo
        database = make_url(self.svc.settings.database_url).render_as_string(hide_password=True)
        say("Wallet Bridge demo: a simulated Shopify shop and the bridge, both on 127.0.0.1")
        say(f"  database: {database}")
        say(f"  shop (simulated Shopify): {self.shop_url}    bridge: {self.bridge_url}")

        self.step(1, "The merchant creates a shop in the bridge and connects it")
        self.shop = self.create_shop()
        result = connect_shopify(
            self.svc.sessions,
            self.svc.secrets,
            self.shop.id,
            url=self.shop_url,
            access_token=self.token,
            webhook_secret=self.secret,
            public_url=self.bridge_url,
            timeout=self.svc.settings.shop_timeout_seconds,
        )
        say(
            f'  shop #{self.shop.id} "Demo Shop" ({CURRENCY}): sign-up bonus {self.money(500)}, '
            f"1 point per {self.money(100)} paid, 100 points = {self.money(100)}"
        )
        say(
            f"  Admin API token checked; {len(result.created)} webhook subscriptions created on the shop, "
            f"delivering to {result.callback_url}"
        )
        say("  every wallet movement the bridge makes is mirrored to the customer's Shopify store credit")

        self.step(2, "Alice registers on the shop")
        alice = self.sim.create_customer("alice@example.test", "Alice", "Example")["id"]
        self.delivered("customers/create")
        self.push()
        self.balance(alice, "wallet opened with the sign-up bonus, mirrored to her store credit")

        self.step(3, "The merchant credits her wallet through the API (an adjustment with a reason)")
        answer = self.api(
            "post",
            f"customers/{alice}/adjustments",
            idempotency_key="demo-welcome-credit",
            json={"direction": "credit", "amount": 5000, "reason": "Welcome gift"},
        )
        say(f"  POST /api/v1/customers/{alice}/adjustments → transaction #{answer['transaction_id']}")
        self.push()
        self.balance(alice, f"{self.money(5000)} credited, and mirrored")

        self.step(4, "Alice checks out on Shopify for €41.48 and pays €30.00 of it with her store credit")
        order = self.sim.place_order(alice, total="41.48", store_credit="30.00")
        self.delivered("orders/paid")
        self.push()
        self.balance(
            alice,
            f"order {order['name']}: Shopify debited her store credit at checkout; the bridge "
            "recorded the spend, sent nothing back, and earned points on the €41.48",
        )

        self.step(5, "The merchant refunds €12.00 of that order to store credit in the Shopify admin")
        self.sim.refund(order["id"], "12.00", to_store_credit=True, note="One mug arrived chipped")
        self.delivered("refunds/create", "orders/updated")
        self.push()
        self.balance(alice, "Shopify credited her store credit, the wallet followed; points taken back pro rata")

        self.step(6, "Alice buys for €75.00 by card")
        card = self.sim.place_order(alice, total="75.00")
        self.delivered("orders/paid")
        self.push()
        self.balance(alice, f"order {card['name']} paid by card: no wallet money moved, points earned")

        self.step(7, "Alice converts her points to wallet money")
        answer = self.api("post", f"customers/{alice}/points/conversions", json={}, idempotency_key="demo-points-1")
        say(f"  POST /api/v1/customers/{alice}/points/conversions → transaction #{answer['transaction_id']}")
        self.push()
        self.balance(alice, "whole steps of 100 points converted, and mirrored")

        self.step(8, "The bridge reconciles every wallet with Shopify (what `wallet-bridge sync` does)")
        reconciled = reconcile(
            self.svc.sessions, self.svc.secrets, self.shop.id, timeout=self.svc.settings.shop_timeout_seconds
        )
        say(f"  wallets: {reconciled.wallets}, in step: {reconciled.in_step}, drifted: {len(reconciled.drifts)}")
        for drift in reconciled.drifts:
            self.problems.append(f"reconcile: drift {drift}")

        self.print_statement(alice)
        return self.conclude(alice)

    def balance(self, customer_id: int, what: str) -> None:
        wallet = self.wallet(customer_id)
        store_credit = self.sim.store_credit_balance(customer_id)
        self.echo(f"  {what}")
        self.echo(
            f"  → wallet {wallet['balance_formatted']}, {wallet['points']} points; "
            f"Shopify store credit {self.money(store_credit)}"
        )

    def push(self) -> None:
        """The outbox worker for this shop, with the store credit changes Shopify received."""
        seen = len(self.sim.requests)
        push_shop_outbox(self.svc, self.shop.id)
        changes = [
            self._change(call)
            for call in self.sim.requests[seen:]
            if call.root_field in ("storeCreditAccountCredit", "storeCreditAccountDebit")
            and not (call.throttled or call.injected)
        ]
        if changes:
            self.echo(f"  outbox worker → Shopify: {', '.join(changes)}")
        else:
            self.echo("  outbox worker: nothing to send to Shopify")
        for message_id, kind, status, error, _payload in _undelivered(self.svc, self.shop.id):
            if message_id in self.reported:
                continue
            self.reported.add(message_id)
            self.problems.append(f"outbox: #{message_id} {kind} {status}: {error}")
            self.echo(f"  outbox worker: NOT delivered: #{message_id} {kind} {status}: {error}")

    def _change(self, call) -> str:
        given = call.variables.get("creditInput") or call.variables.get("debitInput") or {}
        amount = given.get("creditAmount") or given.get("debitAmount") or {}
        return f"{call.root_field} {self.money(parse_amount(amount.get('amount', '0'), CURRENCY))}"

    def conclude(self, customer_id: int) -> bool:
        wallet, store_credit = self.wallet(customer_id)["balance"], self.sim.store_credit_balance(customer_id)
        if wallet != store_credit:
            self.problems.append(f"wallet {self.money(wallet)} but Shopify store credit {self.money(store_credit)}")
        return super().conclude(customer_id)

    def final_balance(self, customer_id: int) -> str:
        wallet = self.wallet(customer_id)
        store_credit = self.money(self.sim.store_credit_balance(customer_id))
        return (
            f"Final balance of customer {customer_id}: {wallet['balance_formatted']} and {wallet['points']} "
            f"points; Shopify store credit {store_credit}"
        )


class DemoFailed(Exception):
    pass


def push_shop_outbox(svc: Services, shop_id: int) -> tuple[int, list[str]]:
    """Deliver this shop's due outbox messages with the worker's own `deliver` (claim, push, record),
    retrying quick failures until the deadline. Returns (delivered, descriptions of those left)."""
    pushers = pushers_for(svc)
    policy = RetryPolicy(max_attempts=svc.settings.outbox_max_attempts, base_delay_seconds=0.1, max_delay_seconds=1)
    delivered = 0
    deadline = utcnow() + timedelta(seconds=OUTBOX_DEADLINE_SECONDS)
    while utcnow() < deadline:
        claimed = claim(svc.sessions, shop_id=shop_id)
        if not claimed:
            if not _open_messages(svc, shop_id):
                break
            threading.Event().wait(0.1)  # a retry is due shortly
            continue
        delivered += sum(deliver(svc.sessions, one, pushers, policy) == OutboxStatus.DELIVERED for one in claimed)
    return delivered, _waiting(svc, shop_id)


def _open_messages(svc: Services, shop_id: int) -> int:
    with unit_of_work(svc.sessions) as session:
        return session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(
                OutboxMessage.shop_id == shop_id,
                OutboxMessage.status.in_((OutboxStatus.PENDING, OutboxStatus.SENDING)),
            )
        )


def _undelivered(svc: Services, shop_id: int) -> list[tuple[int, str, str, str | None, dict]]:
    with unit_of_work(svc.sessions) as session:
        rows = session.execute(
            select(OutboxMessage)
            .where(OutboxMessage.shop_id == shop_id, OutboxMessage.status != OutboxStatus.DELIVERED)
            .order_by(OutboxMessage.id)
        ).scalars()
        return [(m.id, m.kind, m.status, m.last_error, m.payload or {}) for m in rows]


def _waiting(svc: Services, shop_id: int) -> list[str]:
    with unit_of_work(svc.sessions) as session:
        rows = session.execute(
            select(OutboxMessage)
            .where(OutboxMessage.shop_id == shop_id, OutboxMessage.status != OutboxStatus.DELIVERED)
            .order_by(OutboxMessage.id)
        ).scalars()
        return [f"#{m.id} {m.kind} {m.status} after {m.attempts} attempt(s): {m.last_error}" for m in rows]
