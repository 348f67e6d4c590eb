"""The worker's wiring: the platform table's pushers, the retry policy, deferred deliveries and the chores every
worker runs now and then. Used by `wallet-bridge worker` and by the embedded worker of `wallet-bridge serve`."""

from __future__ import annotations

import threading

from bridge.db import Listener
from bridge.services import Services
from bridge.surfaces.platforms import TOPICS, pushers_for, retry_policy
from bridge.usecases.deliveries import INBOX_CHANNEL, apply_received, recover_stalled
from sync.worker import run_forever


def run_worker(svc: Services, stop: threading.Event, idle_seconds: float = 1.0) -> None:
    """Push outbox messages and apply deferred deliveries (DEFER_DELIVERIES; otherwise only those set to be applied
    again) until `stop` is set."""
    inbox, wait = (lambda: apply_received(svc.sessions, TOPICS, again_only=True)), None
    if svc.settings.defer_deliveries:
        listener = Listener(svc.engine, INBOX_CHANNEL)
        inbox, wait = (lambda: apply_received(svc.sessions, TOPICS)), listener.wait
    try:
        run_forever(
            svc.sessions,
            pushers_for(svc),
            retry_policy(svc),
            stop,
            idle_seconds,
            chores=worker_chores(svc),
            inbox=inbox,
            wait=wait,
        )
    finally:
        if wait is not None:
            listener.close()


def start_embedded_worker(svc: Services) -> threading.Event:
    """With the embedded default a newcomer runs one process: the worker is a thread of it."""
    stop = threading.Event()
    threading.Thread(target=run_worker, args=(svc, stop), daemon=True, name="outbox-worker").start()
    return stop


def worker_chores(svc: Services) -> list:
    """What every worker also does now and then: apply deliveries a dead web process left unapplied."""
    return [lambda: recover_stalled(svc.sessions, TOPICS)]
