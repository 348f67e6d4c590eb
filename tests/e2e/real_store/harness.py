"""The real-store harness: a real WooCommerce store (the kit in ../shared/realstore) and the bridge as it runs in
production (gunicorn, a `wallet-bridge worker`, PostgreSQL), talking over real HTTP on 127.0.0.1.

`RealStore` is the shop: its wc/v3 REST API through the official client (OAuth 1.0a over http), and the kit's
`ctl` switches (taxes, async webhooks, redelivery). `Bridge` is the service: its CLI, its HTTP API with the
shop's key, and a look into its database only to wait until the outbox is at rest (never to decide a test).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from datetime import timedelta
from pathlib import Path

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool
from woocommerce import API

ROOT = Path(__file__).resolve().parents[3]
KIT = ROOT.parent / "shared" / "realstore"
BIN = ROOT / ".venv" / "bin"
WALLET_METHOD = "cheque"  # the store's offline gateway titled "Wallet"
CARD_METHOD = "bacs"  # another offline gateway: "paid by card" for these tests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cents(value: str) -> int:
    """A WooCommerce money string ("13.79") in minor units."""
    whole, _, fraction = value.partition(".")
    sign = -1 if whole.startswith("-") else 1
    return sign * (abs(int(whole or "0")) * 100 + int((fraction + "00")[:2]))


def money(amount: int) -> str:
    return f"{amount // 100}.{amount % 100:02d}"


# In async mode the tests deliver queued webhooks when they run the queue (`ctl run-queue`). WP-Cron (at any request
# once a minute has passed) and Action Scheduler's runner (at an admin request) would run it between a test's steps:
# two full runs saw a checkout's delivery arrive before the test looked at what the checkout held.
QUEUE_ON_DEMAND = """<?php
if ( ! defined( 'DISABLE_WP_CRON' ) ) {
\tdefine( 'DISABLE_WP_CRON', true );
}
add_filter( 'action_scheduler_allow_async_request_runner', '__return_false' );
"""


class RealStore:
    """One running realstore: REST calls that must succeed unless told otherwise, and `ctl` switches."""

    def __init__(self, info: dict):
        self.info, self.url, self.dir = info, info["url"], info["dir"]
        self.switched: dict[str, bool] = {}
        self.api = API(
            url=self.url,
            consumer_key=info["consumer_key"],
            consumer_secret=info["consumer_secret"],
            version="wc/v3",
            timeout=60,
        )

    @staticmethod
    def launch(directory: Path, port: int, bridge_port: int, database: str) -> subprocess.Popen:
        """Start `up` (several seconds) and return at once: `started()` waits for it."""
        return subprocess.Popen(  # noqa: S603 - the kit's own script, no shell
            [str(KIT / "up"), str(directory), "--port", str(port), "--allow-port", str(bridge_port), "--db", database],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )

    @classmethod
    def started(cls, launched: subprocess.Popen) -> RealStore:
        out, err = launched.communicate(timeout=600)
        if launched.returncode != 0:
            raise RuntimeError(f"realstore up failed ({launched.returncode}): {err[-2000:]}")
        store = cls(json.loads(out.strip().splitlines()[-1]))
        (Path(store.dir) / "wp/wp-content/mu-plugins/wallet-bridge-tests-queue.php").write_text(QUEUE_ON_DEMAND)
        return store

    @staticmethod
    def down(directory: Path) -> None:
        """Stop the store's PHP processes, drop its database, remove the directory (when `up` got that far)."""
        if directory.exists():
            subprocess.run(  # noqa: S603
                [str(KIT / "down"), str(directory)],
                capture_output=True,
                timeout=120,
                check=False,
            )

    def switch(self, name: str, on: bool) -> None:
        """Taxes (through the REST settings, as a merchant's tool would) or async webhooks (`ctl`, which boots
        WordPress: about 1.5 s) on or off, remembered so that a test's switches can be undone."""
        if name == "taxes":
            self.put("settings/general/woocommerce_calc_taxes", {"value": "yes" if on else "no"})
        else:
            self.ctl(name, "on" if on else "off")
        self.switched[name] = on

    def reset_switches(self) -> None:
        for name in [name for name, on in self.switched.items() if on]:
            self.switch(name, False)

    def queued(self, resource_id: int, at_least: int, timeout: float = 12.0) -> list[str]:
        """The async deliveries queued for a resource (`ctl pending`), read again for up to `timeout` seconds until
        there are `at_least`: two full runs found none queued right after the change, never a run of the test alone,
        and a queue read before WooCommerce's end-of-request hook queued them is the cause this rules out."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [line for line in self.ctl("pending").splitlines() if f'"arg":{resource_id}}}' in line]
            if len(lines) >= at_least or time.monotonic() > deadline:
                return lines
            time.sleep(0.5)

    def ctl(self, *args: str) -> str:
        done = subprocess.run(  # noqa: S603
            [str(KIT / "ctl"), self.dir, *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"ctl {' '.join(args)} failed: {done.stderr[-1000:]}")
        return done.stdout

    def call(self, method: str, endpoint: str, data: dict | None = None, **params):
        if method == "get":
            response = self.api.get(endpoint, params=params)
        else:
            response = getattr(self.api, method)(endpoint, data or {})
        if response.status_code >= 400:
            raise AssertionError(f"{method.upper()} {endpoint}: HTTP {response.status_code} {response.text[:500]}")
        return response

    def get(self, endpoint: str, **params):
        return self.call("get", endpoint, **params).json()

    def post(self, endpoint: str, data: dict):
        return self.call("post", endpoint, data).json()

    def put(self, endpoint: str, data: dict):
        return self.call("put", endpoint, data).json()

    # -- shop objects

    def new_customer(self, tag: str) -> dict:
        email = f"{tag}-{secrets.token_hex(4)}@example.test"
        return self.post(
            "customers",
            {
                "email": email,
                "first_name": tag.title(),
                "last_name": "Tester",
                "billing": {"country": "DE", "email": email},
            },
        )

    def new_product(self, price: str, name: str = "Mug") -> dict:
        return self.post("products", {"name": name, "regular_price": price})

    def new_order(self, customer: dict, items: list[tuple[dict, int]], **extra) -> dict:
        """A wallet order of the customer's (`extra` adds or overrides fields: status, coupon_lines, …)."""
        body = {
            "customer_id": customer["id"],
            "payment_method": WALLET_METHOD,
            "payment_method_title": "Wallet",
            "billing": {"country": "DE", "email": customer["email"]},
            "line_items": [{"product_id": product["id"], "quantity": quantity} for product, quantity in items],
            **extra,
        }
        return self.post("orders", body)

    def order(self, order_id) -> dict:
        return self.get(f"orders/{order_id}")

    def customer_notes(self, order_id) -> list[str]:
        return [n["note"] for n in self.get(f"orders/{order_id}/notes", type="customer")]

    def refund(self, order_id, amount: str) -> dict:
        """A refund the merchant makes in wp-admin: money the store does not send anywhere by itself."""
        return self.post(f"orders/{order_id}/refunds", {"amount": amount, "reason": "Returned", "api_refund": False})

    def redeliver(self, delivery_url: str, order_id) -> None:
        """WooCommerce sends order.updated for the order once more: a true duplicate, built and signed afresh."""
        hook = next(h for h in self.our_webhooks(delivery_url) if h["topic"] == "order.updated")
        self.ctl("redeliver", str(hook["id"]), str(order_id))

    def our_webhooks(self, delivery_url: str) -> list[dict]:
        hooks = self.get("webhooks", per_page=100)
        return [hook for hook in hooks if hook["delivery_url"].rstrip("/") == delivery_url.rstrip("/")]


class Bridge:
    """The bridge's processes on a scratch database: gunicorn (two workers of two threads) and one outbox worker."""

    def __init__(self, database_url: str, port: int, workdir: Path):
        self.database_url, self.port, self.workdir = database_url, port, workdir
        self.url = f"http://127.0.0.1:{port}"
        self.db = create_engine(database_url, poolclass=NullPool)
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = self._environment()
        self.processes: dict[str, subprocess.Popen] = {}
        self.http = requests.Session()
        self.http.trust_env = False  # never through a proxy: everything is on 127.0.0.1
        self.shop: dict = {}

    def _environment(self) -> dict:
        from cryptography.fernet import Fernet

        env = {k: v for k, v in os.environ.items() if not k.startswith(("WB_", "TEST_DATABASE", "GUNICORN"))}
        env.update(
            DATABASE_URL=self.database_url,
            SECRET_KEY=secrets.token_urlsafe(32),
            FERNET_KEYS=Fernet.generate_key().decode(),
            PUBLIC_URL=self.url,
            EMBEDDED_WORKER="false",
            INSTANCE_PATH=str(self.workdir / "instance"),
            BIND=f"127.0.0.1:{self.port}",
            WEB_CONCURRENCY="2",
            WEB_THREADS="2",
            OUTBOX_BASE_DELAY_SECONDS="0.2",
            SHOP_TIMEOUT_SECONDS="30",
            # The shop is on loopback: the bridge refuses private shop URLs unless told they are expected.
            ALLOW_PRIVATE_SHOP_URLS="true",
            NO_PROXY="127.0.0.1,localhost",
            PYTHONUNBUFFERED="1",
        )
        return env

    # -- processes

    def start(self) -> None:
        self.start_web()
        self.start_worker()

    def start_web(self) -> None:
        self._start("web", [str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with suppress(requests.RequestException):
                if self.http.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            if self.processes["web"].poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"the bridge did not come up: {self.log_tail('web')}")

    def start_worker(self) -> None:
        self._start("worker", [str(BIN / "wallet-bridge"), "worker"])

    def _start(self, name: str, args: list[str]) -> None:
        with open(self.logs / f"{name}.log", "ab") as out:
            self.processes[name] = subprocess.Popen(  # noqa: S603 - our own executables, no shell
                args,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def stop(self, name: str) -> None:
        if name == "web":
            self.http.close()  # its kept-alive connections end with the server: the next call must open new ones
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)

    def stop_all(self) -> None:
        with ThreadPoolExecutor() as pool:  # each waits for its process to finish what it is doing
            list(pool.map(self.stop, list(self.processes)))
        self.db.dispose()

    def log_tail(self, name: str, size: int = 3000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-size:] if path.exists() else ""

    # -- CLI

    def cli(self, *args: str, extra_env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(  # noqa: S603 - our own executable, no shell
            [str(BIN / "wallet-bridge"), *args],
            cwd=ROOT,
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"wallet-bridge {' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
        return done

    def cli_json(self, *args: str, extra_env: dict | None = None):
        out = self.cli(*args, "--json", extra_env=extra_env).stdout
        return json.loads(out[min(i for i in (out.find("{"), out.find("[")) if i >= 0) :])

    def connect(self, store: RealStore) -> dict:
        return self.cli_json(
            "shop",
            "connect",
            str(self.shop["id"]),
            "--url",
            store.url,
            extra_env={
                "WB_CONSUMER_KEY": store.info["consumer_key"],
                "WB_CONSUMER_SECRET": store.info["consumer_secret"],
            },
        )

    def sync(self) -> dict:
        return self.cli_json("sync", str(self.shop["id"]))

    @property
    def delivery_url(self) -> str:
        return f"{self.url}/webhooks/woocommerce/{self.shop['id']}"

    # -- the HTTP API, with the shop's key

    def api(self, method: str, path: str, body: dict | None = None, *, expect: int = 200, key: str | None = None):
        headers = {"Authorization": f"Bearer {self.shop['api_key']}"}
        if method != "get":
            headers["Idempotency-Key"] = key or secrets.token_hex(8)
        response = self.http.request(method, f"{self.url}/api/v1{path}", json=body, headers=headers, timeout=60)
        assert response.status_code == expect, f"{method.upper()} {path}: {response.status_code} {response.text}"
        return response.json()

    def wallet(self, customer: dict) -> dict:
        return self.api("get", f"/customers/{customer['id']}/wallet")

    def balance(self, customer: dict) -> int:
        return self.wallet(customer)["balance"]

    def statement(self, customer: dict) -> list[dict]:
        return self.api("get", f"/customers/{customer['id']}/transactions?limit=200")["lines"]

    def credit(self, customer: dict, amount: int) -> None:
        self.api(
            "post",
            f"/customers/{customer['id']}/adjustments",
            {"direction": "credit", "amount": amount, "reason": "test funds"},
            expect=201,
        )

    # -- settings and waiting (the database, read only but for the shop's settings)

    def set_settings(self, settings: dict) -> None:
        with self.db.begin() as connection:
            connection.execute(
                text("UPDATE shops SET settings = CAST(:s AS json) WHERE id = :id"),
                {"s": json.dumps(settings), "id": self.shop["id"]},
            )

    def settle(self, timeout: float = 30.0) -> None:
        """Wait until the bridge is at rest: no delivery waiting in the inbox to be applied (the worker
        may apply it after the answer), no outbox message pending or being sent. A push's own webhook is
        delivered before the shop answers it, so what it causes is in the inbox by then."""
        deadline = time.monotonic() + timeout
        query = text(
            "SELECT (SELECT count(*) FROM inbox WHERE status = 'received')"
            " + (SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending'))"
        )
        while time.monotonic() < deadline:
            with self.db.connect() as connection:
                if connection.execute(query).scalar() == 0:
                    return
            time.sleep(0.1)
        raise AssertionError(f"the bridge did not settle within {timeout} s: {self.log_tail('worker')}")

    def failed_deliveries(self) -> int:
        with self.db.connect() as connection:
            return connection.execute(text("SELECT count(*) FROM inbox WHERE status = 'failed'")).scalar()


def paid_by_wallet(bridge: Bridge, store: RealStore, customer: dict, items: list, funds: int = 5000) -> dict:
    """A wallet order paid in full: `funds` credited first, the order created, the payment pushed back."""
    bridge.credit(customer, funds)
    order = store.new_order(customer, items)
    bridge.settle()
    assert store.order(order["id"])["status"] == "processing"
    return order


def run_later(bridge: Bridge, job, days: int) -> int:
    """A job `wallet-bridge expire` runs (`job(sessions, now=…)`), as cron would run it `days` from now."""
    from bridge.db import make_engine, make_session_factory
    from bridge.models import utcnow

    engine = make_engine(bridge.database_url)
    try:
        return job(make_session_factory(engine), now=utcnow() + timedelta(days=days))
    finally:
        engine.dispose()
