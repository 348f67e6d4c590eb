"""Retention: webhook deliveries applied and messages delivered long ago are only disk, and the deliveries'
bodies hold customers' addresses. Nothing else depends on them: every money movement is keyed in the ledger
(never pruned), so a delivery that came again after its row was pruned moves no money twice. What is still to
handle (failed, dead, not yet applied or delivered) is always kept."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from bridge.db import unit_of_work
from bridge.models import InboxDelivery, OutboxMessage, utcnow
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


def prune(sessions: sessionmaker[Session], older_than: timedelta, now: datetime | None = None) -> Pruned:
    if older_than < MINIMUM_AGE:
        raise ValueError(f"keep at least {MINIMUM_AGE.days} days")
    cutoff = (now or utcnow()) - older_than
    deliveries = _delete_in_batches(sessions, InboxDelivery, InboxDelivery.status.in_(DONE),
                                    InboxDelivery.received_at < cutoff)  # fmt: skip
    messages = _delete_in_batches(sessions, OutboxMessage, OutboxMessage.status == OutboxStatus.DELIVERED,
                                  OutboxMessage.delivered_at < cutoff)  # fmt: skip
    return Pruned(deliveries, messages)


def _delete_in_batches(sessions: sessionmaker[Session], model, *conditions) -> int:
    deleted = 0
    while True:
        with unit_of_work(sessions) as session:
            ids = session.scalars(select(model.id).where(*conditions).order_by(model.id).limit(BATCH)).all()
            if ids:
                session.execute(delete(model).where(model.id.in_(ids)))
        deleted += len(ids)
        if len(ids) < BATCH:
            return deleted
