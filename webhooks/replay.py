"""Applying stored deliveries again: the merchant's "Retry" of a failed one, and the recovery of deliveries
left `received` when a process died (or its database connection dropped) between storing and applying.

Shops never resend a delivery they had answered 200 (WooCommerce never retries at all), so a stored
delivery is the only copy: it is applied from its stored body with the handler of its platform and topic,
under the same row lock and idempotent rules as when it arrived."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bridge.db import unit_of_work
from bridge.errors import DomainError
from bridge.inbox import apply_delivery
from bridge.models import InboxDelivery, utcnow
from bridge.states import InboxStatus
from webhooks.shopify.handlers import HANDLERS as SHOPIFY
from webhooks.woocommerce.handlers import HANDLERS as WOOCOMMERCE

log = logging.getLogger(__name__)

HANDLERS = {"woocommerce": WOOCOMMERCE, "shopify": SHOPIFY}
STALLED_AFTER = timedelta(minutes=1)  # far beyond any delivery's own apply, so the two never race for long
BATCH = 100


@dataclass(frozen=True)
class Outcome:
    status: InboxStatus  # applied, ignored or failed
    error: str | None = None


def reapply(sessions: sessionmaker[Session], delivery_id: int) -> Outcome:
    """Parse the stored body again and apply it; a delivery already applied is left as it is."""
    with unit_of_work(sessions) as session:
        delivery = session.get(InboxDelivery, delivery_id)
        platform, topic, body = delivery.platform, delivery.topic, delivery.body
    handlers = HANDLERS.get(platform, {})
    if topic not in handlers:
        return Outcome(InboxStatus.FAILED, f"deliveries of {platform} {topic} cannot be applied")
    parse, apply = handlers[topic]
    try:
        snapshot = parse(json.loads(body))
    except (ValueError, DomainError) as exc:  # still unreadable: say so on the delivery
        error = f"on retry: {getattr(exc, 'message', None) or exc}"[:1000]
        with unit_of_work(sessions) as session:
            session.get(InboxDelivery, delivery_id).error = error
        return Outcome(InboxStatus.FAILED, error)
    try:
        status = apply_delivery(sessions, delivery_id, apply, snapshot)
    except DomainError as exc:  # the payload is refused: apply_delivery marked it failed, with the reason
        return Outcome(InboxStatus.FAILED, exc.message)
    return Outcome(status, _error_of(sessions, delivery_id) if status == InboxStatus.FAILED else None)


def recover_stalled(sessions: sessionmaker[Session], stalled_after: timedelta = STALLED_AFTER) -> int:
    """Apply deliveries stored but left `received` for longer than `stalled_after`; returns how many were
    applied. Safe with several workers: apply_delivery locks each row and skips what is already applied."""
    cutoff = utcnow() - stalled_after
    with unit_of_work(sessions) as session:
        stalled = session.scalars(
            select(InboxDelivery.id)
            .where(InboxDelivery.status == InboxStatus.RECEIVED, InboxDelivery.received_at <= cutoff)
            .order_by(InboxDelivery.id)  # in arrival order, as they would have been applied
            .limit(BATCH)
        ).all()
    applied = 0
    for delivery_id in stalled:
        outcome = reapply(sessions, delivery_id)
        applied += outcome.status == InboxStatus.APPLIED
        log.warning("stalled delivery %s re-applied: %s %s", delivery_id, outcome.status, outcome.error or "")
    return applied


def _error_of(sessions: sessionmaker[Session], delivery_id: int) -> str | None:
    with unit_of_work(sessions) as session:
        return session.get(InboxDelivery, delivery_id).error
