"""What one process keeps between transactions, per database: rows that never change once written (a shop's
system accounts, its platform). A row is remembered only once the transaction that read it has committed, so
a row inserted by a transaction that then rolled back is never cached. (Secrets and settings are cached by
their content instead, in `bridge.security` and `bridge.settings_schema`: a rotated secret or a saved setting
is a new key there, seen by every process on its next read of the shop's row.)

Caches hang off the engine, so a new engine (a test's fresh database, each process's own) starts empty and
never sees another database's ids.
"""

from __future__ import annotations

from collections.abc import Hashable
from weakref import WeakKeyDictionary

from sqlalchemy import event
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.util import identity_key

_caches: WeakKeyDictionary = WeakKeyDictionary()
_PENDING = "wb_process_cache_pending"  # session.info key: what to remember if the transaction commits


def cached(session: Session, cache: str, key: Hashable):
    return _caches.get(session.get_bind(), {}).get(cache, {}).get(key)


def remember_on_commit(session: Session, cache: str, key: Hashable, value) -> None:
    session.info.setdefault(_PENDING, []).append((cache, key, value))


@event.listens_for(Session, "after_commit")
def _remember(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    if pending:
        caches = _caches.setdefault(session.get_bind(), {})
        for cache, key, value in pending:
            caches.setdefault(cache, {})[key] = value


@event.listens_for(Session, "after_soft_rollback")
def _forget(session: Session, _previous_transaction) -> None:
    session.info.pop(_PENDING, None)


def columns_of(row) -> dict:
    return {column.key: getattr(row, column.key) for column in row.__table__.columns}


def attached(session: Session, model, columns: dict):
    """The row as a persistent object of this session, without a statement: the session's own if it has
    loaded it already."""
    existing = session.identity_map.get(identity_key(model, columns["id"]))
    if existing is not None:
        return existing
    row = model(**columns)
    make_transient_to_detached(row)
    session.add(row)
    return row
