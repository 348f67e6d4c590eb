"""Webhook subscriptions and deliveries as Shopify runs them.

- Every event gets an X-Shopify-Event-Id; every delivery of it to a subscription an X-Shopify-Webhook-Id
  (a UUID) that its retries keep, with the original body and X-Shopify-Triggered-At.
- The body is signed at sending time (X-Shopify-Hmac-Sha256) with the app's current secret: after
  `rotate_secret()` even retries of older deliveries carry the new signature.
- Only a 2xx answered within the timeout (5 s) is a success; redirects are not followed. A failure is
  retried — here when the test calls `retry_failed()` — up to 8 times, then given up.
- Deliveries are at least once and in any order: `hold()` queues them so a test can reorder, drop or
  duplicate before `flush()`.

Transport calls are made without holding the simulator's lock, so a receiver may call the Admin API back
(from another thread) while its delivery is in flight.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

import requests

from simulator.shopify_wire import USER_AGENT, gid, hmac_sha256, topic_name, triggered_at

Transport = Callable[[str, bytes, dict], int]

MAX_RETRIES = 8  # Shopify retries a failed delivery 8 times over 4 hours
DELIVERY_TIMEOUT = 5.0  # seconds Shopify waits for an answer


@dataclass
class Subscription:
    id: int
    topic: str  # the WebhookSubscriptionTopic enum value, "ORDERS_PAID"
    callback_url: str
    format: str
    created_at: datetime
    updated_at: datetime

    @property
    def gid(self) -> str:
        return gid("WebhookSubscription", self.id)

    @property
    def topic_name(self) -> str:
        """The X-Shopify-Topic form, "orders/paid"."""
        return topic_name(self.topic)


@dataclass(frozen=True)
class PendingDelivery:
    """A delivery waiting to be sent: held (`sim.pending_deliveries`) or failed (`sim.failed_deliveries`).
    Duplicating one sends the same webhook id twice, as Shopify's at-least-once delivery may."""

    subscription_id: int
    topic: str
    body: bytes
    webhook_id: str
    event_id: str
    triggered_at: str
    attempt: int = 1


@dataclass(frozen=True)
class Delivery:
    """One POST the shop made and what came back. `status` is None when the transport raised (`error`
    says why); `elapsed` is the time the receiver took, and more than the timeout is a failure too."""

    subscription_id: int
    topic: str
    url: str
    body: bytes
    headers: dict
    status: int | None
    error: str | None
    elapsed: float
    timed_out: bool
    sent_at: datetime
    attempt: int

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300 and not self.timed_out

    @property
    def webhook_id(self) -> str:
        return self.headers["X-Shopify-Webhook-Id"]

    @property
    def event_id(self) -> str:
        return self.headers["X-Shopify-Event-Id"]

    def json(self):
        return json.loads(self.body)


def requests_transport(timeout: float) -> Transport:
    """The default transport: a real HTTP POST, redirects not followed."""

    def post(url: str, body: bytes, headers: dict) -> int:
        return requests.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False).status_code

    return post


class WebhookHub:
    """Subscriptions, the delivery log, the hold queue and the retry queue."""

    def __init__(
        self,
        *,
        lock: threading.RLock,
        clock: Callable[[], datetime],
        secret: str,
        shop_domain: str,
        api_version: str,
        transport: Transport | None = None,
        timeout: float = DELIVERY_TIMEOUT,
        seed: int | None = None,
    ):
        self.subscriptions: dict[int, Subscription] = {}
        self.deliveries: list[Delivery] = []
        self.pending: list[PendingDelivery] = []  # held
        self.failed: list[PendingDelivery] = []  # to retry (next attempt)
        self.abandoned: list[PendingDelivery] = []  # failed 1 + MAX_RETRIES times
        self.holding = False
        self.secret = secret
        self.previous_secret: str | None = None
        self.shop_domain = shop_domain
        self.api_version = api_version
        self.timeout = timeout
        self.transport: Transport = transport or requests_transport(timeout)
        self._lock = lock
        self._clock = clock
        self._random = random.Random(seed)  # noqa: S311 - ids, not secrets

    def new_uuid(self) -> str:
        return str(uuid.UUID(int=self._random.getrandbits(128), version=4))

    # --- subscriptions (under the lock) -----------------------------------------------------------------------

    def find(self, topic: str, callback_url: str) -> Subscription | None:
        return next(
            (s for s in self.subscriptions.values() if s.topic == topic and s.callback_url == callback_url), None
        )

    def add(self, subscription_id: int, topic: str, callback_url: str, format_: str = "JSON") -> Subscription:
        now = self._clock()
        subscription = Subscription(subscription_id, topic, callback_url, format_, now, now)
        self.subscriptions[subscription_id] = subscription
        return subscription

    # --- events -----------------------------------------------------------------------------------------------

    def collect(self, events: list[tuple[str, bytes]]) -> list[PendingDelivery]:
        """Under the lock, right after a change: one delivery per subscription to each event's topic
        (("orders/paid", body)); all deliveries of one event share its event id."""
        when = triggered_at(self._clock())
        out = []
        for topic, body in events:
            event_id = self.new_uuid()
            for subscription in self.subscriptions.values():
                if subscription.topic_name == topic:
                    out.append(PendingDelivery(subscription.id, topic, body, self.new_uuid(), event_id, when))
        return out

    def dispatch(self, items: list[PendingDelivery]) -> list[Delivery]:
        """Outside the lock: send now, or queue while deliveries are held."""
        with self._lock:
            if self.holding:
                self.pending.extend(items)
                return []
        return self.send(items)

    def flush(self, items: list[PendingDelivery] | None = None) -> list[Delivery]:
        """Send the held deliveries (all, in queue order), or exactly `items` — any order, duplicates and
        omissions allowed. Sent items leave the queue."""
        with self._lock:
            if items is None:
                items, self.pending[:] = list(self.pending), []
            else:
                self.pending[:] = [p for p in self.pending if not any(p is item for item in items)]
        return self.send(items)

    def retry_failed(self) -> list[Delivery]:
        """Redeliver every failed delivery once more (same webhook id, body and triggered-at)."""
        with self._lock:
            items, self.failed[:] = list(self.failed), []
        return self.send(items)

    def send(self, items: list[PendingDelivery]) -> list[Delivery]:
        return [record for item in items if (record := self._deliver(item)) is not None]

    def _deliver(self, item: PendingDelivery) -> Delivery | None:
        with self._lock:
            subscription = self.subscriptions.get(item.subscription_id)
            if subscription is None:
                return None  # deleted meanwhile
            url = subscription.callback_url
            headers = self._headers(item)
        status, error, elapsed = self._post(url, item.body, headers)
        with self._lock:
            timed_out = elapsed > self.timeout
            record = Delivery(
                item.subscription_id,
                item.topic,
                url,
                item.body,
                headers,
                status,
                error,
                elapsed,
                timed_out,
                self._clock(),
                item.attempt,
            )
            self.deliveries.append(record)
            if not record.ok:
                retry = replace(item, attempt=item.attempt + 1)
                (self.failed if item.attempt <= MAX_RETRIES else self.abandoned).append(retry)
        return record

    def _headers(self, item: PendingDelivery) -> dict:
        return {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Shopify-Topic": item.topic,
            "X-Shopify-Hmac-Sha256": hmac_sha256(item.body, self.secret),
            "X-Shopify-Shop-Domain": self.shop_domain,
            "X-Shopify-API-Version": self.api_version,
            "X-Shopify-Webhook-Id": item.webhook_id,
            "X-Shopify-Event-Id": item.event_id,
            "X-Shopify-Triggered-At": item.triggered_at,
        }

    def _post(self, url: str, body: bytes, headers: dict) -> tuple[int | None, str | None, float]:
        started = time.monotonic()
        try:
            status, error = int(self.transport(url, body, dict(headers))), None
        except Exception as exc:  # any transport failure is a failed delivery, never an error in the shop
            status, error = None, f"{exc.__class__.__name__}: {exc}"
        return status, error, time.monotonic() - started
