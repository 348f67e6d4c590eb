"""The bank test at full size: the real service under load and faults, then the books checked.

    .venv/bin/python bench/bank.py [--database-url URL] [--shops N] [--threads T] [--operations OPS]
                                   [--kills K] [--outage-seconds S] [--seed SEED] [--quick] [--json PATH] ...

The target (issue 7): 8 client processes × 10 000 operations, 3 kills, a 60-second shop outage, zero
violations. Each client process is one simulated WooCommerce shop (a tenant of the bridge) with its client
thread(s); the bridge is gunicorn (deploy/gunicorn.conf.py, --web-workers sync workers) and --outbox-workers
`wallet-bridge worker` processes on a scratch PostgreSQL database `wb_bank_<hex>` (created beside
--database-url, dropped at the end). The harness, the workload, the faults and every check are described in
tests/e2e/reliability/bank.py and docs/reliability.md; the small size runs in `make test`
(tests/e2e/reliability/test_bank.py).

Prints the figures (operations, duplicates absorbed, kills survived, messages delivered, ...) and every
violation; exits 1 when there is one. --json writes the whole result (figures, timeline, violations).
"""

# The imports follow the sys.path fix below.
# ruff: noqa: E402

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as `python bench/bank.py`, Python puts bench/ first on sys.path; the project root takes its place so that
# `tests.e2e.reliability.bank` imports (in this process and in the spawned client processes).
sys.path[:] = [str(ROOT)] + [p for p in sys.path if p and Path(p).resolve() not in (ROOT, ROOT / "bench")]

import argparse
import dataclasses
import json
import shlex

from tests.e2e.reliability.bank import BankConfig, format_result, run_bank

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--shops", type=int, default=8, help="client processes, one simulated shop each")
    parser.add_argument("--threads", type=int, default=1, help="client threads per client process")
    parser.add_argument("--operations", type=int, default=10_000, help="per client thread")
    parser.add_argument("--customers", type=int, default=0, help="sign-ups per client thread (0: operations/6)")
    parser.add_argument("--web-workers", type=int, default=4, help="gunicorn WEB_CONCURRENCY")
    parser.add_argument("--outbox-workers", type=int, default=2)
    parser.add_argument("--kills", type=int, default=3, help="SIGKILLs, alternately gunicorn and outbox workers")
    parser.add_argument("--outage-seconds", type=float, default=60.0)
    parser.add_argument("--no-db-drop", action="store_true")
    parser.add_argument("--lost-answers", type=int, default=4, help="per shop")
    parser.add_argument("--expiries", type=int, default=2)
    parser.add_argument("--duplicate-rate", type=float, default=0.2)
    parser.add_argument("--reorder-rate", type=float, default=0.25)
    parser.add_argument(
        "--topup-refund-share",
        type=float,
        default=0.1,
        help="share of refunds made on top-up orders (0 leaves out finding 1's trigger)",
    )
    parser.add_argument("--pumps", type=int, default=2, help="delivery threads per shop")
    parser.add_argument("--shop-timeout", type=float, default=2.0, help="the bridge's SHOP_TIMEOUT_SECONDS")
    parser.add_argument("--outbox-base-delay", type=float, default=0.5, help="OUTBOX_BASE_DELAY_SECONDS")
    parser.add_argument("--deadline", type=float, default=3600.0, help="seconds the workload may take")
    parser.add_argument(
        "--keep-lease", action="store_true", help="wait out the 2-minute lease of messages claimed by a killed worker"
    )
    parser.add_argument("--no-recheck", action="store_true", help="skip the second sync and expire")
    parser.add_argument("--quick", action="store_true", help="8 × 300 operations, a 10-second outage")
    parser.add_argument("--json", help="write the result (figures, timeline, violations) to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.operations, args.outage_seconds = 300, 10.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = BankConfig(
        database_url=args.database_url,
        seed=args.seed,
        shops=args.shops,
        processes=True,
        threads=args.threads,
        operations=args.operations,
        customers=args.customers,
        web_workers=args.web_workers,
        outbox_workers=args.outbox_workers,
        kills=args.kills,
        outage_seconds=args.outage_seconds,
        db_drop=not args.no_db_drop,
        lost_answers=args.lost_answers,
        expiries=args.expiries,
        duplicate_rate=args.duplicate_rate,
        reorder_rate=args.reorder_rate,
        topup_refund_share=args.topup_refund_share,
        pumps=args.pumps,
        shop_timeout=args.shop_timeout,
        outbox_base_delay=args.outbox_base_delay,
        deadline_seconds=args.deadline,
        settle_seconds=max(300.0, args.outage_seconds * 4),
        keep_lease=args.keep_lease,
        recheck=not args.no_recheck,
        echo=lambda line: print(line, flush=True),
    )
    print("command: .venv/bin/python bench/bank.py " + shlex.join(argv if argv is not None else sys.argv[1:]))
    result = run_bank(config)
    print(format_result(result))
    if args.json:
        Path(args.json).write_text(json.dumps(dataclasses.asdict(result), indent=2, default=str))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
