"""Webhook benchmark on PostgreSQL: signed WooCommerce order deliveries per second through gunicorn.

    .venv/bin/python bench/webhooks.py [--database-url URL] [--requests N] [--clients C] [--quick]

gunicorn runs the production config (deploy/gunicorn.conf.py: 2 sync workers, access log) on a free port
of 127.0.0.1 with bench/webhooks_app.py: the production app plus POST /webhooks/bench/noop, which only reads the
body and answers {"ok": true}. The app talks to a scratch PostgreSQL database (created, migrated, dropped
at the end) holding one WooCommerce shop and 200 funded wallets.

1. Closed loop: C client processes (http.client, one request at a time each, no think time) send N
   requests to the no-op endpoint, then N signed `order.created` deliveries to
   POST /webhooks/woocommerce/<shop>; alternated twice after a warm-up, the best run of each kept.
   Every delivery is a distinct pending order paid by wallet (built from the captured
   tests/fixtures/woocommerce/captured/0005.body, encoded like wp_json_encode, signed with the shop's
   webhook secret), so each one runs the whole path: signature check, inbox insert, order rules, wallet
   payment in the ledger, outbox message. Target: webhooks / no-op >= 0.4.
2. Open loop: deliveries paced at half the best closed-loop webhook rate for 10 s, each latency taken
   from the moment the request was due (so a late send counts against it). Target: p99 <= 50 ms.
3. Correctness: payment transactions in the ledger = distinct orders answered 200 "applied";
   bridge.ledger.verify() finds nothing.

--defer runs the same with DEFER_DELIVERIES on: a delivery is answered once stored ("received"), and
`wallet-bridge worker` processes (--appliers, default 2) apply it, woken by LISTEN/NOTIFY. It adds, per delivery
of the paced run, the time from its arrival to the money moved and its outbox row written (the inbox row's
received_at → the created_at of the order's outbox row; target p99 <= 250 ms), and the rate at which the workers
applied everything sent.

Machines here are noisy, so the rate is judged as a ratio against the no-op endpoint measured by the
same load generator in the same run. Always exits 0.
"""

# The imports follow the sys.path fix below.
# ruff: noqa: E402

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as `python bench/webhooks.py`, Python puts bench/ first on sys.path, where this file would shadow
# the `webhooks` package; the project root takes its place (so `bench.*` and `tests.*` import too).
sys.path[:] = [str(ROOT)] + [p for p in sys.path if p and Path(p).resolve() not in (ROOT, ROOT / "bench")]

import argparse
import copy
import http.client
import math
import multiprocessing
import os
import queue
import secrets
import shlex
import socket
import subprocess
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography.fernet import Fernet
from sqlalchemy import func, select, text

from bench.ledger import CURRENCY, DEFAULT_URL, WALLETS, scratch_database, verdict
from bench.webhooks_app import NOOP_PATH
from bridge.db import make_engine, make_session_factory, unit_of_work
from bridge.ledger import Actor, verify
from bridge.models import InboxDelivery, LedgerTransaction, OutboxMessage
from bridge.security import SecretBox
from bridge.shops import create_shop
from bridge.states import InboxStatus
from bridge.surfaces.platforms import PLATFORMS
from bridge.wallets import adjust_wallet
from tests.woo import delivery_headers, order_body, wp_json

RATIO_TARGET = 0.4  # webhooks / no-op, at least
P99_TARGET_MS = 50.0  # open loop at half the peak rate, at most
E2E_P99_TARGET_MS = 250.0  # --defer: arrival → money moved, at half the peak rate, at most
PACED_SECONDS = 10.0
FUNDING = 10**10  # cents per wallet: far more than the benchmark ever spends
FIRST_ORDER = 100_000  # WooCommerce order ids of the deliveries: FIRST_ORDER + n
FIRST_CUSTOMER = 1_000  # WooCommerce customer ids: FIRST_CUSTOMER + n % WALLETS, each with a funded wallet
WORKERS = 2


# Deliveries ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    path: str
    body: bytes
    headers: dict
    order: int | None = None  # the WooCommerce order id a delivery carries


class Deliveries:
    """Distinct order.created deliveries, numbered on from 0 over the whole run: no order is sent twice."""

    def __init__(self, shop_id: int, secret: str):
        self.path, self.secret, self.next = f"/webhooks/woocommerce/{shop_id}", secret, 0
        self.template = order_body("0005")
        self.created = datetime.fromisoformat(self.template["date_created_gmt"])

    def take(self, count: int) -> list[Request]:
        requests = [self._delivery(n) for n in range(self.next, self.next + count)]
        self.next += count
        return requests

    def _delivery(self, n: int) -> Request:
        order, customer = FIRST_ORDER + n, FIRST_CUSTOMER + n % WALLETS
        data = copy.deepcopy(self.template)
        stamp = (self.created + timedelta(seconds=n)).isoformat()
        key = f"wc_order_{secrets.token_urlsafe(10)[:13]}"
        data.update(
            id=order,
            number=str(order),
            customer_id=customer,
            order_key=key,
            date_created=stamp,
            date_modified=stamp,
            date_created_gmt=stamp,
            date_modified_gmt=stamp,
            payment_url=f"http://127.0.0.1:8080/checkout/order-pay/{order}/?pay_for_order=true&key={key}",
        )
        data["billing"].update(first_name=f"Customer{customer}", email=f"customer{customer}@example.test")
        data["_links"]["self"][0]["href"] = f"http://127.0.0.1:8080/wp-json/wc/v3/orders/{order}"
        data["_links"]["email_templates"][0]["href"] += f"?order={order}"  # keeps the captured shape
        data["_links"]["customer"][0]["href"] = f"http://127.0.0.1:8080/wp-json/wc/v3/customers/{customer}"
        body = wp_json(data)
        headers = delivery_headers("order.created", body, self.secret)
        headers["X-WC-Webhook-Delivery-ID"] = secrets.token_hex(16)
        headers["User-Agent"] = "WooCommerce/10.0.2 Hookshot (WordPress/6.8.8)"
        return Request(self.path, body, headers, order)


def noop_requests(deliveries: list[Request]) -> list[Request]:
    """The same bodies and headers, sent to the no-op endpoint."""
    return [Request(NOOP_PATH, r.body, r.headers) for r in deliveries]


# Load generator ------------------------------------------------------------------------------------


@dataclass
class Run:
    label: str
    sent: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, every completed request
    errors: int = 0  # not HTTP 200 (or no answer at all)
    statuses: Counter = field(default_factory=Counter)  # of the errors: HTTP status, 0 for no answer
    orders: int = 0  # webhooks sent (each a distinct order)
    not_applied: int = 0  # webhooks: 200 without "status": "applied"
    applied_orders: set[int] = field(default_factory=set)
    first_error: bytes = b""  # the body of the first error answer, to say why
    cpu: dict = field(default_factory=dict)  # CPU seconds by process group during the run

    @property
    def rate(self) -> float:
        return self.sent / self.seconds

    def percentile(self, p: float) -> float:
        """Nearest rank, in milliseconds."""
        return _nearest_rank(sorted(self.latencies), p) * 1000


ANSWERED = b'"status":"applied"'  # what a delivery's answer says when it went through (--defer: "received")


def client(
    port: int, requests: list[Request], first: int, step: int, pace: float | None, limit: float, start, barrier, results
) -> None:
    """One client process: requests[first::step], one at a time. Closed loop (pace None): back to back.
    Open loop: request i is due at start + i / pace, and its latency counts from then."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    outcomes = []
    barrier.wait()
    began, cpu = time.monotonic(), time.process_time()
    t0 = start.value if pace else began
    try:
        for i in range(first, len(requests), step):
            request = requests[i]
            due = t0 + i / pace if pace else time.monotonic()
            if pace and (wait := due - time.monotonic()) > 0:
                time.sleep(wait)
            if time.monotonic() - began > limit:
                break
            try:
                connection.request("POST", request.path, body=request.body, headers=request.headers)
                response = connection.getresponse()
                answer, status = response.read(), response.status
                if response.will_close:  # gunicorn's sync workers close every connection
                    connection.close()
            except (OSError, http.client.HTTPException):
                connection.close()
                answer, status = b"", 0
            applied = request.order is not None and status == 200 and ANSWERED in answer
            error = b"" if status == 200 else answer[:200]
            outcomes.append((request.order, status, applied, time.monotonic() - due, error))
    finally:  # whatever happens, the parent hears back
        results.put((began, time.monotonic(), time.process_time() - cpu, outcomes))


def run_load(
    label: str,
    port: int,
    requests: list[Request],
    clients: int,
    *,
    limit: float,
    pace: float | None = None,
    gunicorn: Gunicorn | None = None,
) -> Run:
    """Fork `clients` processes (they inherit `requests`: nothing is pickled on the way in), release them
    together, collect what they measured."""
    context = multiprocessing.get_context("fork")
    start, barrier, results = context.Value("d", 0.0), context.Barrier(clients + 1), context.Queue()
    processes = [
        context.Process(target=client, args=(port, requests, c, clients, pace, limit, start, barrier, results))
        for c in range(clients)
    ]
    for process in processes:
        process.start()
    before = cpu_snapshot(gunicorn)
    start.value = time.monotonic() + 0.05
    barrier.wait(timeout=60)
    reports = collect(results, processes, deadline=time.monotonic() + limit + 60)
    after = cpu_snapshot(gunicorn)
    run = Run(label)
    run.seconds = max(end for _, end, _, _ in reports) - min(began for began, _, _, _ in reports)
    for _, _, _, outcomes in reports:
        for order, status, applied, latency, error in outcomes:
            run.sent += 1
            run.latencies.append(latency)
            if status != 200:
                run.errors += 1
                run.statuses[status] += 1
                run.first_error = run.first_error or error
            if order is not None:
                run.orders += 1
                run.not_applied += status == 200 and not applied
                if applied:
                    run.applied_orders.add(order)
    run.cpu = {key: after[key] - before[key] for key in before}
    run.cpu["clients"] = sum(cpu for _, _, cpu, _ in reports)
    return run


def collect(results, processes: list, deadline: float) -> list:
    """One report per client process; fails (instead of waiting forever) if one dies without reporting
    or the run overstays its time limit by a minute."""
    reports = []
    try:
        while len(reports) < len(processes):
            try:
                reports.append(results.get(timeout=1))
            except queue.Empty:
                if time.monotonic() > deadline or not any(process.is_alive() for process in processes):
                    while len(reports) < len(processes):  # what the last ones sent before they ended
                        reports.append(results.get(timeout=2))
    except queue.Empty:
        raise RuntimeError(f"{len(processes) - len(reports)} load generator process(es) never reported") from None
    finally:
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
                process.join()
    return reports


# CPU accounting (Linux /proc) ----------------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """user + system CPU seconds of one process (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_busy() -> float:
    """CPU seconds the whole machine spent not idle (all cores, all processes, the kernel)."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / TICK  # minus idle and iowait


def cpu_snapshot(gunicorn: Gunicorn | None) -> dict:
    snapshot = {"machine": machine_busy()}
    if gunicorn is not None:
        snapshot["gunicorn workers"] = sum(process_cpu(pid) for pid in gunicorn.worker_pids())
        snapshot["postgres backends"] = sum(process_cpu(pid) for pid in gunicorn.backend_pids)
    return snapshot


# gunicorn ------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Gunicorn:
    """gunicorn -c deploy/gunicorn.conf.py 'bench.webhooks_app:bench_app()', as a child process, 2 sync workers."""

    def __init__(self, database_url: str, workdir: str, workers: int = WORKERS):
        self.port, self.workers = free_port(), workers
        self.log_path = os.path.join(workdir, "gunicorn.log")
        self.command = [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "deploy/gunicorn.conf.py",
            "bench.webhooks_app:bench_app()",
        ]
        self.fernet_key = Fernet.generate_key().decode()
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "EMBEDDED_WORKER": "false",
            "SECRET_KEY": secrets.token_urlsafe(32),
            "FERNET_KEYS": self.fernet_key,
            "INSTANCE_PATH": os.path.join(workdir, "instance"),
            "BIND": f"127.0.0.1:{self.port}",
            "WEB_CONCURRENCY": str(workers),
            "WEB_THREADS": "1",
        }
        self.process: subprocess.Popen | None = None
        self.backend_pids: list[int] = []

    def start(self, attempts: int = 3) -> None:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.command, cwd=ROOT, env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                if "Address already in use" in self.log_tail() and attempts > 1:  # lost the port to someone
                    self.port = free_port()
                    self.env["BIND"] = f"127.0.0.1:{self.port}"
                    return self.start(attempts - 1)
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{self.log_tail()}")
            if len(self.worker_pids()) == self.workers and self._healthy():
                return
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer /healthz within 60 s:\n{self.log_tail()}")

    def _healthy(self) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            connection.request("GET", "/healthz")
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()

    def worker_pids(self) -> list[int]:
        if self.process is None:
            return []
        try:
            with open(f"/proc/{self.process.pid}/task/{self.process.pid}/children") as children:
                return [int(pid) for pid in children.read().split()]
        except OSError:
            return []

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # graceful: gunicorn lets the workers finish their request
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 12) -> str:
        with open(self.log_path, errors="replace") as log:
            return "".join(log.readlines()[-lines:])


# Setup and checks ----------------------------------------------------------------------------------


def create_funded_shop(sessions, box: SecretBox) -> tuple[int, str]:
    """A WooCommerce shop with default rules (wallet payments by "wallet") and WALLETS funded wallets.
    Returns the shop id and its webhook secret."""
    with unit_of_work(sessions) as session:
        new = create_shop(
            session,
            box,
            platforms=PLATFORMS,
            name="Bench Shop",
            platform="woocommerce",
            url="https://alpha.example",
            currency=CURRENCY,
        )
        for i in range(WALLETS):
            adjust_wallet(
                session,
                new.shop,
                str(FIRST_CUSTOMER + i),
                direction="credit",
                amount=FUNDING,
                reason="bench funding",
                idempotency_key=f"bench-funding:{i}",
                actor=Actor("merchant", "bench"),
            )
        return new.shop.id, new.webhook_secret


def check_ledger(sessions, shop_id: int) -> dict:
    with unit_of_work(sessions) as session:
        payments = (
            select(LedgerTransaction)
            .where(LedgerTransaction.shop_id == shop_id, LedgerTransaction.kind == "payment")
            .subquery()
        )
        count, orders = session.execute(select(func.count(), func.count(payments.c.order_ref.distinct()))).one()
        applied = session.scalar(
            select(func.count())
            .select_from(InboxDelivery)
            .where(InboxDelivery.shop_id == shop_id, InboxDelivery.status == InboxStatus.APPLIED)
        )
        paid = session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.shop_id == shop_id, OutboxMessage.kind == "order.mark_paid")
        )
        problems = verify(session)
    return {
        "payments": count,
        "payment_orders": orders,
        "inbox_applied": applied,
        "outbox_mark_paid": paid,
        "problems": problems,
    }


# Main ----------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_URL, help=f"PostgreSQL server to use (default {DEFAULT_URL})")
    parser.add_argument(
        "--requests", type=int, help="requests per closed-loop run and endpoint (default 3000; --quick 300)"
    )
    parser.add_argument("--clients", type=int, default=4, help="load generator processes (default 4)")
    parser.add_argument("--quick", action="store_true", help="a smaller run that finishes in well under a minute")
    parser.add_argument("--defer", action="store_true", help="DEFER_DELIVERIES: answer once stored, workers apply")
    parser.add_argument("--appliers", type=int, default=2, help="with --defer: `wallet-bridge worker` processes")
    args = parser.parse_args(argv)
    if not args.database_url.startswith("postgresql"):
        parser.error("--database-url must name a PostgreSQL server")
    if args.clients < 1:
        parser.error("--clients must be at least 1")
    args.requests = args.requests or (300 if args.quick else 3000)
    args.limit = 20.0 if args.quick else 60.0  # seconds: a closed-loop run stops there, whatever is left
    args.warmup = 100 if args.quick else 200
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join([os.path.relpath(sys.executable), *sys.argv]) if argv is None else shlex.join(argv)
    began = time.perf_counter()
    try:
        result = benchmark(args)
    except Exception:
        traceback.print_exc()
        print(f"\ncommand: {command}\nBENCHMARK FAILED (see above); exit status 0 regardless")
        return 0
    report(args, command, result, began)
    return 0


def benchmark(args: argparse.Namespace) -> dict:
    global ANSWERED
    with scratch_database(args.database_url) as url, tempfile.TemporaryDirectory(prefix="wb_bench_") as workdir:
        engine = make_engine(url, pool_size=1)
        sessions = make_session_factory(engine)
        gunicorn = Gunicorn(url, workdir)
        appliers = []
        if args.defer:
            ANSWERED = b'"status":"received"'  # the client processes are forked after this
            gunicorn.env["DEFER_DELIVERIES"] = "true"
            appliers = [start_applier(gunicorn.env, workdir, n) for n in range(args.appliers)]
        try:
            with engine.connect() as connection:
                server = connection.scalar(text("SHOW server_version"))
            shop_id, secret = create_funded_shop(sessions, SecretBox((gunicorn.fernet_key,)))
            deliveries = Deliveries(shop_id, secret)
            gunicorn.start()
            load = dict(port=gunicorn.port, clients=args.clients, limit=args.limit)

            warm = deliveries.take(args.warmup)
            runs = [
                run_load("warm-up no-op", requests=noop_requests(warm), **load),
                run_load("warm-up webhooks", requests=warm, **load),
            ]
            with engine.connect() as connection:  # the workers' pooled connections, open by now
                gunicorn.backend_pids = list(
                    connection.scalars(
                        text(
                            "SELECT pid FROM pg_stat_activity"
                            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                        )
                    )
                )
            noop, hooks = [], []
            for _ in range(2):
                batch = deliveries.take(args.requests)
                noop.append(run_load("no-op", requests=noop_requests(batch), gunicorn=gunicorn, **load))
                hooks.append(run_load("webhooks", requests=batch, gunicorn=gunicorn, **load))
            runs += noop + hooks
            best_hooks = max(hooks, key=lambda run: run.rate)
            pace = best_hooks.rate / 2
            if args.defer:  # the closed loops left a backlog: its drain is the workers' rate, and the paced run
                backlog = wait_until_applied(sessions)  # then starts with nothing left to apply
            paced = run_load(
                "webhooks paced",
                requests=deliveries.take(round(pace * PACED_SECONDS)),
                pace=pace,
                gunicorn=gunicorn,
                **{**load, "limit": PACED_SECONDS * 3},
            )
            runs.append(paced)
            deferred = {**drained(sessions, shop_id, paced), **backlog} if args.defer else None
            gunicorn.stop()
            log_tail = gunicorn.log_tail() if any(run.errors or run.not_applied for run in runs) else ""
            check = check_ledger(sessions, shop_id)
        finally:
            gunicorn.stop()
            for applier in appliers:
                applier.terminate()
                applier.wait(timeout=30)
            engine.dispose()
    delivered = set().union(*(run.applied_orders for run in runs))
    check["delivered"] = len(delivered)
    check["sent"] = sum(run.orders for run in runs)
    served = [f"{name}={gunicorn.env[name]}" for name in ("BIND", "WEB_CONCURRENCY", "WEB_THREADS")]
    served += ["gunicorn", *gunicorn.command[3:]]
    return {
        "server": server,
        "noop": noop,
        "hooks": hooks,
        "paced": paced,
        "pace": pace,
        "check": check,
        "gunicorn": shlex.join(served),
        "log_tail": log_tail,
        "deferred": deferred,
    }


def start_applier(env: dict, workdir: str, number: int) -> subprocess.Popen:
    """A `wallet-bridge worker`: applies deferred deliveries (and tries the outbox: the bench shop has no REST keys,
    so each push is refused at once and dead-lettered)."""
    log = open(os.path.join(workdir, f"worker-{number}.log"), "wb")  # noqa: SIM115 - closed with the process
    command = [sys.executable, "-c", "from bridge.surfaces.cli import main; main()", "worker"]
    return subprocess.Popen(command, cwd=ROOT, env={**env, "OUTBOX_MAX_ATTEMPTS": "1"}, stdout=log, stderr=log)


def wait_until_applied(sessions, timeout: float = 300.0) -> dict:
    """Wait until the workers applied every stored delivery: how many were waiting, how fast they went, how many
    are left (0 unless timed out)."""
    began, deadline, backlog = time.monotonic(), time.monotonic() + timeout, None
    while True:
        with unit_of_work(sessions) as session:
            waiting = session.scalar(
                select(func.count()).select_from(InboxDelivery).where(InboxDelivery.status == InboxStatus.RECEIVED)
            )
        backlog = waiting if backlog is None else backlog
        if not waiting or time.monotonic() > deadline:
            seconds = time.monotonic() - began
            return {"backlog": backlog, "backlog_rate": (backlog - waiting) / max(seconds, 1e-9), "waiting": waiting}
        time.sleep(0.05)


def drained(sessions, shop_id: int, paced: Run) -> dict:
    """Once everything is applied: the paced run's arrival → applied latencies, and the rate of application over
    everything answered (from the first arrival to the last application, idle waits included)."""
    waiting = wait_until_applied(sessions)["waiting"]
    paced_orders = [str(order) for order in paced.applied_orders]
    with unit_of_work(sessions) as session:
        applied = session.scalar(
            select(func.count())
            .select_from(InboxDelivery)
            .where(InboxDelivery.shop_id == shop_id, InboxDelivery.status == InboxStatus.APPLIED)
        )
        # the order's outbox row is written after its money moved, in the same transaction (applied_at is the
        # moment the delivery was claimed, before either)
        rows = session.execute(
            select(InboxDelivery.resource_id, InboxDelivery.received_at, OutboxMessage.created_at)
            .join(
                OutboxMessage,
                (OutboxMessage.shop_id == InboxDelivery.shop_id)
                & (OutboxMessage.dedupe_key == "order:" + InboxDelivery.resource_id + ":order.mark_paid"),
            )
            .where(InboxDelivery.shop_id == shop_id, InboxDelivery.status == InboxStatus.APPLIED)
        ).all()
    paced_latencies = sorted(
        (written - received).total_seconds() for order, received, written in rows if order in paced_orders
    )
    return {
        "left": waiting,
        "applied": applied,
        "p50_ms": _nearest_rank(paced_latencies, 50) * 1000,
        "p99_ms": _nearest_rank(paced_latencies, 99) * 1000,
    }


def _nearest_rank(ordered: list[float], p: float) -> float:
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] if ordered else float("nan")


def cpu_columns(run: Run) -> str:
    """CPU ms per request by process group (the rest: everything else the machine ran, PostgreSQL's own
    background processes, the kernel, other people's jobs), and how busy the machine was (100 % = every core)."""
    per = {key: value * 1000 / run.sent for key, value in run.cpu.items()}
    rest = per["machine"] - per["gunicorn workers"] - per["postgres backends"] - per["clients"]
    busy = run.cpu["machine"] / run.seconds / (os.cpu_count() or 1) * 100
    return (
        f"{per['gunicorn workers']:>10.2f}{per['postgres backends']:>10.2f}{per['clients']:>9.2f}"
        f"{rest:>9.2f}{busy:>8.0f}%"
    )


def report(args, command: str, result: dict, began: float) -> None:
    noop, hooks, paced, check = result["noop"], result["hooks"], result["paced"], result["check"]
    best_noop, best_hooks = (max(runs, key=lambda run: run.rate) for runs in (noop, hooks))
    ratio = best_hooks.rate / best_noop.rate
    clean = best_noop.errors == best_hooks.errors == 0  # a rate of error answers passes nothing
    flag = "" if clean else " (errors)"
    print()
    print(
        f"Webhook benchmark — PostgreSQL {result['server']}, {os.cpu_count()} CPUs (shared by gunicorn, "
        f"PostgreSQL and the load generator), Python {sys.version.split()[0]}"
    )
    print(f"command: {command}")
    print(f"server: {result['gunicorn']} ({WORKERS} sync workers, 127.0.0.1)")
    print(
        f"load: {args.clients} client processes, closed loop, {args.requests} requests per run and endpoint, "
        f"warm-up {args.warmup}, no-op and webhooks alternated twice, best run kept"
    )
    print()
    print(f"  {'':<24}{'':>38}{'CPU ms per request':>30}{'machine':>17}")
    print(
        f"  {'':<24}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'errors':>7}{'sent':>7}"
        f"{'gunicorn':>10}{'postgres':>10}{'clients':>9}{'rest':>9}{'busy':>9}"
    )
    for run in [*noop, *hooks]:
        label = run.label + (" (best)" if run is best_noop or run is best_hooks else "")
        print(
            f"  {label:<24}{run.rate:>8.0f}{run.percentile(50):>8.1f}{run.percentile(99):>8.1f}{run.errors:>7}"
            f"{run.sent:>7}{cpu_columns(run)}"
        )
    print(
        f"  {'paced (open loop)':<24}{paced.rate:>8.0f}{paced.percentile(50):>8.1f}{paced.percentile(99):>8.1f}"
        f"{paced.errors:>7}{paced.sent:>7}{cpu_columns(paced)}"
    )
    print()
    print(
        f"  closed loop, webhooks / no-op: {best_hooks.rate:.0f} / {best_noop.rate:.0f} = {ratio:.2f}   "
        f"target >= {RATIO_TARGET}  {verdict(clean and ratio >= RATIO_TARGET)}{flag}"
    )
    p99 = paced.percentile(99)
    print(
        f"  open loop, webhooks paced at {result['pace']:.0f}/s (half the best) for {PACED_SECONDS:.0f} s, latency "
        f"from the due time: p50 {paced.percentile(50):.1f} ms, p99 {p99:.1f} ms, "
        f"max {max(paced.latencies) * 1000:.1f} ms   target p99 <= {P99_TARGET_MS:.0f} ms  "
        f"{verdict(not paced.errors and p99 <= P99_TARGET_MS)}{' (errors)' if paced.errors else ''}"
    )
    if deferred := result["deferred"]:
        print(
            f"  deferred (DEFER_DELIVERIES, {args.appliers} workers): the closed loops' backlog of "
            f"{deferred['backlog']} applied at {deferred['backlog_rate']:.0f}/s; {deferred['applied']} applied in all, "
            f"{deferred['left']} left\n  paced run, arrival → money moved and outbox row: "
            f"p50 {deferred['p50_ms']:.1f} ms, p99 {deferred['p99_ms']:.1f} ms   "
            f"target p99 <= {E2E_P99_TARGET_MS:.0f} ms  {verdict(deferred['p99_ms'] <= E2E_P99_TARGET_MS)}"
        )
    not_applied = sum(run.not_applied for run in [*hooks, paced])
    if not_applied:
        print(f"  webhooks answered 200 but not applied: {not_applied}")
    for run in [*noop, *hooks, paced]:
        if run.errors:
            print(
                f"  {run.label} errors by status (0 = no answer): {dict(run.statuses)}; first answer: "
                f"{run.first_error!r}"
            )
    if result["log_tail"]:
        print("  the end of the gunicorn log:\n" + result["log_tail"])
    print()
    consistent = check["payments"] == check["payment_orders"] == check["delivered"] and not check["problems"]
    outcome = "OK"
    if not consistent:
        outcome = "MISMATCH"
    elif check["delivered"] < check["sent"]:
        outcome = "OK, but not every order sent was applied"
    print(
        f'  correctness: {check["sent"]} distinct orders sent, {check["delivered"]} answered 200 "applied"; '
        f"{check['payments']} payment transactions for {check['payment_orders']} orders  "
        f"{outcome}"
    )
    print(
        f"    {check['inbox_applied']} inbox rows applied, {check['outbox_mark_paid']} order.mark_paid outbox rows, "
        f"bridge.ledger.verify(): {len(check['problems'])} problems"
    )
    print(f"  time: total {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
