"""Exports: a customer's statement, a period's movements, its journal (debits equal credits), the balances and
the liability at a date — right to the cent, in the shop's time zone, streamed, and one shop's data only."""

from __future__ import annotations

import csv
import io
import tracemalloc
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import insert, literal, null, select, update

from bridge.accounts import SystemAccount, system_account, wallet_account
from bridge.db import unit_of_work
from bridge.models import Account, Customer, Entry, LedgerTransaction, Shop, Timestamp
from tests.console_support import make_user, move, sign_in, text_of

pytest_plugins = ("tests.console_fixtures",)  # fixtures: merchant, console

PARIS = "Europe/Paris"
DAY = date(2026, 1, 10)  # winter: Paris is UTC+1


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=UTC)


def rows_of(response) -> list[dict]:
    assert response.status_code == 200, text_of(response)
    assert response.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(text_of(response).removeprefix("\ufeff"))))


@pytest.fixture
def history(services, shop):
    """Days of Paris. c1: +100.00 on the 9th, −30.00 on the 10th at 23:30 UTC (the 11th in Paris), +5.00 on the
    12th. c2: +20.00 on the 10th, 10 points on the 10th. Another shop's customer moves too."""
    s = shop.shop
    with unit_of_work(services.sessions) as session:
        session.execute(update(Shop).where(Shop.id == s.id).values(settings={"timezone": PARIS}))
    move(services, s, "c1", "topup", 10_000, at(DAY - timedelta(days=1), 12), "t1", email="c1@example.com")
    move(services, s, "c1", "payment", -3_000, at(DAY, 23, 30), "p1", order="501")
    move(services, s, "c1", "adjustment", 500, at(DAY + timedelta(days=2), 9), "a1", reason="Goodwill")
    move(services, s, "c2", "topup", 2_000, at(DAY, 10), "t2", email="c2@example.com")
    move(services, s, "c2", "points_earned", 10, at(DAY, 10, 5), "pts1")
    return s


@pytest.fixture
def strangers(services, other_shop):
    move(services, other_shop.shop, "c1", "topup", 99_900, at(DAY, 11), "x1")
    return other_shop.shop


def test_statement_is_the_customers_movements_of_the_period_in_the_shops_time(console, history, strangers):
    rows = rows_of(
        console.get(
            f"/shops/{history.id}/customers/c1/statement.csv", query_string={"start": "2026-01-09", "end": "2026-01-11"}
        )
    )
    assert [(r["date"], r["kind"], r["amount"], r["balance_after"], r["order"]) for r in rows] == [
        ("2026-01-09T13:00:00+01:00", "topup", "100.00", "100.00", ""),
        ("2026-01-11T00:30:00+01:00", "payment", "-30.00", "70.00", "501"),
    ]
    everything = rows_of(console.get(f"/shops/{history.id}/customers/c1/statement.csv"))
    assert [r["amount"] for r in everything] == ["100.00", "-30.00", "5.00"]
    assert "attachment" in console.get(f"/shops/{history.id}/customers/c1/statement.csv").headers["Content-Disposition"]


def test_transactions_of_a_period_are_every_customer_movement_in_it(console, history, strangers):
    rows = rows_of(
        console.get(
            f"/shops/{history.id}/exports/transactions.csv", query_string={"start": "2026-01-10", "end": "2026-01-10"}
        )
    )
    assert [(r["customer"], r["kind"], r["amount"], r["currency"]) for r in rows] == [
        ("c2", "topup", "20.00", "EUR"),
        ("c2", "points_earned", "10", "PTS"),
    ]  # the payment at 23:30 UTC is on the 11th in Paris; the other shop's top-up is not here


def test_journal_has_every_entry_and_each_transaction_balances(console, history, strangers):
    rows = rows_of(console.get(f"/shops/{history.id}/exports/journal.csv"))
    by_transaction = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for row in rows:
        assert bool(row["debit"]) != bool(row["credit"])
        by_transaction[(row["transaction"], row["currency"])][0] += Decimal(row["debit"] or 0)
        by_transaction[(row["transaction"], row["currency"])][1] += Decimal(row["credit"] or 0)
    assert len(by_transaction) == 5 and len(rows) == 10
    assert all(debits == credits > 0 for debits, credits in by_transaction.values())
    payment = [r for r in rows if r["kind"] == "payment"]
    assert {(r["account"].split(":")[0], r["debit"], r["credit"]) for r in payment} == {
        ("wallet", "30.00", ""),
        ("system", "", "30.00"),
    }  # the wallet (a debt) shrinks: a debit
    assert {r["order"] for r in payment} == {"501"}


def _sum_of_entries_until(services, shop_id: int, moment: datetime) -> dict[str, int]:
    """Customer:currency → the sum of the wallet entries before `moment`, straight from the ledger."""
    with unit_of_work(services.sessions) as session:
        found = session.execute(
            select(Customer.external_id, Entry.currency, Entry.amount)
            .join(Account, Account.id == Entry.account_id)
            .join(Customer, Customer.id == Account.customer_id)
            .where(Entry.shop_id == shop_id, Account.kind == "wallet", Entry.created_at < moment)
        ).all()
    sums: dict[str, int] = defaultdict(int)
    for customer, currency, amount in found:
        sums[f"{customer}:{currency}"] += amount
    return dict(sums)


@pytest.mark.parametrize(
    "day, expected",
    [
        ("2026-01-08", {}),
        ("2026-01-10", {"c1:EUR": "100.00", "c2:EUR": "20.00", "c2:PTS": "10"}),  # the payment is the 11th's
        ("2026-01-11", {"c1:EUR": "70.00", "c2:EUR": "20.00", "c2:PTS": "10"}),
        ("2026-01-12", {"c1:EUR": "75.00", "c2:EUR": "20.00", "c2:PTS": "10"}),
    ],
)
def test_balances_at_a_date_are_the_sums_of_entries_until_the_end_of_that_day(
    console, services, history, strangers, day, expected
):
    rows = rows_of(console.get(f"/shops/{history.id}/exports/balances.csv", query_string={"date": day}))
    balances = {f"{r['customer']}:{r['currency']}": r["balance"] for r in rows}
    assert balances == expected
    end_of_day = datetime.fromisoformat(f"{date.fromisoformat(day) + timedelta(days=1)}T00:00:00+01:00")
    sums = _sum_of_entries_until(services, history.id, end_of_day)
    assert {k: v for k, v in balances.items() if k.endswith("EUR")} == {
        k: f"{Decimal(v) / 100:.2f}" for k, v in sums.items() if k.endswith("EUR")
    }


def test_liability_is_the_unredeemed_store_credit_at_a_date(console, history, strangers):
    rows = rows_of(console.get(f"/shops/{history.id}/exports/liability.csv", query_string={"date": "2026-01-11"}))
    assert rows == [{"date": "2026-01-11", "currency": "EUR", "unredeemed_store_credit": "90.00"}]  # 70 + 20, no points
    page = text_of(console.get(f"/shops/{history.id}/exports", query_string={"date": "2026-01-10"}))
    assert 'data-liability="EUR">€120.00<' in page


@pytest.mark.parametrize(
    "path",
    [
        "exports",
        "exports/journal.csv",
        "exports/transactions.csv",
        "exports/balances.csv",
        "exports/liability.csv",
        "customers/c1/statement.csv",
    ],
)
def test_exports_are_the_signed_in_shops_own(client, services, history, strangers, path):
    anonymous = client.get(f"/shops/{history.id}/{path}")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    make_user(services, strangers.id, email="bob@example.com", name="Bob")
    assert sign_in(client, "bob@example.com").status_code == 302
    assert client.get(f"/shops/{history.id}/{path}").status_code == 404


def test_an_unknown_customer_or_export_is_not_found(console, history):
    assert console.get(f"/shops/{history.id}/customers/nobody/statement.csv").status_code == 404
    assert console.get(f"/shops/{history.id}/exports/passwords.csv").status_code == 404


@pytest.mark.parametrize(
    "path, args, field",
    [
        ("exports/journal.csv", {"start": "2026-13-01"}, "start"),
        ("exports/transactions.csv", {"start": "2026-01-10", "end": "2026-01-09"}, "end"),
        ("exports/balances.csv", {"date": "yesterday"}, "date"),
        ("customers/c1/statement.csv", {"end": "1999-01-01"}, "end"),
    ],
)
def test_bad_dates_are_refused_naming_the_field(console, history, path, args, field):
    refused = console.get(f"/shops/{history.id}/{path}", query_string=args)
    assert refused.status_code == 422 and f"{field}:" in text_of(refused)


# Streaming -------------------------------------------------------------------------------------------------

MANY = 25_000  # transactions: 50 000 journal lines


@pytest.fixture
def long_history(services, shop):
    """MANY top-ups of 1.00 to one wallet, written in bulk (the ledger's rules are not what is tested here)."""
    s = shop.shop
    move(services, s, "big", "topup", 100, at(DAY, 0), "first")
    with unit_of_work(services.sessions) as session:
        customer = session.scalar(select(Customer).where(Customer.shop_id == s.id, Customer.external_id == "big"))
        wallet = wallet_account(session, customer, "EUR")
        other = system_account(session, s.id, SystemAccount.TOPUPS_RECEIVED, "EUR")
        first = session.scalar(select(LedgerTransaction.id).order_by(LedgerTransaction.id.desc()).limit(1)) + 1
        moment = at(DAY, 1)
        session.execute(
            insert(LedgerTransaction),
            [
                {
                    "id": first + n,
                    "shop_id": s.id,
                    "kind": "topup",
                    "reason": "Top-up",
                    "actor_kind": "system",
                    "idempotency_key": f"bulk-{n}",
                    "fingerprint": "0" * 64,
                    "created_at": moment,
                }
                for n in range(MANY)
            ],
        )
        bulk = select(LedgerTransaction.id).where(LedgerTransaction.id >= first).order_by(LedgerTransaction.id)
        for account, amount, balance_after in (
            (wallet, 100, 100 * (LedgerTransaction.id - first + 2)),
            (other, -100, null()),
        ):  # one INSERT … SELECT per side
            legs = bulk.add_columns(
                literal(s.id),
                literal(account.id),
                literal(amount),
                literal("EUR"),
                balance_after,
                literal(moment, Timestamp),
            )
            session.execute(
                insert(Entry).from_select(
                    ["transaction_id", "shop_id", "account_id", "amount", "currency", "balance_after", "created_at"],
                    legs,
                )
            )
    return s


def test_a_long_journal_is_streamed_in_bounded_memory(console, long_history):
    tracemalloc.start()  # before the request: the test client reads the first chunk while answering it
    try:
        response = console.get(f"/shops/{long_history.id}/exports/journal.csv")
        assert response.status_code == 200 and response.is_streamed
        lines, debits, credits = 0, Decimal(0), Decimal(0)
        for chunk in response.response:
            for row in csv.reader(io.StringIO(chunk.decode() if isinstance(chunk, bytes) else chunk)):
                if row[0].removeprefix("\ufeff") != "date":
                    lines += 1
                    debits += Decimal(row[4] or 0)
                    credits += Decimal(row[5] or 0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        response.close()
    assert lines == 2 * (MANY + 1) and debits == credits == MANY + 1
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"  # 50 000 lines held at once take tens of MB


def test_a_long_statement_and_balances_are_right(console, long_history):
    statement = rows_of(console.get(f"/shops/{long_history.id}/customers/big/statement.csv"))
    assert len(statement) == MANY + 1 and statement[-1]["balance_after"] == f"{MANY + 1}.00"
    balances = rows_of(console.get(f"/shops/{long_history.id}/exports/balances.csv", query_string={"date": DAY}))
    assert [(r["customer"], r["balance"]) for r in balances] == [("big", f"{MANY + 1}.00")]
