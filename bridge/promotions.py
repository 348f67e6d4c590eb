"""Promotional credit taken back from what is left of the lots that gave it (as a top-up's bonus): what was spent of it
stays spent. Taken from any other lot, it would turn money the customer deposited into promotional credit. And given
back, as promotional credit again, when what took it is undone (a refund the shop deleted)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.accounts import SystemAccount, system_account
from bridge.ledger import SYSTEM, Actor, Leg, post_transaction
from bridge.lots import LotPolicy
from bridge.models import Account, CreditLot, LedgerTransaction


def lots_left(session: Session, wallet: Account, given_by: str, order_ref: str | None = None) -> list[CreditLot]:
    """The wallet's lots that transactions of kind `given_by` (of the order, when named) made and that still hold some
    of it, the newest first."""
    query = (
        select(CreditLot)
        .join(LedgerTransaction, LedgerTransaction.id == CreditLot.transaction_id)
        .where(CreditLot.account_id == wallet.id, CreditLot.remaining > 0, LedgerTransaction.kind == given_by)
        .order_by(CreditLot.id.desc())
        .execution_options(populate_existing=True)
    )
    if order_ref is not None:
        query = query.where(LedgerTransaction.order_ref == order_ref)
    return list(session.scalars(query))


def take_back(
    session: Session,
    wallet: Account,
    lots: list[CreditLot],
    wanted: int,
    *,
    kind: str,
    reason: str,
    counterpart: SystemAccount,
    key: str,
    order_ref: str,
    actor: Actor = SYSTEM,
    refund_ref: str | None = None,
) -> int:
    """Up to `wanted` from `lots`, one posting per lot; returns what was taken. Each posting is keyed by all its
    amount depends on (what is wanted, the lot and what it holds): a later delivery finding more free in the wallet, or
    money come back into the lot, takes more under a key of its own, and a replay replays."""
    taken = 0
    for lot in lots if wanted > 0 else ():
        amount = min(wanted - taken, lot.remaining)
        post_transaction(
            session,
            shop_id=wallet.shop_id,
            kind=kind,
            reason=reason,
            legs=[
                Leg(wallet, -amount),
                Leg(system_account(session, wallet.shop_id, counterpart, wallet.currency), amount),
            ],
            idempotency_key=f"{key}:{wanted}:lot-{lot.id}:{lot.remaining}",
            actor=actor,
            order_ref=order_ref,
            refund_ref=refund_ref,
            lots=LotPolicy(lot_id=lot.id),
        )
        taken += amount
        if taken == wanted:
            break
    return taken


def give_back(
    session: Session,
    wallet: Account,
    amount: int,
    *,
    kind: str,
    reason: str,
    counterpart: SystemAccount,
    key: str,
    order_ref: str,
    expires_at: datetime | None,
    actor: Actor = SYSTEM,
) -> None:
    """`amount` credited again as promotional credit (a new lot, expiring as the shop's promotions do), once per key."""
    post_transaction(
        session,
        shop_id=wallet.shop_id,
        kind=kind,
        reason=reason,
        legs=[
            Leg(wallet, amount),
            Leg(system_account(session, wallet.shop_id, counterpart, wallet.currency), -amount),
        ],
        idempotency_key=key,
        actor=actor,
        order_ref=order_ref,
        lots=LotPolicy(promo_expires_at=expires_at),
    )
