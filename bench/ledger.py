"""Ledger benchmark on PostgreSQL: payment throughput against a floor, and balance reads against history size.

    .venv/bin/python bench/ledger.py [--database-url URL] [--payments N] [--connections K]
                                     [--history ENTRIES] [--reads R] [--quick]

1. Payments: N wallet payments through the service layer (ensure_customer → wallet_account /
   system_account → post_transaction, one unit of work each; customer_wallet is ensure_customer and
   wallet_account in one statement) from K threads, spread over many funded
   wallets, against a floor of N bare one-row INSERT + COMMIT through psycopg from K threads, and against
   pgledger (../shared/anchors/pgledger, loaded into the same scratch database): N wallet → wallet
   `pgledger_create_transfer` calls from K psycopg threads; and the ledger's database side alone: N payments
   handed to wb_post_transaction as post_transaction hands them, from K psycopg threads (no target: beside
   pgledger, it says how much of the gap is the service layer's). All are warmed up, then run alternately
   twice; the best of each is kept. Targets: service/floor ≥ 0.3, service/pgledger ≥ 1.
2. Balance reads: the median time to read a wallet's balance (bridge.wallets.wallet_summary in its own
   unit of work, as the API does; and a bare SELECT of Account.balance) on a wallet with 1 000 entries
   and on one with --history entries. Target: large/small ≤ 1.2.

Machines here are noisy, so every figure is reported as a ratio against a baseline measured in the same
process. Runs in a scratch database (created, migrated, dropped at the end); always exits 0.
"""

# ruff: noqa: E402

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# As in bench/webhooks.py: run as a script, bench/ comes first on sys.path and its webhooks.py would shadow the
# `webhooks` package (imported through bridge.surfaces.platforms); the project root takes its place.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if p and Path(p).resolve() not in (ROOT, ROOT / "bench")]

import argparse
import hashlib
import itertools
import os
import secrets
import shlex
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import psycopg
from cryptography.fernet import Fernet
from sqlalchemy import Engine, create_engine, event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from bridge.accounts import SystemAccount, customer_wallet, ensure_customer, system_account, wallet_account
from bridge.db import make_engine, make_session_factory, unit_of_work
from bridge.ledger import Leg, post_transaction, verify
from bridge.migrate import upgrade
from bridge.models import Account, Entry, Shop
from bridge.security import SecretBox
from bridge.shops import create_shop
from bridge.surfaces.platforms import PLATFORMS
from bridge.wallets import wallet_summary

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CURRENCY = "EUR"
WALLETS = 200  # payments are spread over this many funded wallets: the ledger is measured, not one hot row
FUNDING = 10**10  # per wallet, in cents: far more than the benchmark ever spends
SMALL_HISTORY = 1_000
THROUGHPUT_TARGET = 0.3  # service / floor, at least
ANCHOR_TARGET = 1.0  # service / pgledger, at least
PGLEDGER = ROOT.parent / "shared" / "anchors" / "pgledger"
PGLEDGER_FILES = ("ulid-to-uuid.sql", "uuid-to-ulid.sql", "pgledger.sql")  # in this order (its README)
READ_TARGET = 1.2  # large history / small history, at most


# Scratch database ----------------------------------------------------------------------------------


@contextmanager
def scratch_database(url: str) -> Iterator[str]:
    """A new, migrated database beside the one `url` names; dropped on the way out, whatever happens."""
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"wb_bench_{secrets.token_hex(5)}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        scratch_url = make_url(url).set(database=name).render_as_string(hide_password=False)
        upgrade(scratch_url)
        yield scratch_url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def psycopg_conninfo(url: str) -> str:
    """The SQLAlchemy URL as a libpq URI for a plain psycopg.connect."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# Running K threads ---------------------------------------------------------------------------------


def timed_parallel(threads: int, body: Callable[[int, threading.Barrier], None]) -> float:
    """Run body(worker, barrier) on `threads` threads; each does its setup, waits on the barrier, then
    works. Returns the seconds from the barrier's release until the last worker is done."""
    barrier = threading.Barrier(threads + 1, timeout=120)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(body, worker, barrier) for worker in range(threads)]
        barrier.wait()
        started = time.perf_counter()
        for future in futures:
            future.result()
        return time.perf_counter() - started


def run_floor(conninfo: str, count: int, threads: int, offset: int) -> dict:
    """`count` bare INSERT + COMMIT of one row, each thread on its own psycopg connection."""

    def body(worker: int, barrier: threading.Barrier) -> None:
        with psycopg.connect(conninfo) as connection:
            barrier.wait()
            for n in range(offset + worker, offset + count, threads):
                connection.execute("INSERT INTO bench_floor (n) VALUES (%s)", (n,))
                connection.commit()

    return measure(count, lambda: timed_parallel(threads, body))


def load_pgledger(conninfo: str, folder: Path) -> list[str] | None:
    """pgledger's schema in the scratch database and WALLETS funded accounts that may not go negative, as
    the bridge's wallets; None (and a message) when the anchor is not there."""
    if not folder.is_dir():
        print(f"pgledger not found at {folder}: its comparison is skipped", file=sys.stderr)
        return None
    with psycopg.connect(conninfo, autocommit=True) as connection:
        for name in PGLEDGER_FILES:
            connection.execute((folder / name).read_text())
        create = "SELECT id FROM pgledger_create_account(%s, %s, %s, true)"
        source = connection.execute(create, ("bench-source", CURRENCY, True)).fetchone()[0]
        wallets = [connection.execute(create, (f"bench-{i}", CURRENCY, False)).fetchone()[0] for i in range(WALLETS)]
        for wallet in wallets:
            connection.execute("SELECT id FROM pgledger_create_transfer(%s, %s, %s)", (source, wallet, FUNDING))
    return wallets


def run_pgledger(conninfo: str, wallets: list[str], count: int, threads: int, offset: int) -> dict:
    """`count` wallet → wallet transfers, one `pgledger_create_transfer` call each (autocommit), spread over
    the wallets as the bridge's payments are."""

    def body(worker: int, barrier: threading.Barrier) -> None:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            barrier.wait()
            for n in range(offset + worker, offset + count, threads):
                source, target = wallets[n % WALLETS], wallets[(n * 7 + 1) % WALLETS]
                connection.execute(
                    "SELECT id FROM pgledger_create_transfer(%s, %s, %s)",
                    (source, target if target != source else wallets[(n + 1) % WALLETS], 1),
                )

    return measure(count, lambda: timed_parallel(threads, body))


# What post_transaction sends for a payment (bridge.ledger._POST_IN_DATABASE), as psycopg parameters.
POST_FUNCTION = (
    "SELECT status FROM wb_post_transaction(%s, 'payment', %s, 'system', NULL, %s, %s, %s, NULL, now(), "
    "%s::integer[], %s::bigint[], %s::text[], %s::text[], NULL)"
)


def run_post_function(conninfo: str, accounts: dict, shop_id: int, count: int, threads: int, offset: int) -> dict:
    """The ledger's database side alone: `count` payments handed to wb_post_transaction as post_transaction hands
    them (one call each, autocommit), from psycopg threads as pgledger's transfers are. What the service layer
    costs on top of it is the difference between this row and the service's."""
    wallets, shop_side = accounts["wallets"], accounts["shop_side"]

    def body(worker: int, barrier: threading.Barrier) -> None:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            barrier.wait()
            for n in range(offset + worker, offset + count, threads):
                amount, key = 100 + n % 900, f"order:F{n}:payment"
                legs = sorted([(wallets[n % WALLETS], -amount, "wallet"), (shop_side, amount, "system")])
                accounts_, amounts, kinds = zip(*legs, strict=True)
                fingerprint = hashlib.sha256(key.encode()).hexdigest()
                connection.execute(
                    POST_FUNCTION,
                    (
                        shop_id,
                        f"Payment for order #F{n}",
                        key,
                        fingerprint,
                        f"F{n}",
                        list(accounts_),
                        list(amounts),
                        [CURRENCY, CURRENCY],
                        list(kinds),
                    ),
                )

    return measure(count, lambda: timed_parallel(threads, body))


def measure(count: int, run: Callable[[], float]) -> dict:
    """ops/s of a timed run, with this process's CPU time per op (all threads: Python, SQLAlchemy, psycopg)."""
    cpu = time.process_time()
    seconds = run()
    return {"rate": count / seconds, "cpu_ms": (time.process_time() - cpu) * 1000 / count}


def pay(sessions: sessionmaker[Session], shop_id: int, external_id: str, order: str, amount: int) -> None:
    """One wallet payment through the service layer, as an order rule posts it: one unit of work."""
    with unit_of_work(sessions) as session:
        _customer, wallet = customer_wallet(session, shop_id, external_id, CURRENCY)
        shop_side = system_account(session, shop_id, SystemAccount.WALLET_PAYMENTS, CURRENCY)
        posted = post_transaction(
            session,
            shop_id=shop_id,
            kind="payment",
            reason=f"Payment for order #{order}",
            legs=[Leg(wallet, -amount), Leg(shop_side, amount)],
            idempotency_key=f"order:{order}:payment",
            order_ref=order,
        )
        assert not posted.replayed


def run_service(sessions: sessionmaker[Session], shop_id: int, count: int, threads: int, offset: int) -> dict:
    """`count` payments from `threads` threads, round-robin over the funded wallets (with 8 threads and 200
    wallets each thread pays from its own 25: the wallet row locks never queue)."""

    def body(worker: int, barrier: threading.Barrier) -> None:
        barrier.wait()
        for n in range(offset + worker, offset + count, threads):
            pay(sessions, shop_id, f"bench-{n % WALLETS}", f"B{n}", 100 + n % 900)

    return measure(count, lambda: timed_parallel(threads, body))


def fund_wallets(sessions: sessionmaker[Session], shop_id: int) -> dict:
    """Returns the funded wallets' and the payments' shop-side account ids."""
    with unit_of_work(sessions) as session:
        promotions = system_account(session, shop_id, SystemAccount.PROMOTIONS, CURRENCY)
        shop_side = system_account(session, shop_id, SystemAccount.WALLET_PAYMENTS, CURRENCY)
        wallets = []
        for i in range(WALLETS):
            wallet = wallet_account(session, ensure_customer(session, shop_id, f"bench-{i}"), CURRENCY)
            wallets.append(wallet.id)
            post_transaction(
                session,
                shop_id=shop_id,
                kind="adjustment",
                reason="bench funding",
                legs=[Leg(wallet, FUNDING), Leg(promotions, -FUNDING)],
                idempotency_key=f"bench-funding:{i}",
            )
        return {"wallets": wallets, "shop_side": shop_side.id}


def payment_throughput(
    url: str, engine: Engine, sessions, shop_id: int, payments: int, threads: int, pgledger: Path
) -> dict:
    conninfo = psycopg_conninfo(url)
    anchor_wallets = load_pgledger(conninfo, pgledger)
    statements = itertools.count()  # next() on it is atomic under the GIL
    event.listen(engine, "before_cursor_execute", lambda *_: next(statements))
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute("CREATE TABLE bench_floor (id bigserial PRIMARY KEY, n int)")
    accounts = fund_wallets(sessions, shop_id)
    warmup = max(threads * 10, min(payments // 10, 400))
    offset = 0
    run_floor(conninfo, warmup, threads, offset)
    run_service(sessions, shop_id, warmup, threads, offset)  # also fills the engine's pool
    run_post_function(conninfo, accounts, shop_id, warmup, threads, offset)
    if anchor_wallets:
        run_pgledger(conninfo, anchor_wallets, warmup, threads, offset)
    offset += warmup
    floor, service, function, anchor = [], [], [], []
    for _ in range(2):
        floor.append(run_floor(conninfo, payments, threads, offset))
        if anchor_wallets:
            anchor.append(run_pgledger(conninfo, anchor_wallets, payments, threads, offset))
        function.append(run_post_function(conninfo, accounts, shop_id, payments, threads, offset))
        before = next(statements)
        service.append(run_service(sessions, shop_id, payments, threads, offset))
        service[-1]["statements"] = (next(statements) - before - 1) / payments
        offset += payments
    with unit_of_work(sessions) as session:
        problems = verify(session)
        paid = session.scalar(
            select(func.count()).select_from(Entry).where(Entry.amount > 0, Entry.balance_after.is_(None))
        )
    assert problems == [], problems
    assert paid == 2 * offset, (paid, offset)  # one shop-side entry per payment of each path: none lost or doubled
    return {"floor": floor, "service": service, "function": function, "pgledger": anchor, "warmup": warmup}


# History -------------------------------------------------------------------------------------------

# Posting a million payments through the service layer would take about two hours here, so the long
# history is written with set-based SQL straight into ledger_transactions and entries (INSERTs only: the
# append-only triggers refuse UPDATE and DELETE, not INSERT). It is kept exactly as the service layer
# would leave it: each transaction has one wallet entry and one opposite system-account entry (topups
# against topups_received, every fourth a payment against wallet_payments, so the balance never goes
# below zero), balance_after is the wallet's running sum, the fingerprint is the one post_transaction
# computes, and the wallet's stored balance is set to the sum of its entries. check_history() and
# bridge.ledger.verify() check it afterwards.
HISTORY_SQL = [
    """
    CREATE TEMP TABLE bench_history ON COMMIT DROP AS
    SELECT g, CAST(:first_id AS bigint) + g - 1 AS transaction_id, amount,
           sum(amount) OVER (ORDER BY g) AS balance_after,
           CASE WHEN amount < 0 THEN 'payment' ELSE 'topup' END AS kind,
           CASE WHEN amount < 0 THEN CAST(:payments_id AS int) ELSE CAST(:topups_id AS int) END AS counter_id,
           now() - (CAST(:count AS int) - g) * interval '1 second' AS created_at
    FROM (
        SELECT g, CAST(CASE WHEN g % 4 = 0 THEN -300 ELSE 200 END AS bigint) AS amount
        FROM generate_series(1, CAST(:count AS int)) AS g
    ) AS moves
    """,
    """
    INSERT INTO ledger_transactions
        (id, shop_id, kind, reason, actor_kind, actor_id, idempotency_key, fingerprint, order_ref, refund_ref,
         created_at)
    SELECT transaction_id, :shop_id, kind, 'bench history ' || g, 'system', NULL,
           'bench-history:' || CAST(:wallet_id AS text) || ':' || g,
           encode(sha256(convert_to(format(
               '{"kind": "%s", "legs": [[%s, %s], [%s, %s]], "order_ref": null, "refund_ref": null}',
               kind,
               least(:wallet_id, counter_id), CASE WHEN :wallet_id < counter_id THEN amount ELSE -amount END,
               greatest(:wallet_id, counter_id), CASE WHEN :wallet_id < counter_id THEN -amount ELSE amount END
           ), 'UTF8')), 'hex'),
           NULL, NULL, created_at
    FROM bench_history ORDER BY g
    """,
    """
    INSERT INTO entries (transaction_id, shop_id, account_id, amount, currency, balance_after, created_at)
    SELECT h.transaction_id, :shop_id, e.account_id, e.amount, :currency, e.balance_after, h.created_at
    FROM bench_history AS h
    CROSS JOIN LATERAL (VALUES (0, CAST(:wallet_id AS int), h.amount, h.balance_after),
                               (1, h.counter_id, -h.amount, NULL)) AS e(side, account_id, amount, balance_after)
    ORDER BY h.g, e.side
    """,
    """
    UPDATE accounts SET balance = (SELECT coalesce(sum(amount), 0) FROM entries WHERE account_id = :wallet_id)
    WHERE id = :wallet_id
    """,
    # What the history leaves in the wallet, as one cash lot (the lots of a wallet sum to its balance).
    """
    INSERT INTO credit_lots (shop_id, account_id, transaction_id, kind, source, amount, remaining, created_at)
    SELECT :shop_id, a.id, :first_id, 'cash', 'topup', a.balance, a.balance, now()
    FROM accounts AS a WHERE a.id = :wallet_id AND a.balance > 0
    """,
]


def build_history(engine: Engine, sessions, shop_id: int, external_id: str, count: int) -> int:
    """A wallet with `count` entries. Returns the wallet's account id."""
    with unit_of_work(sessions) as session:
        wallet = wallet_account(session, ensure_customer(session, shop_id, external_id), CURRENCY)
        topups = system_account(session, shop_id, SystemAccount.TOPUPS_RECEIVED, CURRENCY)
        payments = system_account(session, shop_id, SystemAccount.WALLET_PAYMENTS, CURRENCY)
        ids = {"wallet_id": wallet.id, "topups_id": topups.id, "payments_id": payments.id}
    with engine.begin() as connection:
        sequence = connection.scalar(text("SELECT pg_get_serial_sequence('ledger_transactions', 'id')"))
        first_id = connection.scalar(  # reserve a block of `count` transaction ids
            text("SELECT setval(CAST(:seq AS regclass), nextval(CAST(:seq AS regclass)) + :count - 1) - :count + 1"),
            {"seq": sequence, "count": count},
        )
        params = {**ids, "first_id": first_id, "count": count, "shop_id": shop_id, "currency": CURRENCY}
        for statement in HISTORY_SQL:
            connection.execute(text(statement), params)
    return ids["wallet_id"]


def check_history(sessions, shop_id: int, external_id: str, wallet_id: int, count: int) -> None:
    """The bulk history is what the service layer would have written: stored balance = sum of entries =
    last balance_after, and a replay of its last transaction matches the stored fingerprint."""
    with unit_of_work(sessions) as session:
        balance = session.scalar(select(Account.balance).where(Account.id == wallet_id))
        total, entries, last = session.execute(
            select(func.sum(Entry.amount), func.count(), func.max(Entry.id)).where(Entry.account_id == wallet_id)
        ).one()
        last_after = session.scalar(select(Entry.balance_after).where(Entry.id == last))
        assert (entries, total, last_after) == (count, balance, balance), (entries, total, last_after, balance)
        wallet = wallet_account(session, ensure_customer(session, shop_id, external_id), CURRENCY)
        topups = system_account(session, shop_id, SystemAccount.TOPUPS_RECEIVED, CURRENCY)
        payments = system_account(session, shop_id, SystemAccount.WALLET_PAYMENTS, CURRENCY)
        amount = -300 if count % 4 == 0 else 200
        counter = payments if amount < 0 else topups
        replay = post_transaction(
            session,
            shop_id=shop_id,
            kind="payment" if amount < 0 else "topup",
            reason="replay",
            legs=[Leg(wallet, amount), Leg(counter, -amount)],
            idempotency_key=f"bench-history:{wallet_id}:{count}",
        )
        assert replay.replayed


# Balance reads -------------------------------------------------------------------------------------


def balance_reads(engine: Engine, sessions, shop: Shop, wallets: dict[str, tuple[str, int]], reads: int) -> dict:
    """Median seconds per read for each (path, wallet), the wallets interleaved in alternating order so
    that drift on the machine falls on both alike."""
    raw = engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def api(external_id: str, _wallet_id: int) -> None:
        with unit_of_work(sessions) as session:
            wallet_summary(session, shop, external_id)

    def bare(_external_id: str, wallet_id: int) -> None:
        raw.execute(select(Account.balance).where(Account.id == wallet_id)).scalar_one()

    paths = {"wallet_summary (API, one unit of work)": api, "SELECT accounts.balance": bare}
    samples: dict[tuple[str, str], list[float]] = {(p, w): [] for p in paths for w in wallets}
    labels = list(wallets)
    warmup = max(reads // 10, 50)
    try:
        for i in range(warmup + reads):
            order = labels if i % 2 == 0 else labels[::-1]
            for path, fn in paths.items():
                for label in order:
                    external_id, wallet_id = wallets[label]
                    started = time.perf_counter()
                    fn(external_id, wallet_id)
                    elapsed = time.perf_counter() - started
                    if i >= warmup:
                        samples[(path, label)].append(elapsed)
    finally:
        raw.close()
    return {key: statistics.median(values) for key, values in samples.items()}


# Main ----------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_URL, help=f"PostgreSQL server to use (default {DEFAULT_URL})")
    parser.add_argument("--payments", type=int, help="payments per timed run (default 4000; --quick 500)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent connections / threads (default 8)")
    parser.add_argument("--history", type=int, help="entries on the large wallet (default 1000000; --quick 100000)")
    parser.add_argument("--reads", type=int, help="timed reads per path and wallet (default 2000; --quick 500)")
    parser.add_argument("--pgledger", type=Path, default=PGLEDGER, help=f"pgledger's SQL files (default {PGLEDGER})")
    parser.add_argument("--quick", action="store_true", help="a smaller run that finishes in well under a minute")
    args = parser.parse_args(argv)
    if not args.database_url.startswith("postgresql"):
        parser.error("--database-url must name a PostgreSQL server")
    args.payments = args.payments or (500 if args.quick else 4000)
    args.history = args.history or (100_000 if args.quick else 1_000_000)
    args.reads = args.reads or (500 if args.quick else 2000)
    return args


def verdict(ok: bool) -> str:
    return "PASS" if ok else "BELOW TARGET"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join([os.path.relpath(sys.executable), *sys.argv]) if argv is None else shlex.join(argv)
    began = time.perf_counter()
    with scratch_database(args.database_url) as url:
        engine = make_engine(url, pool_size=args.connections)
        sessions = make_session_factory(engine)
        try:
            with engine.connect() as connection:
                server = connection.scalar(text("SHOW server_version"))
            with unit_of_work(sessions) as session:
                box = SecretBox((Fernet.generate_key().decode(),))
                shop = create_shop(
                    session,
                    box,
                    platforms=PLATFORMS,
                    name="Bench Shop",
                    platform="woocommerce",
                    url="https://bench.example",
                    currency=CURRENCY,
                ).shop
            step = time.perf_counter()
            throughput = payment_throughput(
                url, engine, sessions, shop.id, args.payments, args.connections, args.pgledger
            )
            throughput_seconds = time.perf_counter() - step

            step = time.perf_counter()
            small = build_history(engine, sessions, shop.id, "history-small", SMALL_HISTORY)
            large = build_history(engine, sessions, shop.id, "history-large", args.history)
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text("VACUUM (ANALYZE) ledger_transactions, entries, accounts"))
            build_seconds = time.perf_counter() - step
            check_history(sessions, shop.id, "history-small", small, SMALL_HISTORY)
            check_history(sessions, shop.id, "history-large", large, args.history)
            with unit_of_work(sessions) as session:
                problems = verify(session)
            assert problems == [], problems[:10]
            step = time.perf_counter()
            wallets = {"small": ("history-small", small), "large": ("history-large", large)}
            reads = balance_reads(engine, sessions, shop, wallets, args.reads)
            read_seconds = time.perf_counter() - step
        finally:
            engine.dispose()
    report(args, command, server, throughput, reads, (throughput_seconds, build_seconds, read_seconds), began)
    return 0


def report(args, command: str, server: str, throughput: dict, reads: dict, seconds: tuple, began: float) -> None:
    floor, service, anchor = throughput["floor"], throughput["service"], throughput["pgledger"]
    best_floor, best_service = (max(runs, key=lambda run: run["rate"]) for runs in (floor, service))
    ratio = best_service["rate"] / best_floor["rate"]
    rows = [("floor: INSERT + COMMIT (psycopg)", floor, best_floor)]
    if anchor:
        best_anchor = max(anchor, key=lambda run: run["rate"])
        rows.append(("pgledger_create_transfer (psycopg)", anchor, best_anchor))
    best_function = max(throughput["function"], key=lambda run: run["rate"])
    rows.append(("ledger function alone (psycopg)", throughput["function"], best_function))
    rows.append(("service: payment (post_transaction)", service, best_service))
    print()
    print(f"Ledger benchmark — PostgreSQL {server}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(f"command: {command}")
    print(
        f"payments: {args.payments} per run over {WALLETS} wallets, {args.connections} connections, "
        f"warm-up {throughput['warmup']}, floor and service alternated twice, best run kept"
    )
    print()
    print(f"  {'throughput (ops/s)':<38}{'run 1':>8}{'run 2':>8}{'best':>8}{'client CPU ms/op':>18}")
    for label, runs, best in rows:
        rates = "".join(f"{run['rate']:>8.0f}" for run in runs)
        print(f"  {label:<38}{rates}{best['rate']:>8.0f}{best['cpu_ms']:>18.2f}")
    print(
        f"  {'ratio service / floor':<38}{ratio:>24.2f}   target >= {THROUGHPUT_TARGET}  "
        f"{verdict(ratio >= THROUGHPUT_TARGET)}"
    )
    if anchor:
        versus = best_service["rate"] / best_anchor["rate"]
        print(
            f"  {'ratio service / pgledger':<38}{versus:>24.2f}   target >= {ANCHOR_TARGET}  "
            f"{verdict(versus >= ANCHOR_TARGET)}   (pgledger / floor {best_anchor['rate'] / best_floor['rate']:.2f})"
        )
        print(
            f"  {'ratio ledger function / pgledger':<38}{best_function['rate'] / best_anchor['rate']:>24.2f}   "
            "(no target: the database's share of a payment, beside pgledger's)"
        )
    else:
        print(f"  pgledger: not measured ({args.pgledger} is absent)")
    print(f"  SQL statements per payment (BEGIN/COMMIT not counted): {best_service['statements']:.1f}")
    print()
    print(
        f"  {'balance read, median of ' + str(args.reads) + ' (ms)':<38}"
        f"{f'{SMALL_HISTORY:,} e.':>12}{f'{args.history:,} e.':>14}{'ratio':>8}"
    )
    for path in dict.fromkeys(p for p, _ in reads):
        fast, slow = reads[(path, "small")], reads[(path, "large")]
        print(
            f"  {path:<38}{fast * 1000:>12.3f}{slow * 1000:>14.3f}{slow / fast:>8.2f}   "
            f"target <= {READ_TARGET}  {verdict(slow / fast <= READ_TARGET)}"
        )
    print()
    throughput_seconds, build_seconds, read_seconds = seconds
    print(
        f"  time: payments {throughput_seconds:.0f} s, history build {build_seconds:.0f} s, "
        f"reads {read_seconds:.0f} s, total {time.perf_counter() - began:.0f} s"
    )


if __name__ == "__main__":
    sys.exit(main())
