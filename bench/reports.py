"""Reports benchmark on PostgreSQL: a 30-day report on a shop with a base history, and on the same shop after
100× more history.

    .venv/bin/python bench/reports.py [--database-url URL] [--base N] [--factor F] [--customers C] [--runs R]

The shop gets N ledger transactions (and N/2 orders) spread over the last 30 days: the period the report covers.
That database is then copied (CREATE DATABASE … TEMPLATE) and the copy gets F × N older transactions (and
F × N/2 orders) over the ~8 years before. Both are vacuumed, analysed and checkpointed; then the report is built
R times on each, in turn (before, after, after, before, …), so that the load of a shared machine weighs on both
alike. The timed work is `build_report` for the last 30 days by day plus every table of the report page:
movements by kind, deposits, orders, opening and closing balances, liability, reconciliation. Target: after /
before ≤ 1.5 (medians), since every query is a range scan whose cost follows the transactions in the period,
not the history.

History is written with set-based `INSERT … SELECT generate_series`, as the service would leave it: each
transaction balanced (a customer entry and a system entry), stored balances equal to the sum of the entries
(so the reconciliation must still close). `balance_after` is set on every customer entry (the reports only
read whether it is set) but is not a true running balance. The scratch databases are dropped at the end.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ledger import DEFAULT_URL, scratch_database  # noqa: E402
from bridge.db import make_engine, make_session_factory, unit_of_work  # noqa: E402
from bridge.reports import TABLES, build_report, report_table  # noqa: E402
from bridge.security import SecretBox  # noqa: E402
from bridge.shops import create_shop  # noqa: E402
from bridge.surfaces.platforms import PLATFORMS
from bridge.usecases import snapshot  # noqa: E402

TARGET = 1.5
HISTORY_DAYS = 3000  # the older history spreads over about 8 years before the period
# (kind, share in tenths, customer amount, customer unit, system purpose)
MIX = [
    ("topup", 3, 5_000, "EUR", "topups_received"),
    ("payment", 5, -2_000, "EUR", "wallet_payments"),
    ("refund_to_wallet", 1, 1_000, "EUR", "refunds_issued"),
    ("points_earned", 1, 40, "PTS", "points_issued"),
]


def setup_shop(sessions, customers: int) -> int:
    from cryptography.fernet import Fernet

    with unit_of_work(sessions) as session:
        box = SecretBox((Fernet.generate_key().decode(),))
        shop_id = create_shop(
            session,
            box,
            platforms=PLATFORMS,
            name="Bench",
            platform="woocommerce",
            url="https://bench.example",
            currency="EUR",
        ).shop.id
        session.execute(
            text("""
            INSERT INTO customers (shop_id, external_id, email, name, created_at)
            SELECT :shop, g::text, 'c' || g || '@example.com', 'Customer ' || g, now() FROM generate_series(1, :n) g
        """),
            {"shop": shop_id, "n": customers},
        )
        session.execute(
            text("""
            INSERT INTO accounts (shop_id, customer_id, code, kind, currency, balance, held, overdraft_limit, locked,
                                  created_at)
            SELECT c.shop_id, c.id,
                   k.kind || ':' || c.id || CASE k.kind WHEN 'wallet' THEN ':' || k.currency ELSE '' END,
                   k.kind, k.currency, 0, 0, 0, false, now()
            FROM customers c, (VALUES ('wallet', 'EUR'), ('points', 'PTS')) AS k(kind, currency)
            WHERE c.shop_id = :shop
        """),
            {"shop": shop_id},
        )
        for _kind, _share, _amount, unit, purpose in MIX:
            session.execute(
                text("""
                INSERT INTO accounts (shop_id, code, kind, currency, balance, held, overdraft_limit, locked, created_at)
                VALUES (:shop, :code, 'system', :unit, 0, 0, 0, false, now()) ON CONFLICT DO NOTHING
            """),
                {"shop": shop_id, "code": f"system:{purpose}:{unit}", "unit": unit},
            )
        # customer number (1..C) → its wallet and points accounts, for the generated entries
        session.execute(
            text(
                """
            CREATE TABLE bench_customer_accounts_SHOP AS
            SELECT row_number() OVER (ORDER BY c.id) AS n,
                   max(a.id) FILTER (WHERE a.kind = 'wallet') AS wallet_id,
                   max(a.id) FILTER (WHERE a.kind = 'points') AS points_id
            FROM customers c JOIN accounts a ON a.customer_id = c.id WHERE c.shop_id = :shop GROUP BY c.id
        """.replace("SHOP", str(shop_id))
            ),
            {"shop": shop_id},
        )
        session.execute(text(f"CREATE UNIQUE INDEX ON bench_customer_accounts_{shop_id} (n)"))
    return shop_id


def add_history(sessions, shop_id: int, label: str, count: int, start: datetime, end: datetime, customers: int):
    """`count` balanced transactions evenly spread over [start, end), and count/2 orders."""
    cases = {
        "kind": " ".join(f"WHEN {i} THEN '{m[0]}'" for i, m in enumerate(_slots())),
        "amount": " ".join(f"WHEN {i} THEN {m[2]}" for i, m in enumerate(_slots())),
        "unit": " ".join(f"WHEN {i} THEN '{m[3]}'" for i, m in enumerate(_slots())),
        "purpose": " ".join(f"WHEN {i} THEN '{m[4]}'" for i, m in enumerate(_slots())),
    }
    with unit_of_work(sessions) as session:
        session.execute(
            text(
                f"""
            WITH spec AS (
                SELECT g, (CASE g % 10 {cases["kind"]} END) AS kind, (CASE g % 10 {cases["amount"]} END) AS amount,
                       (CASE g % 10 {cases["unit"]} END) AS unit, (CASE g % 10 {cases["purpose"]} END) AS purpose,
                       1 + (g::bigint * 7919) % :customers AS customer,
                       CAST(:start AS timestamptz) + (CAST(:end AS timestamptz) - CAST(:start AS timestamptz))
                           * ((g - 1)::float8 / :count) AS at
                FROM generate_series(1, :count) g
            ), tx AS (
                INSERT INTO ledger_transactions (shop_id, kind, reason, actor_kind, actor_id, idempotency_key,
                                                 fingerprint, order_ref, refund_ref, created_at)
                SELECT :shop, kind, kind || ' (bench)', 'system', NULL, :label || ':' || g, md5(g::text), NULL, NULL, at
                FROM spec ORDER BY g
                RETURNING id, idempotency_key, created_at
            ), joined AS (
                SELECT tx.id, tx.created_at, spec.amount, spec.unit,
                       CASE WHEN spec.unit = 'PTS' THEN ca.points_id ELSE ca.wallet_id END AS customer_account,
                       sys.id AS system_account
                FROM tx
                JOIN spec ON tx.idempotency_key = :label || ':' || spec.g
                JOIN bench_customer_accounts_SHOP ca ON ca.n = spec.customer
                JOIN accounts sys ON sys.shop_id = :shop AND sys.code = 'system:' || spec.purpose || ':' || spec.unit
            )
            INSERT INTO entries (transaction_id, shop_id, account_id, amount, currency, balance_after, created_at)
            SELECT id, :shop, customer_account, amount, unit, 0, created_at FROM joined
            UNION ALL
            SELECT id, :shop, system_account, -amount, unit, NULL, created_at FROM joined
        """.replace("SHOP", str(shop_id))
            ),
            {"shop": shop_id, "label": label, "count": count, "start": start, "end": end, "customers": customers},
        )
        session.execute(
            text("""
            INSERT INTO shop_orders (shop_id, external_id, customer_id, currency, status, total, wallet_paid,
                                     wallet_refunded, points_earned, points_clawed_back, payment_outcome, created_at,
                                     updated_at)
            SELECT :shop, :label || '-' || g, NULL, 'EUR', 'completed', 5000, 0, 0, 0, 0,
                   CASE g % 4 WHEN 0 THEN 'paid' WHEN 1 THEN 'partial' ELSE NULL END,
                   CAST(:start AS timestamptz) + (CAST(:end AS timestamptz) - CAST(:start AS timestamptz))
                       * ((g - 1)::float8 / :orders),
                   now()
            FROM generate_series(1, :orders) g
        """),
            {"shop": shop_id, "label": label, "orders": count // 2, "start": start, "end": end},
        )
        # Stored balances are the sum of the entries, as the ledger keeps them.
        session.execute(
            text("""
            UPDATE accounts a SET balance = s.total
            FROM (SELECT account_id, sum(amount) AS total FROM entries
                  WHERE shop_id = :shop AND balance_after IS NOT NULL GROUP BY account_id) s
            WHERE a.id = s.account_id
        """),
            {"shop": shop_id},
        )


def _slots() -> list[tuple]:
    """MIX expanded to ten slots (g % 10) by share."""
    slots = []
    for entry in MIX:
        slots += [entry] * entry[1]
    assert len(slots) == 10
    return slots


def analyse(engine) -> None:
    """Statistics up to date, and the writes flushed, so no vacuum or checkpoint runs during the timing."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM (ANALYZE)"))
        connection.execute(text("CHECKPOINT"))


def report_of(sessions, shop_id: int, now: datetime):
    """What the report page computes: the report for the last 30 days by day, and each of its tables."""
    with snapshot(sessions) as session:
        report = build_report(session, shop_id, "EUR", now.date() - timedelta(days=29), now.date(), "day", now=now)
        for name in TABLES:
            report_table(report, name)
    return report


def time_interleaved(databases: list, shop_id: int, runs: int, now: datetime) -> list[list[float]]:
    """The report on each database in turn (a, b, b, a, …), so a busy machine slows them alike."""
    timings: list[list[float]] = [[] for _ in databases]
    for run in range(runs + 5):
        for position in range(len(databases)) if run % 2 == 0 else reversed(range(len(databases))):
            began = time.perf_counter()
            report_of(databases[position], shop_id, now)
            if run >= 5:  # the first rounds warm up connections, statement caches and buffers
                timings[position].append((time.perf_counter() - began) * 1000)
    return timings


def explain_main_query(engine, sessions, shop_id: int, now: datetime) -> list[str]:
    """The plan of the report's largest query (movements by day and kind)."""
    captured: list[tuple] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with snapshot(sessions) as session:
            build_report(session, shop_id, "EUR", now.date() - timedelta(days=29), now.date(), "day", now=now)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    statement, parameters = next((s, p) for s, p in captured if "GROUP BY" in s and "entries" in s)
    with engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        with raw.cursor() as cursor:
            cursor.execute("EXPLAIN " + statement, parameters)
            return [row[0] for row in cursor.fetchall()]


def statement_times(engine, sessions, shop_id: int, now: datetime) -> list[tuple[float, str]]:
    """Each statement of one report with its time (ms), slowest first: where the time goes."""
    started: dict[int, float] = {}
    times: list[tuple[float, str]] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        started[id(cursor)] = time.perf_counter()

    def after(conn, cursor, statement, parameters, context, executemany):
        first = " ".join(statement.split())[:110]
        times.append(((time.perf_counter() - started.pop(id(cursor))) * 1000, first))

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        with snapshot(sessions) as session:
            build_report(session, shop_id, "EUR", now.date() - timedelta(days=29), now.date(), "day", now=now)
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
    return sorted(times, reverse=True)


def counts(engine) -> tuple[int, int]:
    with engine.connect() as connection:
        return (
            connection.scalar(text("SELECT count(*) FROM ledger_transactions")),
            connection.scalar(text("SELECT count(*) FROM entries")),
        )


def summary(timings: list[float]) -> str:
    ordered = sorted(timings)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return f"median {statistics.median(timings):7.1f} ms   p90 {p90:7.1f} ms   min {ordered[0]:7.1f} ms"


@contextmanager
def copy_of(url: str) -> Iterator[str]:
    """A copy of the database `url` names (which must have no open connection); dropped on the way out."""
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    source = make_url(url).database
    name = f"{source}_after"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{source}"'))
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--base", type=int, default=10_000, help="transactions in the 30-day period")
    parser.add_argument("--factor", type=int, default=100, help="older history, as a multiple of --base")
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    print(f"command: .venv/bin/python bench/reports.py {shlex.join(sys.argv[1:])}".rstrip())
    now = datetime.now(UTC).replace(microsecond=0)
    period_start = now - timedelta(days=30)
    began = time.perf_counter()
    with scratch_database(args.database_url) as before_url:
        engine = make_engine(before_url, pool_size=2)
        shop_id = setup_shop(make_session_factory(engine), args.customers)
        add_history(
            make_session_factory(engine),
            shop_id,
            "base",
            args.base,
            period_start,
            now - timedelta(minutes=1),
            args.customers,
        )
        analyse(engine)
        engine.dispose()
        with copy_of(before_url) as after_url:
            built = time.perf_counter()
            after_engine = make_engine(after_url, pool_size=2)
            older_start = period_start - timedelta(days=HISTORY_DAYS)
            add_history(
                make_session_factory(after_engine),
                shop_id,
                "history",
                args.base * args.factor,
                older_start,
                period_start,
                args.customers,
            )
            analyse(after_engine)
            build_seconds = time.perf_counter() - built
            before_engine = make_engine(before_url, pool_size=2)
            engines = [before_engine, after_engine]
            sessions = [make_session_factory(e) for e in engines]
            before, after = time_interleaved(sessions, shop_id, args.runs, now)
            reports = [report_of(s, shop_id, now) for s in sessions]
            statements = [statement_times(e, s, shop_id, now) for e, s in zip(engines, sessions, strict=True)]
            sizes = [counts(e) for e in engines]
            plan = explain_main_query(after_engine, sessions[1], shop_id, now)
            server = after_engine.dialect.server_version_info
            for e in engines:
                e.dispose()

    ratio = statistics.median(after) / statistics.median(before)
    print(
        f"PostgreSQL {'.'.join(map(str, server))}; {args.customers:,} customers; report: last 30 days by day; "
        f"{args.runs} runs on each database, in turn, after 5 rounds of warm-up"
    )
    for label, (transactions, entries), timings in (("before", sizes[0], before), ("after", sizes[1], after)):
        print(f"  {label + ':':7} {transactions:>9,} transactions, {entries:>9,} entries   {summary(timings)}")
    verdict = "PASS" if ratio <= TARGET else "BELOW TARGET"
    print(f"  ratio after / before (medians): {ratio:.2f}   target <= {TARGET}  {verdict}")
    for label, report in zip(("before", "after"), reports, strict=True):
        money = report.money
        print(
            f"  reconciliation {label}: opening {money.opening / 100:,.2f} + credits {money.credits / 100:,.2f} "
            f"- debits {money.debits / 100:,.2f} - expiries {money.expiries / 100:,.2f} = closing "
            f"{money.closing / 100:,.2f} EUR; difference {money.difference}; "
            f"{'closes' if money.closes and report.points.closes else 'DOES NOT CLOSE'}"
        )
    print(f"  statements of one report: {len(statements[1])}; the slowest, before → after (ms):")
    slow_before = {statement: ms for ms, statement in statements[0]}
    for ms, statement in statements[1][:5]:
        print(f"    {slow_before.get(statement, float('nan')):6.1f} → {ms:6.1f}  {statement}")
    print("  plan of the movements query (after):")
    for line in plan:
        print(f"    {line}")
    print(f"  time: history build {build_seconds:.0f} s, total {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
