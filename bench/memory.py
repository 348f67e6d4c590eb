"""Memory of a web worker under deliveries: its RSS after N deliveries against its RSS after N / 10.

    .venv/bin/python bench/memory.py [--database-url URL] [--deliveries N] [--clients C] [--quick]

One gunicorn sync worker (the production config, deploy/gunicorn.conf.py, with WEB_CONCURRENCY=1) serving the
production app on a scratch PostgreSQL database, fed distinct signed WooCommerce `order.created` deliveries paid
by wallet by C client processes (the machinery of bench/webhooks.py). Its resident set size (VmRSS of
/proc/<pid>/status) is read after N / 10 deliveries and after N. Target: after N / after N/10 <= 1.10, i.e. a
worker does not keep what it served (caches are bounded; nothing grows per delivery). Defaults: N = 20 000,
C = 4; --quick is N = 5 000. Always exits 0.
"""

# ruff: noqa: E402

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# As in bench/webhooks.py: bench/ must not shadow the `webhooks` package; the project root takes its place.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if p and Path(p).resolve() not in (ROOT, ROOT / "bench")]

import argparse
import os
import shlex
import tempfile
import time

from bench.ledger import DEFAULT_URL, scratch_database, verdict
from bench.webhooks import Deliveries, Gunicorn, create_funded_shop, run_load
from bridge.db import make_engine, make_session_factory
from bridge.security import SecretBox

GROWTH_TARGET = 1.10  # RSS after N / RSS after N/10, at most
BATCH = 2_000  # deliveries built and sent at a time: the bench's own memory stays small


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def deliver(gunicorn: Gunicorn, deliveries: Deliveries, count: int, clients: int) -> tuple[int, int]:
    """Send `count` deliveries in batches; returns (answered 200, errors)."""
    answered = errors = 0
    while count > 0:
        batch = deliveries.take(min(BATCH, count))
        run = run_load("memory", gunicorn.port, batch, clients, limit=3600.0)
        answered, errors, count = answered + run.sent - run.errors, errors + run.errors, count - len(batch)
    return answered, errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--deliveries", type=int, help="deliveries in all (default 20000; --quick 5000)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    total = args.deliveries or (5_000 if args.quick else 20_000)
    first = total // 10
    command = shlex.join([os.path.relpath(sys.executable), *sys.argv]) if argv is None else shlex.join(argv)
    began = time.perf_counter()
    with scratch_database(args.database_url) as url, tempfile.TemporaryDirectory(prefix="wb_bench_") as workdir:
        engine = make_engine(url, pool_size=1)
        gunicorn = Gunicorn(url, workdir, workers=1)
        try:
            shop_id, secret = create_funded_shop(make_session_factory(engine), SecretBox((gunicorn.fernet_key,)))
            deliveries = Deliveries(shop_id, secret)
            gunicorn.start()
            (worker,) = gunicorn.worker_pids()
            started = rss_kib(worker)
            answered, errors = deliver(gunicorn, deliveries, first, args.clients)
            early = rss_kib(worker)
            more, more_errors = deliver(gunicorn, deliveries, total - first, args.clients)
            late = rss_kib(worker)
            assert gunicorn.worker_pids() == [worker], "the worker was replaced: its RSS says nothing"
        finally:
            gunicorn.stop()
            engine.dispose()
    growth = late / early
    print(f"\nMemory benchmark — one gunicorn sync worker, {args.clients} clients\ncommand: {command}\n")
    print(f"  RSS at start (after /healthz)          {started / 1024:8.1f} MiB")
    print(f"  RSS after {first:>6,} deliveries          {early / 1024:8.1f} MiB")
    print(f"  RSS after {total:>6,} deliveries          {late / 1024:8.1f} MiB")
    print(
        f"  growth after / before                   {growth:8.3f}   target <= {GROWTH_TARGET}  "
        f"{verdict(growth <= GROWTH_TARGET)}"
    )
    print(f"  deliveries answered 200: {answered + more:,} of {total:,} ({errors + more_errors} errors)")
    print(f"  time: {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
