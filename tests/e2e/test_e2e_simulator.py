"""End to end against the WooCommerce simulator: the simulator is the shop, the bridge's Flask test client
receives its signed deliveries, and the outbox worker pushes back over real HTTP (127.0.0.1 only) through
the official `woocommerce` client. One customer's story, with repeats, reorders and an outage on the way."""

from __future__ import annotations

import re
import socket
from urllib.parse import urlsplit

import pytest
from flask import request
from sqlalchemy import func, select

from bridge.accounts import find_customer, find_points, find_wallet
from bridge.db import unit_of_work
from bridge.ledger import verify
from bridge.models import InboxDelivery, LedgerTransaction, OutboxMessage, Shop
from bridge.statement_links import without_link
from bridge.surfaces.platforms import pushers_for
from bridge.usecases.pushes import RetryPolicy
from simulator import ManualClock, create_simulator
from sync.woocommerce import pull
from sync.woocommerce.connect import WEBHOOK_TOPICS, connect_shop
from sync.worker import drain, run_once

PUBLIC_URL = "https://bridge.example.test"  # the settings fixture's PUBLIC_URL
KEY = "ck_e2e0123456789abcdef0123456789abcdef01"
SECRET = "cs_e2e0123456789abcdef0123456789abcdef01"
EUR = "EUR"


class IntoBridge:
    """The simulator's webhook transport: a delivery to PUBLIC_URL/... is posted into the bridge's test
    client with its raw body and headers; any other destination is refused (no network)."""

    def __init__(self, client, public_url: str = PUBLIC_URL):
        self.client, self.public_url = client, public_url
        self.answers: list[tuple[str, int, dict | None]] = []

    def __call__(self, url: str, body: bytes, headers: dict) -> int:
        if not url.startswith(self.public_url + "/"):
            raise ConnectionError(f"the test network has no route to {urlsplit(url).netloc}")
        response = self.client.post(url[len(self.public_url) :], data=body, headers=headers)
        self.answers.append((headers.get("X-WC-Webhook-Topic", "ping"), response.status_code, response.get_json()))
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
    simulator = create_simulator(consumer_key=KEY, consumer_secret=SECRET, transport=IntoBridge(client), clock=clock)
    simulator.serve()  # 127.0.0.1, a free port
    yield simulator
    simulator.shutdown()


@pytest.fixture
def connected(services, shop, sim):
    """The demo shop's rules, then `connect_shop` against the simulator (which registers the webhooks)."""
    configure(
        services,
        shop.shop.id,
        signup_bonus=500,
        points_per_currency_unit=1,
        points_conversion_points=100,
        points_conversion_value=100,
        partial_payments=True,
        refund_destination="wallet",
    )
    result = connect_shop(
        services.sessions, services.secrets, shop.shop.id, sim.base_url, KEY, SECRET, PUBLIC_URL, timeout=5
    )
    return result


def configure(services, shop_id: int, **settings) -> None:
    with unit_of_work(services.sessions) as session:
        stored = session.get(Shop, shop_id)
        stored.settings = {**stored.settings, **settings}


def push(services) -> None:
    """The outbox worker, until nothing is due (retries are immediate in tests: base delay 0)."""
    drain(services.sessions, pushers_for(services), RetryPolicy(max_attempts=8, base_delay_seconds=0))


def balances(services, shop_id: int, customer_id: int) -> tuple[int, int]:
    """(wallet balance in cents, points) of the simulator's customer."""
    with unit_of_work(services.sessions) as session:
        customer = find_customer(session, shop_id, str(customer_id))
        if customer is None:
            return 0, 0
        wallet, points = find_wallet(session, customer, EUR), find_points(session, customer)
        return (wallet.balance if wallet else 0), (points.balance if points else 0)


def transactions(services, kind: str, order_id: int | None = None) -> int:
    with unit_of_work(services.sessions) as session:
        query = select(func.count()).select_from(LedgerTransaction).where(LedgerTransaction.kind == kind)
        if order_id is not None:
            query = query.where(LedgerTransaction.order_ref == str(order_id))
        return session.scalar(query)


def outbox(services) -> list[tuple[str, str, int, str | None]]:
    with unit_of_work(services.sessions) as session:
        rows = session.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars()
        return [(m.kind, m.status, m.attempts, m.last_error) for m in rows]


def customer_notes(sim, order_id: int) -> list[str]:
    """What each note tells the customer (each also links to their wallet: see test_woocommerce_webhooks)."""
    return [without_link(n["note"]) for n in reversed(sim.notes(order_id)) if n["customer_note"]]


def fees(sim, order_id: int) -> list[tuple[str, str]]:
    return [(fee["name"], fee["total"]) for fee in sim.order(order_id)["fee_lines"]]


def set_paid_puts(sim, order_id: int) -> int:
    return sum(1 for call in sim.calls("PUT", f"orders/{order_id}") if (call.json or {}).get("set_paid"))


def fee_puts(sim, order_id: int) -> int:
    return sum(1 for call in sim.calls("PUT", f"orders/{order_id}") if (call.json or {}).get("fee_lines"))


def lose_the_answer_to_the_next_put(sim, monkeypatch) -> list[str]:
    """The next PUT to an order is applied (and delivered) by the shop, then its answer is lost: a 503
    the way `fail_rest(after_apply=True)` gives it, but aimed at the PUT rather than the first call."""
    lost: list[str] = []
    take_outage = sim.take_outage

    def aimed():
        if not lost and request.method == "PUT" and request.path.rsplit("/", 2)[-2] == "orders":
            lost.append(request.path)
            sim.fail_rest(503, times=1, after_apply=True)
        return take_outage()

    monkeypatch.setattr(sim, "take_outage", aimed)
    return lost


def test_a_customer_story_against_the_simulated_shop(app, client, services, shop, sim, clock, connected, monkeypatch):
    shop_id = shop.shop.id
    api_headers = {"Authorization": f"Bearer {shop.api_key}"}

    # Connected: one active webhook per topic, to PUBLIC_URL, each pinged and answered 200.
    assert sorted(h.topic for h in sim.webhooks.values()) == sorted(WEBHOOK_TOPICS)
    assert {h.delivery_url for h in sim.webhooks.values()} == {f"{PUBLIC_URL}/webhooks/woocommerce/{shop_id}"}
    pings = sim.deliveries_for(kind="ping")
    assert len(pings) == len(WEBHOOK_TOPICS) and all(p.status == 200 for p in pings)
    assert not any(h.pending_delivery for h in sim.webhooks.values())

    # 1. Alice signs up: customer.created opens her wallet with the €5.00 sign-up bonus.
    clock.advance()
    alice = sim.create_customer("alice@example.test", "Alice", "Tester")["id"]
    assert balances(services, shop_id, alice) == (500, 0)

    # 2. The merchant credits her wallet through the API.
    credit = {"direction": "credit", "amount": 5000, "reason": "Goodwill for a late parcel"}
    response = client.post(
        f"/api/v1/customers/{alice}/adjustments", json=credit, headers={**api_headers, "Idempotency-Key": "goodwill-1"}
    )
    assert response.status_code == 201, response.get_json()
    assert balances(services, shop_id, alice) == (5500, 0)

    # 3. A wallet order the wallet covers: debited at once, marked paid on the shop by the worker.
    clock.advance()
    paid = sim.place_order(alice, total="41.48", payment_method="wallet")["id"]
    assert balances(services, shop_id, alice)[0] == 5500 - 4148
    assert sim.order(paid)["status"] == "pending"  # nothing pushed yet
    push(services)
    order = sim.order(paid)
    assert order["status"] == "processing"
    assert order["transaction_id"].startswith("wallet-bridge-")
    assert order["date_paid_gmt"] is not None
    assert customer_notes(sim, paid) == ["Paid €41.48 from your wallet. Wallet balance: €13.52"]
    # The shop's own order.updated (now processing) came back: points on the 41.48 paid, 1 per euro.
    assert balances(services, shop_id, alice) == (1352, 41)
    assert transactions(services, "payment", paid) == 1

    # 4. A wallet order the wallet cannot cover: it pays what it holds, a negative fee line on the shop.
    clock.advance()
    partial = sim.place_order(alice, total="30.00", payment_method="wallet")["id"]
    push(services)
    order = sim.order(partial)
    assert fees(sim, partial) == [("Paid from wallet", "-13.52")]
    assert (order["status"], order["total"]) == ("pending", "16.48")
    assert customer_notes(sim, partial) == ["Paid €13.52 from your wallet; €16.48 is left to pay by another method."]
    assert balances(services, shop_id, alice)[0] == 0
    # She pays the rest by card: points on the whole 30.00 (card and wallet parts).
    clock.advance()
    sim.set_status(partial, "processing")
    assert balances(services, shop_id, alice) == (0, 41 + 30)

    # 5. The merchant refunds 10.00 of the wallet-paid order in wp-admin: back to the wallet, once.
    clock.advance()
    sim.refund(paid, "10.00", reason="Damaged box")
    push(services)
    assert balances(services, shop_id, alice) == (1000, 71 - 9)  # points taken back pro rata: 41 × 10/41.48
    assert transactions(services, "refund_to_wallet", paid) == 1
    refund_id = sim.order(paid)["refunds"][0]["id"]
    assert customer_notes(sim, paid)[-1] == f"Refund #{refund_id} of €10.00 credited to your wallet."

    # 6. A card order earns points when paid (and moves no money).
    clock.advance()
    card = sim.place_order(alice, total="25.00", payment_method="stripe")["id"]
    clock.advance()
    sim.set_status(card, "processing")
    push(services)
    assert balances(services, shop_id, alice) == (1000, 62 + 25)
    assert transactions(services, "payment", card) == 0

    # 7. Repeats: one refund's delivery sent twice credits once.
    before = balances(services, shop_id, alice)
    sim.hold_deliveries()
    clock.advance()
    sim.refund(paid, "5.00", reason="Late delivery")
    [refund_delivery] = sim.pending_deliveries
    sim.flush([refund_delivery, refund_delivery])
    assert balances(services, shop_id, alice)[0] == before[0] + 500
    assert transactions(services, "refund_to_wallet", paid) == 2

    # 8. Reorders: a wallet order placed, then cancelled, its deliveries arriving newest first (and again).
    before = balances(services, shop_id, alice)
    clock.advance()
    cancelled = sim.place_order(alice, total="7.00", payment_method="wallet")["id"]
    clock.advance()
    sim.set_status(cancelled, "cancelled")
    held = list(sim.pending_deliveries)
    assert [d.topic for d in held] == ["order.created", "order.updated", "order.updated"]
    sim.flush(list(reversed(held)))
    sim.flush(held)  # and the whole lot once more, oldest first
    sim.release_deliveries()
    push(services)
    assert balances(services, shop_id, alice) == before
    assert transactions(services, "payment", cancelled) == 0
    assert sim.order(cancelled)["status"] == "cancelled"

    # 9. The shop's REST API is down for a while; meanwhile a paid and a partly paid wallet order.
    credit = {"direction": "credit", "amount": 2000, "reason": "Birthday present"}
    response = client.post(
        f"/api/v1/customers/{alice}/adjustments", json=credit, headers={**api_headers, "Idempotency-Key": "birthday-1"}
    )
    assert response.status_code == 201
    wallet_before = balances(services, shop_id, alice)[0]  # 15.00 + 20.00
    sim.fail_rest(503)
    clock.advance()
    whole = sim.place_order(alice, total="12.00", payment_method="wallet")["id"]
    clock.advance()
    short = sim.place_order(alice, total="40.00", payment_method="wallet")["id"]  # 23.00 left: partly
    assert balances(services, shop_id, alice)[0] == 0
    policy = RetryPolicy(max_attempts=8, base_delay_seconds=0)
    for _ in range(2):
        run_once(services.sessions, pushers_for(services), policy)
    waiting = [row for row in outbox(services) if row[1] != "delivered"]
    assert waiting and all(
        status == "pending" and attempts == 2 and "HTTP 503" in error for _, status, attempts, error in waiting
    )
    assert sim.order(whole)["status"] == sim.order(short)["status"] == "pending" and not fees(sim, short)
    # It comes back, but the answer to the first PUT is lost after the shop applied it.
    sim.restore_rest()
    lost = lose_the_answer_to_the_next_put(sim, monkeypatch)
    push(services)
    assert lost, "the lost answer was never simulated"
    assert all(status == "delivered" for _, status, _, _ in outbox(services)), outbox(services)
    assert sim.order(whole)["status"] == "processing"
    assert (fees(sim, short), sim.order(short)["total"]) == ([("Paid from wallet", "-23.00")], "17.00")
    for order_id in (paid, whole):
        assert set_paid_puts(sim, order_id) == 1
    for order_id in (partial, short):
        assert fee_puts(sim, order_id) == 1 and len(fees(sim, order_id)) == 1
    assert customer_notes(sim, whole) == ["Paid €12.00 from your wallet. Wallet balance: €23.00"]
    assert customer_notes(sim, short) == ["Paid €23.00 from your wallet; €17.00 is left to pay by another method."]
    assert balances(services, shop_id, alice)[0] == wallet_before - 1200 - 2300 == 0
    # Notes for the merchant's credits went on her latest order at the time, once each.
    all_notes = [note for order_id in sim.store.orders for note in customer_notes(sim, order_id)]
    assert all_notes.count("€20.00 credited to your wallet: Birthday present") == 1

    # Every delivery was answered 200 and applied (pings: pong); the ledger balances.
    assert all(d.status == 200 for d in sim.deliveries), [(d.topic, d.status) for d in sim.deliveries]
    answers = {(topic, status, (body or {}).get("status")) for topic, status, body in sim.transport.answers}
    assert answers <= {("ping", 200, "pong"), *((topic, 200, "applied") for topic in WEBHOOK_TOPICS)}, answers
    with unit_of_work(services.sessions) as session:
        statuses = set(session.scalars(select(InboxDelivery.status)))
        assert statuses <= {"applied", "ignored"}, statuses
        assert verify(session) == []


# --- `wallet-bridge demo` ----------------------------------------------------------------------------------------


def demo_outcome(services) -> tuple[list[str], list[tuple[bytes | None, bytes | None]]]:
    with unit_of_work(services.sessions) as session:
        statuses = list(session.scalars(select(OutboxMessage.status)))
        keys = [(s.consumer_key_enc, s.consumer_secret_enc) for s in session.scalars(select(Shop))]
        assert verify(session) == []
    return statuses, keys


def test_the_demo_tells_the_story_on_the_configured_database(app, services, loopback_only):
    with app.app_context():  # the `wallet-bridge` FlaskGroup pushes one; app.cli alone does not
        result = app.test_cli_runner().invoke(args=["demo"])

    assert result.exit_code == 0, result.output
    out = result.output
    assert "order #100 is processing, transaction id wallet-bridge-" in out
    assert 'note to the customer: "Paid €41.48 from your wallet. Wallet balance: €13.52"' in out
    assert re.search(r'note to the customer: "Refund #\d+ of €10\.00 credited to your wallet\."', out)
    assert "→ wallet €24.52, 7 points" in out
    assert "ledger verify: ok" in out
    assert out.rstrip().splitlines()[-2] == "Final balance of customer 2: €24.52 and 7 points"
    assert "problem:" not in out
    statuses, keys = demo_outcome(services)
    assert statuses and set(statuses) == {"delivered"}
    assert keys == [(None, None)]  # the demo shop is left disconnected: its simulated store is gone


def test_the_demo_runs_again_and_on_another_database(app, services, tmp_path, loopback_only):
    other = f"sqlite:///{tmp_path / 'demo.db'}"
    runner = app.test_cli_runner()

    with app.app_context():
        first = runner.invoke(args=["demo", "--database-url", other])
        again = runner.invoke(args=["demo"])
        twice = runner.invoke(args=["demo"])

    assert first.exit_code == 0, first.output
    assert "database: " + other in first.output and "Final balance of customer 2: €24.52" in first.output
    assert demo_outcome(services)[1] == [(None, None), (None, None)]  # two runs here, none of them the first
    for result in (again, twice):
        assert result.exit_code == 0, result.output
        assert "Final balance of customer 2: €24.52 and 7 points" in result.output


def test_sync_reads_every_order_while_the_outbox_changes_orders_it_has_read(
    services, shop, sim, clock, connected, monkeypatch
):
    """Orders modified during the pull (the outbox writes to them) must not push unread ones off the pages:
    listed by modification date, each change would move an order to the end and hide the next one."""
    shop_id = shop.shop.id
    bob = sim.create_customer("bob@example.test", "Bob")["id"]
    sim.hold_deliveries()  # from here on every delivery is lost: only the pull can bring these orders
    orders = [sim.place_order(bob, total="10.00", payment_method="stripe", status="processing")["id"] for _ in range(5)]
    with unit_of_work(services.sessions) as session:
        session.get(Shop, shop_id).last_synced_at = None  # read the whole history (the sim's clock is its own)
    monkeypatch.setattr(pull, "PAGE_SIZE", 2)

    def meanwhile(done: int, total: int) -> None:
        clock.advance()
        sim.set_status(orders[done - 1], "completed")

    result = pull.sync_shop(services.sessions, services.secrets, shop_id, timeout=5.0, progress=meanwhile)

    assert (result.orders_seen, result.applied, result.skipped) == (5, 5, [])
    assert balances(services, shop_id, bob) == (500, 5 * 10)  # each order's points, once


def test_sync_gives_the_signup_bonus_whose_delivery_was_lost(services, shop, sim, clock, connected):
    shop_id = shop.shop.id
    with unit_of_work(services.sessions) as session:
        session.get(Shop, shop_id).last_synced_at = clock.now  # the sim's clock is its own
    clock.advance()
    sim.hold_deliveries()  # customer.created never reaches the bridge
    carol = sim.create_customer("carol@example.test", "Carol")["id"]
    assert balances(services, shop_id, carol) == (0, 0)

    result = pull.sync_shop(services.sessions, services.secrets, shop_id, timeout=5.0)

    assert result.signups_seen == 1 and balances(services, shop_id, carol) == (500, 0)
