"""Money edges a merchant reaches on a real store that the earlier tests missed: an order set "refunded" by hand
before anyone paid it, a partly paid order edited afterwards, refunds left above an edited total, a payment
cycle started again on an order still carrying the old wallet fee lines, and an order moved to another
customer before it is paid again. The simulator follows the real store (the WooCommerce source) in each."""

from __future__ import annotations

from datetime import timedelta

from woocommerce import API

from bridge.db import unit_of_work
from bridge.ledger import verify
from bridge.models import utcnow
from bridge.usecases.order_release import release_abandoned_failed_orders
from sync.woocommerce.pull import sync_shop
from tests.e2e.test_e2e_simulator import (  # noqa: F401 - fixtures
    KEY,
    SECRET,
    balances,
    clock,
    configure,
    connected,
    customer_notes,
    fees,
    outbox,
    push,
    sim,
)
from tests.e2e.test_wallet_orders_on_the_shop import fund

BONUS = 500  # the connected shop's sign-up bonus


def alices_wallet_order(client, services, shop, sim, clock, *, funded: int, total: str) -> tuple[int, int]:
    """Alice, her wallet funded (the sign-up bonus of 5.00 on top), places a wallet order; its delivery is applied."""
    alice = sim.create_customer("alice@example.test", "Alice")["id"]
    fund(client, shop, alice, funded)
    clock.advance()
    order_id = sim.place_order(alice, total=total, payment_method="wallet")["id"]
    push(services)
    return alice, order_id


def alices_partly_paid_order(client, services, shop, sim, clock) -> tuple[int, int]:
    """Her wallet holds 10.00 (5.00 and the bonus); the order of 39.98 takes it all, 29.98 left to pay."""
    return alices_wallet_order(client, services, shop, sim, clock, funded=500, total="39.98")


def shop_sets(sim, services, order_id: int, status: str) -> None:
    """The merchant sets the order's status in the shop; its delivery is applied."""
    sim.set_status(order_id, status)
    push(services)


def wallet(services, shop, customer_id) -> int:
    return balances(services, shop.shop.id, customer_id)[0]


def test_an_unpaid_card_order_set_refunded_gives_the_wallet_nothing(client, services, shop, sim, clock, connected):
    """WooCommerce makes a refund of the whole total when the merchant sets an order refunded
    (wc_order_fully_refunded), paid or not: nobody paid this one, so nothing is returned to anyone."""
    alice = sim.create_customer("alice@example.test", "Alice")["id"]
    order_id = sim.place_order(alice, total="19.99", payment_method="bacs", status="on-hold")["id"]
    push(services)
    clock.advance()

    shop_sets(sim, services, order_id, "refunded")

    assert [refund["total"] for refund in sim.order(order_id)["refunds"]] == ["-19.99"]
    assert wallet(services, shop, alice) == BONUS


def test_a_partly_paid_order_set_refunded_before_the_rest_was_paid_returns_only_the_wallet_part(
    client, services, shop, sim, clock, connected
):
    alice, order_id = alices_partly_paid_order(client, services, shop, sim, clock)
    assert sim.order(order_id)["total"] == "29.98"
    clock.advance()

    shop_sets(sim, services, order_id, "refunded")  # the 29.98 the card never paid is "refunded" by the shop

    assert wallet(services, shop, alice) == 1_000


def test_refunds_above_a_total_edited_afterwards_do_not_block_the_cancellation(
    client, services, shop, sim, clock, connected
):
    """The shop lets the merchant edit an order below what was refunded already; the refund was checked when it
    came, and the order's later states (here its cancellation) still move the money they must."""
    alice, order_id = alices_wallet_order(
        client, services, shop, sim, clock, funded=4_500, total="19.99"
    )  # with the bonus: 50.00
    clock.advance()
    sim.refund(order_id, "10.00")
    push(services)
    clock.advance()
    sim.update_order(order_id, line_items=[{"id": sim.order(order_id)["line_items"][0]["id"], "total": "9.99"}])
    push(services)
    assert wallet(services, shop, alice) == 5_000  # it now costs less than was refunded: the 9.99 it held is back
    clock.advance()

    shop_sets(sim, services, order_id, "cancelled")

    assert wallet(services, shop, alice) == 5_000  # and nothing more


def test_a_partly_paid_order_cancelled_and_set_pending_again_is_charged_on_its_whole_total(
    client, services, shop, sim, clock, connected
):
    """The cancellation returned the wallet part, but its fee line stays on the order: the new attempt pays the
    order's whole total and replaces that line, so the shop does not give the old wallet part away."""
    alice, order_id = alices_partly_paid_order(client, services, shop, sim, clock)
    clock.advance()
    shop_sets(sim, services, order_id, "cancelled")
    assert wallet(services, shop, alice) == 1_000
    clock.advance()

    shop_sets(sim, services, order_id, "pending")

    assert wallet(services, shop, alice) == 0
    assert fees(sim, order_id) == [("Paid from wallet", "-10.00")]
    assert sim.order(order_id)["total"] == "29.98"  # 10.00 from the wallet and 29.98 to pay: the 39.98 ordered
    assert customer_notes(sim, order_id)[-1] == (
        "Paid €10.00 from your wallet (payment attempt 2); €29.98 is left to pay by another method."
    )


def test_a_discounted_wallet_order_cancelled_and_set_pending_again_gets_one_discount(
    client, services, shop, sim, clock, connected
):
    configure(services, shop.shop.id, wallet_discount_kind="percent", wallet_discount_value=1_000)
    alice, order_id = alices_wallet_order(
        client, services, shop, sim, clock, funded=4_500, total="20.00"
    )  # with the bonus: 50.00
    clock.advance()
    shop_sets(sim, services, order_id, "cancelled")
    clock.advance()

    shop_sets(sim, services, order_id, "pending")

    assert wallet(services, shop, alice) == 5_000 - 1_800
    assert fees(sim, order_id) == [("Wallet discount", "-2.00")]
    assert (sim.order(order_id)["status"], sim.order(order_id)["total"]) == ("processing", "18.00")


def test_a_discounted_wallet_order_cancelled_loses_its_discount_with_the_wallets_payment(
    client, services, shop, sim, clock, connected
):
    """Found on the real store (session 15): the wallet paid 18.00 of a 20.00 order (10 % off for paying by
    wallet), the order was cancelled and the 18.00 came back; its discount line stayed, because the order had a date
    paid (the wallet's own), and the card later paid 18.00 for it."""
    configure(services, shop.shop.id, wallet_discount_kind="percent", wallet_discount_value=1_000)
    alice, order_id = alices_wallet_order(client, services, shop, sim, clock, funded=4_500, total="20.00")
    assert sim.order(order_id)["date_paid_gmt"] and fees(sim, order_id) == [("Wallet discount", "-2.00")]
    clock.advance()
    shop_sets(sim, services, order_id, "cancelled")

    assert wallet(services, shop, alice) == 5_000
    assert fees(sim, order_id) == [] and sim.order(order_id)["total"] == "20.00"


def test_a_partly_paid_order_edited_below_the_wallet_part_returns_the_rest_and_is_paid(
    client, services, shop, sim, clock, connected
):
    """The shop cuts the wallet's fee line at a total of 0.00: the order asks nothing more, the wallet paid 15.00
    for an order of 9.99, and the 5.01 goes back."""
    alice, order_id = alices_wallet_order(
        client, services, shop, sim, clock, funded=1_000, total="39.98"
    )  # with the bonus: 15.00
    assert sim.order(order_id)["total"] == "24.98"
    clock.advance()

    sim.update_order(order_id, line_items=[{"id": sim.order(order_id)["line_items"][0]["id"], "total": "9.99"}])
    push(services)

    order = sim.order(order_id)
    assert (order["total"], order["status"]) == ("0.00", "processing")
    assert fees(sim, order_id) == [("Paid from wallet", "-9.99")]
    assert wallet(services, shop, alice) == 1_500 - 999
    assert customer_notes(sim, order_id)[-1] == (
        "The order's total changed to €9.99, all paid from your wallet: €5.01 returned to your wallet."
    )
    clock.advance()
    shop_sets(sim, services, order_id, "cancelled")  # and a cancellation returns what it holds now
    assert wallet(services, shop, alice) == 1_500


def test_a_cancelled_partly_paid_order_loses_its_wallet_fee_with_the_money_it_stood_for(
    client, services, shop, sim, clock, connected
):
    """Else the shop would ask 29.98 for the 39.98 order if it were ever paid (a failed order the customer pays
    from their account after its wallet part went back)."""
    alice, order_id = alices_partly_paid_order(client, services, shop, sim, clock)
    clock.advance()

    shop_sets(sim, services, order_id, "cancelled")

    assert wallet(services, shop, alice) == 1_000
    assert (fees(sim, order_id), sim.order(order_id)["total"]) == ([], "39.98")


def test_an_order_moved_to_another_customer_is_paid_again_by_that_customer(
    client, services, shop, sim, clock, connected
):
    """Alice's wallet paid, then the merchant gave the order to Bob and the payment went back to Alice: the order's
    next payment attempt is Bob's, not Alice's (she no longer has anything to do with it)."""
    alice = sim.create_customer("alice@example.test", "Alice")["id"]
    bob = sim.create_customer("bob@example.test", "Bob")["id"]
    fund(client, shop, alice, 4_500, key="alice")
    fund(client, shop, bob, 4_500, key="bob")
    clock.advance()
    order_id = sim.place_order(alice, total="19.99", payment_method="wallet")["id"]
    push(services)
    clock.advance()
    sim.update_order(order_id, customer_id=bob)
    clock.advance()
    shop_sets(sim, services, order_id, "failed")
    assert wallet(services, shop, alice) == 5_000  # back to who paid
    clock.advance()

    shop_sets(sim, services, order_id, "pending")

    assert wallet(services, shop, alice) == 5_000
    assert balances(services, shop.shop.id, bob)[0] == 5_000 - 1_999
    assert sim.order(order_id)["status"] == "processing"


def test_a_partly_paid_order_edited_afterwards_tells_the_customer_what_is_left_to_pay(
    client, services, shop, sim, clock, connected
):
    alice, order_id = alices_partly_paid_order(client, services, shop, sim, clock)
    clock.advance()

    sim.update_order(order_id, shipping_lines=[{"method_id": "flat_rate", "method_title": "Flat", "total": "4.90"}])
    push(services)

    assert sim.order(order_id)["total"] == "34.88"
    assert customer_notes(sim, order_id) == [
        "Paid €10.00 from your wallet; €29.98 is left to pay by another method.",
        "Paid €10.00 from your wallet; €34.88 is left to pay by another method.",
    ]
    assert wallet(services, shop, alice) == 0


def test_two_refunds_of_the_same_amount_are_two_notes(client, services, shop, sim, clock, connected):
    alice, order_id = alices_wallet_order(client, services, shop, sim, clock, funded=4_500, total="19.99")
    for _ in range(2):
        clock.advance()
        sim.refund(order_id, "5.00")
        push(services)

    assert wallet(services, shop, alice) == 5_000 - 1_999 + 1_000
    first, second = sorted(refund["id"] for refund in sim.order(order_id)["refunds"])
    assert customer_notes(sim, order_id)[1:] == [
        f"Refund #{first} of €5.00 credited to your wallet.",
        f"Refund #{second} of €5.00 credited to your wallet.",
    ]


def test_a_partly_paid_order_deleted_for_good_gives_its_wallet_part_back_at_the_next_sync(
    client, services, shop, sim, clock, connected
):
    """Found on the real store (session 15): WooCommerce sends no webhook for an order deleted for good (order.deleted
    listens to the trash), so the wallet part of a partly paid order stayed in it for ever. A sync finds it gone."""
    alice, order_id = alices_partly_paid_order(client, services, shop, sim, clock)
    fund(client, shop, alice, 500, key="fund-again")
    kept = sim.place_order(alice, total="39.98", payment_method="wallet")["id"]  # her second order stays in the shop
    push(services)
    clock.advance()

    api = API(url=sim.base_url, consumer_key=KEY, consumer_secret=SECRET, version="wc/v3", timeout=5)
    assert api.delete(f"orders/{order_id}", params={"force": True}).status_code == 200
    push(services)
    assert wallet(services, shop, alice) == 0  # no webhook: nothing known yet

    for _ in range(2):
        synced = sync_shop(services.sessions, services.secrets, shop.shop.id, timeout=5)
        push(services)
    assert synced.orders_released == 0  # the second sync finds nothing more to release
    assert wallet(services, shop, alice) == 1_000 and sim.order(kept)["total"] == "34.98"
    assert [status for kind, status, *_ in outbox(services) if kind == "order.remove_wallet_fees"] == ["delivered"]


def test_a_wallet_order_restored_from_the_trash_is_flagged_to_the_merchant_at_once(
    client, services, shop, sim, clock, connected
):
    """Found on the real store (session 15): restoring an order from the trash sends `order.restored`, never
    `order.updated`; the bridge did not listen, so a paid order whose 18.00 went back to the wallet when trashed came
    back processing, unpaid, with no word to the merchant until its next change."""
    alice, order_id = alices_wallet_order(client, services, shop, sim, clock, funded=4_500, total="18.00")
    clock.advance()
    api = API(url=sim.base_url, consumer_key=KEY, consumer_secret=SECRET, version="wc/v3", timeout=5)
    assert api.delete(f"orders/{order_id}").status_code == 200  # to the trash
    push(services)
    assert wallet(services, shop, alice) == 5_000
    clock.advance()

    sim.restore_order(order_id)
    push(services)

    assert sim.order(order_id)["status"] == "processing" and wallet(services, shop, alice) == 5_000
    private = [n["note"] for n in sim.notes(order_id) if not n["customer_note"]]
    assert any("Collect it another way" in note for note in private), private


def test_a_partly_paid_order_whose_rest_was_paid_keeps_its_wallet_fee_when_cancelled(
    client, services, shop, sim, clock, connected
):
    """Its total is what the card paid, and what the shop lets the merchant refund: were the fee taken off, a
    refund of 39.98 would give the wallet its 10.00 a second time."""
    alice, order_id = alices_partly_paid_order(client, services, shop, sim, clock)
    clock.advance()
    sim.update_order(order_id, payment_method="bacs", set_paid=True)  # the card pays the 29.98 left
    push(services)
    clock.advance()
    shop_sets(sim, services, order_id, "cancelled")
    assert (fees(sim, order_id), sim.order(order_id)["total"]) == ([("Paid from wallet", "-10.00")], "29.98")
    clock.advance()

    sim.refund(order_id, "29.98")
    push(services)

    assert wallet(services, shop, alice) == 1_000 + 2_998  # all the customer paid, once


def test_a_failed_partly_paid_order_released_then_paid_by_card_is_paid_whole_and_not_flagged(
    client, services, shop, sim, clock, connected
):
    """After the wallet part went back (the shop's days passed), the customer pays the failed order from their
    account: the shop asks the whole 39.98 (the wallet's fee left with its money), so nothing is left to collect."""
    alice, order_id = alices_partly_paid_order(client, services, shop, sim, clock)
    clock.advance()
    shop_sets(sim, services, order_id, "failed")
    assert release_abandoned_failed_orders(services.sessions, now=utcnow() + timedelta(days=8)) == 1
    push(services)
    assert (fees(sim, order_id), sim.order(order_id)["total"]) == ([], "39.98")
    clock.advance()

    sim.update_order(order_id, payment_method="bacs", set_paid=True)
    push(services)

    assert sim.order(order_id)["status"] == "processing"
    assert wallet(services, shop, alice) == 1_000
    assert not [note for note in sim.notes(order_id) if "Collect it another way" in note["note"]]


def alices_order_refunded_in_part_before_the_card_paid_the_rest(client, services, shop, sim, clock) -> tuple[int, int]:
    """The merchant refunds 5.00 while the shop still waits for the 29.98 (wallet money then: it comes back), and
    the card pays the 29.98 afterwards."""
    alice, order_id = alices_partly_paid_order(client, services, shop, sim, clock)
    clock.advance()
    sim.refund(order_id, "5.00")
    push(services)
    assert wallet(services, shop, alice) == 500
    clock.advance()
    sim.update_order(order_id, payment_method="bacs", set_paid=True)
    push(services)
    return alice, order_id


def test_a_refund_made_before_the_rest_was_paid_does_not_shrink_the_full_refund(
    client, services, shop, sim, clock, connected
):
    """The shop counts both refunds against the 29.98 the card paid: refunded in full, the order gives back all
    of the 39.98 (not 34.98, the first 5.00 counted once as wallet money and again against the card's)."""
    alice, order_id = alices_order_refunded_in_part_before_the_card_paid_the_rest(client, services, shop, sim, clock)
    clock.advance()

    sim.refund(order_id, "24.98")
    push(services)

    assert sim.order(order_id)["status"] == "refunded"
    assert wallet(services, shop, alice) == 1_000 + 2_998
    with unit_of_work(services.sessions) as session:
        assert verify(session) == []


def test_a_refund_made_before_the_rest_was_paid_leaves_the_whole_wallet_part_to_a_cancellation(
    client, services, shop, sim, clock, connected
):
    alice, order_id = alices_order_refunded_in_part_before_the_card_paid_the_rest(client, services, shop, sim, clock)
    clock.advance()

    shop_sets(sim, services, order_id, "cancelled")
    assert wallet(services, shop, alice) == 500 + 1_000
    clock.advance()
    sim.refund(order_id, "24.98")  # all the shop still lets the merchant refund
    push(services)

    assert wallet(services, shop, alice) == 1_000 + 2_998
