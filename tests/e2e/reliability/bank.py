"""The bank test's harness: the real service under a seeded workload and faults, then the books are checked.

    result = run_bank(BankConfig(database_url="postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    print(format_result(result)); assert result.ok, result.violations

Used by tests/e2e/reliability/test_bank.py (small size, in `make test`'s PostgreSQL pass) and bench/bank.py (full
size, sizes as flags). Everything runs on 127.0.0.1 against a scratch PostgreSQL database `wb_bank_<hex>`
created beside `database_url`, migrated, and dropped at the end.

The service is the production one: gunicorn with `deploy/gunicorn.conf.py` (`bridge.surfaces.wsgi:app`, WEB_CONCURRENCY
sync workers) and N `wallet-bridge worker` processes, configured only through the environment (DATABASE_URL,
SECRET_KEY, FERNET_KEYS, PUBLIC_URL, EMBEDDED_WORKER=false, ...). Shops are made with `wallet-bridge shop
create` and connected with `wallet-bridge shop connect` (which registers and pings the webhooks).

The shops are WooCommerce simulators (simulator/woocommerce.py), one per client process (or one in this
process, for the small size). Their deliveries are held (`hold_deliveries()`) and sent by "pump" threads
with `flush()` — WooCommerce's own background queue delivers asynchronously too — which repeat 20 % of
deliveries (half at once, half later) and shuffle some batches. WooCommerce never retries a failed
delivery, and neither do the pumps: what a killed process loses is lost as in production, and recovered by
`wallet-bridge sync <shop>` (orders) and the console's "retry" of deliveries stored as failed (the operator's
tools), before the checks.

Client threads play the shoppers and the merchant with a seeded random stream (the same seed gives the same
sequence of intended operations; what the bridge answers depends on timing): sign-ups (a sign-up bonus is
configured), wallet orders meant to be paid in full or in part, paying the rest of a partly paid order by
card, card orders, cancellations, refunds in wp-admin, top-ups (POST /topups, then the shopper pays that
order by card), withdrawals, points conversions and manual adjustments through the API (each API call
retried with its Idempotency-Key after a connection failure or a 5xx, as a careful client does).

Faults, fired at fractions of the workload's progress: SIGKILL of a gunicorn worker (its master starts
another) and of an outbox worker (restarted by the harness), alternately, `kills` times; the shops' REST API
answering 503 for the first half of the outage and holding calls past the bridge's timeout for the second
half; every database connection of the scratch database terminated once (pg_terminate_backend); a few
answers lost after the shop applied the call (`lost_answers`); `wallet-bridge expire` with the expiry of a
third of the promotional lots moved into the past ("time pushed" for those lots only).

A killed outbox worker leaves the messages it had claimed leased for sync.worker.LEASE (2 minutes). Unless
`keep_lease` is set, once the run is over and those leases are the only thing left, the harness stops the
remaining workers (SIGTERM: they finish their round), moves the leases' expiry to now — the only time travel
for the outbox — and starts the workers again. Dead letters are queued again with `wallet-bridge outbox retry`.

The checks are listed in `check_books` and docs/reliability.md.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import tempfile
import threading
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import requests
from cryptography.fernet import Fernet
from flask import request as flask_request
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from bridge.db import make_engine
from bridge.migrate import upgrade
from bridge.statement_links import without_link
from bridge.usecases.pushes import LEASE
from simulator import WooError, create_simulator
from simulator.rest import Outage

ROOT = Path(__file__).resolve().parents[3]
BIN = ROOT / ".venv" / "bin"
CURRENCY = "EUR"
LOST_ANSWER_STATUS = 502  # the status of an answer lost after the shop applied the call (journal: injected)
WALLET_FEE = "Paid from wallet"
DISCOUNT_FEE = "Wallet discount"
MAX_EXAMPLES = 25  # violations listed per check (all are counted)

# The shops' rules: every kind of money movement is on.
SHOP_SETTINGS = {
    "signup_bonus": 500,
    "partial_payments": True,
    "points_per_currency_unit": 1,
    "points_conversion_points": 100,
    "points_conversion_value": 100,
    "refund_destination": "wallet",
    "refund_wallet_bonus_bp": 500,
    "topup_minimum": 500,
    "topup_maximum": 50_000,
    "topup_bonus_bp": 1_000,
    "topup_bonus_threshold": 10_000,
    "promotional_expiry_days": 30,
}

# Client operations and their weights.
WEIGHTS = (
    ("signup", 8),
    ("wallet_full", 18),
    ("wallet_partial", 7),
    ("pay_rest", 6),
    ("card", 8),
    ("cancel", 4),
    ("refund", 12),
    ("topup", 10),
    ("withdraw", 6),
    ("convert", 5),
    ("adjust", 10),
)


@dataclass
class BankConfig:
    database_url: str  # a database on the server; the scratch database is created beside it
    seed: int = 1
    shops: int = 1  # simulated WooCommerce shops, one per client process when `processes`
    processes: bool = False  # each shop and its client threads in a process of its own
    threads: int = 2  # client threads per shop
    operations: int = 150  # per client thread
    customers: int = 0  # sign-ups per client thread at most (0: operations // 6, at least 3)
    web_workers: int = 2  # gunicorn WEB_CONCURRENCY
    outbox_workers: int = 2
    kills: int = 3  # SIGKILLs, alternately a gunicorn worker and an outbox worker
    outage_seconds: float = 3.0  # the shops' REST API down: 503 for half of it, then timing out
    db_drop: bool = True
    lost_answers: int = 4  # per shop: answers to writes lost after the shop applied them
    expiries: int = 2  # `wallet-bridge expire` runs during the workload (after back-dating some lots)
    duplicate_rate: float = 0.2
    reorder_rate: float = 0.25  # share of delivery batches sent shuffled
    topup_refund_share: float = 0.1  # share of refunds made on top-up orders (docs/reliability.md, finding 1)
    pumps: int = 3  # delivery threads per shop
    shop_timeout: float = 1.5  # SHOP_TIMEOUT_SECONDS of the bridge
    outbox_base_delay: float = 0.25  # OUTBOX_BASE_DELAY_SECONDS
    outbox_max_attempts: int = 8
    deadline_seconds: float = 600.0  # the workload, at most
    settle_seconds: float = 180.0  # each wait for the outbox and deliveries to rest: at most this long without progress
    keep_lease: bool = False  # wait out the 2-minute lease of killed workers' messages instead
    recheck: bool = True  # at the end, `sync` and `expire` once more: neither may move anything
    echo: Callable[[str], None] = print

    @property
    def max_customers(self) -> int:
        return self.customers or max(3, self.operations // 6)

    @property
    def total_operations(self) -> int:
        return self.shops * self.threads * self.operations


@dataclass
class BankResult:
    config: dict
    violations: list[str]
    figures: dict
    seconds: float
    logs: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations


def money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


# --- processes ------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def children_of(pid: int) -> list[int]:
    """Live (not zombie) child processes of `pid`, from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            found.append(int(entry))
    return found


def start_process(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    """A subprocess in a session (process group) of its own, output to `log`."""
    with open(log, "ab") as out:
        return subprocess.Popen(  # noqa: S603 - our own executables, no shell
            args,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def stop_process(process: subprocess.Popen | None, grace: float = 5.0) -> None:
    """SIGTERM to the process group, then SIGKILL when it lingers."""
    if process is None or process.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            process.wait(5)


def run_cli(args: list[str], env: dict, timeout: float = 120.0, extra_env: dict | None = None):
    """`wallet-bridge <args>`; returns (exit code, stdout, stderr). Killed with its group on timeout."""
    process = subprocess.Popen(  # noqa: S603 - our own executable, no shell
        [str(BIN / "wallet-bridge"), *args],
        cwd=ROOT,
        env={**env, **(extra_env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        text=True,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        return -9, out, err + f"\n(killed after {timeout} s)"
    return process.returncode, out, err


def cli_json(args: list[str], env: dict, timeout: float = 120.0, extra_env: dict | None = None) -> dict:
    code, out, err = run_cli(args, env, timeout, extra_env)
    if code != 0:
        raise RuntimeError(f"wallet-bridge {' '.join(args)} exited {code}: {err.strip()[-800:]}")
    return json.loads(out[out.index("{") :])


@contextmanager
def scratch_database(url: str) -> Iterator[str]:
    """A new, migrated database `wb_bank_<hex>` beside the one `url` names; dropped on the way out."""
    admin = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    name = f"wb_bank_{secrets.token_hex(5)}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        scratch = make_url(url).set(database=name).render_as_string(hide_password=False)
        upgrade(scratch)
        yield scratch
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- the shop side: deliveries ----------------------------------------------------------------------------------


class BridgeTransport:
    """The simulator's webhook transport: a real HTTP POST to the gunicorn bridge, each answer recorded."""

    def __init__(self):
        self.lock = threading.Lock()
        self.local = threading.local()
        self.counts: Counter = Counter()
        self.customer_applied: set[int] = set()  # customer.created answered 200 "applied"
        self.customer_lost: set[int] = set()  # a customer.created delivery failed or was not applied
        self.orders_lost: set[int] = set()  # an order.* delivery failed or was not applied

    def _session(self) -> requests.Session:
        if getattr(self.local, "http", None) is None:
            self.local.http = requests.Session()
            self.local.http.trust_env = False
        return self.local.http

    def __call__(self, url: str, body: bytes, headers: dict) -> int:
        topic = headers.get("X-WC-Webhook-Topic")
        try:
            response = self._session().post(url, data=body, headers=headers, timeout=30, allow_redirects=False)
        except requests.RequestException:
            self._record(topic, body, None, None)
            raise
        try:
            state = response.json().get("status")
        except (ValueError, AttributeError):
            state = None
        self._record(topic, body, response.status_code, state)
        return response.status_code

    def _record(self, topic: str | None, body: bytes, status: int | None, state: str | None) -> None:
        ok = status == 200 and state in ("applied", "ignored", "pong")
        with self.lock:
            if topic is None:
                self.counts["pings"] += 1
                return
            self.counts["sent"] += 1
            self.counts[
                "answered_200" if status == 200 else "failed_in_transit" if status is None else f"answered_{status}"
            ] += 1
            if status == 200 and state == "failed":
                self.counts["stored_as_failed"] += 1
        if ok and topic != "customer.created":
            return
        try:
            resource = int(json.loads(body)["id"])
        except (ValueError, KeyError, TypeError):
            return
        with self.lock:
            if topic == "customer.created":
                (self.customer_applied if ok else self.customer_lost).add(resource)
            elif not ok:
                self.orders_lost.add(resource)

    def summary(self) -> dict:
        with self.lock:
            return {
                "counts": dict(self.counts),
                "customer_applied": sorted(self.customer_applied),
                "customer_lost": sorted(self.customer_lost),
                "orders_lost": sorted(self.orders_lost),
            }


class DeliveryPump(threading.Thread):
    """WooCommerce's background queue: takes held deliveries in batches and sends them with `flush()`,
    repeating some (at once or later, as a fresh queue entry) and shuffling some batches."""

    def __init__(self, sim, rng: random.Random, duplicate_rate: float, reorder_rate: float, batch: int = 6):
        super().__init__(name="delivery-pump", daemon=True)
        self.sim, self.rng, self.batch = sim, rng, batch
        self.duplicate_rate, self.reorder_rate = duplicate_rate, reorder_rate
        self.stop = threading.Event()
        self.busy = False
        self.counts: Counter = Counter()

    def run(self) -> None:
        while not self.stop.is_set():
            with self.sim.lock:
                pending = self.sim.pending_deliveries
                items = pending[: self.batch]
                del pending[: self.batch]
                self.busy = bool(items)
            if not items:
                self.stop.wait(0.02)
                continue
            try:
                self._send(items)
            finally:
                with self.sim.lock:
                    self.busy = False

    def _send(self, items: list) -> None:
        batch = list(items)
        for item in items:
            if self.rng.random() < self.duplicate_rate:
                self.counts["repeated"] += 1
                if self.rng.random() < 0.5:
                    batch.append(item)  # again in this batch
                else:
                    with self.sim.lock:  # again later, behind whatever is queued now
                        self.sim.pending_deliveries.append(dataclasses.replace(item))
        if len(batch) > 1 and self.rng.random() < self.reorder_rate:
            self.rng.shuffle(batch)
            self.counts["reordered_batches"] += 1
        self.counts["batches"] += 1
        self.sim.flush(batch)


# --- the shop side: shoppers and the merchant --------------------------------------------------------------------


class BridgeApi:
    """/api/v1 with the shop's key. Connection failures and 5xx are retried with the same Idempotency-Key."""

    def __init__(self, base_url: str, api_key: str, stats: Counter):
        self.base, self.stats = base_url.rstrip("/") + "/api/v1", stats
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.http = requests.Session()
        self.http.trust_env = False

    def call(self, method: str, path: str, *, json_body=None, key: str | None = None, attempts: int = 6):
        headers = dict(self.headers)
        if key:
            headers["Idempotency-Key"] = key
        delay = 0.2
        for attempt in range(attempts):
            self.stats["requests"] += 1
            try:
                response = self.http.request(method, self.base + path, json=json_body, headers=headers, timeout=30)
            except requests.RequestException:
                status, body = None, None
            else:
                status = response.status_code
                try:
                    body = response.json()
                except ValueError:
                    body = None
                if status < 500:
                    if attempt and key:
                        self.stats["retried_then_answered"] += 1
                        if isinstance(body, dict) and body.get("replayed"):
                            self.stats["replayed_after_retry"] += 1
                    return status, body
            self.stats["retries" if attempt + 1 < attempts else "gave_up"] += 1
            self.stats["failed_connection" if status is None else f"answered_{status}"] += 1
            if attempt + 1 < attempts:
                time.sleep(delay)
                delay = min(delay * 2, 3.0)
        return None, None


class Client(threading.Thread):
    """One shopper-and-merchant stream over its own customers, from a seeded random stream."""

    def __init__(self, driver: ShopDriver, number: int, api: BridgeApi):
        super().__init__(name=f"bank-client-{driver.index}-{number}", daemon=True)
        self.driver, self.sim, self.number, self.api = driver, driver.sim, number, api
        spec = driver.spec
        self.rng = random.Random(f"{spec['seed']}:{driver.index}:{number}")
        self.operations, self.max_customers = spec["operations"], spec["max_customers"]
        self.customers: list[int] = []
        self.orders: dict[str, list[int]] = {"wallet": [], "card": [], "topup": []}
        self.deferred: list[tuple[str, int, int]] = []  # top-ups the bridge could not create yet
        self.topup_orders: set[int] = set()  # the top-up orders the bridge answered with (paid or abandoned)
        self.outcomes: Counter = Counter()
        self.keys: dict[str, dict[str, set]] = defaultdict(lambda: {"attempted": set(), "confirmed": set()})
        self.errors: list[str] = []
        self.done = 0
        total = sum(weight for _, weight in WEIGHTS)
        self.table, running = [], 0.0
        for name, weight in WEIGHTS:
            running += weight / total
            self.table.append((running, name))

    def run(self) -> None:
        for n in range(self.operations):
            if self.driver.stopping.is_set():
                break
            draws = [self.rng.random() for _ in range(5)]
            kind = self._choose(draws[0])
            try:
                outcome = getattr(self, f"op_{kind}")(n, *draws[1:])
            except WooError as exc:  # the shop refused (e.g. a refund raced another one)
                outcome = (kind, f"shop_refused_{exc.status}")
            except Exception:  # a harness bug: reported as a violation
                self.errors.append(traceback.format_exc())
                outcome = (kind, "harness_error")
            self.outcomes[outcome] += 1
            self.done += 1
            if n % 10 == 9 and self.deferred:
                self._retry_deferred()
        for _ in range(30):
            if not self.deferred or self.driver.stopping.is_set():
                break
            time.sleep(1.0)
            self._retry_deferred()
        for _ in self.deferred:
            self.outcomes[("topup", "deferred_gave_up")] += 1

    def _choose(self, u: float) -> str:
        if len(self.customers) < min(3, self.max_customers):
            return "signup"
        kind = next(name for bound, name in self.table if u <= bound)
        if kind == "signup" and len(self.customers) >= self.max_customers:
            return "wallet_full"
        return kind

    def tag(self, n: int) -> str:
        return f"{self.driver.index}-{self.number}-{n}"

    def customer(self, u: float) -> int:
        return self.customers[int(u * len(self.customers)) % len(self.customers)]

    def wallet(self, customer_id: int) -> dict:
        status, body = self.api.call("GET", f"/customers/{customer_id}/wallet", attempts=3)
        return body if status == 200 and isinstance(body, dict) else {}

    def find(self, kind: str, u: float, wanted: Callable) -> int | None:
        """One of this client's orders of `kind` the shop's state says qualifies (up to 12 looked at)."""
        ids = self.orders[kind]
        if not ids:
            return None
        start = int(u * len(ids))
        with self.sim.lock:
            for step in range(min(12, len(ids))):
                order = self.sim.store.orders.get(ids[(start + step) % len(ids)])
                if order is not None and wanted(order):
                    return order.id
        return None

    def place(self, customer_id: int, total: int, method: str, kind: str) -> int:
        order = self.sim.place_order(customer_id, total=money(total), payment_method=method)
        self.orders[kind].append(order["id"])
        return order["id"]

    # The operations: each returns (kind, outcome).

    def op_signup(self, n, u1, u2, u3, u4):
        created = self.sim.create_customer(f"c{self.tag(n)}@bank.test", "Bank", f"Customer {self.tag(n)}")
        self.customers.append(created["id"])
        return "signup", "ok"

    def op_wallet_full(self, n, u1, u2, u3, u4):
        customer_id = self.customer(u1)
        available = self.wallet(customer_id).get("available", 0)
        total = max(100, int(available * (0.2 + 0.8 * u2))) if available >= 100 else 100 + int(u2 * 2000)
        self.place(customer_id, total, "wallet", "wallet")
        return "wallet_full", "placed"

    def op_wallet_partial(self, n, u1, u2, u3, u4):
        customer_id = self.customer(u1)
        available = max(self.wallet(customer_id).get("available", 0), 0)
        self.place(customer_id, available + 100 + int(u2 * 3000), "wallet", "wallet")
        return "wallet_partial", "placed"

    def op_pay_rest(self, n, u1, u2, u3, u4):
        order_id = self.find(
            "wallet", u1, lambda o: o.status == "pending" and any(f.name == WALLET_FEE for f in o.fee_lines)
        )
        if order_id is None:
            return self.op_card(n, u1, u2, u3, u4)
        self.sim.set_status(order_id, "processing")  # the rest paid by card
        return "pay_rest", "ok"

    def op_card(self, n, u1, u2, u3, u4):
        order_id = self.place(self.customer(u1), 100 + int(u2 * 6000), "stripe", "card")
        if u3 < 0.85:
            self.sim.set_status(order_id, "processing")
            return "card", "paid"
        return "card", "left_pending"

    def op_cancel(self, n, u1, u2, u3, u4):
        pending = lambda o: o.status == "pending"  # noqa: E731
        order_id = self.find("wallet", u1, pending) or self.find("card", u1, pending)
        if order_id is None:
            return self.op_wallet_partial(n, u1, u2, u3, u4)
        self.sim.set_status(order_id, "cancelled")
        return "cancel", "ok"

    def op_refund(self, n, u1, u2, u3, u4):
        refundable = lambda o: o.status in ("processing", "completed") and o.remaining_refund > 0  # noqa: E731
        share = self.driver.spec["topup_refund_share"]
        first = "topup" if u3 < share else "card" if u3 < share + 0.3 else "wallet"
        order_id = None
        for kind in (first, "wallet", "card"):
            order_id = order_id or self.find(kind, u1, refundable)
        if order_id is None:
            return self.op_adjust(n, u1, u2, u3, u4)
        with self.sim.lock:
            remaining = self.sim.store.orders[order_id].remaining_refund
        amount = remaining if u2 < 0.3 else max(1, int(remaining * u2))
        self.sim.refund(order_id, money(amount), reason=f"Bank test refund {self.tag(n)}")
        return "refund", "ok"

    def op_topup(self, n, u1, u2, u3, u4):
        key = f"topup-{self.tag(n)}"
        return "topup", self.request_topup(key, self.customer(u1), 500 + int(u2 * 15_000), pay=u3 >= 0.05)

    def request_topup(self, key: str, customer_id: int, amount: int, pay: bool) -> str:
        status, body = self.api.call(
            "POST", f"/customers/{customer_id}/topups", json_body={"amount": amount}, key=key, attempts=3
        )
        if status == 201:
            self.topup_orders.add(int(body["order_id"]))
            if not pay:
                return "abandoned"
            self.pay_topup(int(body["order_id"]))
            return "paid"
        if status is None:  # the shop (or the bridge) is down: the shopper tries again later
            self.deferred.append((key, customer_id, amount))
            return "deferred"
        return f"refused_{status}"

    def pay_topup(self, order_id: int) -> None:
        """The shopper pays the top-up order by card at the shop's checkout."""
        store = self.sim.store

        def action():
            store.update_order(
                order_id, {"payment_method": "stripe", "payment_method_title": "Credit / Debit Card", "set_paid": True}
            )
            return None, [("order.updated", order_id)]

        self.sim.change(action)
        self.orders["topup"].append(order_id)

    def _retry_deferred(self) -> None:
        waiting, self.deferred = self.deferred, []
        for key, customer_id, amount in waiting:
            self.outcomes[("topup_retry", self.request_topup(key, customer_id, amount, pay=True))] += 1

    def op_withdraw(self, n, u1, u2, u3, u4):
        customer_id = self.customer(u1)
        state = self.wallet(customer_id)
        limit = min(state.get("withdrawable", 0), state.get("available", 0))
        if limit <= 0:
            return self.op_topup(n, u1, u2, u3, u4)
        key = f"withdraw-{self.tag(n)}"
        amount = max(1, int(limit * (0.1 + 0.9 * u2)))
        return "withdraw", self._keyed("withdrawal", key, f"/customers/{customer_id}/withdrawals", {"amount": amount})

    def op_convert(self, n, u1, u2, u3, u4):
        customer_id = self.customer(u1)
        points = self.wallet(customer_id).get("points", 0)
        if points < 100:
            return self.op_adjust(n, u1, u2, u3, u4)
        body = {} if u2 < 0.3 else {"points": 100 * (1 + int(u3 * (points // 100 - 1)))}
        key = f"convert-{self.tag(n)}"
        return "convert", self._keyed("conversion", key, f"/customers/{customer_id}/points/conversions", body)

    def op_adjust(self, n, u1, u2, u3, u4):
        customer_id = self.customer(u1)
        key = f"adjust-{self.tag(n)}"
        if u2 < 0.6:
            direction, amount = "credit", 100 + int(u3 * 4900)
        else:
            balance = self.wallet(customer_id).get("balance", 0)
            direction, amount = "debit", max(1, int(max(balance, 100) * (0.2 + u3)))
        body = {"direction": direction, "amount": amount, "reason": f"Bank test {direction} {key}"}
        return f"adjust_{direction}", self._keyed("adjustment", key, f"/customers/{customer_id}/adjustments", body)

    def _keyed(self, family: str, key: str, path: str, body: dict) -> str:
        self.keys[family]["attempted"].add(key)
        status, _ = self.api.call("POST", path, json_body=body, key=key)
        if status == 201:
            self.keys[family]["confirmed"].add(key)
            return "ok"
        return "gave_up" if status is None else f"refused_{status}"


class ShopDriver:
    """One simulated shop: its REST API served on 127.0.0.1, delivery pumps, client threads, faults and the
    final report of what the shop saw. The same methods are called in this process or through
    DriverProcess."""

    def __init__(self, spec: dict):
        self.spec, self.index = spec, spec["index"]
        self.consumer_key = "ck_" + secrets.token_hex(20)
        self.consumer_secret = "cs_" + secrets.token_hex(20)
        self.transport = BridgeTransport()
        self.sim = create_simulator(
            consumer_key=self.consumer_key,
            consumer_secret=self.consumer_secret,
            transport=self.transport,
            seed=spec["seed"] * 100 + self.index,
            rest_timeout_seconds=spec["rest_timeout"],
        )
        self.sim.hold_deliveries()
        self.url = self.sim.serve()
        self.stopping = threading.Event()
        self.clients: list[Client] = []
        self.api_stats: Counter = Counter()
        self.pumps = [
            DeliveryPump(
                self.sim,
                random.Random(f"{spec['seed']}:{self.index}:pump:{i}"),
                spec["duplicate_rate"],
                spec["reorder_rate"],
            )
            for i in range(spec["pumps"])
        ]
        for pump in self.pumps:
            pump.start()
        self._take_outage = self.sim.take_outage
        self._answers_to_lose = 0
        self.answers_lost = 0
        self.outage_modes: list[str] = []

    def shop(self) -> dict:
        return {"url": self.url, "consumer_key": self.consumer_key, "consumer_secret": self.consumer_secret}

    def start_clients(self, bridge_url: str, api_key: str) -> None:
        for number in range(self.spec["threads"]):
            client = Client(self, number, BridgeApi(bridge_url, api_key, self.api_stats))
            self.clients.append(client)
            client.start()

    def progress(self) -> int:
        return sum(client.done for client in self.clients)

    def running(self) -> bool:
        return any(client.is_alive() for client in self.clients)

    def stop_clients(self, timeout: float = 60.0) -> None:
        self.stopping.set()
        for client in self.clients:
            client.join(timeout)

    def shop_outage(self, mode: str) -> None:
        """ "error": every REST call answered 503; "timeout": held past the bridge's timeout, then 504."""
        self.outage_modes.append(mode)
        if mode == "error":
            self.sim.fail_rest(503)
        elif mode == "timeout":
            self.sim.fail_rest(timeout=True)
        else:
            self.sim.restore_rest()

    def lose_answers(self, count: int) -> None:
        """The next `count` writes (PUT/POST, refunds included) are applied by the shop, then their answers
        are lost."""
        self._answers_to_lose = count
        if count:
            self.sim.take_outage = self._aimed_outage
        else:
            self.sim.take_outage = self._take_outage

    def _aimed_outage(self):
        with self.sim.lock:
            aim = self._answers_to_lose > 0 and flask_request.method in ("PUT", "POST")
            if aim:
                self._answers_to_lose -= 1
                self.answers_lost += 1
        if aim:
            return Outage(LOST_ANSWER_STATUS, None, None, True, None), threading.Event()
        return self._take_outage()

    def idle(self) -> bool:
        with self.sim.lock:
            return not self.sim.pending_deliveries and not any(pump.busy for pump in self.pumps)

    def report(self) -> dict:
        sim = self.sim
        with sim.lock:
            customers = sorted(sim.store.customers)
            orders = {}
            for order in sim.store.orders.values():
                notes = sim.store.notes.get(order.id, [])
                orders[order.id] = {
                    "status": order.status,
                    "customer": order.customer_id,
                    "method": order.payment_method,
                    "total": order.total,
                    "transaction_id": order.transaction_id,
                    "paid": order.date_paid is not None,
                    "meta": {m.key: m.value for m in order.meta if str(m.key).startswith("_wallet_bridge")},
                    "fees": [(fee.name, fee.total + fee.tax) for fee in order.fee_lines],
                    "refunds": [(refund.id, refund.amount) for refund in order.refunds],
                    "notes": [without_link(note.note) for note in notes if note.customer_note],  # as asked
                    "private_notes": [note.note for note in notes if not note.customer_note],
                }
            calls = list(sim.requests)
        outcomes, keys, errors = Counter(), defaultdict(lambda: {"attempted": set(), "confirmed": set()}), []
        topup_orders = set()
        for client in self.clients:
            topup_orders |= client.topup_orders
            outcomes.update(client.outcomes)
            errors += client.errors
            for family, sets in client.keys.items():
                keys[family]["attempted"] |= sets["attempted"]
                keys[family]["confirmed"] |= sets["confirmed"]
        pumps = Counter()
        for pump in self.pumps:
            pumps.update(pump.counts)
        return {
            "index": self.index,
            "customers": customers,
            "orders": orders,
            "journal": summarise_journal(calls),
            "deliveries": self.transport.summary(),
            "pumps": dict(pumps),
            "webhooks": {hook.topic: hook.status for hook in sim.webhooks.values()},
            "outcomes": {f"{kind}:{outcome}": count for (kind, outcome), count in outcomes.items()},
            "keys": {family: {name: sorted(values) for name, values in sets.items()} for family, sets in keys.items()},
            "api": dict(self.api_stats),
            "topup_orders_answered": sorted(topup_orders),
            "answers_lost": self.answers_lost,
            "errors": errors[:10],
        }

    def shutdown(self) -> None:
        self.stopping.set()
        for pump in self.pumps:
            pump.stop.set()
        for pump in self.pumps:
            pump.join(5)
        self.sim.shutdown()


def summarise_journal(calls: list) -> dict:
    """What the shop applied, from its request journal: a call counts as applied when it was answered 2xx,
    or when its answer was lost after the shop made it (injected LOST_ANSWER_STATUS over a 2xx the shop answered:
    a refund the shop refused, its refusal lost, made nothing)."""

    def applied(call) -> bool:
        answered = call.shop_status if call.injected and call.status == LOST_ANSWER_STATUS else call.status
        return answered is not None and 200 <= answered < 300

    set_paid, fee_puts, refund_posts, note_posts, refused = Counter(), Counter(), Counter(), Counter(), Counter()
    counts = Counter()
    for call in calls:
        counts["calls"] += 1
        if call.injected and call.status != LOST_ANSWER_STATUS:
            counts["failed_by_outage"] += 1
            continue
        if call.status is not None and call.status >= 400 and not call.injected:
            refused[f"{call.method} {re.sub(r'[0-9]+', '<id>', call.endpoint)} {call.status}"] += 1
        if not applied(call):
            continue
        parts = call.endpoint.split("/")
        body = call.json if isinstance(call.json, dict) else {}
        if call.method == "POST" and call.endpoint == "orders":
            counts["orders_created_by_bridge"] += 1
        elif parts[0] == "orders" and len(parts) == 2 and call.method == "PUT":
            if body.get("set_paid") in (True, "true", 1, "1"):
                set_paid[parts[1]] += 1
            if any(isinstance(line, dict) and line.get("name") for line in body.get("fee_lines") or []):
                fee_puts[parts[1]] += 1  # a fee written (a PUT that only removes lines, named null, is no fee)
        elif parts[0] == "orders" and len(parts) == 3 and parts[2] == "refunds" and call.method == "POST":
            markers = [m.get("value") for m in body.get("meta_data") or [] if isinstance(m, dict)]
            refund_posts[f"{parts[1]}:{markers[0] if markers else ''}"] += 1
        elif parts[0] == "orders" and len(parts) == 3 and parts[2] == "notes" and call.method == "POST":
            note_posts[f"{parts[1]}:{body.get('note')}"] += 1
    return {
        "counts": dict(counts),
        "set_paid": dict(set_paid),
        "fee_puts": dict(fee_puts),
        "refund_posts": dict(refund_posts),
        "note_posts_repeated": {key: n for key, n in note_posts.items() if n > 1},
        "notes_posted": sum(note_posts.values()),
        "refused": dict(refused),
    }


def _driver_main(connection, spec: dict) -> None:
    """A client process: one ShopDriver, its methods called over a pipe."""
    driver = None
    try:
        driver = ShopDriver(spec)
        connection.send(("ok", driver.shop()))
        while True:
            name, args = connection.recv()
            if name == "exit":
                break
            try:
                connection.send(("ok", getattr(driver, name)(*args)))
            except Exception:
                connection.send(("error", traceback.format_exc()))
    except EOFError:
        pass
    except Exception:
        with suppress(Exception):
            connection.send(("error", traceback.format_exc()))
    finally:
        if driver is not None:
            driver.shutdown()


class DriverProcess:
    """A ShopDriver in a client process of its own (spawned), with the same methods."""

    def __init__(self, spec: dict, context):
        self.connection, child = context.Pipe()
        self.process = context.Process(
            target=_driver_main, args=(child, spec), name=f"bank-shop-{spec['index']}", daemon=True
        )
        self.process.start()
        child.close()
        self._shop: dict | None = None

    def _receive(self, timeout: float):
        if not self.connection.poll(timeout):
            raise TimeoutError(f"client process {self.process.name} did not answer in {timeout} s")
        status, value = self.connection.recv()
        if status != "ok":
            raise RuntimeError(f"client process {self.process.name}: {value}")
        return value

    def call(self, name: str, *args, timeout: float = 120.0):
        self.connection.send((name, args))
        return self._receive(timeout)

    def shop(self) -> dict:
        if self._shop is None:
            self._shop = self._receive(120.0)
        return self._shop

    def start_clients(self, bridge_url: str, api_key: str) -> None:
        self.call("start_clients", bridge_url, api_key)

    def progress(self) -> int:
        return self.call("progress")

    def running(self) -> bool:
        return self.call("running")

    def stop_clients(self, timeout: float = 60.0) -> None:
        self.call("stop_clients", timeout, timeout=timeout * 3 + 10)

    def shop_outage(self, mode: str) -> None:
        self.call("shop_outage", mode)

    def lose_answers(self, count: int) -> None:
        self.call("lose_answers", count)

    def idle(self) -> bool:
        return self.call("idle")

    def report(self) -> dict:
        return self.call("report", timeout=300)

    def shutdown(self) -> None:
        with suppress(Exception):
            self.connection.send(("exit", ()))
        self.process.join(15)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)


# --- the run --------------------------------------------------------------------------------------------------


def run_bank(config: BankConfig) -> BankResult:
    """Start the service, run the workload under faults, recover, check the books; always cleans up."""
    return BankRun(config).execute()


class BankRun:
    def __init__(self, config: BankConfig):
        self.c = config
        self.rng = random.Random(f"{config.seed}:faults")
        self.t0 = time.monotonic()
        self.violations: list[str] = []
        self.timeline: list[str] = []
        self.gunicorn: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.worker_starts = 0
        self.shops: list[dict] = []  # {"id", "api_key", "driver", "shop"}
        self.outage: dict | None = None
        self.awaiting_respawn: list[tuple[int, float]] = []
        self.background: threading.Thread | None = None
        self.last_sync_skips: dict[int, list] = {}
        self.last_worker_kill = None  # the database's clock when an outbox worker was last killed
        self.figures: dict = {
            "kills": Counter(),
            "faults": Counter(),
            "outbox": Counter(),
            "sync": Counter(),
            "expiry": Counter(),
            "inbox_retry": Counter(),
        }

    # -- helpers

    def note(self, message: str) -> None:
        line = f"[bank {time.monotonic() - self.t0:7.1f}s] {message}"
        self.timeline.append(line)
        self.c.echo(line)

    def scalar(self, sql: str, **params):
        with self.db.connect() as connection:
            return connection.execute(text(sql), params).scalar()

    def outbox_counts(self) -> Counter:
        with self.db.connect() as connection:
            return Counter(dict(connection.execute(text("SELECT status, count(*) FROM outbox GROUP BY status")).all()))

    def drivers(self) -> list:
        return [shop["driver"] for shop in self.shops]

    # -- lifecycle

    def execute(self) -> BankResult:
        logs: dict[str, str] = {}
        try:
            with tempfile.TemporaryDirectory(prefix="wb-bank-") as tmp, scratch_database(self.c.database_url) as url:
                self.tmp, self.url = Path(tmp), url
                self.logs = self.tmp / "logs"
                self.logs.mkdir()
                self.dbname = make_url(url).database
                self.db = make_engine(url, pool_size=2)
                try:
                    self._run()
                except Exception:
                    self.violations.append("the harness failed: " + traceback.format_exc()[-4000:])
                finally:
                    self._stop_all()
                    self.db.dispose()
                    if self.violations:
                        logs = self._log_tails()
        except Exception:
            self.violations.append("the harness failed: " + traceback.format_exc()[-4000:])
        self.figures["seconds"] = round(time.monotonic() - self.t0, 1)
        config = {k: v for k, v in dataclasses.asdict(self.c).items() if k not in ("echo", "database_url")}
        return BankResult(config, self.violations, _plain(self.figures), self.figures["seconds"], logs)

    def _run(self) -> None:
        port = free_port()
        self.bridge_url = f"http://127.0.0.1:{port}"
        self.env = self._environment(port)
        self.gunicorn = start_process(
            [str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py"], self.env, self.logs / "gunicorn.log"
        )
        self.workers = [self._start_worker() for _ in range(self.c.outbox_workers)]
        drivers = self._start_drivers()
        with ThreadPoolExecutor(max_workers=min(8, self.c.shops)) as pool:
            created = list(pool.map(self._create_shop, range(self.c.shops)))
        self._configure_shops([shop["id"] for shop in created])
        for shop, driver in zip(created, drivers, strict=True):
            self.shops.append({"id": shop["id"], "api_key": shop["api_key"], "driver": driver, "shop": driver.shop()})
        self._wait_healthy(90)
        self.note(
            f"gunicorn {self.bridge_url}: master {self.gunicorn.pid}, workers {children_of(self.gunicorn.pid)}; "
            f"outbox workers {[w.pid for w in self.workers]}; scratch database {self.dbname}"
        )
        with ThreadPoolExecutor(max_workers=min(8, self.c.shops) + 1) as pool:
            operator = pool.submit(self._create_operator)
            for result in pool.map(self._connect_shop, self.shops):
                self.figures["faults"]["webhooks_registered"] += len(result["webhooks"]["created"])
            operator.result()
        self.note(
            f"{len(self.shops)} shop(s) created and connected; workload: {self.c.shops} × {self.c.threads} "
            f"client thread(s) × {self.c.operations} operations"
        )
        self._workload()
        self._recover()
        self._check()

    def _environment(self, port: int) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WB_", "TEST_DATABASE", "GUNICORN"))}
        env.update(
            DATABASE_URL=self.url,
            SECRET_KEY=secrets.token_urlsafe(32),
            FERNET_KEYS=Fernet.generate_key().decode(),
            PUBLIC_URL=f"http://127.0.0.1:{port}",
            EMBEDDED_WORKER="false",
            INSTANCE_PATH=str(self.tmp / "instance"),
            OUTBOX_BASE_DELAY_SECONDS=str(self.c.outbox_base_delay),
            OUTBOX_MAX_ATTEMPTS=str(self.c.outbox_max_attempts),
            SHOP_TIMEOUT_SECONDS=str(self.c.shop_timeout),
            BIND=f"127.0.0.1:{port}",
            ALLOW_PRIVATE_SHOP_URLS="true",  # the simulated shops are on 127.0.0.1
            WEB_CONCURRENCY=str(self.c.web_workers),
            WEB_THREADS="1",
            NO_PROXY="127.0.0.1,localhost",
            PYTHONUNBUFFERED="1",
        )
        return env

    def _start_worker(self) -> subprocess.Popen:
        self.worker_starts += 1
        return start_process(
            [str(BIN / "wallet-bridge"), "worker"], self.env, self.logs / f"worker-{self.worker_starts}.log"
        )

    def _start_drivers(self) -> list:
        specs = [
            {
                "index": i,
                "seed": self.c.seed,
                "threads": self.c.threads,
                "operations": self.c.operations,
                "max_customers": self.c.max_customers,
                "pumps": self.c.pumps,
                "duplicate_rate": self.c.duplicate_rate,
                "reorder_rate": self.c.reorder_rate,
                "rest_timeout": self.c.shop_timeout + 1.5,
                "topup_refund_share": self.c.topup_refund_share,
            }
            for i in range(self.c.shops)
        ]
        if not self.c.processes:
            return [ShopDriver(spec) for spec in specs]
        context = multiprocessing.get_context("spawn")
        return [DriverProcess(spec, context) for spec in specs]

    def _create_shop(self, index: int) -> dict:
        return cli_json(
            [
                "shop",
                "create",
                "--name",
                f"Bank shop {index}",
                "--platform",
                "woocommerce",
                "--url",
                f"https://bank-shop-{index}.example",
                "--currency",
                CURRENCY,
                "--json",
            ],
            self.env,
        )

    def _configure_shops(self, ids: list[int]) -> None:
        with self.db.begin() as connection:
            for shop_id in ids:
                connection.execute(
                    text("UPDATE shops SET settings = CAST(:s AS json) WHERE id = :id"),
                    {"s": json.dumps(SHOP_SETTINGS), "id": shop_id},
                )

    def _connect_shop(self, shop: dict) -> dict:
        info = shop["shop"]
        return cli_json(
            ["shop", "connect", str(shop["id"]), "--url", info["url"], "--json"],
            self.env,
            extra_env={"WB_CONSUMER_KEY": info["consumer_key"], "WB_CONSUMER_SECRET": info["consumer_secret"]},
        )

    def _create_operator(self) -> None:
        """A console user for the recovery (the console's retry of deliveries stored as failed)."""
        self.operator = ("operator@bank.test", secrets.token_urlsafe(18))
        shop_args = [arg for shop in self.shops for arg in ("--shop", str(shop["id"]))]
        cli_json(
            ["user", "create", "--email", self.operator[0], "--name", "Bank operator", *shop_args, "--json"],
            self.env,
            extra_env={"WB_USER_PASSWORD": self.operator[1]},
        )

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.gunicorn.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.gunicorn.returncode}")
            with suppress(requests.RequestException):
                ok = requests.get(self.bridge_url + "/healthz", timeout=2).status_code == 200
                if ok and len(children_of(self.gunicorn.pid)) >= self.c.web_workers:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"the bridge was not healthy within {timeout} s")

    def _stop_all(self) -> None:
        for shop in self.shops:
            with suppress(Exception):
                shop["driver"].shutdown()
        for worker in self.workers:
            stop_process(worker)
        stop_process(self.gunicorn, grace=10)

    def _log_tails(self) -> dict[str, str]:
        tails = {}
        for path in sorted(self.logs.glob("*.log")):
            with suppress(OSError):
                lines = path.read_text(errors="replace").splitlines()
                interesting = [line for line in lines if "Traceback" in line or "ERROR" in line or "Error" in line]
                tails[path.name] = "\n".join(interesting[-20:] or lines[-20:])
        return tails

    # -- the workload and its faults

    def _fault_plan(self) -> list[tuple[float, str]]:
        plan = []
        kinds = (["kill_web", "kill_worker"] * self.c.kills)[: self.c.kills]
        for i, kind in enumerate(kinds):
            plan.append((0.12 + 0.76 * (i + 0.5) / max(self.c.kills, 1), kind))
        if self.c.outage_seconds > 0:
            plan.append((0.3, "outage"))
        if self.c.db_drop:
            plan.append((0.55, "db_drop"))
        if self.c.lost_answers:
            plan.append((0.68, "lost_answers"))
        for i in range(self.c.expiries):
            plan.append((0.4 + 0.45 * i / max(self.c.expiries - 1, 1), "expire"))
        return sorted(plan)

    def _workload(self) -> None:
        total = self.c.total_operations
        plan = self._fault_plan()
        started = time.monotonic()
        deadline = started + self.c.deadline_seconds
        for shop in self.shops:
            shop["driver"].start_clients(self.bridge_url, shop["api_key"])
        last_note = started
        while True:
            progress = sum(driver.progress() for driver in self.drivers())
            running = any(driver.running() for driver in self.drivers())
            while plan and (plan[0][0] <= progress / total or not running):
                at, action = plan.pop(0)
                late = "" if running else " (the clients had finished: fired during the recovery)"
                self.note(f"fault at {progress}/{total} operations: {action}{late}")
                try:
                    getattr(self, f"_fault_{action}")()
                except Exception:
                    self.violations.append(f"fault {action} could not be injected: {traceback.format_exc()[-1500:]}")
            self._tick()
            now = time.monotonic()
            if not running and not plan and self.outage is None and not self.awaiting_respawn:
                self._join_background()
                break
            if now > deadline:
                self.violations.append(
                    f"the workload did not finish within {self.c.deadline_seconds} s ({progress}/{total} operations)"
                )
                for driver in self.drivers():
                    driver.stop_clients(30)
                if self.outage is not None:
                    self._end_outage()
                break
            if now - last_note > 15:
                last_note = now
                self.note(f"progress {progress}/{total} operations; outbox {dict(self.outbox_counts())}")
            time.sleep(0.1)
        self.figures["workload_seconds"] = round(time.monotonic() - started, 1)
        self.note(f"workload done in {self.figures['workload_seconds']} s")

    def _tick(self) -> None:
        now = time.monotonic()
        if self.outage is not None:
            if self.outage["phase"] == "error" and now >= self.outage["switch"]:
                for driver in self.drivers():
                    driver.shop_outage("timeout")
                self.outage["phase"] = "timeout"
                self.note("shop REST API: now timing out")
            if now >= self.outage["end"]:
                self._end_outage()
        for victim, until in list(self.awaiting_respawn):
            workers = children_of(self.gunicorn.pid)
            if victim not in workers and len(workers) >= self.c.web_workers:
                self.awaiting_respawn.remove((victim, until))
                self.figures["kills"]["web_workers_replaced_by_gunicorn"] += 1
                self.note(f"gunicorn replaced worker {victim}: workers now {workers}")
            elif now > until:
                self.awaiting_respawn.remove((victim, until))
                self.violations.append(f"gunicorn did not replace killed worker {victim} (workers: {workers})")

    def _fault_kill_web(self) -> None:
        workers = sorted(children_of(self.gunicorn.pid))
        if not workers:
            raise RuntimeError("no gunicorn worker to kill")
        victim = self.rng.choice(workers)
        os.kill(victim, signal.SIGKILL)
        self.figures["kills"]["web_worker_sigkill"] += 1
        self.awaiting_respawn.append((victim, time.monotonic() + 60))
        self.note(f"SIGKILL gunicorn worker {victim}")

    def _fault_kill_worker(self) -> None:
        until = time.monotonic() + 3  # prefer a moment when messages are being pushed
        while time.monotonic() < until and not self.outbox_counts().get("sending"):
            time.sleep(0.05)
        sending = self.outbox_counts().get("sending", 0)
        index = self.rng.randrange(len(self.workers))
        victim = self.workers[index]
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
        self.last_worker_kill = self.scalar("SELECT now()")
        self.figures["kills"]["outbox_worker_sigkill"] += 1
        self.note(f"SIGKILL outbox worker {victim.pid} ({sending} message(s) were being sent)")
        time.sleep(0.3)
        self.workers[index] = self._start_worker()
        self.figures["kills"]["outbox_workers_restarted"] += 1
        self.note(f"outbox worker restarted: {self.workers[index].pid}")

    def _fault_outage(self) -> None:
        now = time.monotonic()
        for driver in self.drivers():
            driver.shop_outage("error")
        self.outage = {
            "start": now,
            "switch": now + self.c.outage_seconds / 2,
            "end": now + self.c.outage_seconds,
            "phase": "error",
        }
        self.note(f"shop REST API down for {self.c.outage_seconds} s: answering 503")

    def _end_outage(self) -> None:
        for driver in self.drivers():
            driver.shop_outage("restore")
        self.figures["faults"]["shop_outage_seconds"] += round(time.monotonic() - self.outage["start"], 1)
        self.outage = None
        self.note("shop REST API restored")

    def _fault_db_drop(self) -> None:
        with self.db.connect() as connection:
            dropped = connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = :db AND pid <> pg_backend_pid()"
                ),
                {"db": self.dbname},
            ).scalar()
        self.figures["faults"]["db_connections_terminated"] += dropped
        self.figures["faults"]["db_drops"] += 1
        self.note(f"terminated {dropped} database connection(s) of {self.dbname}")

    def _fault_lost_answers(self) -> None:
        for driver in self.drivers():
            driver.lose_answers(self.c.lost_answers)
        self.note(f"each shop loses its answers to the next {self.c.lost_answers} write(s) after applying them")

    def _fault_expire(self) -> None:
        self._join_background()
        self.background = threading.Thread(target=self._expire_some, name="bank-expire", daemon=True)
        self.background.start()

    def _join_background(self) -> None:
        if self.background is not None:
            self.background.join(300)
            self.background = None

    def _expire_some(self) -> None:
        try:
            self._backdate_and_expire()
        except Exception:
            self.violations.append(f"expiry could not run: {traceback.format_exc()[-1500:]}")

    def _backdate_and_expire(self) -> None:
        with self.db.begin() as connection:
            ids = (
                connection.execute(
                    text(
                        "SELECT id FROM credit_lots WHERE kind = 'promotional' AND remaining > 0"
                        " AND expires_at IS NOT NULL ORDER BY id"
                    )
                )
                .scalars()
                .all()
            )
            chosen = sorted(self.rng.sample(ids, k=len(ids) // 3)) if ids else []
            if chosen:
                connection.execute(
                    text("UPDATE credit_lots SET expires_at = now() - interval '1 minute' WHERE id = ANY(:ids)"),
                    {"ids": chosen},
                )
        result = cli_json(["expire", "--json"], self.env)
        self.figures["expiry"]["lots_backdated"] += len(chosen)
        self.figures["expiry"]["lots_expired"] += result["lots_expired"]
        self.figures["expiry"]["runs"] += 1
        self.note(
            f"expiry: {len(chosen)} promotional lot(s) back-dated, `wallet-bridge expire` expired "
            f"{result['lots_expired']}"
        )

    # -- recovery: what an operator runs after an incident

    def _recover(self) -> None:
        for driver in self.drivers():
            driver.stop_clients(60)
            driver.lose_answers(0)
        for index, worker in enumerate(self.workers):
            if worker.poll() is not None:
                self.violations.append(f"outbox worker {worker.pid} exited by itself ({worker.returncode})")
                self.workers[index] = self._start_worker()
        self._wait_deliveries()
        # Every request has been answered, so a delivery still `received` was stranded by a kill or a dropped
        # connection: what the workers' recovery does a minute later, the operator does at once.
        code, out, err = run_cli(["inbox", "recover", "--older-than", "0"], self.env)
        if code == 0:
            self.figures["inbox_retry"]["stalled_applied_by_inbox_recover"] = int(out.rsplit(":", 1)[-1])
        else:
            self.violations.append(f"`wallet-bridge inbox recover` exited {code}: {(out + err)[-2000:]}")
        self.note("clients stopped, deliveries drained and recovered; `wallet-bridge sync` of every shop")
        before = self.scalar("SELECT count(*) FROM ledger_transactions")
        results = self._sync_all("sync")
        posted = self.scalar("SELECT count(*) FROM ledger_transactions") - before
        self.figures["sync"]["transactions_posted_by_sync"] = posted
        for result in results:
            self.figures["sync"]["orders_seen"] += result["orders_seen"]
            self.figures["sync"]["webhooks_reactivated"] += result["webhooks_reactivated"]
            self.figures["sync"]["orders_skipped"] += result["skipped"]
        self.note(f"sync: {dict(self.figures['sync'])}")
        self._retry_failed_inbox()
        self._settle("after sync")
        self.figures["expiry"]["lots_expired_at_the_end"] = cli_json(["expire", "--json"], self.env)["lots_expired"]
        self._settle("after expiry")
        if self.c.recheck:
            self._recheck()
        for shop_id, skipped in self.last_sync_skips.items():
            for order in skipped:
                self.violations.append(
                    f"order the last `wallet-bridge sync` could not apply: shop {shop_id} order "
                    f"{order['id']}: {order['error']}"
                )
        self.note("`wallet-bridge ledger verify`")
        code, out, err = run_cli(["ledger", "verify", "--json"], self.env)
        self.figures["ledger_verify_exit_code"] = code
        if code != 0:
            self.violations.append(f"`wallet-bridge ledger verify` exited {code}: {(out + err)[-2000:]}")
        if requests.get(self.bridge_url + "/healthz", timeout=5).status_code != 200:
            self.violations.append("the bridge is not healthy at the end")

    def _recheck(self) -> None:
        """`sync` and `expire` once more, at once: neither may move anything now."""
        counts = "SELECT (SELECT count(*) FROM ledger_transactions), (SELECT count(*) FROM outbox)"
        with self.db.connect() as connection:
            before = tuple(connection.execute(text(counts)).one())
        with ThreadPoolExecutor(max_workers=1) as pool:
            again = pool.submit(cli_json, ["expire", "--json"], self.env)
            self._sync_all("second sync")
            second = again.result()["lots_expired"]
        if second:
            self.violations.append(f"`wallet-bridge expire` run again: it expired {second} lot(s) a second time")
        self._settle("after the second sync and expiry")
        with self.db.connect() as connection:
            after = tuple(connection.execute(text(counts)).one())
        if after != before:
            self.violations.append(
                f"a second `wallet-bridge sync` (and expire) changed the books: (transactions, "
                f"outbox) {before} -> {after}"
            )

    def _wait_deliveries(self, stall_seconds: float = 120.0) -> None:
        """Until the shops have delivered everything they hold. Under load their queues lag minutes behind (as
        WooCommerce's Action Scheduler does): waiting is right as long as deliveries keep being answered."""
        stalled_since, last = time.monotonic(), None
        while not all(driver.idle() for driver in self.drivers()):
            progress = self._progress()
            if progress != last:
                stalled_since, last = time.monotonic(), progress
            elif time.monotonic() - stalled_since > stall_seconds:
                self.violations.append(f"the shops' deliveries stopped draining: none stored for {stall_seconds} s")
                return
            time.sleep(0.5)

    def _progress(self) -> tuple[int, int]:
        """What moves while the service catches up: deliveries stored, outbox messages delivered."""
        return self.scalar("SELECT count(*) FROM inbox"), self.outbox_counts().get("delivered", 0)

    def _sync_all(self, label: str) -> list[dict]:
        def sync(shop):
            code, out, err = run_cli(["sync", str(shop["id"]), "--json"], self.env, timeout=600)
            if code != 0:
                self.violations.append(f"{label} of shop {shop['id']} exited {code}: {(err or out)[-1500:]}")
            try:
                result = json.loads(out[out.index("{") :])
            except ValueError:
                return {"orders_seen": 0, "webhooks_reactivated": 0, "skipped": 0}
            for skipped in result.get("skipped_orders") or []:
                self.figures.setdefault("sync_skipped", []).append(
                    f"{label}: shop {shop['id']} order {skipped['id']}: {skipped['error']}"
                )
            self.last_sync_skips[shop["id"]] = result.get("skipped_orders") or []
            return result

        with ThreadPoolExecutor(max_workers=min(8, len(self.shops))) as pool:
            return list(pool.map(sync, self.shops))

    def _settle(self, label: str) -> None:
        """Until the outbox has nothing left to send, the shops nothing left to deliver, and that holds."""
        started = time.monotonic()
        deadline = started + self.c.settle_seconds  # moved on while deliveries or messages still make progress
        stable, last, moving = 0, None, None
        while time.monotonic() < deadline:
            progress = self._progress()
            if progress != moving:
                deadline, moving = max(deadline, time.monotonic() + self.c.settle_seconds), progress
            counts = self.outbox_counts()
            if counts.get("dead"):
                code, out, _ = run_cli(["outbox", "retry"], self.env)
                queued = int(re.match(r"\s*(\d+)", out).group(1)) if code == 0 and re.match(r"\s*\d+", out) else 0
                self.figures["outbox"]["dead_letters_queued_again"] += queued
                self.note(f"{label}: `wallet-bridge outbox retry` queued {queued} dead letter(s)")
                time.sleep(0.25)
                continue
            idle = all(driver.idle() for driver in self.drivers())
            if idle and not counts.get("pending") and not counts.get("sending"):
                signature = (sum(counts.values()), self.scalar("SELECT count(*) FROM inbox"))
                stable = stable + 1 if signature == last else 0
                last = signature
                if stable >= 3:
                    self.note(f"{label}: settled in {time.monotonic() - started:.1f} s; outbox {dict(counts)}")
                    return
            else:
                stable = 0
            if idle and not self.c.keep_lease and self._orphaned_leases():
                self._expire_orphaned_leases(label)
            time.sleep(0.25)
        self.violations.append(
            f"{label}: the outbox and deliveries made no progress for {self.c.settle_seconds} s "
            f"(outbox {dict(self.outbox_counts())})"
        )

    def _orphaned_leases(self) -> list[int]:
        """Messages still leased, the lease taken before an outbox worker was killed: that worker's."""
        if self.last_worker_kill is None:
            return []
        with self.db.connect() as connection:
            return (
                connection.execute(
                    text(
                        "SELECT id FROM outbox WHERE status = 'sending' AND next_attempt_at > now() "
                        "AND next_attempt_at < :killed + :lease"
                    ),
                    {"killed": self.last_worker_kill, "lease": LEASE},
                )
                .scalars()
                .all()
            )

    def _expire_orphaned_leases(self, label: str) -> None:
        """Messages leased by a killed worker: stop the live workers (they finish their round), then move those
        leases' expiry to now — instead of waiting out sync.worker.LEASE — and start the workers again."""
        for worker in self.workers:
            with suppress(ProcessLookupError):
                worker.send_signal(signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.wait(60)
            except subprocess.TimeoutExpired:
                stop_process(worker)
        orphaned = self._orphaned_leases()  # the surviving workers have finished their rounds
        with self.db.begin() as connection:
            expired = len(
                connection.execute(
                    text(
                        "UPDATE outbox SET next_attempt_at = now()"
                        " WHERE status = 'sending' AND id = ANY(:ids) RETURNING id"
                    ),
                    {"ids": orphaned},
                ).all()
            )
        self.figures["outbox"]["leases_of_killed_workers_expired_early"] += expired
        self.workers = [self._start_worker() for _ in range(self.c.outbox_workers)]
        self.note(
            f"{label}: {expired} message(s) leased by a killed worker: workers stopped, leases expired, "
            f"workers started again ({[w.pid for w in self.workers]})"
        )

    def _retry_failed_inbox(self) -> None:
        """Deliveries stored as failed (a dropped database connection mid-apply): the operator's console retry."""
        with self.db.connect() as connection:
            failed = connection.execute(
                text(
                    "SELECT id, shop_id, topic, resource_id, error, received_at FROM inbox "
                    "WHERE status = 'failed' ORDER BY id"
                )
            ).all()
        self.figures["inbox_retry"]["failed_before_retry"] = len(failed)
        if not failed:
            return
        for row in failed:
            self.figures["inbox_retry"][f"error: {(row.error or '')[:70]}"] += 1
            self.figures.setdefault("failed_deliveries", []).append(
                f"shop {row.shop_id} {row.topic} {row.resource_id} at {row.received_at:%H:%M:%S.%f}: {row.error}"
            )
        email, password = self.operator
        console = requests.Session()
        console.trust_env = False
        token = _csrf(console.get(self.bridge_url + "/login", timeout=10).text)
        answer = console.post(
            self.bridge_url + "/login",
            data={"csrf_token": token, "email": email, "password": password},
            timeout=10,
            allow_redirects=False,
        )
        if answer.status_code != 302:
            raise RuntimeError(f"console sign-in answered {answer.status_code}")
        for row in failed:
            page = console.get(f"{self.bridge_url}/shops/{row.shop_id}/operations", timeout=10)
            answer = console.post(
                f"{self.bridge_url}/shops/{row.shop_id}/operations/inbox/{row.id}/retry",
                data={"csrf_token": _csrf(page.text)},
                timeout=30,
                allow_redirects=False,
            )
            self.figures["inbox_retry"]["retried_from_the_console"] += 1
            if answer.status_code != 302:
                self.violations.append(f"console retry of delivery {row.id} answered {answer.status_code}")
        self.figures["inbox_retry"]["failed_after_retry"] = self.scalar(
            "SELECT count(*) FROM inbox WHERE status = 'failed'"
        )
        self.note(f"console retry of {len(failed)} failed deliver(ies): {dict(self.figures['inbox_retry'])}")

    # -- the checks

    def _check(self) -> None:
        reports = {shop["id"]: shop["driver"].report() for shop in self.shops}
        facts = load_facts(self.db)
        findings, figures = check_books(facts, reports)
        self.violations += findings
        self.figures.update(figures)
        self.figures["timeline"] = self.timeline


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    if not found:
        raise RuntimeError("no CSRF token on the console page")
    return found.group(1)


def _plain(value):
    """Counters and tuples as plain JSON-able values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return value


# --- the books ------------------------------------------------------------------------------------------------


def load_facts(engine) -> dict:
    """Everything the checks need from the database, read once after the run."""
    with engine.connect() as connection:
        q = lambda sql: connection.execute(text(sql)).all()  # noqa: E731
        return {
            "transactions": q(
                "SELECT id, shop_id, kind, idempotency_key, order_ref, refund_ref FROM ledger_transactions"
            ),
            "wallet_legs": dict(
                q(
                    "SELECT e.transaction_id, sum(e.amount) FROM entries e JOIN accounts a ON "
                    "a.id = e.account_id WHERE a.kind = 'wallet' GROUP BY e.transaction_id"
                )
            ),
            "unbalanced": q(
                "SELECT transaction_id, currency, sum(amount) FROM entries GROUP BY transaction_id, "
                "currency HAVING sum(amount) <> 0"
            ),
            "thin": q(
                "SELECT t.id FROM ledger_transactions t LEFT JOIN entries e ON e.transaction_id = t.id "
                "GROUP BY t.id HAVING count(e.id) < 2"
            ),
            "sums": q("SELECT currency, sum(amount), count(*) FROM entries GROUP BY currency"),
            "below_limit": q(
                "SELECT id, kind, balance, held, overdraft_limit FROM accounts WHERE kind <> 'system' "
                "AND balance - held < -overdraft_limit"
            ),
            "accounts": dict(q("SELECT kind, count(*) FROM accounts GROUP BY kind")),
            "order_refunds": q(
                "SELECT shop_id, external_id, count(*) FROM order_refunds GROUP BY shop_id, external_id"
            ),
            "outbox": q("SELECT id, shop_id, kind, status, payload, attempts, last_error FROM outbox ORDER BY id"),
            "inbox": q("SELECT shop_id, topic, status, count(*) FROM inbox GROUP BY shop_id, topic, status"),
            "topup_lots": q(
                "SELECT t.shop_id, t.order_ref, l.amount, l.remaining FROM credit_lots l JOIN "
                "ledger_transactions t ON t.id = l.transaction_id WHERE l.source = 'topup' AND "
                "l.kind = 'cash'"
            ),
            "taken_back": q(
                "SELECT t.shop_id, t.order_ref, -sum(e.amount) FROM ledger_transactions t JOIN entries e "
                "ON e.transaction_id = t.id JOIN accounts a ON a.id = e.account_id WHERE a.kind = 'wallet' "
                "AND t.kind IN ('withdrawal', 'withdrawal_reversal') GROUP BY t.shop_id, t.order_ref"
            ),
            "lots_overdue": connection.execute(
                text(
                    "SELECT count(*) FROM credit_lots WHERE expires_at < now() - interval '5 seconds' AND remaining > 0"
                )
            ).scalar(),
        }


class Findings:
    def __init__(self):
        self.items: dict[str, list[str]] = defaultdict(list)

    def add(self, check: str, detail: str) -> None:
        self.items[check].append(detail)

    def lines(self) -> list[str]:
        return [
            f"{check}: {len(details)} (e.g. {'; '.join(details[:MAX_EXAMPLES])})"
            for check, details in self.items.items()
        ]


def check_books(facts: dict, reports: dict[int, dict]) -> tuple[list[str], dict]:
    """Every check after the run. Returns (violations, figures)."""
    find, figures = Findings(), {"books": Counter()}
    books = figures["books"]
    for tid, currency, total in facts["unbalanced"]:
        find.add("transaction does not balance", f"tx {tid} {currency} {total}")
    for (tid,) in facts["thin"]:
        find.add("transaction with fewer than two entries", f"tx {tid}")
    for currency, total, count in facts["sums"]:
        books[f"entries_{currency}"] = count
        if total != 0:
            find.add("entries do not sum to zero", f"{currency}: {total}")
    for row in facts["below_limit"]:
        find.add("account below its limit", f"account {row.id} ({row.kind}) balance {row.balance} held {row.held}")
    if facts["lots_overdue"]:
        find.add("promotional credit past its expiry still in wallets", f"{facts['lots_overdue']} lot(s)")
    books["transactions"] = len(facts["transactions"])
    books.update({f"accounts_{kind}": n for kind, n in facts["accounts"].items()})
    by_shop = defaultdict(list)
    for row in facts["transactions"]:
        by_shop[row.shop_id].append(row)
        books[f"tx_{row.kind}"] += 1
    refunds = defaultdict(dict)
    for shop_id, external_id, count in facts["order_refunds"]:
        refunds[shop_id][external_id] = count
    outbox = defaultdict(list)
    for row in facts["outbox"]:
        outbox[row.shop_id].append(row)
    topup_lots, taken_back = defaultdict(dict), defaultdict(dict)
    for shop_id, order_ref, amount, remaining in facts["topup_lots"]:
        topup_lots[shop_id][order_ref] = (amount, remaining)
    for shop_id, order_ref, taken in facts["taken_back"]:
        taken_back[shop_id][order_ref] = taken
    inbox = Counter()
    for shop_id, topic, status, count in facts["inbox"]:
        inbox[status] += count
        if status == "received":
            find.add("delivery left received and never applied", f"shop {shop_id} {topic} × {count}")
        if status == "failed":
            find.add("delivery stored as failed and never applied", f"shop {shop_id} {topic} × {count}")
    figures["inbox"] = inbox
    figures["events"], figures["deliveries"], figures["api"], figures["operations"] = (Counter() for _ in range(4))
    figures["shop_journal"] = Counter()
    for shop_id, report in sorted(reports.items()):
        _check_shop(
            find, figures, shop_id, report, by_shop[shop_id], facts["wallet_legs"], refunds[shop_id], outbox[shop_id]
        )
        _check_topups_refunded_to_the_card(find, figures, shop_id, report, topup_lots[shop_id], taken_back[shop_id])
    return find.lines(), figures


def _check_shop(
    find: Findings, figures: dict, shop_id: int, report: dict, txns: list, legs: dict, refund_rows: dict, messages: list
) -> None:
    events, shop = figures["events"], f"shop {shop_id}"
    by_key = {t.idempotency_key: t for t in txns}
    orders, journal, deliveries = report["orders"], report["journal"], report["deliveries"]

    def leg(key: str) -> int:
        found = by_key.get(key)
        return legs.get(found.id, 0) if found else 0

    for error in report["errors"]:
        find.add("harness error in a client", error[-600:])
    for topic, status in report["webhooks"].items():
        if status != "active":
            find.add("webhook not active after the sync", f"{shop} {topic}: {status}")
    figures["operations"].update(report["outcomes"])
    figures["api"].update(report["api"])
    figures["deliveries"].update(deliveries["counts"])
    figures["deliveries"].update({f"pump_{k}": v for k, v in report["pumps"].items()})
    figures["deliveries"]["order_deliveries_lost_or_failed"] += len(deliveries["orders_lost"])
    figures["shop_journal"].update(journal["counts"])
    figures["shop_journal"]["answers_lost_after_apply"] += report["answers_lost"]
    for what, count in journal["refused"].items():
        figures["shop_journal"][f"refused: {what}"] += count

    # Sign-ups: one bonus per customer of the shop (a lost customer.created is made good by `sync`); never one
    # for anybody else.
    customers = set(report["customers"])
    bonus = {int(k.split(":")[1]) for k in by_key if k.startswith("customer:") and k.endswith(":signup_bonus")}
    for customer in sorted(bonus - customers):
        find.add("sign-up bonus for a customer the shop does not have", f"{shop} customer {customer}")
    for customer in sorted(set(deliveries["customer_applied"]) - bonus):
        find.add("sign-up answered 'applied' but no bonus", f"{shop} customer {customer}")
    for customer in sorted(bonus):
        if leg(f"customer:{customer}:signup_bonus") != SHOP_SETTINGS["signup_bonus"]:
            find.add("sign-up bonus of the wrong amount", f"{shop} customer {customer}")
    lost = customers - bonus
    for customer in sorted(lost):
        find.add("sign-up without its bonus after `sync`", f"{shop} customer {customer}")
    events["signups"] += len(customers)
    events["signup_bonuses"] += len(bonus)
    events["signups_whose_delivery_was_lost"] += len(set(deliveries["customer_lost"]))

    # Wallet payments: a payment in the ledger exactly when the shop carries the bridge's marker for it.
    for key in by_key:
        if key.startswith("order:") and key.endswith(":payment"):
            order = orders.get(int(key.split(":")[1]))
            if order is None or order["method"] != "wallet":
                find.add("payment for an order that is not a wallet order", f"{shop} {key}")
    for order_id, order in sorted(orders.items()):
        wallet_fees = [amount for name, amount in order["fees"] if name == WALLET_FEE]
        if len(wallet_fees) > 1:
            find.add("wallet fee line added twice", f"{shop} order {order_id}: {wallet_fees}")
        if sum(1 for name, _ in order["fees"] if name == DISCOUNT_FEE) > 1:
            find.add("discount fee line added twice", f"{shop} order {order_id}")
        if journal["set_paid"].get(str(order_id), 0) > 1:
            find.add("set_paid applied twice", f"{shop} order {order_id}: {journal['set_paid'][str(order_id)]}")
        if journal["fee_puts"].get(str(order_id), 0) > 1:
            find.add("fee PUT applied twice", f"{shop} order {order_id}: {journal['fee_puts'][str(order_id)]}")
        if order["method"] != "wallet":
            continue
        events["wallet_orders"] += 1
        payment = by_key.get(f"order:{order_id}:payment")
        paid_marker = order["meta"].get("_wallet_bridge_payment")
        fee_marker = order["meta"].get("_wallet_bridge_wallet_fee")
        marker = paid_marker or fee_marker
        if payment is None:
            if marker:
                find.add("order marked as paid by wallet without a payment", f"{shop} order {order_id}")
            events["wallet_orders_not_paid_by_wallet"] += 1
            continue
        if marker is None:  # not pushed: right only if the order was cancelled or paid another way first
            returned = leg(f"order:{order_id}:reversal") + leg(f"order:{order_id}:overcharge")
            if returned == -legs.get(payment.id, 0):  # and the payment went back whole
                events["wallet_payments_overtaken_and_returned"] += 1
            else:
                find.add(
                    "payment never pushed to the shop", f"{shop} order {order_id} tx {payment.id} ({order['status']})"
                )
            continue
        if str(marker) != str(payment.id):
            find.add("shop marker names another transaction", f"{shop} order {order_id}: {marker} vs {payment.id}")
        debited = -legs.get(payment.id, 0) - leg(f"order:{order_id}:overcharge")
        if paid_marker:
            events["wallet_orders_paid_in_full"] += 1
            if order["transaction_id"] != f"wallet-bridge-{payment.id}":
                find.add("paid order without the bridge's transaction id", f"{shop} order {order_id}")
            if debited != order["total"]:
                find.add(
                    "full payment differs from the order total",
                    f"{shop} order {order_id}: {debited} vs {order['total']}",
                )
        else:
            events["wallet_orders_paid_in_part"] += 1
            if not wallet_fees and leg(f"order:{order_id}:reversal") == debited:
                events["wallet_fees_removed_with_their_money"] += 1  # the wallet part went back: its fee left too
            elif len(wallet_fees) != 1 or debited != -wallet_fees[0]:
                find.add(
                    "partial payment differs from the fee line", f"{shop} order {order_id}: {debited} vs {wallet_fees}"
                )
        if order["status"] == "cancelled" and not order["refunds"]:  # a failed one keeps a partial payment
            events["wallet_orders_cancelled_after_payment"] += 1
            if leg(f"order:{order_id}:reversal") != debited:
                find.add(
                    "cancelled order's wallet payment not returned exactly",
                    f"{shop} order {order_id}: paid {debited}, returned {leg(f'order:{order_id}:reversal')}",
                )

    # Refunds: each shop refund recorded once; those of orders (not top-ups) credited to the wallet once.
    credited = Counter(t.refund_ref for t in txns if t.kind == "refund_to_wallet")
    made = set()
    for order_id, order in sorted(orders.items()):
        topup = "_wallet_bridge_topup" in order["meta"]
        for refund_id, _amount in order["refunds"]:
            made.add(str(refund_id))
            events["refunds"] += 1
            if refund_rows.get(str(refund_id), 0) != 1:
                find.add("shop refund not recorded exactly once", f"{shop} refund {refund_id} of order {order_id}")
            if not topup and order["customer"] and credited.get(str(refund_id), 0) != 1:
                find.add(
                    "refund not credited to the wallet exactly once",
                    f"{shop} refund {refund_id} of order {order_id}: {credited.get(str(refund_id), 0)} credit(s)",
                )
    for ref in sorted(set(credited) - made):
        find.add("wallet credit for a refund the shop never made", f"{shop} refund {ref}")
    for ref in sorted(set(refund_rows) - made):
        find.add("recorded refund the shop never made", f"{shop} refund {ref}")

    # Top-ups: a paid top-up order credits what was paid (and the bonus) once; an unpaid one nothing.
    answered_topups = set(report["topup_orders_answered"])
    for order_id, order in sorted(orders.items()):
        requested = order["meta"].get("_wallet_bridge_topup")
        if requested is None:
            continue
        events["topup_orders"] += 1
        if order_id not in answered_topups:
            events["topup_orders_orphaned"] += 1  # created on the shop, its answer never reached the shopper
        topup = by_key.get(f"order:{order_id}:topup")
        if not order["paid"]:
            events["topup_orders_unpaid"] += 1
            if topup is not None:
                find.add("unpaid top-up credited", f"{shop} order {order_id}")
            continue
        if topup is None:
            find.add("paid top-up never credited", f"{shop} order {order_id}")
            continue
        events["topups_credited"] += 1
        paid = min(order["total"], int(requested))
        bonus = 0
        if paid >= SHOP_SETTINGS["topup_bonus_threshold"]:
            bonus = paid * SHOP_SETTINGS["topup_bonus_bp"] // 10_000
        if legs.get(topup.id) != paid + bonus:
            find.add(
                "top-up credited a different amount", f"{shop} order {order_id}: {legs.get(topup.id)} vs {paid + bonus}"
            )
    for key in by_key:
        if key.startswith("order:") and key.endswith(":topup"):
            order = orders.get(int(key.split(":")[1]))
            if order is None or "_wallet_bridge_topup" not in order["meta"]:
                find.add("top-up credit for an order that is no top-up", f"{shop} {key}")

    # Withdrawals: each refunded to the card exactly once by the shop, or refused and restored.
    refund_posts = journal["refund_posts"]
    for key, count in refund_posts.items():
        if count > 1:
            find.add("refund POST applied twice by the shop", f"{shop} order:marker {key} × {count}")
    for t in txns:
        if t.kind != "withdrawal" or not t.idempotency_key.startswith("withdrawal:"):
            continue
        events["withdrawal_transactions"] += 1
        posted = refund_posts.get(f"{t.order_ref}:{t.id}", 0)
        restored = f"withdrawal:{t.id}:restored" in by_key
        events["withdrawals_refused_and_restored"] += restored
        if posted + restored != 1:
            find.add(
                "withdrawal not refunded to the card exactly once",
                f"{shop} tx {t.id} (order {t.order_ref}): {posted} refund(s) made by the shop, restored={restored}",
            )

    # API requests with an Idempotency-Key: everything confirmed is in the ledger once, nothing else is.
    families = (
        ("withdrawal", "withdrawal", lambda key: key.split(":")[1]),
        ("conversion", "points_conversion", lambda key: key.split(":", 1)[1]),
        ("adjustment", "adjustment", lambda key: key.split(":", 1)[1]),
    )
    for family, kind, request_key in families:
        ledger = {
            request_key(t.idempotency_key)
            for t in txns
            if t.kind == kind and t.idempotency_key.startswith(f"{family}:")
        }
        keys = report["keys"].get(family, {})
        attempted, confirmed = set(keys.get("attempted", [])), set(keys.get("confirmed", []))
        for key in sorted(confirmed - ledger):
            find.add(f"{family} confirmed by the API but not in the ledger", f"{shop} {key}")
        for key in sorted(ledger - attempted):
            find.add(f"{family} in the ledger that nobody asked for", f"{shop} {key}")
        events[f"{family}s"] += len(ledger)
        events[f"{family}s_applied_but_unconfirmed"] += len(ledger - confirmed)

    # Points: every paid order of a customer (not a top-up) earned its points once.
    for order_id, order in sorted(orders.items()):
        if "_wallet_bridge_topup" in order["meta"] or not order["customer"]:
            continue
        if order["status"] in ("processing", "completed"):
            paid = order["total"] - sum(amount for name, amount in order["fees"] if name == WALLET_FEE)
            if paid >= 100 and f"order:{order_id}:points" not in by_key:
                find.add("paid order earned no points", f"{shop} order {order_id} ({order['method']})")

    # The outbox: every message delivered, and what it says done is on the shop, no more often than asked.
    asked = Counter()
    for message in messages:
        figures.setdefault("outbox_messages", Counter())[f"{message.kind}:{message.status}"] += 1
        payload = message.payload or {}
        order = orders.get(int(payload.get("order_id") or 0))
        if payload.get("note"):
            asked[(str(payload.get("order_id")), payload["note"])] += 1
        elif message.kind == "order.add_wallet_fee":  # its note is written from the shop's answer: one per fee
            asked[(str(payload.get("order_id")), PARTIAL_NOTE)] += 1
        if message.status != "delivered":
            find.add(
                "outbox message not delivered",
                f"#{message.id} {message.kind} {message.status} attempts="
                f"{message.attempts}: {(message.last_error or '')[:200]}",
            )
            continue
        if order is None:
            find.add("message delivered for an order the shop does not have", f"#{message.id} {message.kind}")
        elif (
            payload.get("note")
            and payload["note"] not in _notes_for(payload, order)
            and not (_overtaken(message, order))
        ):
            find.add("delivered note missing on the shop", f"#{message.id} {message.kind} order {payload['order_id']}")
    for order_id, order in orders.items():
        for note, count in Counter(PARTIAL_NOTE if _is_partial_note(n) else n for n in order["notes"]).items():
            if count > asked[(str(order_id), note)]:
                find.add("customer note added more often than asked", f"{shop} order {order_id}: {note!r} × {count}")


PARTIAL_NOTE = "(a partial payment's note)"


def _is_partial_note(note: str) -> bool:
    return note.startswith("Paid ") and note.endswith(" is left to pay by another method.")


def _notes_for(payload: dict, order: dict) -> list[str]:
    """The customer's notes, or the merchant's private ones for a message that asked for one."""
    return order["notes"] if payload.get("customer_note", True) else order["private_notes"]


def _overtaken(message, order: dict) -> bool:
    """A payment's message the worker dropped because the order was cancelled or paid another way before it
    was pushed (the money went back whole, checked above): its note is rightly not on the shop."""
    markers = ("_wallet_bridge_payment", "_wallet_bridge_wallet_fee")
    return message.kind in ("order.mark_paid", "order.add_wallet_fee") and not any(m in order["meta"] for m in markers)


def _check_topups_refunded_to_the_card(
    find: Findings, figures: dict, shop_id: int, report: dict, lots: dict, taken_back: dict
) -> None:
    """Money the card got back for a top-up (merchant refunds and withdrawals) leaves the wallet: never more
    than the card got, and never less while the top-up's lot still holds money (spent money the customer
    keeps is the merchant's loss, by design; money that comes back into the lot later is not)."""
    events = figures["events"]
    for order_id, order in report["orders"].items():
        if "_wallet_bridge_topup" not in order["meta"] or str(order_id) not in lots:
            continue
        card = sum(amount for _, amount in order["refunds"])
        amount, remaining = lots[str(order_id)]
        taken = taken_back.get(str(order_id), 0)
        if card:
            events["topups_refunded_to_the_card"] += 1
            events["topup_card_refund_shortfall"] += min(card, amount) - min(taken, card)
        if taken > card:
            find.add(
                "wallet debited for card refunds the shop did not make",
                f"shop {shop_id} top-up order {order_id}: card got {card}, wallet gave {taken}",
            )
        elif remaining > 0 and taken < min(card, amount):
            find.add(
                "top-up refunded to the card but its money is still in the wallet",
                f"shop {shop_id} top-up order {order_id}: card got {card}, taken back {taken}, still in its "
                f"lot {remaining}",
            )


# --- the report -----------------------------------------------------------------------------------------------


def format_result(result: BankResult) -> str:
    f = result.figures
    kills = f.get("kills", {})
    deliveries, api, events = f.get("deliveries", {}), f.get("api", {}), f.get("events", {})
    outbox_messages = f.get("outbox_messages", {})
    delivered = sum(n for key, n in outbox_messages.items() if key.endswith(":delivered"))
    operations = f.get("operations", {})
    total_ops = sum(operations.values())
    absorbed = deliveries.get("pump_repeated", 0) + api.get("retried_then_answered", 0)
    c = result.config
    lines = [
        f"bank test: {c['shops']} shop(s) × {c['threads']} client thread(s) × {c['operations']} operations, seed "
        f"{c['seed']}, {c['web_workers']} gunicorn workers, {c['outbox_workers']} outbox workers — "
        f"{result.seconds} s (workload {f.get('workload_seconds')} s)",
        f"operations: {total_ops} ({_top(operations)})",
        f"duplicates absorbed: {absorbed} (deliveries repeated {deliveries.get('pump_repeated', 0)}, batches "
        f"reordered {deliveries.get('pump_reordered_batches', 0)}, API requests answered after a retry "
        f"{api.get('retried_then_answered', 0)} of which replayed {api.get('replayed_after_retry', 0)})",
        f"kills survived: {kills.get('web_worker_sigkill', 0) + kills.get('outbox_worker_sigkill', 0)} "
        f"(gunicorn workers {kills.get('web_worker_sigkill', 0)}, replaced "
        f"{kills.get('web_workers_replaced_by_gunicorn', 0)}; outbox workers {kills.get('outbox_worker_sigkill', 0)}, "
        f"restarted {kills.get('outbox_workers_restarted', 0)}); faults {_top(f.get('faults', {}))}",
        f"messages delivered: {delivered} of {sum(outbox_messages.values())} ({_top(outbox_messages)}); "
        f"{_top(f.get('outbox', {}))}",
        f"deliveries: {_top(deliveries)}",
        f"recovery: sync {_top(f.get('sync', {}))}; console retry {_top(f.get('inbox_retry', {}))}; "
        f"inbox {_top(f.get('inbox', {}))}",
        f"business events: {_top(events)}",
        f"shop journal: {_top(f.get('shop_journal', {}))}",
        f"expiry: {_top(f.get('expiry', {}))}; API: {_top(api)}",
        f"books: {_top(f.get('books', {}))}; ledger verify exit code {f.get('ledger_verify_exit_code')}",
        f"violations: {len(result.violations)}",
    ]
    for name in ("failed_deliveries", "sync_skipped"):
        if f.get(name):
            lines.insert(-1, f"{name.replace('_', ' ')}: " + "; ".join(f[name][:20]))
    lines += [f"  VIOLATION {v}" for v in result.violations]
    for name, tail in result.logs.items():
        lines.append(f"--- {name} (tail)\n{tail}")
    return "\n".join(lines)


def _top(counts: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: str(kv[0]))) or "-"
