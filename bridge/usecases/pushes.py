"""Outbox messages on their way to the shops: claimed, and what their push did recorded.

Claiming is one short transaction (FOR UPDATE SKIP LOCKED on PostgreSQL, so several workers never take the
same row) that leases the messages and hands them over with their shops; a message the domain no longer wants
(a payment announced to the shop, returned since) is closed there without calling the shop. The shop is called
outside any transaction, so a slow shop never holds a lock. What the push did (the outcomes its pusher
returns) is recorded with the message's new status in one transaction. A worker killed mid-call leaves a lease
that expires, and the message is taken again, marked as one whose earlier attempt may have reached the shop
(`outcome_unknown`): pushers check the shop's current state first, so a repeat is harmless."""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from bridge.db import unit_of_work
from bridge.errors import DomainError
from bridge.ledger import Actor
from bridge.models import OutboxMessage, Shop, utcnow
from bridge.order_rules import (
    apply_order,
    record_checkout_spend,
    return_overcharge,
    return_paid_otherwise,
    wallet_fees_stale,
    wallet_payment_stands,
)
from bridge.orders import OrderSnapshot
from bridge.refund_requests import record_created
from bridge.states import OutboxStatus
from bridge.usecases.deliveries import apply_order_again
from bridge.withdrawals import is_restored, restore_refused_withdrawal

log = logging.getLogger(__name__)
LEASE = timedelta(minutes=2)
LEASE_EXPIRED = "lease expired: the worker stopped mid-attempt, its outcome is unknown"
CHECKOUT = Actor("system", "shop-checkout")  # store credit the shop's checkout took, learnt from the shop
READ_BACK = Actor("system", "order-read-back")  # an order's state read from the shop, not delivered


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_delay_seconds: float = 2.0
    max_delay_seconds: float = 3600.0

    def delay(self, attempts: int) -> timedelta:
        """Exponential backoff with jitter: uniform in [½, 1] × base × 2^(attempts−1), capped."""
        ceiling = min(self.max_delay_seconds, self.base_delay_seconds * 2 ** max(attempts - 1, 0))
        return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


@dataclass(frozen=True)
class Claimed:
    message: OutboxMessage  # detached: read it, never change it
    shop: Shop


# What a push did that the ledger must follow. Each is idempotent: a push repeated after a lost answer
# reports the same outcome again, and recording it twice moves nothing more.
@dataclass(frozen=True)
class WalletTaken:
    """The shop lowered the order by `credited` of the `charged` wallet money (the rest goes back); a mark-paid
    push's `credited` is the order's total then, which an edit may have raised above what the wallet paid."""

    order_id: str
    charged: int
    credited: int
    marker: str  # which push: each is settled once


@dataclass(frozen=True)
class PaidOtherwise:
    """The order was paid in full another way before the wallet's part reached it: the part goes back."""

    order_id: str


@dataclass(frozen=True)
class WithdrawalRefused:
    transaction_id: int
    why: str  # the shop's reason, for the merchant


@dataclass(frozen=True)
class RefundCreated:
    request_id: int
    refund_id: str | None
    refused: str | None = None


@dataclass(frozen=True)
class CheckoutSpend:
    """Store credit the shop's own checkout took for an order."""

    order_id: str
    spent: int


@dataclass(frozen=True)
class OrderReadBack:
    """The order as the shop says it is now (`order.read_back`)."""

    order: OrderSnapshot


Outcome = WalletTaken | PaidOtherwise | WithdrawalRefused | RefundCreated | CheckoutSpend | OrderReadBack


def outcome_unknown(message: OutboxMessage) -> bool:
    """True when an earlier attempt may have reached the shop: it failed (perhaps after the shop acted, its
    answer lost), or its worker stopped before recording the outcome."""
    return message.attempts > 0 or message.last_error is not None


def claim(sessions: sessionmaker[Session], limit: int = 10, shop_id: int | None = None) -> list[Claimed]:
    """Lease the due messages (of one shop, or of all) for this worker."""
    now = utcnow()
    due = select(OutboxMessage).where(
        or_(OutboxMessage.status == OutboxStatus.PENDING, OutboxMessage.status == OutboxStatus.SENDING),
        OutboxMessage.next_attempt_at <= now,
    )
    if shop_id is not None:
        due = due.where(OutboxMessage.shop_id == shop_id)
    with unit_of_work(sessions) as session:
        messages = (
            session.execute(
                due.order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            .scalars()
            .all()
        )
        claimed = []
        for message in messages:
            shop = session.get(Shop, message.shop_id)
            if not _still_wanted(session, shop, message):
                message.status, message.delivered_at = OutboxStatus.DELIVERED, now  # overtaken: nothing to tell
                continue
            if message.status == OutboxStatus.SENDING:
                message.last_error = LEASE_EXPIRED
            message.status, message.next_attempt_at = OutboxStatus.SENDING, now + LEASE
            claimed.append(Claimed(message, shop))
        session.flush()
        session.expunge_all()  # handed over detached: read, never changed
        return claimed


def _still_wanted(session: Session, shop: Shop, message: OutboxMessage) -> bool:
    payload = message.payload
    if message.kind in ("order.mark_paid", "order.add_wallet_fee"):
        return wallet_payment_stands(session, shop, payload["order_id"])  # else set_paid would revive the order
    if message.kind == "order.remove_wallet_fees":  # a later attempt's push replaces them
        return wallet_fees_stale(session, shop, payload["order_id"], payload["attempt"])
    if message.kind == "order.refund":
        return not is_restored(session, shop, payload["transaction_id"])
    return True


def record(
    sessions: sessionmaker[Session],
    message_id: int,
    policy: RetryPolicy,
    *,
    outcomes: Sequence[Outcome] = (),
    error: str | None = None,
    permanent: bool = False,
) -> OutboxStatus:
    """What the push did, and the message's new status (delivered, pending or dead), in one transaction."""
    with unit_of_work(sessions) as session:
        message = session.get(OutboxMessage, message_id)
        shop = session.get(Shop, message.shop_id)
        for outcome in outcomes:
            _follow(session, shop, outcome)
        message.attempts += 1
        if error is None:
            message.status, message.delivered_at, message.last_error = OutboxStatus.DELIVERED, utcnow(), None
        elif permanent or message.attempts >= policy.max_attempts:
            message.status, message.last_error = OutboxStatus.DEAD, error
        else:
            message.status, message.last_error = OutboxStatus.PENDING, error
            message.next_attempt_at = utcnow() + policy.delay(message.attempts)
        return message.status


def _follow(session: Session, shop: Shop, outcome: Outcome) -> None:
    match outcome:
        case WalletTaken(order_id, charged, credited, marker):
            return_overcharge(session, shop, order_id, charged, credited, marker)
            if credited > charged:  # raised after the wallet paid, before the push: its edit waited for the push
                apply_order_again(session, shop.id, order_id)
        case PaidOtherwise(order_id):
            return_paid_otherwise(session, shop, order_id)
        case WithdrawalRefused(transaction_id, why):
            restore_refused_withdrawal(session, shop, transaction_id, why)
        case RefundCreated(request_id, refund_id, refused):
            record_created(session, request_id, refund_id, refused)
        case CheckoutSpend(order_id, spent):
            record_checkout_spend(session, shop, order_id, spent, CHECKOUT)
        case OrderReadBack(order):
            _apply_read_back(session, shop, order)


def _apply_read_back(session: Session, shop: Shop, order: OrderSnapshot) -> None:
    """Applied as a delivery would be; one the rules refuse (the merchant sees its own delivery fail) is left."""
    try:
        with session.begin_nested():
            apply_order(session, shop, order, READ_BACK)
    except DomainError as exc:
        log.warning("shop %s: order %s read back, not applied: %s", shop.id, order.external_id, exc.code)


def release(sessions: sessionmaker[Session], ids: Sequence[int], outcome: str | None = None) -> None:
    """Claimed messages a round did not record are due again now, not when their lease ends; `outcome` marks
    the one whose attempt was broken off (the database dropped the connection), which may have landed."""
    marked = {"last_error": outcome} if outcome else {}
    with unit_of_work(sessions) as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), OutboxMessage.status == OutboxStatus.SENDING)
            .values(status=OutboxStatus.PENDING, next_attempt_at=utcnow(), **marked)
        )


def retry_dead(sessions: sessionmaker[Session], shop_id: int | None = None, message_id: int | None = None) -> int:
    """Put dead-lettered messages back in the queue (the merchant fixed the cause)."""
    with unit_of_work(sessions) as session:
        query = select(OutboxMessage).where(OutboxMessage.status == OutboxStatus.DEAD)
        if shop_id is not None:
            query = query.where(OutboxMessage.shop_id == shop_id)
        if message_id is not None:
            query = query.where(OutboxMessage.id == message_id)
        messages = session.execute(query).scalars().all()
        for message in messages:
            message.status, message.attempts, message.next_attempt_at = OutboxStatus.PENDING, 0, utcnow()
        return len(messages)


def delivered_payloads(sessions: sessionmaker[Session], message: OutboxMessage, since: datetime) -> list[dict]:
    """The payloads of the shop's other messages of the same kind delivered since `since`."""
    with unit_of_work(sessions) as session:
        return list(
            session.scalars(
                select(OutboxMessage.payload).where(
                    OutboxMessage.shop_id == message.shop_id,
                    OutboxMessage.kind == message.kind,
                    OutboxMessage.status == OutboxStatus.DELIVERED,
                    OutboxMessage.delivered_at >= since,
                    OutboxMessage.id != message.id,
                )
            ).all()
        )
