"""Wallet orders against the WooCommerce simulator where a real store showed the bridge wrong: taxed wallet
fees, totals edited after payment, a payment cycle started again, orders with nothing to pay, top-ups."""

from __future__ import annotations

import pytest

from simulator import create_simulator
from sync.woocommerce.connect import connect_shop
from tests.e2e.test_e2e_simulator import (  # noqa: F401 - fixtures
    KEY,
    PUBLIC_URL,
    SECRET,
    IntoBridge,
    balances,
    clock,
    configure,
    connected,
    customer_notes,
    fees,
    outbox,
    push,
    sim,
    transactions,
)

TAXED = 1_900  # 19 %, prices excluding tax, as the real store's DE rate


@pytest.fixture
def taxed_sim(client, clock):  # noqa: F811
    simulator = create_simulator(
        consumer_key=KEY, consumer_secret=SECRET, transport=IntoBridge(client), clock=clock, tax_rate_bp=TAXED
    )
    simulator.serve()
    yield simulator
    simulator.shutdown()


@pytest.fixture
def taxed_shop(services, shop, taxed_sim):
    configure(services, shop.shop.id, partial_payments=True, refund_destination="wallet")
    connect_shop(
        services.sessions, services.secrets, shop.shop.id, taxed_sim.base_url, KEY, SECRET, PUBLIC_URL, timeout=5
    )
    return shop.shop.id


def fund(client, shop, customer: int, cents: int, key: str = "fund") -> None:
    response = client.post(
        f"/api/v1/customers/{customer}/adjustments",
        json={"direction": "credit", "amount": cents, "reason": "Funds"},
        headers={"Authorization": f"Bearer {shop.api_key}", "Idempotency-Key": key},
    )
    assert response.status_code == 201, response.get_json()


@pytest.mark.parametrize("wallet, left", [(1_000, "13.79"), (2_200, "1.79")])
def test_a_taxed_partial_payment_leaves_the_shop_asking_exactly_the_rest(
    client, services, shop, taxed_sim, clock, taxed_shop, wallet, left
):
    """19.99 + 3.80 tax = 23.79: the shop taxes the negative fee too, so a plain -10.00 fee would lower the
    total by 11.90 (and -22.00 would be cut at 0.00, leaving the order unpaid forever)."""
    alice = taxed_sim.create_customer("alice@example.test", "Alice")["id"]
    fund(client, shop, alice, wallet)
    clock.advance()
    order_id = taxed_sim.place_order(alice, total="19.99", payment_method="wallet")["id"]
    assert taxed_sim.order(order_id)["total"] == "23.79"
    push(services)
    order = taxed_sim.order(order_id)
    assert order["total"] == left
    assert balances(services, taxed_shop, alice)[0] == 0  # the wallet paid all it held, and the shop took it all
    paid = f"{wallet // 100}.{wallet % 100:02d}"
    assert customer_notes(taxed_sim, order_id) == [
        f"Paid €{paid} from your wallet; €{left} is left to pay by another method."
    ]


def test_an_edited_total_is_settled_with_the_wallet(client, services, shop, sim, clock, connected):
    shop_id = shop.shop.id
    alice = sim.create_customer("alice@example.test", "Alice")["id"]
    fund(client, shop, alice, 10_000)
    clock.advance()
    order_id = sim.place_order(alice, total="19.99", payment_method="wallet")["id"]
    push(services)
    start = balances(services, shop_id, alice)[0]
    clock.advance()
    sim.update_order(
        order_id, line_items=[{"id": sim.order(order_id)["line_items"][0]["id"], "quantity": 3, "total": "59.97"}]
    )
    push(services)
    assert balances(services, shop_id, alice)[0] == start - 3_998
    clock.advance()
    sim.update_order(
        order_id, line_items=[{"id": sim.order(order_id)["line_items"][0]["id"], "quantity": 1, "total": "9.99"}]
    )
    push(services)
    assert balances(services, shop_id, alice)[0] == start + 1_000  # 59.97 paid, 9.99 owed: 49.98 back
    notes = customer_notes(sim, order_id)
    assert any("€39.98 more paid from your wallet" in note for note in notes)
    assert any("€49.98 returned to your wallet" in note for note in notes)


def test_a_raised_total_the_wallet_cannot_cover_asks_the_shop_for_the_rest(
    client, services, shop, sim, clock, connected
):
    alice = sim.create_customer("alice@example.test", "Alice")["id"]
    fund(client, shop, alice, 2_500)
    clock.advance()
    order_id = sim.place_order(alice, total="19.99", payment_method="wallet")["id"]
    push(services)
    clock.advance()
    sim.update_order(
        order_id, line_items=[{"id": sim.order(order_id)["line_items"][0]["id"], "quantity": 3, "total": "59.97"}]
    )
    push(services)
    order = sim.order(order_id)
    assert (order["status"], order["total"]) == ("pending", "39.98")  # needs paying, wallet part as a fee
    assert fees(sim, order_id) == [("Paid from wallet", "-19.99")]
    assert balances(services, shop.shop.id, alice)[0] == 500 + 2_500 - 1_999  # with the sign-up bonus
    assert "€39.98 is left to pay by another method." in customer_notes(sim, order_id)[-1]


def alices_paid_order(client, services, shop, sim, clock) -> tuple[int, int]:
    """Alice's wallet holds 55.00 (with the sign-up bonus); her order of 19.99 is paid from it."""
    alice = sim.create_customer("alice@example.test", "Alice")["id"]
    fund(client, shop, alice, 5_000)
    clock.advance()
    order_id = sim.place_order(alice, total="19.99", payment_method="wallet")["id"]
    push(services)
    return alice, order_id


def test_a_failed_order_set_pending_again_is_charged_again_once(client, services, shop, sim, clock, connected):
    alice, order_id = alices_paid_order(client, services, shop, sim, clock)
    clock.advance()
    sim.set_status(order_id, "failed")
    assert balances(services, shop.shop.id, alice)[0] == 5_500  # with the sign-up bonus
    clock.advance()
    sim.set_status(order_id, "pending")
    push(services)
    assert balances(services, shop.shop.id, alice)[0] == 5_500 - 1_999
    assert sim.order(order_id)["status"] == "processing"
    assert transactions(services, "payment", order_id) == 2
    sim.set_status(order_id, "processing")  # repeats and later states move nothing more
    push(services)
    assert balances(services, shop.shop.id, alice)[0] == 5_500 - 1_999


def test_a_paid_order_cancelled_and_set_pending_again_within_a_second_is_read_back_and_charged_again(
    client, services, shop, sim, clock, connected
):
    """Both changes carry the same date (the shop's are to the second): the pending one cannot be told from an older
    state by its date, so the bridge reads the order back, and charges the new attempt the shop confirms."""
    alice, order_id = alices_paid_order(client, services, shop, sim, clock)
    clock.advance()
    sim.set_status(order_id, "cancelled")
    sim.set_status(order_id, "pending")
    push(services)

    assert sim.order(order_id)["status"] == "processing"
    assert balances(services, shop.shop.id, alice)[0] == 5_500 - 1_999
    assert transactions(services, "payment", order_id) == 2
    sim.set_status(order_id, "processing")  # later states move nothing more
    push(services)
    assert balances(services, shop.shop.id, alice)[0] == 5_500 - 1_999


def test_a_late_pending_delivery_of_the_same_second_as_the_cancellation_charges_nothing(
    client, services, shop, sim, clock, connected
):
    """The other way round: the pending state came first and its delivery arrives after the cancellation's, both
    dated the same second. Read back, the order is cancelled: nothing is charged."""
    alice, order_id = alices_paid_order(client, services, shop, sim, clock)
    clock.advance()
    sim.hold_deliveries()
    sim.set_status(order_id, "pending")
    sim.set_status(order_id, "cancelled")
    sim.flush(list(sim.pending_deliveries)[::-1])
    sim.release_deliveries()
    push(services)

    assert sim.order(order_id)["status"] == "cancelled"
    assert balances(services, shop.shop.id, alice)[0] == 5_500
    assert transactions(services, "payment", order_id) == 1
    assert [kind for kind, *_ in outbox(services) if kind == "order.read_back"] == ["order.read_back"]


def test_an_order_with_nothing_to_pay_proceeds_without_a_transaction_or_a_note(
    client, services, shop, sim, clock, connected
):
    alice = sim.create_customer("alice@example.test", "Alice")["id"]
    clock.advance()
    order_id = sim.place_order(alice, total="0.00", payment_method="wallet")["id"]
    push(services)
    order = sim.order(order_id)
    assert order["status"] == "processing"
    assert "None" not in order["transaction_id"]
    assert all("None" not in str(meta["value"]) for meta in order["meta_data"])
    assert customer_notes(sim, order_id) == []
    assert transactions(services, "payment", order_id) == 0


def test_a_topup_order_paid_with_the_wallet_is_refused_with_notes(client, services, shop, sim, clock, connected):
    alice = sim.create_customer("alice@example.test", "Alice")["id"]
    fund(client, shop, alice, 5_000)
    clock.advance()
    order_id = sim.place_order(
        alice, total="20.00", payment_method="wallet", meta_data=[{"key": "_wallet_bridge_topup", "value": "2000"}]
    )["id"]
    push(services)
    assert balances(services, shop.shop.id, alice)[0] == 5_500
    notes = sim.notes(order_id)
    assert any(n["customer_note"] and "cannot be paid from the wallet" in n["note"] for n in notes)
    assert any(not n["customer_note"] and "Wallet Bridge" in n["note"] for n in notes)
