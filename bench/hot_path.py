"""The delivery's hot path in one process, on PostgreSQL: CPU and statements per step, against baselines.

    .venv/bin/python bench/hot_path.py [--database-url URL] [--deliveries N]

No server and no load generator: the Flask test client and the worker's apply loop run in this process, one
thread, so the CPU it measures is the bridge's own (what gunicorn's workers and `wallet-bridge worker` spend per
delivery under bench/webhooks.py), without the machine's noise of processes competing for two cores.

1. Answer: N signed wallet-order deliveries answered with DEFER_DELIVERIES (the keys read, the delivery stored, the
   workers told), against the bench's no-op endpoint fed the same requests (bench/webhooks_app.py).
2. Apply: the same N deliveries applied by `usecases.deliveries.apply_received` (the worker's loop), against N
   wallet payments through the ledger alone (`bench.ledger.pay`, as bench/ledger.py's service measures them).

Each pair is alternated twice and the lower CPU of each is kept; SQL statements are counted per step (BEGIN,
COMMIT and the pool's ping not included). It prints ratios; there is no target here (those of issue 15 are on the
rates bench/webhooks.py measures), it says where the CPU goes. Always exits 0.
"""

# ruff: noqa: E402

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# As in bench/ledger.py: bench/ must not shadow the `webhooks` package.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if p and Path(p).resolve() not in (ROOT, ROOT / "bench")]

import argparse
import os
import time
from collections.abc import Callable

from cryptography.fernet import Fernet
from sqlalchemy import event

from bench.ledger import DEFAULT_URL, WALLETS, pay, scratch_database
from bench.webhooks import FIRST_CUSTOMER, Deliveries, create_funded_shop, noop_requests
from bench.webhooks_app import with_noop
from bridge.surfaces.app import create_app
from bridge.surfaces.platforms import TOPICS
from bridge.usecases.deliveries import apply_received


class Counted:
    """CPU time and SQL statements of a step, per operation."""

    def __init__(self, engine):
        self.statements = 0
        event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, *_args) -> None:
        self.statements += 1

    def measure(self, count: int, step: Callable[[], None]) -> tuple[float, float]:
        statements, cpu = self.statements, time.process_time()
        step()
        return (time.process_time() - cpu) * 1000 / count, (self.statements - statements) / count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--deliveries", type=int, default=400, help="per run (default 400)")
    args = parser.parse_args(argv)
    with scratch_database(args.database_url) as url:
        os.environ.update(
            DATABASE_URL=url,
            DEFER_DELIVERIES="true",
            EMBEDDED_WORKER="false",
            SECRET_KEY=Fernet.generate_key().decode(),
            FERNET_KEYS=Fernet.generate_key().decode(),
        )
        app = with_noop(create_app())
        services = app.extensions["wallet_bridge"]
        results = run(services, app.test_client(), args.deliveries)
        services.engine.dispose()
    report(args, results)
    return 0


def run(services, client, count: int) -> dict:
    shop_id, secret = create_funded_shop(services.sessions, services.secrets)
    deliveries, counted, best = Deliveries(shop_id, secret), Counted(services.engine), {}

    def post_all(requests) -> None:
        for request in requests:
            assert client.post(request.path, data=request.body, headers=request.headers).status_code == 200

    def apply_all() -> None:
        while apply_received(services.sessions, TOPICS):
            pass

    paid = iter(range(10**9))  # a new order number for every payment of every run

    def pay_all() -> None:
        for order in (next(paid) for _ in range(count)):
            pay(services.sessions, shop_id, str(FIRST_CUSTOMER + order % WALLETS), f"P{order}", 100)

    post_all(deliveries.take(WALLETS))  # warm-up: what each process reads once, and each customer's contact details
    apply_all()
    for _ in range(2):
        batch = deliveries.take(count)
        steps = {
            "no-op": lambda b=batch: post_all(noop_requests(b)),
            "answer": lambda b=batch: post_all(b),
            "ledger payment": pay_all,
            "apply": apply_all,
        }
        for name, step in steps.items():
            cpu, statements = counted.measure(count, step)
            if name not in best or cpu < best[name][0]:
                best[name] = (cpu, statements)
    return best


def report(args, best: dict) -> None:
    print(f"command: .venv/bin/python bench/hot_path.py --deliveries {args.deliveries}")
    print(f"  {'step':<16} {'CPU ms/op':>10} {'statements/op':>14}")
    for name, (cpu, statements) in best.items():
        print(f"  {name:<16} {cpu:>10.2f} {statements:>14.1f}")
    answer, noop = best["answer"][0], best["no-op"][0]
    apply, payment = best["apply"][0], best["ledger payment"][0]
    print(f"  answer / no-op CPU: {answer / noop:.2f}   (a webhooks / no-op rate of 0.4 needs about 2.5 or less)")
    print(f"  apply / ledger payment CPU: {apply / payment:.2f}   (applied/s >= 0.5 x payments/s needs 2 or less)")


if __name__ == "__main__":
    sys.exit(main())
