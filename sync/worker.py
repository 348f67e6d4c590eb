"""The outbox worker: claims due messages, hands each to its platform's pusher, retries with
exponential backoff and jitter, and dead-letters a message after the configured number of failures.

Claiming is a short transaction (FOR UPDATE SKIP LOCKED on PostgreSQL, so several workers never take
the same row) that leases the message; the shop is called outside any transaction, so a slow shop
never holds a lock. A worker killed mid-call leaves a lease that expires, and the message is taken
again, marked as one whose earlier attempt may have reached the shop (`outcome_unknown`): pushers check
the shop's current state first, so a repeat is harmless.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from prometheus_client import Counter
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from bridge.db import unit_of_work
from bridge.models import OutboxMessage, Shop, utcnow

log = logging.getLogger(__name__)
# Counted in whichever process delivers (an outbox worker, or the embedded one): /metrics adds up every process's
# counters when PROMETHEUS_MULTIPROC_DIR is set (bridge/surfaces/web/health.py).
ATTEMPTS = Counter("wallet_bridge_outbox_attempts_total", "Outbox delivery attempts by outcome", ["kind", "outcome"])
LEASE = timedelta(minutes=2)
LEASE_EXPIRED = "lease expired: the worker stopped mid-attempt, its outcome is unknown"
ROUND_BROKEN_OFF = "round broken off: the attempt's outcome is unknown"


class ShopCallFailed(Exception):
    """A call to a shop failed; `status` and `code` are the shop's answer when it gave one."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.code = status, code


class PermanentFailure(ShopCallFailed):
    """The shop refused in a way retrying cannot fix (e.g. the order no longer exists)."""


class TemporaryFailure(ShopCallFailed):
    """The shop is down, slow or throttling: try again later."""


# (sessions, shop, message) -> None; raises PermanentFailure / TemporaryFailure.
Pusher = Callable[[sessionmaker[Session], Shop, OutboxMessage], None]


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_delay_seconds: float = 2.0
    max_delay_seconds: float = 3600.0

    def delay(self, attempts: int) -> timedelta:
        """Exponential backoff with jitter: uniform in [½, 1] × base × 2^(attempts−1), capped."""
        ceiling = min(self.max_delay_seconds, self.base_delay_seconds * 2 ** max(attempts - 1, 0))
        return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


def claim(sessions: sessionmaker[Session], limit: int = 10) -> list[int]:
    now = utcnow()
    with unit_of_work(sessions) as session:
        ids = session.execute(
            select(OutboxMessage.id)
            .where(
                or_(OutboxMessage.status == "pending", OutboxMessage.status == "sending"),
                OutboxMessage.next_attempt_at <= now,
            )
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).scalars().all()
        for message in session.execute(select(OutboxMessage).where(OutboxMessage.id.in_(ids))).scalars():
            if message.status == "sending":
                message.last_error = LEASE_EXPIRED
            message.status, message.next_attempt_at = "sending", now + LEASE
        return list(ids)


def outcome_unknown(message: OutboxMessage) -> bool:
    """True when an earlier attempt may have reached the shop: it failed (perhaps after the shop acted, its
    answer lost), or its worker stopped before recording the outcome."""
    return message.attempts > 0 or message.last_error is not None


def deliver(sessions: sessionmaker[Session], message_id: int, pushers: dict[str, Pusher], policy: RetryPolicy) -> str:
    """Push one claimed message; returns its new status (delivered, pending or dead)."""
    with unit_of_work(sessions) as session:
        message = session.get(OutboxMessage, message_id)
        shop = session.get(Shop, message.shop_id)
        session.expunge_all()
    pusher = pushers.get(shop.platform)
    try:
        if pusher is None:
            raise PermanentFailure(f"no pusher for platform {shop.platform}")
        pusher(sessions, shop, message)
    except PermanentFailure as exc:
        status = _record(sessions, message_id, policy, error=str(exc), permanent=True)
    except Exception as exc:  # temporary by default: a retry is harmless, a lost message is not
        log.warning("outbox message %s failed: %s", message_id, _describe(exc))
        status = _record(sessions, message_id, policy, error=_describe(exc), permanent=False)
    else:
        status = _record(sessions, message_id, policy, error=None, permanent=False)
    ATTEMPTS.labels(message.kind, status).inc()
    return status


def _describe(exc: Exception) -> str:
    return f"{exc.__class__.__name__}: {exc}"[:1000]


def _record(sessions, message_id: int, policy: RetryPolicy, *, error: str | None, permanent: bool) -> str:
    with unit_of_work(sessions) as session:
        message = session.get(OutboxMessage, message_id)
        message.attempts += 1
        if error is None:
            message.status, message.delivered_at, message.last_error = "delivered", utcnow(), None
        elif permanent or message.attempts >= policy.max_attempts:
            message.status, message.last_error = "dead", error
        else:
            message.status, message.last_error = "pending", error
            message.next_attempt_at = utcnow() + policy.delay(message.attempts)
        return message.status


def run_once(sessions: sessionmaker[Session], pushers: dict[str, Pusher], policy: RetryPolicy, limit: int = 10,
             clock: Callable[[], float] = time.monotonic) -> int:  # fmt: skip
    """Deliver what is due now; returns how many messages were attempted. A round stops at half its lease
    (a slow shop) and hands back what it has not tried, before another worker may take it."""
    ids = claim(sessions, limit)
    stop_at = clock() + LEASE.total_seconds() / 2
    for index, message_id in enumerate(ids):
        if clock() >= stop_at:
            _release(sessions, ids[index:])
            return index
        try:
            deliver(sessions, message_id, pushers, policy)
        except Exception:
            _release(sessions, ids[index : index + 1], ROUND_BROKEN_OFF)
            _release(sessions, ids[index + 1 :])
            raise
    return len(ids)


def _release(sessions: sessionmaker[Session], ids: list[int], outcome: str | None = None) -> None:
    """Claimed messages the round did not record are due again now, not when their lease ends; `outcome`
    marks the one whose attempt was broken off (the database dropped the connection), which may have landed."""
    if not ids:
        return
    marked = {"last_error": outcome} if outcome else {}
    try:
        with unit_of_work(sessions) as session:
            session.execute(
                update(OutboxMessage).where(OutboxMessage.id.in_(ids), OutboxMessage.status == "sending")
                .values(status="pending", next_attempt_at=utcnow(), **marked)
            )  # fmt: skip
    except Exception as exc:  # the database is still away: the leases run out instead
        log.warning("outbox messages %s stay leased: %s", ids, _describe(exc))


def drain(sessions, pushers, policy, *, max_rounds: int = 100) -> None:
    """Deliver until nothing is due (tests and the demo)."""
    for _ in range(max_rounds):
        if not run_once(sessions, pushers, policy):
            return


def run_forever(sessions, pushers, policy, stop: threading.Event, idle_seconds: float = 1.0,
                chores: Sequence[Callable[[], object]] = (), chore_seconds: float = 30.0) -> None:  # fmt: skip
    """Deliver outbox messages until `stop` is set; every `chore_seconds`, run each chore (e.g. the
    recovery of stalled inbox deliveries), so that whoever runs workers runs those too."""
    log.info("outbox worker started")
    next_chores = time.monotonic()
    while not stop.is_set():
        if chores and time.monotonic() >= next_chores:
            _run_chores(chores)
            next_chores = time.monotonic() + chore_seconds
        try:
            busy = run_once(sessions, pushers, policy)
        except Exception:  # the database may drop a connection: log, wait, go on
            log.exception("outbox worker round failed")
            busy = 0
        if not busy:
            stop.wait(idle_seconds)


def _run_chores(chores: Sequence[Callable[[], object]]) -> None:
    for chore in chores:
        try:
            chore()
        except Exception:  # one failing chore must not stop the deliveries
            log.exception("worker chore %s failed", getattr(chore, "__name__", chore))


def retry_dead(sessions: sessionmaker[Session], shop_id: int | None = None, message_id: int | None = None) -> int:
    """Put dead-lettered messages back in the queue (the merchant fixed the cause)."""
    with unit_of_work(sessions) as session:
        query = select(OutboxMessage).where(OutboxMessage.status == "dead")
        if shop_id is not None:
            query = query.where(OutboxMessage.shop_id == shop_id)
        if message_id is not None:
            query = query.where(OutboxMessage.id == message_id)
        messages = session.execute(query).scalars().all()
        for message in messages:
            message.status, message.attempts, message.next_attempt_at = "pending", 0, utcnow()
        return len(messages)
