"""The outbox worker's wiring: the platform table's pushers, the retry policy, and the chores every worker
runs now and then. Used by `wallet-bridge worker` and by the embedded worker of `wallet-bridge serve`."""

from __future__ import annotations

import threading

from bridge.services import Services
from bridge.surfaces.platforms import TOPICS, pushers_for, retry_policy
from bridge.usecases.deliveries import recover_stalled
from sync.worker import run_forever


def start_embedded_worker(svc: Services) -> threading.Event:
    """With the embedded default a newcomer runs one process: the worker is a thread of it."""
    stop = threading.Event()
    thread = threading.Thread(
        target=run_forever, args=(svc.sessions, pushers_for(svc), retry_policy(svc), stop),
        kwargs={"chores": worker_chores(svc)}, daemon=True, name="outbox-worker",
    )  # fmt: skip
    thread.start()
    return stop


def worker_chores(svc: Services) -> list:
    """What every worker also does now and then: apply deliveries a dead web process left unapplied."""
    return [lambda: recover_stalled(svc.sessions, TOPICS)]
