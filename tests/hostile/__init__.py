"""Hostile input (issue 7): fuzzing of the API, webhooks and merchant forms, signature tampering, tenant
isolation and secrets in logs and pages. Shared helpers: row counts of the money tables, a case counter."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select

from bridge.db import unit_of_work
from bridge.models import (
    AuditEvent,
    Customer,
    Entry,
    Hold,
    LedgerTransaction,
    OutboxMessage,
    RefundRequest,
    TopupRequest,
)

MONEY_TABLES = (Customer, LedgerTransaction, Entry, Hold, OutboxMessage, TopupRequest, RefundRequest)
LEDGER_TABLES = (LedgerTransaction, Entry, Hold, OutboxMessage)

CASES: Counter[str] = Counter()  # cases tried, per fuzzer: asserted on and printed by each test


def row_counts(services, models=MONEY_TABLES + (AuditEvent,)) -> dict[str, int]:
    with unit_of_work(services.sessions) as session:
        return {model.__tablename__: session.scalar(select(func.count()).select_from(model)) for model in models}


def report(capsys, name: str, minimum: int) -> None:
    """Print `hostile: <name>: N cases` past pytest's capture and insist that the fuzzer really ran."""
    with capsys.disabled():
        print(f"\nhostile: {name}: {CASES[name]} cases tried")
    assert CASES[name] >= minimum, f"{name}: only {CASES[name]} cases tried"
