"""An in-memory Shopify shop for end-to-end tests and `wallet-bridge demo --platform shopify`: the GraphQL
Admin API calls the bridge makes (Flask, `sim.app`), native store credit accounts, signed webhook
deliveries, and helpers that play the shop front and the merchant.

    sim = create_shopify_simulator(access_token="shpat_x", webhook_secret="s", transport=post_into_bridge)
    url = sim.serve()                   # sim.graphql_url = http://127.0.0.1:PORT/admin/api/2026-01/graphql.json
    sim.subscribe("orders/paid", "http://bridge/webhooks/shopify/1")   # or webhookSubscriptionCreate
    alice = sim.create_customer("alice@example.test", "Alice", "Tester")
    sim.adjust_store_credit(alice["id"], "20.00")                      # or storeCreditAccountCredit
    order = sim.place_order(alice["id"], total="41.48", store_credit="10.00")
    sim.refund(order["id"], "5.00", to_store_credit=True)
    ...
    sim.shutdown()

Deliveries are synchronous: a helper's webhooks are delivered before it returns, unless deliveries are
held (`hold_deliveries()` / `flush()`). A failed delivery waits in `failed_deliveries` until
`retry_failed()` sends it again, as Shopify's retries would. See simulator/shopify_graphql.py for the
API and simulator/shopify_webhooks.py for the delivery rules.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from simulator.serving import BackgroundServer
from simulator.shopify_graphql import GraphQLCall, LeakyBucket, Outage, create_app
from simulator.shopify_store import FIRST_ID, ShopifySimulatorError, ShopifyStore
from simulator.shopify_webhooks import DELIVERY_TIMEOUT, Delivery, PendingDelivery, Subscription, WebhookHub
from simulator.shopify_wire import (
    API_VERSION,
    TOPICS,
    is_currency,
    parse_datetime,
    shopify_json,
    to_minor,
    topic_enum,
)
from simulator.woocommerce import ManualClock

__all__ = [
    "API_VERSION",
    "Delivery",
    "GraphQLCall",
    "ManualClock",
    "PendingDelivery",
    "ShopifySimulator",
    "ShopifySimulatorError",
    "Subscription",
    "create_shopify_simulator",
]

Transport = Callable[[str, bytes, dict], int]
Event = tuple[str, bytes]  # (topic, body)


class Countdown:
    """How many of the next requests a fault is for (thread-safe)."""

    def __init__(self):
        self._left, self._lock = 0, threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self._left += n

    def take(self) -> bool:
        """True, once per request asked for."""
        with self._lock:
            if self._left <= 0:
                return False
            self._left -= 1
            return True


class ShopifySimulator:
    """State, webhooks, throttling, fault injection and the Flask app. Create with `create_shopify_simulator()`."""

    def __init__(
        self,
        *,
        access_token: str = "shpat_simulator",  # noqa: S107 - a simulator token, not a secret
        webhook_secret: str = "shopify-simulator-webhook-secret",  # noqa: S107
        shop_domain: str = "demo.myshopify.com",
        shop_name: str = "Demo Shop",
        currency: str = "EUR",
        transport: Transport | None = None,
        clock: Callable[[], datetime] | None = None,
        utc_offset_minutes: int = 0,
        first_id: int = FIRST_ID,
        query_cost: int = 10,
        maximum_available: float = 1000.0,
        restore_rate: float = 50.0,
        throttle_clock: Callable[[], float] | None = None,
        delivery_timeout: float = DELIVERY_TIMEOUT,
        seed: int | None = None,
    ):
        if not is_currency(currency):
            raise ShopifySimulatorError(f"unknown currency {currency!r}")
        self.lock = threading.RLock()
        self.clock = clock or (lambda: datetime.now(UTC))
        self.access_token = access_token
        self.shop_domain = shop_domain
        self.shop_name = shop_name
        self.query_cost = query_cost
        self.store = ShopifyStore(
            clock=lambda: self.clock(),
            currency=currency,
            shop_domain=shop_domain,
            utc_offset=timedelta(minutes=utc_offset_minutes),
            first_id=first_id,
        )
        self.shop_id = self.store.next_id()
        self.hub = WebhookHub(
            lock=self.lock,
            clock=lambda: self.clock(),
            secret=webhook_secret,
            shop_domain=shop_domain,
            api_version=API_VERSION,
            transport=transport,
            timeout=delivery_timeout,
            seed=seed,
        )
        # Rate limiting runs on real (monotonic) time unless told otherwise, so a frozen story clock
        # does not freeze the bucket.
        self.bucket = LeakyBucket(maximum_available, restore_rate, throttle_clock or time.monotonic)
        self.requests: list[GraphQLCall] = []
        self._forced_throttles, self._answers_to_lose = Countdown(), Countdown()
        self._outage: Outage | None = None
        self._wake = threading.Event()
        self._http = BackgroundServer("shopify-simulator")
        self.app = create_app(self)

    # --- the core: change state, then deliver outside the lock -------------------------------------------------

    def _change(self, action: Callable[[], tuple[object, list[Event]]]):
        with self.lock:
            result, events = action()
            outgoing = self.hub.collect(events)
        self.hub.dispatch(outgoing)
        return result

    def _order_events(self, order, *topics: str) -> list[Event]:
        body = _json_bytes(self.store.order_json(order))
        return [(topic, body) for topic in topics]

    def _minor(self, amount: str, currency: str, what: str) -> int:
        try:
            return to_minor(amount, currency)
        except ValueError as exc:
            raise ShopifySimulatorError(f"{what}: {exc}") from None

    # --- reading state ---------------------------------------------------------------------------------------

    def order(self, order_id: int) -> dict:
        """The order as its webhook bodies show it."""
        with self.lock:
            return self.store.order_json(self.store.order(order_id))

    def customer(self, customer_id: int) -> dict:
        with self.lock:
            return self.store.customer_json(self.store.customer(customer_id))

    def store_credit_balance(self, customer_id: int | str, currency: str | None = None) -> int:
        """The customer's store credit in `currency` (the shop's by default), minor units, after expiries."""
        with self.lock:
            account = self.store.account(_customer_number(customer_id), currency or self.store.currency)
            return account.balance() if account else 0

    def store_credit_accounts(self, customer_id: int | str) -> dict[str, int]:
        """{currency: balance} for every account the customer has."""
        with self.lock:
            return {a.currency: a.balance() for a in self.store.accounts_of(_customer_number(customer_id))}

    def store_credit_history(self, customer_id: int | str, currency: str | None = None) -> list:
        """The account's entries (credits, debits, expirations), oldest first."""
        with self.lock:
            account = self.store.account(_customer_number(customer_id), currency or self.store.currency)
            return list(account.history) if account else []

    # --- the story: shop front and Shopify admin --------------------------------------------------------------

    def create_customer(self, email: str, first_name: str = "", last_name: str = "", **fields) -> dict:
        """A shopper signs up (customers/create). Extra fields: phone, note, tags, verified_email."""

        def action():
            customer = self.store.create_customer(email, first_name, last_name, **fields)
            data = self.store.customer_json(customer)
            return data, [("customers/create", _json_bytes(data))]

        return self._change(action)

    def update_customer(self, customer_id: int, **fields) -> dict:
        """The customer or merchant edits the account (customers/update)."""

        def action():
            data = self.store.customer_json(self.store.update_customer(customer_id, **fields))
            return data, [("customers/update", _json_bytes(data))]

        return self._change(action)

    def place_order(
        self,
        customer_id: int | None,
        total: str = "41.48",
        currency: str | None = None,
        store_credit: str = "0.00",
        gateway: str = "bogus",
        email: str | None = None,
    ) -> dict:
        """A paid checkout (None: a guest). The `store_credit` part is paid from the customer's native store
        credit — debited from the account at once, a "shopify_store_credit" sale transaction (read through
        the GraphQL `order` query: order bodies carry no transactions, as Shopify's) — and the rest through
        `gateway`. Delivers orders/create then orders/paid with the same body, whose `payment_gateway_names`
        name both."""
        currency = currency or self.store.currency
        if not is_currency(currency):
            raise ShopifySimulatorError(f"unknown currency {currency!r}")
        total_minor = self._minor(total, currency, "total")
        credit_minor = self._minor(store_credit, currency, "store_credit")

        def action():
            order = self.store.place_order(
                _optional_customer(customer_id), total_minor, currency, credit_minor, gateway, email
            )
            return self.store.order_json(order), self._order_events(order, "orders/create", "orders/paid")

        return self._change(action)

    def refund(
        self,
        order_id: int,
        amount: str,
        to_store_credit: bool | str = False,
        failed_extra: str | None = None,
        note: str = "",
    ) -> dict:
        """The merchant refunds `amount`: to the original gateway, or (`to_store_credit=True`) to the
        customer's store credit, or a string: that part to store credit and the rest to the gateway.
        `failed_extra`: a failed refund transaction of that amount comes first (it moves no money).
        Delivers refunds/create (the refund, not wrapped) then orders/updated; returns the refund."""

        def action():
            order = self.store.order(order_id)
            amount_minor = self._minor(amount, order.currency, "amount")
            if to_store_credit is True:
                credit_minor = amount_minor
            elif to_store_credit is False:
                credit_minor = 0
            else:
                credit_minor = self._minor(to_store_credit, order.currency, "to_store_credit")
            failed = self._minor(failed_extra, order.currency, "failed_extra") if failed_extra else None
            refund = self.store.refund(order.id, amount_minor, credit_minor, failed, note)
            data = self.store.refund_json(refund)
            events = [("refunds/create", _json_bytes(data)), *self._order_events(order, "orders/updated")]
            return data, events

        return self._change(action)

    def cancel(self, order_id: int, reason: str = "customer") -> dict:
        """The merchant cancels the order (no money moves; an unpaid order becomes voided). Delivers
        orders/cancelled then orders/updated; returns the order."""

        def action():
            order = self.store.cancel(order_id, reason)
            return self.store.order_json(order), self._order_events(order, "orders/cancelled", "orders/updated")

        return self._change(action)

    def adjust_store_credit(
        self, customer_id: int | str, amount: str, currency: str | None = None, expires_at: datetime | str | None = None
    ) -> int:
        """The merchant credits (positive `amount`) or debits (negative) the customer's store credit in the
        Shopify admin. No webhook: the bridge only notices by reconciling. Returns the new balance."""
        currency = currency or self.store.currency
        number = _customer_number(customer_id)
        minor = self._minor(amount, currency, "amount")
        expires = _expiry(expires_at) if expires_at is not None else None
        with self.lock:
            self.store.customer(number)
            if minor > 0:
                account, _ = self.store.credit(number, currency, minor, expires_at=expires, origin="merchant")
            else:
                account = self.store.account(number, currency)
                if account is None:
                    raise ShopifySimulatorError(f"customer {number} has no {currency} store credit account")
                if minor:
                    self.store.debit(account, -minor, "merchant")
            return account.balance()

    # --- webhook subscriptions ------------------------------------------------------------------------------

    def subscribe(self, topic: str, callback_url: str) -> Subscription:
        """What webhookSubscriptionCreate does; `topic` as "orders/paid" or "ORDERS_PAID"."""
        enum = topic if topic.isupper() else topic_enum(topic)
        if enum not in TOPICS:
            raise ShopifySimulatorError(f"unknown topic {topic!r}")
        with self.lock:
            if self.hub.find(enum, callback_url) is not None:
                raise ShopifySimulatorError("Address for this topic has already been taken")
            return self.hub.add(self.store.next_id(), enum, callback_url)

    def delete_subscription(self, subscription_id: int) -> None:
        """The subscription disappears (the app was reinstalled, the merchant removed it…)."""
        with self.lock:
            self.hub.subscriptions.pop(subscription_id, None)

    @property
    def subscriptions(self) -> list[Subscription]:
        with self.lock:
            return list(self.hub.subscriptions.values())

    # --- deliveries ------------------------------------------------------------------------------------------

    @property
    def transport(self) -> Transport:
        return self.hub.transport

    @transport.setter
    def transport(self, value: Transport) -> None:
        self.hub.transport = value

    @property
    def webhook_secret(self) -> str:
        return self.hub.secret

    def rotate_secret(self, new_secret: str) -> None:
        """The app's secret changes: every delivery from now on (retries included) is signed with it."""
        with self.lock:
            self.hub.previous_secret, self.hub.secret = self.hub.secret, new_secret

    @property
    def deliveries(self) -> list[Delivery]:
        """Everything sent, in order, with headers, raw body and the status returned."""
        return self.hub.deliveries

    def deliveries_for(self, topic: str | None = None) -> list[Delivery]:
        return [d for d in self.hub.deliveries if topic is None or d.topic == topic]

    @property
    def pending_deliveries(self) -> list[PendingDelivery]:
        """Deliveries queued while held (a plain list: reorder, drop or duplicate in place, then flush)."""
        return self.hub.pending

    @property
    def failed_deliveries(self) -> list[PendingDelivery]:
        """Failed deliveries waiting for `retry_failed()` (each carries its next attempt number)."""
        return self.hub.failed

    @property
    def abandoned_deliveries(self) -> list[PendingDelivery]:
        """Deliveries that failed their first attempt and all 8 retries."""
        return self.hub.abandoned

    def hold_deliveries(self) -> None:
        """Queue deliveries instead of sending them."""
        self.hub.holding = True

    def release_deliveries(self) -> list[Delivery]:
        """Stop holding and send everything queued."""
        self.hub.holding = False
        return self.flush()

    def flush(self, items: list[PendingDelivery] | None = None) -> list[Delivery]:
        """Send the queued deliveries, or exactly `items` (any order, duplicates allowed)."""
        return self.hub.flush(items)

    def retry_failed(self) -> list[Delivery]:
        """Shopify's retry: every failed delivery again, same webhook id, body and triggered-at."""
        return self.hub.retry_failed()

    # --- throttling, fault injection and the journal -----------------------------------------------------------

    def throttle_next(self, n: int = 1) -> None:
        """The next `n` GraphQL requests answer THROTTLED (HTTP 200, no data), whatever the bucket holds."""
        self._forced_throttles.add(n)

    def take_forced_throttle(self) -> bool:
        """For the API layer: True when this request is one of those `throttle_next` asked for."""
        return self._forced_throttles.take()

    def lose_answers(self, n: int = 1) -> None:
        """The next `n` mutations are carried out, then answered HTTP 502 instead of their result: a
        connection dropped after Shopify committed (the journal marks them `answer_lost`)."""
        self._answers_to_lose.add(n)

    def take_lost_answer(self) -> bool:
        """For the API layer: True when this mutation's answer is one of those `lose_answers` asked for."""
        return self._answers_to_lose.take()

    def fail_api(
        self, status: int = 503, *, times: int | None = None, body: object = None, delay: float | None = None
    ) -> None:
        """Make API requests fail with `status` until `restore_api()` (or for the next `times` requests),
        before authentication and without doing anything. `body`: dict → JSON, str → HTML; default
        `{"errors": "<reason>"}`. `delay`: hold each answer that many seconds first (a timeout)."""
        with self.lock:
            self._wake = threading.Event()
            self._outage = Outage(status, times, body, delay)

    def restore_api(self) -> None:
        """End `fail_api`; requests being held by a delay are released at once."""
        with self.lock:
            self._outage = None
            self._wake.set()

    def take_outage(self) -> tuple[Outage | None, threading.Event]:
        with self.lock:
            outage, wake = self._outage, self._wake
            if outage is not None and outage.remaining is not None:
                outage.remaining -= 1
                if outage.remaining <= 0:
                    self._outage = None
            return outage, wake

    def calls(self, root_field: str | None = None) -> list[GraphQLCall]:
        """The journal, filtered by root field ("storeCreditAccountCredit")."""
        return [c for c in self.requests if root_field is None or root_field in c.root_fields]

    # --- serving ---------------------------------------------------------------------------------------------

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve the app from a background thread; returns the base URL."""
        return self._http.start(self.app, host, port)

    @property
    def base_url(self) -> str | None:
        """The served URL (None before `serve()`)."""
        return self._http.base_url

    @property
    def graphql_url(self) -> str | None:
        base = self.base_url
        return f"{base}/admin/api/{API_VERSION}/graphql.json" if base else None

    def shutdown(self) -> None:
        """Stop the server (releasing requests held by `fail_api(delay=...)`)."""
        self._wake.set()
        self._http.stop()

    def __enter__(self) -> ShopifySimulator:
        return self

    def __exit__(self, *exc_info) -> None:
        self.shutdown()


def _json_bytes(data: dict) -> bytes:
    return shopify_json(data)


def _customer_number(customer_id: int | str) -> int:
    """A customer id given as an int, digits, or "gid://shopify/Customer/N"."""
    if isinstance(customer_id, int) and not isinstance(customer_id, bool):
        return customer_id
    if isinstance(customer_id, str):
        text = customer_id.rsplit("/", 1)[-1]
        if text.isdigit():
            return int(text)
    raise ShopifySimulatorError(f"not a customer id: {customer_id!r}")


def _optional_customer(customer_id: int | str | None) -> int | None:
    return None if customer_id is None else _customer_number(customer_id)


def _expiry(moment: datetime | str) -> datetime:
    """An expiry date from a datetime or an ISO string with an offset."""
    if isinstance(moment, datetime):
        return moment
    parsed = parse_datetime(moment)
    if parsed is None:
        raise ShopifySimulatorError(f"not an ISO date with an offset: {moment!r}")
    return parsed


def create_shopify_simulator(**options) -> ShopifySimulator:
    """A new simulated Shopify shop. Options (all keyword): access_token, webhook_secret, shop_domain
    ("demo.myshopify.com"), shop_name, currency ("EUR"), transport (callable(url, body, headers) -> status;
    default: requests.post), clock (callable → aware datetime; see ManualClock; drives dates and credit
    expiry), utc_offset_minutes (dates in bodies), first_id (2**53 + 1), query_cost (10 per root field),
    maximum_available (1000.0), restore_rate (50.0), throttle_clock (monotonic seconds for the bucket; default
    time.monotonic), delivery_timeout (5.0 s), seed (webhook and event ids). The API version is API_VERSION,
    the one whose schema the simulator validates against (sent as X-Shopify-API-Version too)."""
    return ShopifySimulator(**options)
