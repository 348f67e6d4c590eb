"""The double-entry ledger: balanced, idempotent, append-only transactions and holds on wallets.

Concurrency is decided by the database: each customer account is changed by one conditional
UPDATE … RETURNING (which row-locks it until commit), taken in ascending account id so that two
transactions over the same accounts never wait on each other in opposite orders.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Executable,
    Row,
    Select,
    Update,
    bindparam,
    column,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session, make_transient_to_detached

from bridge.accounts import SystemAccount, system_account
from bridge.db import insert_ignoring_conflict, total
from bridge.errors import (
    IdempotencyConflict,
    InsufficientFunds,
    InvalidState,
    NotFound,
    UnbalancedTransaction,
    ValidationFailed,
    WalletLocked,
)
from bridge.lots import DEFAULT as DEFAULT_LOTS
from bridge.lots import LotPolicy, lots_exhausted
from bridge.lots import track as track_lots
from bridge.models import Account, CreditLot, Entry, Hold, LedgerTransaction, utcnow
from bridge.states import HoldStatus

# Told of every new posting, in its transaction: (session, transaction, legs in account order). The ledger knows
# nothing of outboxes or platforms; the wiring subscribes what must follow a posting (the store-credit mirror).
PostingSubscriber = Callable[[Session, LedgerTransaction, list], None]
_subscribers: list[PostingSubscriber] = []


def subscribe(subscriber: PostingSubscriber) -> None:
    if subscriber not in _subscribers:
        _subscribers.append(subscriber)


TRANSACTION_KINDS = frozenset(
    {
        "payment",
        "refund_to_wallet",
        "payment_reversal",
        "topup",
        "points_earned",
        "points_clawback",
        "points_conversion",
        "signup_bonus",
        "adjustment",
        "withdrawal",
        "withdrawal_reversal",
        "expiry",
        "capture",
        "promotion",
        "tip",
        "refund_to_points",
        "refund_reversal",
        "cashback",
        "cashback_reversal",
    }
)


@dataclass(frozen=True)
class Actor:
    kind: str  # system | webhook | merchant | api_key
    id: str | None = None


SYSTEM = Actor("system")


@dataclass(frozen=True)
class Leg:
    account: Account
    amount: int


@dataclass(frozen=True)
class Posted:
    transaction: LedgerTransaction
    replayed: bool


class Along(Protocol):
    """A write that follows a posting and names its transaction (the message a payment sends, the order it pays).
    On PostgreSQL it goes in the posting's own round trip, a data-modifying CTE beside the function's call, written
    only when the posting is new; elsewhere, and after a replay, it is written once the posting is known."""

    shape: Hashable  # writes of one shape share their statement, built once

    def beside(self, transaction_id: ColumnElement, parameter: Callable[[str], BindParameter]) -> Executable:
        """The statement, its values the `parameter`s named by the keys of `parameters()`, given the new
        transaction's id as SQL (NULL unless the posting is new: then it writes nothing)."""

    def parameters(self) -> dict: ...

    def written(self, session: Session) -> None:
        """The statement from `beside` ran: the session learns what it wrote."""

    def write(self, session: Session, transaction_id: int) -> None: ...


def _fingerprint(kind: str, legs: list[Leg], order_ref: str | None, refund_ref: str | None) -> str:
    content = {
        "kind": kind,
        "legs": sorted([leg.account.id, leg.amount] for leg in legs),
        "order_ref": order_ref,
        "refund_ref": refund_ref,
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _check_legs(shop_id: int, kind: str, legs: list[Leg]) -> None:
    if kind not in TRANSACTION_KINDS:
        raise ValidationFailed(f"unknown transaction kind {kind!r}", fields={"kind": "unknown kind"})
    if len(legs) < 2:
        raise UnbalancedTransaction("a transaction needs at least two entries")
    totals: dict[str, int] = defaultdict(int)
    for leg in legs:
        if type(leg.amount) is not int or leg.amount == 0:
            raise ValidationFailed("entry amounts are non-zero integers", fields={"amount": "not an integer"})
        if leg.account.shop_id != shop_id:
            raise NotFound("account not found")
        totals[leg.account.currency] += leg.amount
    if any(totals.values()):
        raise UnbalancedTransaction(f"entries do not sum to zero per currency: {dict(totals)}")


def find_transaction(session: Session, shop_id: int, idempotency_key: str) -> LedgerTransaction | None:
    return session.execute(
        select(LedgerTransaction).where(
            LedgerTransaction.shop_id == shop_id, LedgerTransaction.idempotency_key == idempotency_key
        )
    ).scalar_one_or_none()


def _replay(existing: LedgerTransaction, fingerprint: str) -> Posted:
    if existing.fingerprint != fingerprint:
        raise IdempotencyConflict(
            "this idempotency key was used for a different transaction",
            fields={"idempotency_key": "already used with different content"},
        )
    return Posted(existing, replayed=True)


def post_transaction(
    session: Session,
    *,
    shop_id: int,
    kind: str,
    reason: str,
    legs: list[Leg],
    idempotency_key: str,
    actor: Actor = SYSTEM,
    order_ref: str | None = None,
    refund_ref: str | None = None,
    lots: LotPolicy = DEFAULT_LOTS,
    along: Sequence[Along] = (),
) -> Posted:
    """Post a balanced transaction once per idempotency key, and the writes `along` it. A replay with the same
    content returns the first transaction and moves nothing; the same key with other content raises a conflict.
    Raises InsufficientFunds when a customer account would go below its limit; the caller's unit of
    work then rolls back, releasing the key."""
    _check_legs(shop_id, kind, legs)
    if not reason or not reason.strip():
        raise ValidationFailed("a transaction needs a reason", fields={"reason": "required"})
    now = utcnow()
    values = {
        "shop_id": shop_id,
        "kind": kind,
        "reason": reason.strip()[:500],
        "actor_kind": actor.kind,
        "actor_id": actor.id,
        "idempotency_key": idempotency_key,
        "fingerprint": _fingerprint(kind, legs, order_ref, refund_ref),
        "order_ref": order_ref,
        "refund_ref": refund_ref,
        "created_at": now,
    }
    ordered = sorted(legs, key=lambda g: g.account.id)
    if session.get_bind().dialect.name == "postgresql":
        transaction, along_written = _post_in_database(session, values, ordered, lots, along), True
    else:
        transaction, along_written = _post_portably(session, values, ordered, lots), False
    if transaction is None:  # the key was taken: a replay, or a conflict
        posted = _replay(find_transaction(session, shop_id, idempotency_key), values["fingerprint"])
    else:
        for subscriber in _subscribers:
            subscriber(session, transaction, ordered)
        posted = Posted(transaction, replayed=False)
    for write in along:
        if along_written and not posted.replayed:
            write.written(session)
        else:
            write.write(session, posted.transaction.id)
    return posted


def _post_portably(session: Session, values: dict, ordered: list[Leg], lots: LotPolicy) -> LedgerTransaction | None:
    """Statement by statement through the ORM (SQLite; the reference for `_post_in_database`)."""
    transaction = insert_ignoring_conflict(session, LedgerTransaction, values, ["shop_id", "idempotency_key"])
    if transaction is None:
        return None
    entries = [_apply_leg(session, leg, transaction.id, values["created_at"]) for leg in ordered]
    session.execute(insert(Entry), entries)  # one multi-row INSERT
    track_lots(session, transaction, ordered, lots)
    return transaction


# One round trip on PostgreSQL: the same steps in a PL/pgSQL function (migration 0013).
_POST_IN_DATABASE = text(
    "SELECT status, transaction_id, balances, helds, released_holds FROM wb_post_transaction("
    ":p_shop_id, :p_kind, :p_reason, :p_actor_kind, :p_actor_id, :p_idempotency_key, :p_fingerprint, :p_order_ref, "
    ":p_refund_ref, :p_created_at, CAST(:p_accounts AS integer[]), CAST(:p_amounts AS bigint[]), "
    "CAST(:p_currencies AS text[]), CAST(:p_kinds AS text[]), CAST(:p_lot_id AS bigint))"
).columns(*map(column, ("status", "transaction_id", "balances", "helds", "released_holds")))


def _posting_with(along: Sequence[Along], parameters: dict) -> tuple:
    """The function's call with the writes that follow it, in one statement; and what to execute it with."""
    if not along:
        return _POST_IN_DATABASE, parameters
    for i, write in enumerate(along):
        parameters |= {f"along{i}_{name}": value for name, value in write.parameters().items()}
    shapes = tuple(write.shape for write in along)
    statement = _postings_with.get(shapes)
    if statement is None:
        posting = _POST_IN_DATABASE.cte("posting")
        new_id = select(posting.c.transaction_id).where(posting.c.status == "posted").scalar_subquery()
        writes = [
            write.beside(new_id, lambda name, i=i: bindparam(f"along{i}_{name}")).cte(f"along_{i}")
            for i, write in enumerate(along)
        ]
        statement = _postings_with[shapes] = select(*posting.c).add_cte(*writes)
    return statement, parameters


_postings_with: dict[tuple, Select] = {}  # a few shapes: those of the order rules' payments


def _post_in_database(
    session: Session, values: dict, ordered: list[Leg], lots: LotPolicy, along: Sequence[Along]
) -> LedgerTransaction | None:
    """Claim the key, move the balances, insert the entries and take wallet debits from their lots in one
    statement (with the writes `along` it); credits to wallets make or restore their lots here in Python, as on
    SQLite."""
    session.flush()  # the function reads rows the session may still hold changes to
    accounts = [leg.account for leg in ordered]
    parameters = {
        **values,
        "accounts": [a.id for a in accounts],
        "amounts": [leg.amount for leg in ordered],
        "currencies": [a.currency for a in accounts],
        "kinds": [a.kind for a in accounts],
        "lot_id": lots.lot_id,
    }
    # named apart from every column: SQLAlchemy also reads names given at execution as values for the columns of an
    # UPDATE nested in the statement (`along`)
    parameters = {f"p_{name}": value for name, value in parameters.items()}
    row = session.execute(*_posting_with(along, parameters)).one()
    if row.status == "replayed":
        return None
    if row.status == "insufficient":
        raise _insufficient()
    if row.status == "lot_insufficient":
        raise lots_exhausted()
    for account, balance, held in zip(accounts, row.balances, row.helds, strict=True):
        if account.tracks_balance:
            _refresh(account, balance=balance, held=held)
    _forget_changed_rows(session, accounts, row.released_holds)
    transaction = LedgerTransaction(id=row.transaction_id, **values)
    make_transient_to_detached(transaction)
    session.add(transaction)  # persistent, as if just loaded: no statement
    track_lots(session, transaction, ordered, lots, debits=False)
    return transaction


def _forget_changed_rows(session: Session, accounts: list[Account], released_holds: bool) -> None:
    """Expire what the function changed behind the session's back (lots debited, holds it expired), so a
    later read of those objects loads them again."""
    ids = {account.id for account in accounts}
    for obj in list(session.identity_map.values()):
        if (
            isinstance(obj, CreditLot)
            and obj.account_id in ids
            or (released_holds and isinstance(obj, Hold) and obj.account_id in ids)
        ):
            session.expire(obj)


def _apply_leg(session: Session, leg: Leg, transaction_id: int, now: datetime) -> dict:
    account = leg.account
    balance_after = _move_balance(session, account, leg.amount) if account.tracks_balance else None
    return {
        "transaction_id": transaction_id,
        "shop_id": account.shop_id,
        "account_id": account.id,
        "amount": leg.amount,
        "currency": account.currency,
        "balance_after": balance_after,
        "created_at": now,
    }


def _move_balance(session: Session, account: Account, amount: int) -> int:
    stmt = update(Account).where(Account.id == account.id)
    if amount < 0:  # credits always fit; debits only down to the account's limit, counting holds
        stmt = stmt.where(Account.balance - Account.held + amount >= -Account.overdraft_limit)
    row = _update_within_limit(session, account, stmt.values(balance=Account.balance + amount))
    if row is None:
        raise _insufficient()
    return row.balance


def _insufficient() -> InsufficientFunds:
    return InsufficientFunds("insufficient balance", fields={"amount": "exceeds the available balance"})


def _update_within_limit(session: Session, account: Account, change: Update) -> Row | None:
    """Run a conditional UPDATE of the account; None when its limit refuses it even after what the
    account's expired holds still reserve was given back (only then: the common path is one statement)."""
    change = change.returning(Account.balance, Account.held)
    options = {"synchronize_session": False}
    row = session.execute(change, execution_options=options).one_or_none()
    if row is None:
        release_expired_holds(session, account)
        row = session.execute(change, execution_options=options).one_or_none()
    if row is not None:
        _refresh(account, balance=row.balance, held=row.held)
    return row


def _refresh(account: Account, **values: int) -> None:
    from sqlalchemy.orm.attributes import set_committed_value

    for name, value in values.items():
        set_committed_value(account, name, value)


def ensure_unlocked(account: Account) -> None:
    if account.locked:
        raise WalletLocked("this wallet is locked", fields={"customer_id": "wallet locked"})


# Holds ---------------------------------------------------------------------------------------------


def authorize_hold(
    session: Session,
    *,
    account: Account,
    amount: int,
    reason: str,
    idempotency_key: str,
    expires_in: timedelta = timedelta(days=7),
    order_ref: str | None = None,
) -> tuple[Hold, bool]:
    """Reserve money on a wallet. Returns (hold, replayed)."""
    if type(amount) is not int or amount <= 0:
        raise ValidationFailed("a hold is a positive amount", fields={"amount": "must be positive"})
    ensure_unlocked(account)
    request = (account.id, amount, reason, order_ref, expires_in)
    existing = _find_hold_by_key(session, account.shop_id, idempotency_key)
    if existing is not None:
        return _replay_hold(existing, request)
    now = utcnow()
    hold = insert_ignoring_conflict(
        session,
        Hold,
        {
            "shop_id": account.shop_id,
            "account_id": account.id,
            "amount": amount,
            "captured_amount": 0,
            "status": HoldStatus.OPEN,
            "reason": reason,
            "idempotency_key": idempotency_key,
            "order_ref": order_ref,
            "expires_at": now + expires_in,
            "created_at": now,
        },
        ["shop_id", "idempotency_key"],
    )
    if hold is None:
        return _replay_hold(_find_hold_by_key(session, account.shop_id, idempotency_key), request)
    reserve = (
        update(Account)
        .where(Account.id == account.id, Account.balance - Account.held - amount >= -Account.overdraft_limit)
        .values(held=Account.held + amount)
    )
    if _update_within_limit(session, account, reserve) is None:
        raise InsufficientFunds("insufficient available balance", fields={"amount": "exceeds available"})
    return hold, False


def _find_hold_by_key(session: Session, shop_id: int, key: str) -> Hold | None:
    return session.execute(
        select(Hold).where(Hold.shop_id == shop_id, Hold.idempotency_key == key)
    ).scalar_one_or_none()


def _replay_hold(hold: Hold, request: tuple) -> tuple[Hold, bool]:
    """The first hold for a key, when every field asked for is the same: otherwise the key is in conflict."""
    first = (hold.account_id, hold.amount, hold.reason, hold.order_ref, hold.expires_at - hold.created_at)
    if first != request:
        raise IdempotencyConflict(
            "this idempotency key was used for a different hold",
            fields={"idempotency_key": "already used with different content"},
        )
    return hold, True


def lock_hold(session: Session, shop_id: int, hold_id: int) -> Hold:
    hold = session.execute(
        select(Hold)
        .where(Hold.id == hold_id, Hold.shop_id == shop_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if hold is None:
        raise NotFound("hold not found")
    return hold


def _release(session: Session, hold: Hold, status: HoldStatus) -> Account:
    row = session.execute(
        update(Account)
        .where(Account.id == hold.account_id)
        .values(held=Account.held - hold.amount)
        .returning(Account.balance, Account.held),
        execution_options={"synchronize_session": False},
    ).one()
    hold.status = status
    hold.closed_at = utcnow()
    account = session.get(Account, hold.account_id)
    _refresh(account, balance=row.balance, held=row.held)
    return account


def capture_hold(
    session: Session, *, shop_id: int, hold_id: int, amount: int | None = None, actor: Actor = SYSTEM
) -> Posted:
    """Capture all or part of an open hold as a payment; the rest is released. Capturing a captured
    hold again with the same amount returns the first capture."""
    hold = lock_hold(session, shop_id, hold_id)
    amount = hold.amount if amount is None else amount
    if hold.status == HoldStatus.CAPTURED and hold.captured_amount == amount:
        return Posted(session.get(LedgerTransaction, hold.capture_transaction_id), replayed=True)
    if hold.status != HoldStatus.OPEN:
        raise InvalidState(f"the hold is {hold.status}", fields={"hold_id": f"hold is {hold.status}"})
    if hold.expires_at <= utcnow():  # its money is free again even before the hourly job closes it
        raise InvalidState("the hold has expired", fields={"hold_id": "hold is expired"})
    if type(amount) is not int or not 0 < amount <= hold.amount:
        raise ValidationFailed("capture between 1 and the held amount", fields={"amount": "out of range"})
    wallet = _release(session, hold, HoldStatus.CAPTURED)
    posted = post_transaction(
        session,
        shop_id=shop_id,
        kind="capture",
        reason=hold.reason,
        legs=[
            Leg(wallet, -amount),
            Leg(system_account(session, shop_id, SystemAccount.WALLET_PAYMENTS, wallet.currency), amount),
        ],
        idempotency_key=f"hold:{hold.id}:capture",
        actor=actor,
        order_ref=hold.order_ref,
    )
    hold.captured_amount = amount
    hold.capture_transaction_id = posted.transaction.id
    return posted


def void_hold(session: Session, *, shop_id: int, hold_id: int) -> Hold:
    """Release a hold without moving money. Voiding a voided hold is a no-op."""
    hold = lock_hold(session, shop_id, hold_id)
    if hold.status in (HoldStatus.VOIDED, HoldStatus.EXPIRED):
        return hold
    if hold.status != HoldStatus.OPEN:
        raise InvalidState(f"the hold is {hold.status}", fields={"hold_id": f"hold is {hold.status}"})
    _release(session, hold, HoldStatus.VOIDED)
    return hold


def release_expired_holds(session: Session, account: Account) -> None:
    """Expire the account's holds past their expiry now, not at the hourly job, so what they reserved is
    available again. The account row is locked first, the way an UPDATE locks it (FOR NO KEY UPDATE: other
    transactions may still insert entries and holds referencing it). Capture, void and the job lock a hold
    before its account, so holds locked by another transaction are skipped (they stay reserved), never
    waited for."""
    session.execute(select(Account.id).where(Account.id == account.id).with_for_update(key_share=True))
    expired = session.execute(
        select(Hold)
        .where(Hold.account_id == account.id, Hold.status == HoldStatus.OPEN, Hold.expires_at <= utcnow())
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    ).scalars()
    for hold in expired.all():
        _release(session, hold, HoldStatus.EXPIRED)


def expire_stale_holds(session: Session, now: datetime | None = None) -> int:
    """Release every open hold past its expiry (all shops). Returns how many."""
    now = now or datetime.now(UTC)
    stale = session.execute(
        select(Hold.id, Hold.shop_id).where(Hold.status == HoldStatus.OPEN, Hold.expires_at < now).order_by(Hold.id)
    ).all()
    expired = 0
    for hold_id, shop_id in stale:
        hold = lock_hold(session, shop_id, hold_id)
        if hold.status == HoldStatus.OPEN:
            _release(session, hold, HoldStatus.EXPIRED)
            expired += 1
    return expired


# Verification --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mismatch:
    what: str
    id: int
    expected: object
    found: object


def verify(session: Session) -> list[Mismatch]:
    """Recompute what the ledger stores: every transaction balances per currency, every stored balance
    equals the sum of its entries (and, for wallets, of their credit lots), every held amount equals its
    open holds."""
    problems: list[Mismatch] = []
    unbalanced = session.execute(
        select(Entry.transaction_id, Entry.currency, total(Entry.amount))
        .group_by(Entry.transaction_id, Entry.currency)
        .having(total(Entry.amount) != 0)
    ).all()
    problems += [Mismatch("transaction_balance", tid, 0, total) for tid, _currency, total in unbalanced]
    sums = dict(session.execute(select(Entry.account_id, total(Entry.amount)).group_by(Entry.account_id)).all())
    held = dict(
        session.execute(
            select(Hold.account_id, total(Hold.amount)).where(Hold.status == HoldStatus.OPEN).group_by(Hold.account_id)
        ).all()
    )
    lots = select(CreditLot.account_id, total(CreditLot.remaining)).group_by(CreditLot.account_id)
    lot_sums = dict(session.execute(lots).all())
    for account in session.execute(select(Account).where(Account.kind != "system")).scalars():
        in_lots = lot_sums.get(account.id) or 0
        if account.kind == "wallet" and account.overdraft_limit == 0 and account.balance != in_lots:
            problems.append(Mismatch("wallet_lots", account.id, account.balance, in_lots))
        if account.balance != (sums.get(account.id) or 0):
            problems.append(Mismatch("account_balance", account.id, sums.get(account.id) or 0, account.balance))
        if account.held != (held.get(account.id) or 0):
            problems.append(Mismatch("account_held", account.id, held.get(account.id) or 0, account.held))
        if account.balance - account.held < -account.overdraft_limit:
            problems.append(Mismatch("account_below_limit", account.id, -account.overdraft_limit, account.available))
    return problems
