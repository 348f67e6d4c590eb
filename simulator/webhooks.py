"""Webhooks as WooCommerce 10 runs them: signed JSON deliveries, the unsigned ping, failure counting.

Rules reproduced (see WOOCOMMERCE_NOTES.md and WC_Webhook / WC_Webhook_Data_Store):
- A new webhook is pinged (`webhook_id=N`, form-encoded, no X-WC-* headers). Only HTTP 200 clears the
  "pending delivery" flag; until then every save of the active webhook — which happens after each
  delivery — pings again. Changing the delivery URL of an active webhook pings too.
- A delivery succeeds on 200–302 (redirects are not followed). The 7th consecutive failure sets the
  webhook to `disabled`. Only `active` webhooks take events; events while paused or disabled are lost.
- Nothing is ever retried.

Transport calls are made without holding the simulator's lock, so a receiver may call the shop's REST
API back (from another thread) while its delivery is in flight.
"""

from __future__ import annotations

import itertools
import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

import requests

from simulator.wire import USER_AGENT, delivery_id, webhook_signature

Transport = Callable[[str, bytes, dict], int]

# Topic → the WordPress actions it listens to (shown as `hooks` in the REST API).
TOPIC_HOOKS = {
    "coupon.created": ["woocommerce_process_shop_coupon_meta", "woocommerce_new_coupon"],
    "coupon.updated": ["woocommerce_process_shop_coupon_meta", "woocommerce_update_coupon"],
    "coupon.deleted": ["wp_trash_post"],
    "coupon.restored": ["untrashed_post"],
    "customer.created": ["user_register", "woocommerce_created_customer", "woocommerce_new_customer"],
    "customer.updated": ["profile_update", "woocommerce_update_customer"],
    "customer.deleted": ["delete_user"],
    "order.created": ["woocommerce_new_order"],
    "order.updated": ["woocommerce_update_order", "woocommerce_order_refunded"],
    "order.deleted": ["wp_trash_post"],
    "order.restored": ["untrashed_post"],
    "product.created": [
        "woocommerce_process_product_meta",
        "woocommerce_new_product",
        "woocommerce_new_product_variation",
    ],
    "product.updated": [
        "woocommerce_process_product_meta",
        "woocommerce_update_product",
        "woocommerce_update_product_variation",
    ],
    "product.deleted": ["wp_trash_post"],
    "product.restored": ["untrashed_post"],
}
STATUSES = ("active", "paused", "disabled")
MAX_FAILURES = 5  # woocommerce_max_webhook_delivery_failures: the failure after the 6th disables


def is_valid_topic(topic: object) -> bool:
    return isinstance(topic, str) and (topic in TOPIC_HOOKS or (topic.startswith("action.") and len(topic) > 7))


def requests_transport(url: str, body: bytes, headers: dict) -> int:
    """The default transport: a real HTTP POST. Redirects are not followed (WordPress sends with
    `redirection: 0`, and a 301/302 counts as delivered)."""
    return requests.post(url, data=body, headers=headers, timeout=5, allow_redirects=False).status_code


@dataclass
class Webhook:
    id: int
    name: str
    topic: str
    delivery_url: str
    secret: str
    status: str
    created: datetime
    modified: datetime
    failure_count: int = 0
    pending_delivery: bool = True  # a ping is owed until one gets HTTP 200

    @property
    def resource(self) -> str:
        return self.topic.split(".")[0]

    @property
    def event(self) -> str:
        return self.topic.split(".", 1)[1] if "." in self.topic else ""

    @property
    def hooks(self) -> list[str]:
        return [self.event] if self.resource == "action" else list(TOPIC_HOOKS.get(self.topic, []))


@dataclass(frozen=True)
class Delivery:
    """One POST the shop made — a signed delivery or an unsigned ping — and what came back.
    `status` is None when the transport raised (refused connection, timeout); `error` then says why."""

    kind: str  # "delivery" or "ping"
    webhook_id: int
    topic: str | None
    url: str
    body: bytes
    headers: dict
    status: int | None
    error: str | None
    sent_at: datetime

    @property
    def ok(self) -> bool:
        if self.status is None:
            return False
        return self.status == 200 if self.kind == "ping" else 200 <= self.status < 303

    def json(self):
        return json.loads(self.body)


@dataclass(frozen=True)
class PendingDelivery:
    """A delivery waiting in `sim.pending_deliveries` while deliveries are held. Reorder, drop or
    duplicate these, then `sim.flush(...)`. `rebuild` (the background-queue mode) means the body is made
    from the resource's state at sending time, as WooCommerce's Action Scheduler does."""

    webhook_id: int
    topic: str
    resource_id: int
    body: bytes
    queued_at: datetime
    rebuild: bool = False


class WebhookHub:
    """The webhooks, their delivery log and the hold/flush queue."""

    def __init__(
        self,
        *,
        lock: threading.RLock,
        clock: Callable[[], datetime],
        source_url: Callable[[], str],
        payload: Callable[[str, int], bytes],
        transport: Transport | None = None,
    ):
        self.webhooks: dict[int, Webhook] = {}
        self.deliveries: list[Delivery] = []
        self.pending: list[PendingDelivery] = []
        self.holding = False
        self.coalesce = False
        self.transport: Transport = transport or requests_transport
        self._lock = lock
        self._clock = clock
        self._source_url = source_url
        self._payload = payload
        self._ids = itertools.count(1)

    # --- administration (call under the lock; then `ping()` outside it when asked to) ----------------------

    def add(self, *, topic: str, delivery_url: str, secret: str | None, name: str | None, status: str) -> Webhook:
        now = self._clock()
        hook = Webhook(
            next(self._ids),
            name or f"Webhook created on {now:%b %d, %Y @ %I:%M %p}",
            topic,
            delivery_url,
            secret or secrets.token_urlsafe(38),
            status,
            now,
            now,
        )
        self.webhooks[hook.id] = hook
        return hook

    def change(self, hook: Webhook, **changes) -> bool:
        """Apply changes and save. True when that save owes a ping (see the module docstring)."""
        url_changed = "delivery_url" in changes and changes["delivery_url"] != hook.delivery_url
        for name, value in changes.items():
            setattr(hook, name, value)
        return self._saved(hook, url_changed)

    def _saved(self, hook: Webhook, url_changed: bool = False) -> bool:
        hook.modified = self._clock()
        return hook.status == "active" and (url_changed or hook.pending_delivery)

    # --- events --------------------------------------------------------------------------------------------

    def collect(self, events: list[tuple[str, int]]) -> list[PendingDelivery]:
        """Under the lock, right after a change: one delivery per active webhook on each event's topic.
        Bodies are built once per resource, so order.created and order.updated carry identical bytes."""
        now, bodies, out = self._clock(), {}, []
        for topic, resource_id in events:
            for hook in self.webhooks.values():
                if hook.status != "active" or hook.topic != topic:
                    continue
                key = (topic if topic.endswith(".deleted") else topic.split(".")[0], resource_id)
                if key not in bodies:
                    bodies[key] = self._payload(topic, resource_id)
                out.append(PendingDelivery(hook.id, topic, resource_id, bodies[key], now))
        return out

    def dispatch(self, items: list[PendingDelivery]) -> list[Delivery]:
        """Outside the lock: send now, or queue while deliveries are held."""
        if not self.holding:
            return self.send(items)
        with self._lock:
            for item in items:
                self._enqueue(item)
        return []

    def _enqueue(self, item: PendingDelivery) -> None:
        if self.coalesce:
            # Action Scheduler keeps one queued action per (webhook, resource): later changes ride along.
            if any(p.webhook_id == item.webhook_id and p.resource_id == item.resource_id for p in self.pending):
                return
            item = replace(item, rebuild=True)
        self.pending.append(item)

    def flush(self, items: list[PendingDelivery] | None = None) -> list[Delivery]:
        """Send the held deliveries (all, in queue order), or exactly `items` — any order, duplicates and
        omissions allowed. Sent items leave the queue."""
        with self._lock:
            if items is None:
                items, self.pending[:] = list(self.pending), []
            else:
                self.pending[:] = [p for p in self.pending if not any(p is item for item in items)]
        return self.send(items)

    def send(self, items: list[PendingDelivery]) -> list[Delivery]:
        return [record for item in items if (record := self._deliver(item)) is not None]

    def _deliver(self, item: PendingDelivery) -> Delivery | None:
        with self._lock:
            hook = self.webhooks.get(item.webhook_id)
            if hook is None:
                return None  # deleted meanwhile: WooCommerce could not load it either
            body = self._payload(item.topic, item.resource_id) if item.rebuild else item.body
            headers = self._signed_headers(hook, body)
            url = hook.delivery_url
        status, error = self._post(url, body, headers)
        with self._lock:
            record = Delivery("delivery", hook.id, hook.topic, url, body, headers, status, error, self._clock())
            self.deliveries.append(record)
            self._count(hook, record.ok)
            ping_owed = self._saved(hook)
        if ping_owed:
            self.ping(hook.id)
        return record

    def _signed_headers(self, hook: Webhook, body: bytes) -> dict:
        return {
            "User-Agent": USER_AGENT,
            "Content-Type": "application/json",
            "X-WC-Webhook-Source": self._source_url() + "/",
            "X-WC-Webhook-Topic": hook.topic,
            "X-WC-Webhook-Resource": hook.resource,
            "X-WC-Webhook-Event": hook.event,
            "X-WC-Webhook-Signature": webhook_signature(body, hook.secret),
            "X-WC-Webhook-ID": str(hook.id),
            "X-WC-Webhook-Delivery-ID": delivery_id(hook.id, int(self._clock().timestamp())),
        }

    @staticmethod
    def _count(hook: Webhook, ok: bool) -> None:
        if ok:
            hook.failure_count = 0
        elif hook.failure_count > MAX_FAILURES:
            hook.status = "disabled"
        else:
            hook.failure_count += 1

    def ping(self, webhook_id: int) -> Delivery | None:
        """POST `webhook_id=N` (form-encoded, unsigned). Only a 200 clears the pending flag."""
        with self._lock:
            hook = self.webhooks.get(webhook_id)
            if hook is None:
                return None
            url, body = hook.delivery_url, f"webhook_id={hook.id}".encode()
        headers = {"User-Agent": USER_AGENT, "Content-Type": "application/x-www-form-urlencoded"}
        status, error = self._post(url, body, headers)
        with self._lock:
            record = Delivery("ping", hook.id, None, url, body, headers, status, error, self._clock())
            self.deliveries.append(record)
            if record.ok:
                hook.pending_delivery = False
                hook.modified = self._clock()
        return record

    def _post(self, url: str, body: bytes, headers: dict) -> tuple[int | None, str | None]:
        try:
            return int(self.transport(url, body, dict(headers))), None
        except Exception as exc:  # any transport failure is a failed delivery, never an error in the shop
            return None, f"{exc.__class__.__name__}: {exc}"
