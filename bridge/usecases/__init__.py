"""The use-case layer: every command the surfaces, the inbox and the worker hand over is handled here, and
only here is a unit of work (one database transaction) opened. Callers build a command's arguments and call
one function; they never hold a session across a shop call or a second transaction.

- `deliveries`: a webhook delivery stored, applied, re-applied, recovered.
- `pushes`: outbox messages claimed, and what their push did recorded.
- `wallets`: the HTTP API's commands and reads on customers' wallets.
- `merchants`: the console's users, shops and teams.
- `expiry`, `order_release`, `retention`, `secret_rotation`: the scheduled jobs (`wallet-bridge expire`, …).

Pages read through `reading` (one transaction for a page's queries) and reports through `snapshot`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session, sessionmaker

from bridge.db import unit_of_work


@contextmanager
def reading(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A page's or a report's queries in one transaction (one snapshot of the data)."""
    with unit_of_work(sessions) as session:
        yield session


@contextmanager
def snapshot(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A read-only session whose statements all see one snapshot: stored balances and the entries
    summed against them must agree. PostgreSQL: REPEATABLE READ; SQLite transactions already are."""
    session = sessions()
    try:
        if session.get_bind().dialect.name == "postgresql":
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        yield session
    finally:
        session.rollback()
        session.close()
