"""`wallet-bridge serve` (what `make run` starts): a production WSGI server (gunicorn) serving the console, with
the outbox worker running inside it when embedded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from bridge.db import unit_of_work
from bridge.models import OutboxMessage
from bridge.outbox import enqueue
from tests.conftest import FERNET_KEY
from tests.e2e.reliability.bank import free_port

WALLET_BRIDGE = Path(sys.executable).with_name("wallet-bridge")


@dataclass
class Served:
    url: str
    process: subprocess.Popen
    log: Path


@pytest.fixture
def served(database_url, tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-secret-key",
        "FERNET_KEYS": FERNET_KEY,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "EMBEDDED_WORKER": "true",
        "OUTBOX_BASE_DELAY_SECONDS": "0",
    }
    log = tmp_path / "serve.log"
    with log.open("w") as output:  # a file, not a pipe: a full pipe would stall the server
        process = subprocess.Popen(  # noqa: S603
            [str(WALLET_BRIDGE), "serve", "--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: requests.get(f"{url}/healthz", timeout=1).ok, process, log)
        yield Served(url, process, log)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode == 0, log.read_text()  # a clean stop on SIGTERM


def _wait_for(check, served_process, log: Path, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert served_process.poll() is None, log.read_text()
        try:
            if check():
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise AssertionError("not ready in time")


def test_serve_answers_through_gunicorn(served):
    response = requests.get(f"{served.url}/", allow_redirects=False, timeout=5)
    assert response.headers["Server"].startswith("gunicorn")
    assert response.status_code == 302 and response.headers["Location"].endswith("/setup")
    assert "Welcome to Wallet Bridge" in requests.get(f"{served.url}/setup", timeout=5).text


def test_serve_runs_the_outbox_worker_inside(served, services, shop):
    with unit_of_work(services.sessions) as session:
        enqueue(
            session,
            shop_id=shop.shop.id,
            kind="order.note",
            payload={"order_id": "7", "note": "hi"},
            dedupe_key="note-7",
        )

    def tried() -> bool:
        with unit_of_work(services.sessions) as session:
            return session.scalar(select(OutboxMessage.attempts)) > 0  # the shop is not connected: it fails

    _wait_for(tried, served.process, served.log)
