"""Retention: webhook deliveries applied and messages delivered long ago are only disk, and the deliveries'
bodies hold customers' addresses. Nothing else depends on them: every money movement is keyed in the ledger
(never pruned), so a delivery that came again after its row was pruned moves no money twice. What is still to
handle (failed, dead, not yet applied or delivered) is always kept.

The bodies of deliveries applied go sooner, after the shop's `webhook_body_retention_days`: the row stays (a
repeat is still known by its keys) without the customer's details. A delivery still to handle keeps its body,
the only copy to apply it from; erasing a customer (bridge/privacy.py) scrubs theirs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from bridge.db import unit_of_work
from bridge.models import InboxDelivery, OutboxMessage, Shop, utcnow
from bridge.settings_schema import ShopSettings
from bridge.states import InboxStatus, OutboxStatus

DONE = (InboxStatus.APPLIED, InboxStatus.IGNORED)  # delivery statuses with nothing left to do
# Rows still matter for a while: Shopify retries a delivery for 48 hours (known by its webhook id), and an
# expiry reminder is sent once per lot thanks to its outbox row (reminders start days before the expiry).
MINIMUM_AGE = timedelta(days=30)
BATCH = 5_000  # rows per transaction: short locks, a vacuum-friendly pace


@dataclass(frozen=True)
class Pruned:
    deliveries: int
    messages: int
    bodies_dropped: int = 0


def prune(sessions: sessionmaker[Session], older_than: timedelta, now: datetime | None = None) -> Pruned:
    if older_than < MINIMUM_AGE:
        raise ValueError(f"keep at least {MINIMUM_AGE.days} days")
    cutoff = (now or utcnow()) - older_than
    deliveries = _delete_in_batches(
        sessions, InboxDelivery, InboxDelivery.status.in_(DONE), InboxDelivery.received_at < cutoff
    )
    messages = _delete_in_batches(
        sessions, OutboxMessage, OutboxMessage.status == OutboxStatus.DELIVERED, OutboxMessage.delivered_at < cutoff
    )
    return Pruned(deliveries, messages, drop_old_bodies(sessions, now or utcnow()))


def drop_old_bodies(sessions: sessionmaker[Session], now: datetime) -> int:
    """Empty the bodies of deliveries applied before each shop's body retention."""
    with unit_of_work(sessions) as session:
        retention = {
            shop.id: ShopSettings.load(shop.settings).webhook_body_retention_days
            for shop in session.scalars(select(Shop))
        }
    return sum(
        _in_batches(
            sessions,
            InboxDelivery,
            lambda ids: update(InboxDelivery).where(InboxDelivery.id.in_(ids)).values(body=b""),
            InboxDelivery.shop_id == shop_id,
            InboxDelivery.status.in_(DONE),
            InboxDelivery.received_at < now - timedelta(days=days),
            InboxDelivery.body != b"",
        )
        for shop_id, days in retention.items()
    )


def _delete_in_batches(sessions: sessionmaker[Session], model, *conditions) -> int:
    return _in_batches(sessions, model, lambda ids: delete(model).where(model.id.in_(ids)), *conditions)


def _in_batches(sessions: sessionmaker[Session], model, change, *conditions) -> int:
    """Apply `change` (ids → statement) to every row matching the conditions, a batch per transaction."""
    changed = 0
    while True:
        with unit_of_work(sessions) as session:
            ids = session.scalars(select(model.id).where(*conditions).order_by(model.id).limit(BATCH)).all()
            if ids:
                session.execute(change(ids))
        changed += len(ids)
        if len(ids) < BATCH:
            return changed
