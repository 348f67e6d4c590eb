"""The inbox: every signed delivery is stored before it is answered, then applied once."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bridge.db import unit_of_work
from bridge.errors import DomainError, ValidationFailed
from bridge.ledger import Actor
from bridge.models import InboxDelivery, Shop, utcnow
from bridge.states import InboxStatus

log = logging.getLogger(__name__)

# (session, shop, parsed body, actor) -> None; raises ValidationFailed for a payload it cannot use.
Handler = Callable[[Session, Shop, object, Actor], None]


def record_delivery(
    sessions: sessionmaker[Session], *, shop_id: int, platform: str, topic: str, resource_id: str | None,
    delivery_id: str | None, body: bytes, status: InboxStatus = InboxStatus.RECEIVED, error: str | None = None,
) -> int:  # fmt: skip
    with unit_of_work(sessions) as session:
        delivery = InboxDelivery(
            shop_id=shop_id, platform=platform, topic=topic[:60], resource_id=resource_id,
            delivery_id=(delivery_id or "")[:100] or None, body=body, status=status, error=error,
        )  # fmt: skip
        session.add(delivery)
        session.flush()
        return delivery.id


def apply_delivery(sessions: sessionmaker[Session], delivery_id: int, handler: Handler, parsed: object) -> InboxStatus:
    """Apply a stored delivery in one transaction; returns its final status. A payload the handler
    refuses is kept as `failed` with the reason, for the merchant to inspect and retry. A database that
    dropped the connection (or a deadlock) gets one more try at once; after that the delivery stays
    `received`, and the worker's recovery applies it later (webhooks/replay.py)."""
    try:
        try:
            return _apply_once(sessions, delivery_id, handler, parsed)
        except OperationalError:  # the pool's pre-ping hands the second try a fresh connection
            log.warning("delivery %s: database error, trying once more", delivery_id, exc_info=True)
            return _apply_once(sessions, delivery_id, handler, parsed)
    except ValidationFailed as exc:
        _mark_failed(sessions, delivery_id, f"invalid payload: {exc.fields or exc.message}")
        raise
    except DomainError as exc:
        _mark_failed(sessions, delivery_id, f"{exc.code}: {exc.message}")
        return InboxStatus.FAILED
    except OperationalError:
        log.exception("delivery %s left for the worker's recovery", delivery_id)
        return InboxStatus.RECEIVED
    except Exception as exc:  # a bug must not lose the delivery: it stays stored, marked, and retryable
        log.exception("delivery %s could not be applied", delivery_id)
        _mark_failed(sessions, delivery_id, f"internal error: {exc.__class__.__name__}")
        return InboxStatus.FAILED


def _apply_once(sessions: sessionmaker[Session], delivery_id: int, handler: Handler, parsed: object) -> InboxStatus:
    with unit_of_work(sessions) as session:
        delivery = session.execute(
            select(InboxDelivery).where(InboxDelivery.id == delivery_id).with_for_update()
        ).scalar_one()
        if delivery.status in (InboxStatus.APPLIED, InboxStatus.IGNORED):
            return InboxStatus(delivery.status)
        shop = session.get(Shop, delivery.shop_id)
        handler(session, shop, parsed, Actor("webhook", f"{delivery.platform}:{delivery.id}"))
        delivery.status, delivery.applied_at, delivery.error = InboxStatus.APPLIED, utcnow(), None
        return InboxStatus.APPLIED


def _mark_failed(sessions: sessionmaker[Session], delivery_id: int, error: str) -> None:
    with unit_of_work(sessions) as session:
        delivery = session.get(InboxDelivery, delivery_id)
        delivery.status, delivery.error = InboxStatus.FAILED, error
