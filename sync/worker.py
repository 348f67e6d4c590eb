"""The outbox worker: claims due messages, hands each to its platform's pusher, retries with exponential
backoff and jitter, and dead-letters a message after the configured number of failures. The transactions
(claim, record) are the use-case layer's (bridge/usecases/pushes.py); the shop is called between them."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from prometheus_client import Counter
from sqlalchemy.orm import Session, sessionmaker

from bridge.errors import PermanentFailure
from bridge.models import OutboxMessage, Shop
from bridge.usecases.pushes import LEASE, Claimed, Outcome, RetryPolicy, claim, record, release

log = logging.getLogger(__name__)
# Counted in whichever process delivers (an outbox worker, or the embedded one): /metrics adds up every process's
# counters when PROMETHEUS_MULTIPROC_DIR is set (bridge/surfaces/web/health.py).
ATTEMPTS = Counter("wallet_bridge_outbox_attempts_total", "Outbox delivery attempts by outcome", ["kind", "outcome"])
ROUND_BROKEN_OFF = "round broken off: the attempt's outcome is unknown"

# (sessions for the use-case layer's reads, shop, message) → what the push did (None: nothing the ledger must
# follow); raises PermanentFailure or TemporaryFailure (anything else is taken as temporary).
Pusher = Callable[[sessionmaker[Session], Shop, OutboxMessage], Sequence[Outcome] | None]


def deliver(sessions: sessionmaker[Session], claimed: Claimed, pushers: dict[str, Pusher], policy: RetryPolicy) -> str:
    """Push one claimed message; returns its new status (delivered, pending or dead)."""
    message, shop = claimed.message, claimed.shop
    pusher = pushers.get(shop.platform)
    try:
        if pusher is None:
            raise PermanentFailure(f"no pusher for platform {shop.platform}")
        outcomes = pusher(sessions, shop, message) or ()  # None: nothing for the ledger to follow
    except PermanentFailure as exc:
        status = record(sessions, message.id, policy, error=str(exc), permanent=True)
    except Exception as exc:  # temporary by default: a retry is harmless, a lost message is not
        log.warning("outbox message %s failed: %s", message.id, _describe(exc))
        status = record(sessions, message.id, policy, error=_describe(exc))
    else:
        status = record(sessions, message.id, policy, outcomes=outcomes)
    ATTEMPTS.labels(message.kind, status).inc()
    return status


def _describe(exc: Exception) -> str:
    return f"{exc.__class__.__name__}: {exc}"[:1000]


def run_once(
    sessions: sessionmaker[Session],
    pushers: dict[str, Pusher],
    policy: RetryPolicy,
    limit: int = 10,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Deliver what is due now; returns how many messages were attempted. A round stops at half its lease
    (a slow shop) and hands back what it has not tried, before another worker may take it."""
    claimed = claim(sessions, limit)
    stop_at = clock() + LEASE.total_seconds() / 2
    for index, one in enumerate(claimed):
        if clock() >= stop_at:
            _release(sessions, claimed[index:])
            return index
        try:
            deliver(sessions, one, pushers, policy)
        except Exception:
            _release(sessions, claimed[index : index + 1], ROUND_BROKEN_OFF)
            _release(sessions, claimed[index + 1 :])
            raise
    return len(claimed)


def _release(sessions: sessionmaker[Session], claimed: Sequence[Claimed], outcome: str | None = None) -> None:
    ids = [one.message.id for one in claimed]
    if not ids:
        return
    try:
        release(sessions, ids, outcome)
    except Exception as exc:  # the database is still away: the leases run out instead
        log.warning("outbox messages %s stay leased: %s", ids, _describe(exc))


def drain(sessions, pushers, policy, *, max_rounds: int = 100) -> None:
    """Deliver until nothing is due (tests and the demo)."""
    for _ in range(max_rounds):
        if not run_once(sessions, pushers, policy):
            return


def run_forever(
    sessions,
    pushers,
    policy,
    stop: threading.Event,
    idle_seconds: float = 1.0,
    chores: Sequence[Callable[[], object]] = (),
    chore_seconds: float = 30.0,
    inbox: Callable[[], int] | None = None,
    wait: Callable[[float], None] | None = None,
) -> None:
    """Deliver outbox messages until `stop` is set; every `chore_seconds`, run each chore (e.g. the
    recovery of stalled inbox deliveries), so that whoever runs workers runs those too. `inbox`, when given,
    applies deferred deliveries first in every round (their outbox rows then go out in the same round); an idle
    worker waits with `wait` (woken early by a new delivery) or on `stop`."""
    log.info("outbox worker started")
    next_chores = time.monotonic()
    while not stop.is_set():
        if chores and time.monotonic() >= next_chores:
            _run_chores(chores)
            next_chores = time.monotonic() + chore_seconds
        try:
            busy = (inbox() if inbox else 0) + run_once(sessions, pushers, policy)
        except Exception:  # the database may drop a connection: log, wait, go on
            log.exception("worker round failed")
            busy = 0
        if not busy:
            (wait or stop.wait)(idle_seconds)


def _run_chores(chores: Sequence[Callable[[], object]]) -> None:
    for chore in chores:
        try:
            chore()
        except Exception:  # one failing chore must not stop the deliveries
            log.exception("worker chore %s failed", getattr(chore, "__name__", chore))
