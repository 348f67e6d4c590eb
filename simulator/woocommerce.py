"""An in-memory WooCommerce 10 shop: the wc/v3 REST API (Flask, `sim.app`), webhook deliveries, and
helpers that play the shop front and the merchant, for end-to-end tests and `wallet-bridge demo`.

    sim = create_simulator(consumer_key="ck_x", consumer_secret="cs_x", transport=post_into_bridge)
    url = sim.serve()                                   # http://127.0.0.1:PORT, OAuth 1.0a like a real store
    sim.create_webhook("order.updated", "http://bridge/webhooks/woocommerce/1", secret="s")
    alice = sim.create_customer("alice@example.test", "Alice", "Tester")
    order = sim.place_order(alice["id"], total="41.48", payment_method="wallet")
    ...
    sim.shutdown()

Behaviour follows /work/shared/WOOCOMMERCE_NOTES.md (what a real store did) where it differs from the
REST documentation. Deliveries are synchronous: a change made through REST or a helper is delivered
before the call returns, unless deliveries are held (`hold_deliveries()` / `flush()`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import woocommerce

from simulator import views
from simulator.auth import Credentials
from simulator.errors import WooError, invalid_param, not_found
from simulator.rest import Outage, RestCall, create_app
from simulator.serving import BackgroundServer
from simulator.store import Store
from simulator.webhooks import STATUSES, Delivery, PendingDelivery, Transport, Webhook, WebhookHub, is_valid_topic
from simulator.wire import wp_json

T = TypeVar("T")
Event = tuple[str, int]  # (topic, resource id)

GATEWAY_TITLES = {
    "wallet": "Wallet",
    "bacs": "Direct bank transfer",
    "cod": "Cash on delivery",
    "stripe": "Credit / Debit Card",
}
DEFAULT_URL = "http://woocommerce.test"


class ManualClock:
    """A clock tests move by hand (`clock.advance(1)`), for dates, modified_after and delivery ids."""

    def __init__(self, start: datetime | None = None):
        self.now = start or datetime(2026, 11, 23, 11, 47, 27, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 1) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


class ShopSimulator:
    """In-memory state, webhooks, fault injection and the Flask app. Create with `create_simulator()`."""

    def __init__(
        self,
        *,
        consumer_key: str = "ck_simulator",
        consumer_secret: str = "cs_simulator",  # noqa: S107 - a simulator key, not a secret
        currency: str = "EUR",
        decimals: int = 2,
        tax_rate_bp: int = 0,
        url: str | None = None,
        transport: Transport | None = None,
        clock: Callable[[], datetime] | None = None,
        gateways: Mapping[str, bool] | Iterable[str] | None = None,
        utc_offset_minutes: int = 0,
        first_order_id: int = 100,
        seed: int | None = None,
        basic_auth_over_http: bool = True,
        rest_timeout_seconds: float = 11.0,
    ):
        self.lock = threading.RLock()
        self.clock = clock or (lambda: datetime.now(UTC))
        self.url = (url or DEFAULT_URL).rstrip("/")
        self.store = Store(
            clock=lambda: self.clock(),
            currency=currency,
            decimals=decimals,
            tax_rate_bp=tax_rate_bp,
            gateways=gateways,
            utc_offset=timedelta(minutes=utc_offset_minutes),
            first_order_id=first_order_id,
            seed=seed,
        )
        self.credentials = Credentials(consumer_key, consumer_secret, basic_auth_over_http)
        self.hub = WebhookHub(
            lock=self.lock,
            clock=lambda: self.clock().replace(microsecond=0),
            source_url=lambda: self.url,
            payload=self._payload,
            transport=transport,
        )
        self.requests: list[RestCall] = []
        self.rest_timeout_seconds = rest_timeout_seconds
        self._url_given = url is not None
        self._outage: Outage | None = None
        self._wake = threading.Event()
        self._http = BackgroundServer("woocommerce-simulator")
        self.app = create_app(self)

    # --- the core: change state, then deliver outside the lock -------------------------------------------------

    def change(self, action: Callable[[], tuple[T, list[Event]]]) -> T:
        """Run `action` under the lock; it returns (result, events). The events' webhooks are then
        delivered (or queued) after the lock is released, so receivers may call the REST API back."""
        with self.lock:
            result, events = action()
            outgoing = self.hub.collect(events)
        self.hub.dispatch(outgoing)
        return result

    def _payload(self, topic: str, resource_id: int) -> bytes:
        resource, _, event = topic.partition(".")
        if event == "deleted":
            return wp_json({"id": resource_id})
        with self.lock:
            try:
                return wp_json(self._resource_json(resource, resource_id))
            except WooError as exc:  # gone meanwhile: get_endpoint_data() returns the error body
                return wp_json(exc.body())

    def _resource_json(self, resource: str, resource_id: int) -> dict:
        if resource == "order":
            return self.order_json(resource_id)
        if resource == "customer":
            return views.customer_json(self.store.customer(resource_id), self.store, self.url)
        raise not_found(f"woocommerce_rest_{resource}_invalid_id")

    def order_json(self, order_id: int) -> dict:
        return views.order_json(self.store.order(order_id), self.store, self.url)

    # --- reading state ---------------------------------------------------------------------------------------

    def order(self, order_id: int) -> dict:
        """The order as GET /orders/<id> returns it."""
        with self.lock:
            return self.order_json(order_id)

    def customer(self, customer_id: int) -> dict:
        """The customer as GET /customers/<id> returns it."""
        with self.lock:
            return views.customer_json(self.store.customer(customer_id), self.store, self.url)

    def notes(self, order_id: int) -> list[dict]:
        """The order's notes, newest first, including the system notes of status changes."""
        with self.lock:
            return [views.note_json(n, self.store, self.url) for n in self.store.notes_of(order_id)]

    def refunds(self, order_id: int) -> list[dict]:
        """The order's refunds, newest first, amounts positive."""
        with self.lock:
            return [views.refund_json(r, self.store, self.url) for r in self.store.refunds_of(order_id)]

    def webhook(self, webhook_id: int) -> Webhook:
        """The live webhook object (status, failure_count, pending_delivery, secret)."""
        found = self.hub.webhooks.get(webhook_id)
        if found is None:
            raise not_found("woocommerce_rest_webhook_invalid_id")
        return found

    @property
    def webhooks(self) -> dict[int, Webhook]:
        return self.hub.webhooks

    # --- the story: shop front and wp-admin --------------------------------------------------------------------

    def create_customer(self, email: str, first_name: str = "", last_name: str = "", **fields) -> dict:
        """A shopper registers (customer.created). Extra fields as in POST /customers (username, billing…)."""

        def action():
            customer = self.store.create_customer(
                {"email": email, "first_name": first_name, "last_name": last_name, **fields}
            )
            return views.customer_json(customer, self.store, self.url), [("customer.created", customer.id)]

        return self.change(action)

    def update_customer(self, customer_id: int, **fields) -> dict:
        """A shopper edits their account (customer.updated)."""

        def action():
            customer = self.store.update_customer(customer_id, fields)
            return views.customer_json(customer, self.store, self.url), [("customer.updated", customer.id)]

        return self.change(action)

    def place_order(
        self,
        customer_id: int = 0,
        total: str = "41.48",
        payment_method: str = "wallet",
        status: str = "pending",
        currency: str | None = None,
        **fields,
    ) -> dict:
        """A checkout: one line item of `total` (prices exclude tax: with a tax rate the order total is
        higher), billing copied from the customer. Delivers order.created and order.updated.
        Extra fields as in POST /orders (line_items replaces the single item, fee_lines, meta_data, …)."""

        def action():
            billing = dict(self.store.customer(customer_id).billing) if customer_id else {}
            order = self.store.create_order(
                {
                    "customer_id": customer_id,
                    "status": status,
                    "payment_method": payment_method,
                    "payment_method_title": GATEWAY_TITLES.get(payment_method, payment_method.title()),
                    "currency": currency or self.store.currency,
                    "billing": billing,
                    "line_items": [{"name": "Simulated item", "quantity": 1, "total": total}],
                    **fields,
                },
                created_via="checkout",
            )
            order.customer_ip_address = "127.0.0.1"
            return self.order_json(order.id), [("order.created", order.id), ("order.updated", order.id)]

        return self.change(action)

    def update_order(self, order_id: int, **fields) -> dict:
        """The merchant edits the order in wp-admin (items, quantities, fees; order.updated)."""

        def action():
            self.store.update_order(order_id, fields)
            return self.order_json(order_id), [("order.updated", order_id)]

        return self.change(action)

    def set_status(self, order_id: int, status: str) -> dict:
        """The merchant changes the status in wp-admin (order.updated)."""

        def action():
            self.store.set_status(order_id, status)
            return self.order_json(order_id), [("order.updated", order_id)]

        return self.change(action)

    def restore_order(self, order_id: int) -> dict:
        """The merchant restores the order from the trash in wp-admin (order.restored only)."""

        def action():
            self.store.untrash_order(order_id)
            return self.order_json(order_id), [("order.restored", order_id)]

        return self.change(action)

    def refund(
        self, order_id: int, amount: str, reason: str = "", api_refund: bool = False, line_items: list | None = None
    ) -> dict:
        """The merchant refunds in wp-admin ("Refund manually" unless api_refund). Returns the refund
        (positive amount); the order gains `refunds: [{id, reason, total: "-X"}]` and order.updated goes out.
        Raises WooError like the REST endpoint (invalid amount, gateway missing)."""
        fields = {"amount": amount, "reason": reason, "api_refund": api_refund, "line_items": line_items or []}
        return self.create_refund(order_id, fields)

    def create_refund(self, order_id: int, fields: Mapping) -> dict:
        """POST /orders/<id>/refunds with raw fields (api_refund defaults to true there)."""

        def action():
            refund = self.store.create_refund(order_id, fields)
            return views.refund_json(refund, self.store, self.url), [("order.updated", order_id)]

        return self.change(action)

    def add_note(self, order_id: int, note: str, customer_note: bool = False) -> dict:
        """An order note. Notes deliver no webhook, as on a real store."""
        with self.lock:
            return views.note_json(self.store.add_note(order_id, note, customer_note), self.store, self.url)

    # --- webhooks (wp-admin or REST) ---------------------------------------------------------------------------

    def create_webhook(
        self, topic: str, delivery_url: str, secret: str | None = None, name: str | None = None, status: str = "active"
    ) -> dict:
        """Create a webhook and ping it (as POST /webhooks does, whatever the status)."""
        with self.lock:
            _check_webhook_fields(topic=topic, delivery_url=delivery_url, status=status, creating=True)
            hook = self.hub.add(topic=topic, delivery_url=delivery_url, secret=secret, name=name, status=status)
            data = views.webhook_json(hook, self.store, self.url)
        self.hub.ping(hook.id)
        return data

    def update_webhook(self, webhook_id: int, **changes) -> dict:
        """Change status / delivery_url / secret / name / topic. Re-activating replays nothing; an active
        webhook still owing a ping, or given a new URL, is pinged."""
        with self.lock:
            hook = self.webhook(webhook_id)
            _check_webhook_fields(**changes)
            ping_owed = self.hub.change(hook, **{k: v for k, v in changes.items() if v is not None})
            data = views.webhook_json(hook, self.store, self.url)
        if ping_owed:
            self.hub.ping(webhook_id)
        return data

    def set_webhook_status(self, webhook_id: int, status: str) -> dict:
        """Pause, disable or re-activate a webhook."""
        return self.update_webhook(webhook_id, status=status)

    def delete_webhook(self, webhook_id: int) -> dict:
        with self.lock:
            data = views.webhook_json(self.webhook(webhook_id), self.store, self.url)
            del self.hub.webhooks[webhook_id]
        return data

    # --- deliveries ------------------------------------------------------------------------------------------

    @property
    def transport(self) -> Transport:
        return self.hub.transport

    @transport.setter
    def transport(self, value: Transport) -> None:
        self.hub.transport = value

    @property
    def deliveries(self) -> list[Delivery]:
        """Everything sent, in order: deliveries and pings with headers, raw body and the status returned."""
        return self.hub.deliveries

    def deliveries_for(self, topic: str | None = None, kind: str = "delivery") -> list[Delivery]:
        """The log filtered by topic and kind ("delivery" or "ping")."""
        return [d for d in self.hub.deliveries if d.kind == kind and (topic is None or d.topic == topic)]

    @property
    def pending_deliveries(self) -> list[PendingDelivery]:
        """Deliveries queued while held (a plain list: reorder, drop or duplicate in place, then flush)."""
        return self.hub.pending

    def hold_deliveries(self, coalesce: bool = False) -> None:
        """Queue deliveries instead of sending them. With `coalesce`, behave like WooCommerce's background
        queue: one queued delivery per (webhook, resource), its body built when flushed, so several quick
        changes arrive once showing only the final state."""
        self.hub.holding, self.hub.coalesce = True, coalesce

    def release_deliveries(self) -> list[Delivery]:
        """Stop holding and send everything queued."""
        self.hub.holding = False
        return self.flush()

    def flush(self, items: list[PendingDelivery] | None = None) -> list[Delivery]:
        """Send the queued deliveries, or exactly `items` (any order, duplicates allowed)."""
        return self.hub.flush(items)

    def ping(self, webhook_id: int) -> Delivery | None:
        """Send the unsigned ping now (as saving an active webhook that still owes one does)."""
        return self.hub.ping(webhook_id)

    # --- fault injection and the journal ---------------------------------------------------------------------

    def fail_rest(
        self,
        status: int = 503,
        *,
        timeout: bool | float = False,
        times: int | None = None,
        after_apply: bool = False,
        body: object = None,
    ) -> None:
        """Make REST calls fail until `restore_rest()` (or for the next `times` calls).

        `timeout=True` holds each call `rest_timeout_seconds` (past the bridge's client timeout) before
        answering 504; a number holds it that many seconds. `after_apply=True` processes the call first —
        the change is made and delivered — and only then fails, like a response lost on the way back.
        `body`: the answer (dict → JSON); by default a proxy's HTML error page.
        """
        delay = self.rest_timeout_seconds if timeout is True else (float(timeout) if timeout else None)
        with self.lock:
            self._wake = threading.Event()
            self._outage = Outage(504 if delay else status, delay, times, after_apply, body)

    def restore_rest(self) -> None:
        """End `fail_rest`; calls being held by a timeout are released at once."""
        with self.lock:
            self._outage = None
            self._wake.set()

    def take_outage(self) -> tuple[Outage | None, threading.Event]:
        """For the REST layer: the outage applying to this call (counting down `times`)."""
        with self.lock:
            outage, wake = self._outage, self._wake
            if outage is not None and outage.remaining is not None:
                outage.remaining -= 1
                if outage.remaining <= 0:
                    self._outage = None
            return outage, wake

    def calls(self, method: str | None = None, endpoint: str | None = None) -> list[RestCall]:
        """The journal filtered by method and endpoint ("orders/123", "orders/123/notes")."""
        return [
            c
            for c in self.requests
            if (method is None or c.method == method.upper()) and (endpoint is None or c.endpoint == endpoint)
        ]

    # --- serving ---------------------------------------------------------------------------------------------

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve the app from a background thread (threaded werkzeug server); returns the base URL, which
        also becomes the shop URL unless one was configured."""
        base = self._http.start(self.app, host, port)
        if not self._url_given:
            self.url = base
        return base

    @property
    def base_url(self) -> str | None:
        """The served URL (None before `serve()`)."""
        return self._http.base_url

    def api_client(self, timeout: float = 5) -> woocommerce.API:
        """The official client, pointed at the served simulator with the right keys."""
        return woocommerce.API(
            url=self.base_url or self.url,
            consumer_key=self.credentials.consumer_key,
            consumer_secret=self.credentials.consumer_secret,
            version="wc/v3",
            timeout=timeout,
        )

    def shutdown(self) -> None:
        """Stop the server (releasing calls held by a simulated timeout)."""
        self._wake.set()
        self._http.stop()

    def __enter__(self) -> ShopSimulator:
        return self

    def __exit__(self, *exc_info) -> None:
        self.shutdown()


def _check_webhook_fields(
    topic: object = None, delivery_url: object = None, status: object = None, creating: bool = False, **_
) -> None:
    if (creating or topic is not None) and not is_valid_topic(topic):
        raise WooError(400, "woocommerce_rest_webhook_invalid_topic", "Webhook topic is required and must be valid.")
    valid_url = isinstance(delivery_url, str) and delivery_url.startswith(("http://", "https://"))
    if (creating or delivery_url is not None) and not valid_url:
        raise WooError(
            400,
            "woocommerce_rest_webhook_invalid_delivery_url",
            "Webhook delivery URL must be a valid URL starting with http:// or https://.",
        )
    if status is not None and status not in STATUSES:
        raise invalid_param("status", "status is not one of active, paused, and disabled.", "rest_not_in_enum")


def create_simulator(**options) -> ShopSimulator:
    """A new simulated shop. Options (all keyword): consumer_key, consumer_secret, currency ("EUR"),
    decimals (2), tax_rate_bp (0; prices exclude tax), url (shop URL; default: the served URL),
    transport (callable(url, body, headers) -> status; default: requests.post), clock (callable → aware
    datetime; see ManualClock), gateways ({id: supports_refunds} or a set of ids; default: bacs, cheque and cod
    installed without API refunds, stripe with them; never "wallet"),
    utc_offset_minutes (site timezone), first_order_id (100), seed (order keys), basic_auth_over_http
    (True; a real store accepts only OAuth over http), rest_timeout_seconds (11, for fail_rest(timeout=True))."""
    return ShopSimulator(**options)
