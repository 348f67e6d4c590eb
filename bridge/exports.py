"""Exports for the shop's books: a customer's statement, every movement of a period, every balance at a date, the
journal in double-entry form, and the liability (unredeemed store credit) at any date.

Each export is a generator of rows read from the database in batches (`yield_per`: a server-side cursor on
PostgreSQL), so a million rows pass through without being held in memory. Moments are given in the shop's
time zone with their offset; a period is days of that zone, the end inclusive; a date's balances are those at
the end of that day there. Amounts are plain decimal strings (money) or whole numbers (points).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from marshmallow import Schema, ValidationError, fields, validates_schema
from sqlalchemy import Select, and_, func, select
from sqlalchemy.orm import Session

from bridge.db import total
from bridge.models import Account, Customer, Entry, LedgerTransaction, Shop
from bridge.money import POINTS, to_decimal_string
from bridge.reports import PERIOD_DAY, balances_at, start_of

BATCH = 1000  # rows fetched at a time

STATEMENT_HEADER = [
    "date",
    "transaction",
    "kind",
    "reason",
    "account",
    "amount",
    "currency",
    "balance_after",
    "order",
    "refund",
]
TRANSACTIONS_HEADER = [
    "date",
    "transaction",
    "kind",
    "reason",
    "customer",
    "email",
    "account",
    "amount",
    "currency",
    "balance_after",
    "order",
    "refund",
    "actor",
]
BALANCES_HEADER = ["customer", "email", "name", "account", "currency", "balance"]
LIABILITY_HEADER = ["date", "currency", "unredeemed_store_credit"]
JOURNAL_HEADER = [
    "date",
    "transaction",
    "account",
    "customer",
    "debit",
    "credit",
    "currency",
    "kind",
    "reason",
    "order",
    "refund",
]


class PeriodSchema(Schema):
    """An export's period: days of the shop's time zone, the end inclusive."""

    start = fields.Date(required=True, validate=PERIOD_DAY)
    end = fields.Date(required=True, validate=PERIOD_DAY)

    @validates_schema
    def _ordered(self, data, **kwargs):
        if data.get("start") and data.get("end") and data["start"] > data["end"]:
            raise ValidationError({"end": ["Must not be before the start."]})


class DaySchema(Schema):
    date = fields.Date(required=True, validate=PERIOD_DAY)


def period_bounds(start: date, end: date, tz: str) -> tuple[datetime, datetime]:
    """[first moment of `start`, first moment after `end`) in UTC."""
    return start_of(start, tz), start_of(end + timedelta(days=1), tz)


def end_of_day(day: date, tz: str) -> datetime:
    """The moment a day's closing balances are taken: the first moment of the next day in the zone."""
    return start_of(day + timedelta(days=1), tz)


def amount_text(minor: int | None, currency: str) -> str:
    if minor is None:
        return ""
    return str(minor) if currency == POINTS else to_decimal_string(int(minor), currency)


def moment_text(moment: datetime, tz: str) -> str:
    """A stored moment as the shop's wall clock with its offset, to the second."""
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(ZoneInfo(tz)).isoformat(timespec="seconds")


def _streamed(session: Session, query: Select) -> Iterator:
    return session.execute(query.execution_options(yield_per=BATCH))


def statement_rows(
    session: Session, shop: Shop, customer: Customer, start: date, end: date, tz: str, kind: str | None = None
) -> Iterator[list]:
    """The customer's wallet and points movements in the period (of one kind, if given), oldest first."""
    after, before = period_bounds(start, end, tz)
    query = (
        select(
            Entry.created_at,
            LedgerTransaction.id,
            LedgerTransaction.kind,
            LedgerTransaction.reason,
            Account.kind,
            Entry.amount,
            Entry.currency,
            Entry.balance_after,
            LedgerTransaction.order_ref,
            LedgerTransaction.refund_ref,
        )
        .join(LedgerTransaction, LedgerTransaction.id == Entry.transaction_id)
        .join(Account, Account.id == Entry.account_id)
        .where(
            Account.shop_id == shop.id,
            Account.customer_id == customer.id,
            Entry.created_at >= after,
            Entry.created_at < before,
        )
        .order_by(Entry.id)
    )
    if kind is not None:
        query = query.where(LedgerTransaction.kind == kind)
    for when, tx, kind, reason, account, amount, currency, after_it, order, refund in _streamed(session, query):
        yield [
            moment_text(when, tz),
            tx,
            kind,
            reason,
            account,
            amount_text(amount, currency),
            currency,
            amount_text(after_it, currency),
            order or "",
            refund or "",
        ]


# Who moved the money: "merchant: ann@example.com", as the customer page names them; the kind alone when nobody is.
_ACTOR = func.coalesce(LedgerTransaction.actor_kind + ": " + LedgerTransaction.actor_id, LedgerTransaction.actor_kind)


def _period_entries(shop_id: int, after: datetime, before: datetime) -> Select:
    """The period's transactions (by the (shop_id, created_at) index) with their entries, accounts and customers."""
    return (
        select(
            LedgerTransaction.created_at,
            LedgerTransaction.id,
            LedgerTransaction.kind,
            LedgerTransaction.reason,
            LedgerTransaction.order_ref,
            LedgerTransaction.refund_ref,
            _ACTOR,
            Entry.amount,
            Entry.currency,
            Entry.balance_after,
            Account.code,
            Customer.external_id,
            Customer.email,
        )
        .join(Entry, Entry.transaction_id == LedgerTransaction.id)
        .join(Account, Account.id == Entry.account_id)
        .outerjoin(Customer, Customer.id == Account.customer_id)
        .where(
            LedgerTransaction.shop_id == shop_id,
            LedgerTransaction.created_at >= after,
            LedgerTransaction.created_at < before,
        )
        .order_by(LedgerTransaction.id, Entry.id)
    )


def transaction_rows(session: Session, shop_id: int, start: date, end: date, tz: str) -> Iterator[list]:
    """Every movement of a customer account (wallet or points) in the period, oldest first."""
    query = _period_entries(shop_id, *period_bounds(start, end, tz)).where(Entry.balance_after.is_not(None))
    for when, tx, kind, reason, order, refund, actor, amount, currency, after_it, code, customer, email in _streamed(
        session, query
    ):
        yield [
            moment_text(when, tz),
            tx,
            kind,
            reason,
            customer or "",
            email or "",
            code,
            amount_text(amount, currency),
            currency,
            amount_text(after_it, currency),
            order or "",
            refund or "",
            actor,
        ]


def journal_rows(session: Session, shop_id: int, start: date, end: date, tz: str) -> Iterator[list]:
    """Every entry of the period, system accounts included, as a journal line. A customer account is money the
    shop owes: what the ledger adds to it is a credit, what it takes a debit; each system account's entry is
    the opposite, so a transaction's debits equal its credits (the ledger's entries sum to zero)."""
    for when, tx, kind, reason, order, refund, _actor, amount, currency, _after, code, customer, _email in _streamed(
        session, _period_entries(shop_id, *period_bounds(start, end, tz))
    ):
        debit, credit = (None, amount) if amount >= 0 else (-amount, None)
        yield [
            moment_text(when, tz),
            tx,
            code,
            customer or "",
            amount_text(debit, currency),
            amount_text(credit, currency),
            currency,
            kind,
            reason,
            order or "",
            refund or "",
        ]


def balance_rows(session: Session, shop_id: int, day: date, tz: str) -> Iterator[list]:
    """Every customer account's balance at the end of `day`: the sum of its entries until then. Accounts opened
    later are left out; accounts back at zero are listed with 0."""
    sums = (
        select(Entry.account_id, total(Entry.amount).label("balance"))
        .where(Entry.shop_id == shop_id, Entry.balance_after.is_not(None), Entry.created_at < end_of_day(day, tz))
        .group_by(Entry.account_id)
        .subquery()
    )
    query = (
        select(Customer.external_id, Customer.email, Customer.name, Account.kind, Account.currency, sums.c.balance)
        .join(Account, Account.id == sums.c.account_id)
        .join(Customer, and_(Customer.id == Account.customer_id, Customer.shop_id == shop_id))
        .order_by(Customer.id, Account.id)
    )
    for customer, email, name, kind, currency, balance in _streamed(session, query):
        yield [customer, email or "", name or "", kind, currency, amount_text(balance, currency)]


def liability_at(session: Session, shop: Shop, day: date, tz: str) -> dict[str, int]:
    """Currency → the store credit not yet spent at the end of `day`: the sum of the customers' wallet balances
    then, the debt the shop books for it. Points are not money and are left out."""
    currencies = [shop.currency, *_other_wallet_currencies(session, shop)]
    return balances_at(session, shop.id, currencies, end_of_day(day, tz))


def liability_rows(session: Session, shop: Shop, day: date, tz: str) -> Iterator[list]:
    for currency, owed in liability_at(session, shop, day, tz).items():
        yield [day.isoformat(), currency, amount_text(owed, currency)]


def _other_wallet_currencies(session: Session, shop: Shop) -> list[str]:
    return list(
        session.scalars(
            select(func.distinct(Account.currency)).where(
                Account.shop_id == shop.id, Account.kind == "wallet", Account.currency != shop.currency
            )
        )
    )
