"""/metrics adds up the counters of every process (gunicorn workers, outbox workers) sharing
PROMETHEUS_MULTIPROC_DIR, whichever process answers the scrape."""

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from bridge.db import unit_of_work
from bridge.outbox import enqueue
from tests.conftest import FERNET_KEY, make_shop

WEB_WORKER = """
import sys
from bridge.config import Settings
from bridge.surfaces.app import create_app

client = create_app(Settings.from_env()).test_client()
for _ in range(int(sys.argv[1])):
    assert client.get("/healthz").status_code == 200
if sys.argv[2] == "scrape":
    sys.stdout.write(client.get("/metrics").get_data(as_text=True))
"""


def run(args: list[str], env: dict) -> str:
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def samples(exposition: str, name: str) -> dict[tuple, float]:
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name
    }


def test_one_scrape_counts_every_web_and_outbox_worker(services, database_url, tmp_path):
    shop = make_shop(services, url="http://127.0.0.1:9")  # nothing listens: the push fails and is retried later
    with unit_of_work(services.sessions) as session:
        enqueue(
            session,
            shop_id=shop.shop.id,
            kind="order.note",
            payload={"order_id": "1", "note": "hello"},
            dedupe_key="metrics-test",
        )
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-secret-key",
        "FERNET_KEYS": FERNET_KEY,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "EMBEDDED_WORKER": "false",
        "ALLOW_PRIVATE_SHOP_URLS": "true",
        "SHOP_TIMEOUT_SECONDS": "2",
    }

    run([sys.executable, "-c", WEB_WORKER, "2", "quiet"], env)
    run([str(Path(sys.executable).parent / "wallet-bridge"), "worker", "--once"], env)
    scraped = run([sys.executable, "-c", WEB_WORKER, "1", "scrape"], env)

    requests = samples(scraped, "wallet_bridge_http_requests_total")
    assert requests[(("endpoint", "health.healthz"), ("status", "200"))] == 3  # 2 + 1, from two processes
    attempts = samples(scraped, "wallet_bridge_outbox_attempts_total")
    assert sum(value for labels, value in attempts.items() if ("kind", "order.note") in labels) == 1
