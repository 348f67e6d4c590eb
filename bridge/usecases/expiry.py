"""Promotional credit that reached its expiry date leaves the wallet: one expiry transaction per lot."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_fixed

from bridge.accounts import SystemAccount, system_account
from bridge.db import unit_of_work
from bridge.ledger import Leg, post_transaction, release_expired_holds
from bridge.lots import LotPolicy
from bridge.models import Account, CreditLot, LotMovement, Shop, utcnow
from bridge.money import format_amount
from bridge.outbox import note_to_customer
from bridge.store_credit import is_mirrored, native_key


def expire_credit(sessions: sessionmaker[Session], now: datetime | None = None) -> int:
    """Expire every lot past its date, each in its own transaction (safe to run from several cron hosts:
    the idempotency key makes a second run move nothing). Returns how many lots were expired."""
    due = _due_lots(sessions, now or utcnow())
    return sum(_expire_lot(sessions, lot_id) for lot_id in due)


# A dropped connection (a failover, a restart) costs a retry, not the run: each lot is its own keyed transaction.
_RETRY_ON_DISCONNECT = retry(
    retry=retry_if_exception_type(OperationalError), stop=stop_after_attempt(3), wait=wait_fixed(0.5), reraise=True
)


@_RETRY_ON_DISCONNECT
def _due_lots(sessions: sessionmaker[Session], now: datetime) -> list[int]:
    with unit_of_work(sessions) as session:
        expired = select(CreditLot.id).where(CreditLot.expires_at < now, CreditLot.remaining > 0)
        return list(session.execute(expired.order_by(CreditLot.expires_at)).scalars())


@_RETRY_ON_DISCONNECT
def _expire_lot(sessions: sessionmaker[Session], lot_id: int) -> int:
    with unit_of_work(sessions) as session:
        account_id = session.scalar(select(CreditLot.account_id).where(CreditLot.id == lot_id))
        wallet = session.get(Account, account_id, with_for_update=True, populate_existing=True)
        # Read only now: a payment that held the wallet may have spent from this lot meanwhile.
        lot = session.get(CreditLot, lot_id, populate_existing=True)
        release_expired_holds(session, wallet)
        amount = min(lot.remaining, wallet.available)  # money held for a payment stays until the hold ends
        if amount <= 0:
            return 0
        # The key counts what already took from the lot: a refund may give money back to an expired lot,
        # which then expires again; two cron runs at once count the same and one of them replays.
        earlier = session.scalar(
            select(func.count()).select_from(LotMovement).where(LotMovement.lot_id == lot.id, LotMovement.amount > 0)
        )
        posted = post_transaction(
            session,
            shop_id=lot.shop_id,
            kind="expiry",
            reason=f"{format_amount(amount, wallet.currency)} of promotional credit expired",
            legs=[
                Leg(wallet, -amount),
                Leg(system_account(session, lot.shop_id, SystemAccount.EXPIRED_CREDIT, wallet.currency), amount),
            ],
            idempotency_key=_expiry_key(session, lot, earlier),
            lots=LotPolicy(lot_id=lot.id),
        )
        if posted.replayed:
            return 0
        note_to_customer(
            session,
            shop_id=lot.shop_id,
            customer_id=wallet.customer_id,
            note=f"{format_amount(amount, wallet.currency)} of promotional credit in your wallet expired.",
            dedupe_key=f"expiry:{posted.transaction.id}",
        )
        return 1


def _expiry_key(session: Session, lot: CreditLot, earlier: int) -> str:
    """A shop that mirrors wallets to its own store credit (Shopify) was given the lot's expiry date with
    the credit and expires it itself: the bridge's expiry is then the shop's own movement, not sent back."""
    key = f"lot:{lot.id}:expiry:{earlier}"
    return native_key(key) if is_mirrored(session.get(Shop, lot.shop_id)) else key


@_RETRY_ON_DISCONNECT
def remind_before_expiry(sessions: sessionmaker[Session], days: int, now: datetime | None = None) -> int:
    """Note, once per lot, promotional credit that expires within `days` (on the customer's latest order)."""
    now = now or utcnow()
    reminded = 0
    with unit_of_work(sessions) as session:
        soon = session.execute(
            select(CreditLot, Account)
            .join(Account, Account.id == CreditLot.account_id)
            .where(CreditLot.remaining > 0, CreditLot.expires_at >= now)
            .where(CreditLot.expires_at < now + timedelta(days=days))
        ).all()
        for lot, wallet in soon:
            note = (
                f"{format_amount(lot.remaining, wallet.currency)} of promotional credit in your wallet expires on "
                f"{lot.expires_at:%d %b %Y}: spend it before then."
            )
            reminded += note_to_customer(
                session,
                shop_id=lot.shop_id,
                customer_id=wallet.customer_id,
                note=note,
                dedupe_key=f"lot:{lot.id}:reminder",
            )
    return reminded
