"""Credit lots: every wallet credit remembers its source; every debit says which lots it took.

Called by the ledger inside the transaction that moves the money, after the wallet's row was updated
(and so row-locked): two transactions never change the same wallet's lots at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bridge.db import total
from bridge.errors import InsufficientFunds
from bridge.models import Account, CreditLot, LedgerTransaction, LotMovement

PROMOTIONAL_COUNTERPARTS = frozenset({"promotions", "points_conversion"})
# Money coming back from an order the wallet paid, or from a withdrawal the shop refused: it returns to
# the lots it was taken from.
RESTORING_COUNTERPARTS = frozenset({"wallet_payments", "withdrawals_paid"})
# What such money restores: the lots the order's payments (or withdrawals) took, less what came back of them. A tip or
# a cashback taken back on the same order took from lots of their own; a refund restoring those would move money
# between lots (a bonus's refund into the customer's deposit, made withdrawable).
PAYMENT_KINDS = frozenset(
    {
        "payment",
        "capture",
        "refund_to_wallet",
        "payment_reversal",
        "refund_reversal",
        "withdrawal",
        "withdrawal_reversal",
    }
)


@dataclass(frozen=True)
class LotPolicy:
    promo_expires_at: datetime | None = None  # expiry of promotional credits this transaction makes
    lot_id: int | None = None  # debit exactly this lot (expiry), or credit back into it (a bonus given back)


DEFAULT = LotPolicy()


def _purpose(account: Account) -> str | None:
    return account.code.split(":")[1] if account.kind == "system" else None


def track(session: Session, transaction: LedgerTransaction, legs, policy: LotPolicy, debits: bool = True) -> None:
    """Credits make or restore lots; debits take from them (unless `debits` is False: PostgreSQL's
    wb_post_transaction already took them)."""
    for leg in legs:
        if leg.account.kind != "wallet":
            continue
        if leg.amount > 0:
            _credit(session, transaction, leg, legs, policy)
        elif debits:
            _debit(session, transaction, leg.account, -leg.amount, policy)


def _credit(session: Session, transaction, leg, legs, policy: LotPolicy) -> None:
    """Split the credit over the accounts it came from: each source decides the kind of lot (or, `policy.lot_id`
    named, it goes back into that lot)."""
    if policy.lot_id is not None:
        lot = session.get(CreditLot, policy.lot_id, populate_existing=True)
        lot.remaining += leg.amount
        session.add(LotMovement(lot_id=lot.id, transaction_id=transaction.id, amount=-leg.amount))
        return
    left = leg.amount
    sources = [other for other in legs if other.amount < 0 and other.account.currency == leg.account.currency]
    for source in sources:
        portion = min(left, -source.amount)
        left -= portion
        purpose = _purpose(source.account)
        if purpose in RESTORING_COUNTERPARTS:
            portion = _restore(session, transaction, leg.account, portion)
        if portion:
            promotional = purpose in PROMOTIONAL_COUNTERPARTS
            _new_lot(
                session,
                transaction,
                leg.account,
                portion,
                "promotional" if promotional else "cash",
                policy.promo_expires_at if promotional else None,
            )
        if not left:
            return
    if left:
        _new_lot(session, transaction, leg.account, left, "cash", None)


def _new_lot(session, transaction, account, amount: int, kind: str, expires_at) -> None:
    lot = CreditLot(
        shop_id=account.shop_id,
        account_id=account.id,
        transaction_id=transaction.id,
        kind=kind,
        source=transaction.kind,
        amount=amount,
        remaining=amount,
        expires_at=expires_at,
        created_at=transaction.created_at,
    )
    session.add(lot)


def _debit(session: Session, transaction, account: Account, amount: int, policy: LotPolicy) -> None:
    """Take from the soonest-expiring lots first (lots that never expire last, oldest first)."""
    query = select(CreditLot).where(CreditLot.account_id == account.id, CreditLot.remaining > 0)
    if policy.lot_id is not None:
        query = query.where(CreditLot.id == policy.lot_id)
    query = query.order_by(CreditLot.expires_at.is_(None), CreditLot.expires_at, CreditLot.id)
    left = amount
    for lot in session.execute(query.execution_options(populate_existing=True)).scalars():
        taken = min(left, lot.remaining)
        lot.remaining -= taken
        session.add(LotMovement(lot_id=lot.id, transaction_id=transaction.id, amount=taken))
        left -= taken
        if not left:
            return
    if policy.lot_id is not None:
        raise lots_exhausted()


def lots_exhausted() -> InsufficientFunds:
    return InsufficientFunds("not that much of this kind of credit", fields={"amount": "exceeds what may be taken"})


def _restore(session: Session, transaction, account: Account, amount: int) -> int:
    """Give back to the lots the order's payment took from, most recently taken first. Returns what
    could not be restored (money that came from elsewhere becomes a new cash lot)."""
    if transaction.order_ref is None:
        return amount
    order_transactions = select(LedgerTransaction.id).where(
        LedgerTransaction.shop_id == account.shop_id,
        LedgerTransaction.order_ref == transaction.order_ref,
        LedgerTransaction.kind.in_(PAYMENT_KINDS),
        LedgerTransaction.id != transaction.id,
    )
    still_taken = (  # per lot: taken by the order's payments, less what reversals and refunds gave back
        select(LotMovement.lot_id, total(LotMovement.amount), func.max(LotMovement.id))
        .join(CreditLot, CreditLot.id == LotMovement.lot_id)
        .where(CreditLot.account_id == account.id, LotMovement.transaction_id.in_(order_transactions))
        .group_by(LotMovement.lot_id)
        .order_by(func.max(LotMovement.id).desc())
    )
    left = amount
    for lot_id, taken, _last in session.execute(still_taken).all():
        back = min(left, taken)
        if back <= 0:
            continue
        lot = session.get(CreditLot, lot_id, populate_existing=True)
        lot.remaining += back
        session.add(LotMovement(lot_id=lot_id, transaction_id=transaction.id, amount=-back))
        left -= back
        if not left:
            break
    return left


def deposited(account: Account) -> tuple:
    """Conditions for the customer's own deposits: cash lots made by top-ups (not their bonuses)."""
    return CreditLot.account_id == account.id, CreditLot.source == "topup", CreditLot.kind == "cash"


def withdrawable(session: Session, account: Account) -> int:
    """Unspent money the customer deposited (top-ups): the only money that may leave as cash."""
    return session.scalar(select(total(CreditLot.remaining)).where(*deposited(account)))


def upcoming_expiries(session: Session, account: Account) -> list[CreditLot]:
    return list(
        session.execute(
            select(CreditLot)
            .where(CreditLot.account_id == account.id, CreditLot.remaining > 0, CreditLot.expires_at.is_not(None))
            .order_by(CreditLot.expires_at)
        ).scalars()
    )
