"""End to end against the Shopify simulator: the simulator is the shop (served on 127.0.0.1), its signed
deliveries go into the bridge's Flask test client, and the outbox worker mirrors every wallet movement to
the customer's native store credit through GraphQL over real HTTP. One customer's story, with a lost
answer, repeats, reorders, a secret rotation, throttling and a drift made in the Shopify admin."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from bridge.accounts import find_customer, find_points, find_wallet
from bridge.db import unit_of_work
from bridge.ledger import verify
from bridge.models import InboxDelivery, LedgerTransaction, OrderRefund, OutboxMessage, Shop, ShopOrder
from bridge.surfaces.platforms import pushers_for
from bridge.usecases import deliveries
from bridge.usecases.pushes import RetryPolicy
from simulator.shopify import ManualClock, create_shopify_simulator
from sync.shopify.client import ShopifyAdmin
from sync.shopify.connect import TOPICS, connect_shopify
from sync.shopify.store_credit import reconcile
from sync.worker import drain
from tests.conftest import make_shop

PUBLIC_URL = "https://bridge.example.test"  # the settings fixture's PUBLIC_URL
TOKEN = "shpat_e2e0123456789abcdef0123456789ab"
SECRET = "shpss_e2e_first_secret_0123456789abcdef"
NEW_SECRET = "shpss_e2e_second_secret_0123456789abcdef"
DOMAIN = "127.0.0.1"  # the simulator is served there, and the shop's URL says so: deliveries name this domain
EUR = "EUR"
RULES = dict(
    signup_bonus=500,
    points_per_currency_unit=1,
    points_conversion_points=100,
    points_conversion_value=100,
    refund_destination="wallet",
)


class IntoBridge:
    """The simulator's webhook transport: a delivery to PUBLIC_URL/... is posted into the bridge's test client
    with its raw body and headers; any other destination is refused (no network). After `lose_next_answer()`
    the next delivery reaches the bridge but its answer is lost on the way back: the shop sees a 500."""

    def __init__(self, client, public_url: str = PUBLIC_URL):
        self.client, self.public_url = client, public_url
        self.answers: list[tuple[str, str, int, dict | None]] = []  # (topic, webhook id, status, body)
        self._answers_to_lose = 0

    def lose_next_answer(self) -> None:
        self._answers_to_lose += 1

    def __call__(self, url: str, body: bytes, headers: dict) -> int:
        if not url.startswith(self.public_url + "/"):
            raise ConnectionError(f"the test network has no route to {urlsplit(url).netloc}")
        response = self.client.post(url[len(self.public_url) :], data=body, headers=headers)
        self.answers.append(
            (headers["X-Shopify-Topic"], headers["X-Shopify-Webhook-Id"], response.status_code, response.get_json())
        )
        if self._answers_to_lose:
            self._answers_to_lose -= 1
            return 500
        return response.status_code


@pytest.fixture
def loopback_only(monkeypatch):
    """Python sockets may connect to 127.0.0.1 only (libpq's own socket to a test PostgreSQL is not Python's)."""
    connect = socket.socket.connect

    def guarded(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in ("127.0.0.1", "::1"):
            raise AssertionError(f"a connection to {address} left the machine")
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def sim(client, clock):
    simulator = create_shopify_simulator(
        access_token=TOKEN,
        webhook_secret=SECRET,
        shop_domain=DOMAIN,
        currency=EUR,
        transport=IntoBridge(client),
        clock=clock,
        seed=6,
    )
    simulator.serve(DOMAIN, 0)
    yield simulator
    simulator.shutdown()


@pytest.fixture
def shopify(services, sim):
    created = make_shop(services, name="Shopify Shop", platform="shopify", url=sim.base_url, currency=EUR)
    configure(services, created.shop.id, **RULES)
    return created


def connect(services, shop_id: int, sim, webhook_secret: str = SECRET):
    return connect_shopify(
        services.sessions,
        services.secrets,
        shop_id,
        url=sim.base_url,
        access_token=TOKEN,
        webhook_secret=webhook_secret,
        public_url=PUBLIC_URL,
        timeout=5,
    )


def configure(services, shop_id: int, **settings) -> None:
    with unit_of_work(services.sessions) as session:
        stored = session.get(Shop, shop_id)
        stored.settings = {**stored.settings, **settings}


def push(services) -> None:
    """The outbox worker, until nothing is due (retries are immediate in tests: base delay 0)."""
    drain(services.sessions, pushers_for(services), RetryPolicy(max_attempts=8, base_delay_seconds=0))


def wallet(services, shop_id: int, customer_id: int) -> tuple[int, int]:
    """(wallet balance in cents, points) of the simulator's customer."""
    with unit_of_work(services.sessions) as session:
        customer = find_customer(session, shop_id, str(customer_id))
        if customer is None:
            return 0, 0
        account, points = find_wallet(session, customer, EUR), find_points(session, customer)
        return (account.balance if account else 0), (points.balance if points else 0)


def both(services, shop_id: int, sim, customer_id: int) -> tuple[int, int]:
    """(wallet, Shopify store credit), in cents."""
    return wallet(services, shop_id, customer_id)[0], sim.store_credit_balance(customer_id)


def count(services, kind: str, order_id: int | None = None) -> int:
    with unit_of_work(services.sessions) as session:
        query = select(func.count()).select_from(LedgerTransaction).where(LedgerTransaction.kind == kind)
        if order_id is not None:
            query = query.where(LedgerTransaction.order_ref == str(order_id))
        return session.scalar(query)


def outbox(services) -> list[tuple[str, int, str]]:
    with unit_of_work(services.sessions) as session:
        rows = session.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars()
        return [(m.kind, m.payload.get("amount"), m.status) for m in rows]


def mutations(sim) -> list[tuple[str, str]]:
    """The store credit mutations the shop received and carried out: (root field, amount)."""
    done = []
    for call in sim.requests:
        if (
            call.throttled
            or call.injected
            or call.root_field not in ("storeCreditAccountCredit", "storeCreditAccountDebit")
        ):
            continue
        given = call.variables.get("creditInput", {}).get("creditAmount") or call.variables["debitInput"]["debitAmount"]
        done.append((call.root_field, given["amount"]))
    return done


def debits(sim, customer_id: int) -> list[tuple[int, str]]:
    return [(e.amount, e.origin) for e in sim.store_credit_history(customer_id) if e.kind == "debit"]


def answers(sim, topic: str) -> list[tuple[int, str | None]]:
    """(HTTP status, the bridge's `status`) of every delivery of `topic` that reached the bridge, in order."""
    return [(status, (body or {}).get("status")) for t, _, status, body in sim.transport.answers if t == topic]


def record_throttle_waits(monkeypatch) -> list[float]:
    """The waits the GraphQL client chooses when throttled, recorded instead of slept (a forced throttle
    does not need them). `ShopifyAdmin(sleep=time.sleep)` binds the function when the module loads, so
    patching `sync.shopify.client.time.sleep` would not reach it: the client the pusher builds is given
    the recorder instead."""
    waits: list[float] = []
    for_shop = ShopifyAdmin.for_shop

    def recording(shop, secrets, timeout=10.0):
        admin = for_shop(shop, secrets, timeout)
        admin._sleep = waits.append
        return admin

    monkeypatch.setattr(ShopifyAdmin, "for_shop", staticmethod(recording))
    return waits


def database_hiccup_once(monkeypatch) -> list[str]:
    """The bridge's first look at the database fails once: its answer to that delivery is a 503."""
    failed: list[str] = []
    already_applied = deliveries.Arrival.already_applied

    def flaky(arrival, delivery_id):
        if not failed:
            failed.append(delivery_id)
            raise OperationalError("SELECT inbox_deliveries …", {}, ConnectionError("server closed the connection"))
        return already_applied(arrival, delivery_id)

    monkeypatch.setattr(deliveries.Arrival, "already_applied", flaky)
    return failed


def test_a_customer_story_against_the_simulated_shopify_shop(
    app, client, services, sim, shopify, clock, loopback_only, monkeypatch
):
    shop_id = shopify.shop.id
    api_headers = {"Authorization": f"Bearer {shopify.api_key}"}
    callback = f"{PUBLIC_URL}/webhooks/shopify/{shop_id}"

    # Connecting checks the token and subscribes every topic once; connecting again subscribes nothing.
    first = connect(services, shop_id, sim)
    assert (first.domain, first.callback_url, sorted(first.created)) == (DOMAIN, callback, sorted(TOPICS))
    again = connect(services, shop_id, sim)
    assert (again.created, sorted(again.unchanged)) == ([], sorted(TOPICS))
    assert sorted(s.topic for s in sim.subscriptions) == sorted(TOPICS)
    assert {s.callback_url for s in sim.subscriptions} == {callback}
    with unit_of_work(services.sessions) as session:
        assert session.get(Shop, shop_id).url == sim.base_url

    # 1. Alice signs up: customers/create opens her wallet with the €5.00 bonus, mirrored to her store credit.
    clock.advance()
    alice = sim.create_customer("alice@example.test", "Alice", "Tester")["id"]
    assert alice > 2**53  # Shopify-sized ids stay exact
    assert answers(sim, "customers/create") == [(200, "applied")]
    assert both(services, shop_id, sim, alice) == (500, 0)  # nothing pushed yet
    push(services)
    assert both(services, shop_id, sim, alice) == (500, 500)
    assert mutations(sim) == [("storeCreditAccountCredit", "5.00")]

    # 2. The merchant credits her wallet through the API: mirrored.
    credit = {"direction": "credit", "amount": 5000, "reason": "Goodwill for a late parcel"}
    response = client.post(
        f"/api/v1/customers/{alice}/adjustments", json=credit, headers={**api_headers, "Idempotency-Key": "goodwill-1"}
    )
    assert response.status_code == 201, response.get_json()
    push(services)
    assert both(services, shop_id, sim, alice) == (5500, 5500)
    assert mutations(sim)[-1] == ("storeCreditAccountCredit", "50.00")

    # 3. She spends €30.00 of store credit at Shopify's checkout (the rest by card). Like Shopify's, the
    #    orders/paid body names the store credit gateway but carries no transactions: the outbox worker
    #    reads them from the Admin API and the ledger follows, once; nothing is sent back — the checkout's
    #    debit is the only one.
    clock.advance()
    spent = sim.place_order(alice, total="41.48", store_credit="30.00")["id"]
    assert both(services, shop_id, sim, alice) == (5500, 2500)  # how much is not known yet
    push(services)
    assert both(services, shop_id, sim, alice) == (2500, 2500)
    assert [call.variables["id"] for call in sim.calls("order")] == [f"gid://shopify/Order/{spent}"]
    assert debits(sim, alice) == [(-3000, "order")]
    assert len(mutations(sim)) == 2 and not sim.calls("storeCreditAccountDebit")
    assert count(services, "payment", spent) == 1
    assert wallet(services, shop_id, alice)[1] == 41  # orders/paid: 1 point per euro of the €41.48

    # 4. A card order whose orders/paid the bridge answers 503 (a database hiccup): Shopify retries it,
    #    same webhook id, and the points are earned once.
    hiccups = database_hiccup_once(monkeypatch)
    clock.advance()
    card = sim.place_order(alice, total="60.00")["id"]
    assert hiccups and [d.status for d in sim.deliveries_for("orders/paid")][-1] == 503
    assert wallet(services, shop_id, alice) == (2500, 41)
    assert [d.topic for d in sim.failed_deliveries] == ["orders/paid"]
    [retried] = sim.retry_failed()
    assert (retried.webhook_id, retried.status, retried.attempt) == (hiccups[0], 200, 2)
    assert wallet(services, shop_id, alice) == (2500, 41 + 60)

    # 5. A refund to the card with two transactions, one of them failed: the €10.00 that succeeded went to the
    #    card, as Shopify says, so the wallet gets nothing (whatever the shop's refund policy: the customer is
    #    not paid twice); the points go back pro rata. The bridge applies it but its answer is lost: Shopify's
    #    retry, same webhook id, is a duplicate.
    clock.advance()
    sim.transport.lose_next_answer()
    sim.refund(card, "10.00", failed_extra="25.00", note="Wrong size")
    refund_body = sim.deliveries_for("refunds/create")[-1].json()
    assert [(t["status"], t["amount"]) for t in refund_body["transactions"]] == [
        ("failure", "25.00"),
        ("success", "10.00"),
    ]
    assert wallet(services, shop_id, alice) == (2500, 101 - 10)
    assert [d.topic for d in sim.failed_deliveries] == ["refunds/create"]
    sim.retry_failed()
    assert answers(sim, "refunds/create") == [(200, "applied"), (200, "duplicate")]
    assert wallet(services, shop_id, alice) == (2500, 91)
    assert count(services, "refund_to_wallet", card) == 0 and count(services, "points_clawback", card) == 1
    push(services)
    assert both(services, shop_id, sim, alice) == (2500, 2500)

    # 6. The merchant refunds €12.00 of the store-credit order to store credit (Shopify's own refund): the
    #    ledger follows, nothing is sent back.
    clock.advance()
    sim.refund(spent, "12.00", to_store_credit=True)
    assert both(services, shop_id, sim, alice) == (3700, 3700)
    push(services)
    assert both(services, shop_id, sim, alice) == (3700, 3700) and len(mutations(sim)) == 2
    assert wallet(services, shop_id, alice)[1] == 91 - 11  # 41 points × 12.00 / 41.48

    # 7. A card order cancelled: orders/cancelled and orders/updated both say so; the points go back once.
    clock.advance()
    gift = sim.place_order(alice, total="25.00")["id"]
    assert wallet(services, shop_id, alice)[1] == 80 + 25
    clock.advance()
    sim.cancel(gift)
    assert answers(sim, "orders/cancelled")[-1] == (200, "applied")
    assert wallet(services, shop_id, alice) == (3700, 80)
    assert count(services, "points_clawback", gift) == 1

    # 8. Out of order and twice: a store-credit order and its refund to store credit, delivered newest
    #    first, then all again oldest first (the same webhook ids): the same result as in order, once. The
    #    refund comes in the bodies; the spend, read by the worker, after it.
    sim.hold_deliveries()
    clock.advance()
    late = sim.place_order(alice, total="20.00", store_credit="12.00")["id"]
    clock.advance()
    sim.refund(late, "8.00", to_store_credit=True)
    held = list(sim.pending_deliveries)
    assert [d.topic for d in held] == ["orders/paid", "refunds/create", "orders/updated"]
    sim.flush(list(reversed(held)))
    assert wallet(services, shop_id, alice) == (3700 + 800, 80 + 20 - 8)
    sim.flush(held)
    sim.release_deliveries()
    assert [status for _, _, status, body in sim.transport.answers[-3:]] == [200, 200, 200]
    assert [body["status"] for _, _, _, body in sim.transport.answers[-3:]] == ["duplicate"] * 3
    assert wallet(services, shop_id, alice) == (3700 + 800, 80 + 20 - 8)
    push(services)
    assert both(services, shop_id, sim, alice) == (3300, 3300) and len(mutations(sim)) == 2
    assert count(services, "payment", late) == count(services, "refund_to_wallet", late) == 1

    # 9. The app's secret rotates: the bridge learns the new one first (the old stays valid), then Shopify
    #    signs with it; a delivery signed with neither is refused, and its retry, signed right, applied.
    rotated = connect(services, shop_id, sim, webhook_secret=NEW_SECRET)
    assert rotated.created == []
    clock.advance()
    bob = sim.create_customer("bob@example.test", "Bob", "Tester")["id"]  # still signed with the old secret
    sim.rotate_secret(NEW_SECRET)
    clock.advance()
    sim.place_order(bob, total="15.00")
    assert [d.status for d in sim.deliveries[-2:]] == [200, 200]
    assert wallet(services, shop_id, bob) == (500, 15)
    sim.rotate_secret("shpss_e2e_forged_secret")
    clock.advance()
    sim.update_customer(bob, first_name="Robert")
    assert sim.deliveries[-1].status == 401 and len(sim.failed_deliveries) == 1
    sim.rotate_secret(NEW_SECRET)
    assert [d.status for d in sim.retry_failed()] == [200]
    with unit_of_work(services.sessions) as session:
        assert find_customer(session, shop_id, str(bob)).name == "Robert Tester"

    # 10. Shopify throttles the bridge twice: the client waits as long as the bucket says, then succeeds,
    #     within one outbox attempt.
    waits = record_throttle_waits(monkeypatch)
    sim.throttle_next(2)
    push(services)
    assert waits == [0.2, 0.2]  # (10 the mutation costs − 0 available) / 50 restored per second
    assert [c.throttled for c in sim.calls("storeCreditAccountCredit")[-3:]] == [True, True, False]
    assert both(services, shop_id, sim, bob) == (500, 500)
    with unit_of_work(services.sessions) as session:
        last = session.execute(select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(1)).scalar_one()
        assert (last.kind, last.payload["amount"], last.status, last.attempts) == (
            "store_credit.credit",
            500,
            "delivered",
            1,
        )

    # 11. Drifts made in the Shopify admin (no webhook tells the bridge): `reconcile` finds and closes
    #     them, the ledger being the record; so does `wallet-bridge sync` for a Shopify shop.
    clock.advance()
    sim.adjust_store_credit(alice, "-3.00")
    result = reconcile(services.sessions, services.secrets, shop_id, timeout=5)
    assert (result.wallets, result.in_step) == (2, 1)
    assert result.drifts == [
        {"customer_id": str(alice), "currency": EUR, "ledger": 3300, "shopify": 3000, "fixed": True}
    ]
    assert both(services, shop_id, sim, alice) == (3300, 3300)
    sim.adjust_store_credit(bob, "2.50")
    with app.app_context():
        cli = app.test_cli_runner().invoke(args=["sync", str(shop_id)])
    assert cli.exit_code == 0, cli.output
    assert "wallets: 2, in step: 1, drifted (fixed): 1" in cli.output
    assert f"customer {bob} EUR: ledger 500, Shopify 750" in cli.output
    assert both(services, shop_id, sim, bob) == (500, 500)
    assert reconcile(services.sessions, services.secrets, shop_id, fix=False, timeout=5).drifts == []

    # Every customer's wallet equals their store credit; every delivery stored once and applied; every
    # message delivered; the ledger balances.
    for customer_id in sim.store.customers:
        wallet_balance, store_credit = both(services, shop_id, sim, customer_id)
        assert wallet_balance == store_credit, (customer_id, wallet_balance, store_credit)
    mirrored = [status for kind, _, status in outbox(services) if kind.startswith("store_credit.")]
    assert mirrored and set(mirrored) == {"delivered"}
    with unit_of_work(services.sessions) as session:
        rows = session.execute(select(InboxDelivery.delivery_id, InboxDelivery.status)).all()
        assert {status for _, status in rows} == {"applied"}, rows
        assert len({webhook_id for webhook_id, _ in rows}) == len(rows)  # each webhook id stored once
        assert verify(session) == []


# --- known bridge bugs, each shown against the simulator (strict: the day one is fixed, its test says so) -------


@pytest.fixture
def alice(client, services, sim, shopify, clock, loopback_only):
    """Connected; Alice signed up and €50.00 credited through the API, both mirrored: €55.00 on each side."""
    connect(services, shopify.shop.id, sim)
    clock.advance()
    customer = sim.create_customer("alice@example.test", "Alice", "Tester")["id"]
    credit = {"direction": "credit", "amount": 5000, "reason": "Welcome gift"}
    response = client.post(
        f"/api/v1/customers/{customer}/adjustments",
        json=credit,
        headers={"Authorization": f"Bearer {shopify.api_key}", "Idempotency-Key": "gift"},
    )
    assert response.status_code == 201, response.get_json()
    push(services)
    assert both(services, shopify.shop.id, sim, customer) == (5500, 5500)
    return customer


def test_a_card_order_refunded_to_store_credit_reaches_the_wallet(services, sim, shopify, clock, alice):
    clock.advance()
    card = sim.place_order(alice, total="60.00")["id"]
    clock.advance()
    sim.refund(card, "10.00", to_store_credit=True)  # Shopify's admin offers this for any order
    push(services)
    assert sim.store_credit_balance(alice) == 6500
    assert both(services, shopify.shop.id, sim, alice) == (6500, 6500)


def test_cancelling_a_store_credit_order_without_a_refund_keeps_both_sides_equal(services, sim, shopify, clock, alice):
    clock.advance()
    order = sim.place_order(alice, total="8.00", store_credit="5.00")["id"]
    clock.advance()
    sim.cancel(order)  # the merchant cancels and refunds nothing (Shopify's "refund later")
    push(services)
    assert sim.store_credit_balance(alice) == 5000
    assert both(services, shopify.shop.id, sim, alice) == (5000, 5000)


def test_cancelling_a_store_credit_order_with_its_refund_to_store_credit_keeps_both_sides_equal(
    services, sim, shopify, clock, alice
):
    clock.advance()
    order = sim.place_order(alice, total="8.00", store_credit="5.00")["id"]
    clock.advance()
    sim.refund(order, "5.00", to_store_credit=True)  # what the order spent from store credit, back to it
    clock.advance()
    sim.cancel(order)
    push(services)
    assert both(services, shopify.shop.id, sim, alice) == (5500, 5500)
    assert wallet(services, shopify.shop.id, alice)[1] == 0  # the order's 8 points taken back


def test_a_late_orders_paid_after_the_cancellation_earns_no_points(services, sim, shopify, clock, alice):
    sim.hold_deliveries()
    clock.advance()
    order = sim.place_order(alice, total="20.00")["id"]
    clock.advance()
    sim.cancel(order)
    held = list(sim.pending_deliveries)
    assert [d.topic for d in held] == ["orders/paid", "orders/cancelled", "orders/updated"]
    sim.flush(list(reversed(held)))
    assert all(d.status == 200 for d in sim.deliveries[-3:])
    assert wallet(services, shopify.shop.id, alice) == (5500, 0)


def test_a_refund_shopify_made_to_the_card_is_not_paid_into_the_wallet_too(services, sim, shopify, clock, alice):
    clock.advance()
    card = sim.place_order(alice, total="60.00")["id"]
    clock.advance()
    sim.refund(card, "10.00")  # to the card; the shop's policy says "wallet", but Shopify paid the card
    push(services)
    assert both(services, shopify.shop.id, sim, alice) == (5500, 5500)
    assert count(services, "refund_to_wallet", card) == 0
    assert [(kind, status) for kind, _, status in outbox(services) if status != "delivered"] == []


def test_a_checkout_in_yen_is_recorded_in_the_shops_euros_and_its_yen_store_credit_stays_out_of_the_wallet(
    services, sim, shopify, clock, alice
):
    """A JPY checkout in the EUR shop (the simulator's rate: ¥1 = €0.006): recorded as €36.00; ¥1650 refunded to the
    card and ¥1000 to the customer's JPY store credit are recorded as €9.90 and €6.00 of refunds; the EUR wallet and
    Shopify's EUR store credit do not move, the JPY account holds ¥1000, every delivery is applied."""
    clock.advance()
    order = sim.place_order(alice, total="6000", currency="JPY")["id"]
    clock.advance()
    sim.refund(order, "1650")
    clock.advance()
    sim.refund(order, "1000", to_store_credit=True)
    push(services)
    with unit_of_work(services.sessions) as session:
        record = session.execute(select(ShopOrder).where(ShopOrder.external_id == str(order))).scalar_one()
        refunds = session.scalars(select(OrderRefund.amount).where(OrderRefund.shop_order_id == record.id)).all()
        delivered = set(session.scalars(select(InboxDelivery.status)))
    assert (record.currency, record.total, sorted(refunds)) == (EUR, 3600, [600, 990])
    assert both(services, shopify.shop.id, sim, alice) == (5500, 5500)
    assert sim.store_credit_accounts(alice)["JPY"] == 1000
    assert delivered == {"applied"}


# --- `wallet-bridge demo --platform shopify` --------------------------------------------------------------------


def test_the_shopify_demo_tells_the_story_with_both_balances(app, services, loopback_only):
    runner = app.test_cli_runner()
    with app.app_context():  # the `wallet-bridge` FlaskGroup pushes one; app.cli alone does not
        result = runner.invoke(args=["demo", "--platform", "shopify"])
        again = runner.invoke(args=["demo", "--platform", "shopify"])
        unknown = runner.invoke(args=["demo", "--platform", "magento"])

    assert result.exit_code == 0, result.output
    out = result.output
    assert "a simulated Shopify shop and the bridge, both on 127.0.0.1" in out
    assert "6 webhook subscriptions created on the shop" in out
    assert "  outbox worker → Shopify: storeCreditAccountCredit €5.00\n" in out
    assert "→ wallet €5.00, 0 points; Shopify store credit €5.00" in out
    assert "→ wallet €25.00, 41 points; Shopify store credit €25.00" in out  # €30.00 spent at Shopify's checkout
    assert "→ wallet €37.00, 30 points; Shopify store credit €37.00" in out  # €12.00 refunded to store credit
    assert "storeCreditAccountDebit" not in out  # the checkout's own debit is the only one: nothing echoed
    assert "wallets: 1, in step: 1, drifted: 0" in out
    assert "ledger verify: ok" in out
    final = out.rstrip().splitlines()[-2]
    assert final.startswith("Final balance of customer ") and final.endswith(
        ": €38.00 and 5 points; Shopify store credit €38.00"
    )
    assert "problem:" not in out
    assert again.exit_code == 0 and again.output.rstrip().splitlines()[-2].endswith("Shopify store credit €38.00")
    assert unknown.exit_code == 2 and "magento" in unknown.output

    with unit_of_work(services.sessions) as session:
        shops = session.execute(select(Shop.platform, Shop.consumer_secret_enc)).all()
        messages = session.execute(select(OutboxMessage.kind, OutboxMessage.status)).all()
        assert verify(session) == []
    assert shops == [("shopify", None), ("shopify", None)]  # left disconnected: their simulated stores are gone
    assert {status for _kind, status in messages} == {"delivered"}
