"""An outside audit of the plugin's `wallet` checkout on the real store (session 12), with WooCommerce's own
asynchronous webhook delivery (the order's deliveries late, collapsed into its state when the test runs the queue):
checkouts retried, orders of one customer back to back, orders cancelled, failed, edited, reassigned or refunded before
their webhook, partial payments, and an order's delivery racing a reservation of the same order (driven by a row lock
the test holds on the wallet, released once both sides queue on it: PostgreSQL grants the waiters in turn).

Checked after each: no reservation left held, the wallet paid each order at most once and never more than its total,
the statement adds up to the balance, `ledger verify` passes, no delivery failed.

Three faults (fixed the same session; their tests failed before), none in the session's new locking (migration 0015
captures a reservation made while the delivery waited for the wallet, pinned below):
- an order refunded in part before its webhook is neither paid nor released: its reservation stays held;
- a reservation queued behind the order's paying delivery holds the money a second time on the paid order;
- a failed order paid again (order-pay page) is answered with its first, voided reservation: nothing is held."""

from __future__ import annotations

import re
import threading
import time

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.e2e.real_store.harness import cents
from tests.e2e.real_store.storefront import Visitor, customer_visitor, new_customer_with_login

pytestmark = pytest.mark.real_store

GATEWAY = "wallet"


@pytest.fixture
def shopper(bridge, store, plugin, settings):
    """A customer who can log in; webhooks queued (WooCommerce's default), delivered when the test runs the queue."""
    settings(wallet_payment_methods=["cheque", GATEWAY])
    customer = new_customer_with_login(store, "ana")
    store.switch("async", True)
    return customer


@pytest.fixture(scope="module")
def ebook(store):
    return store.post("products", {"name": "E-book 12", "regular_price": "19.99", "virtual": True})


@pytest.fixture(scope="module")
def guide(store):
    return store.post("products", {"name": "Guide 12", "regular_price": "9.99", "virtual": True})


def deliver_queued(store, bridge) -> None:
    store.ctl("run-queue")
    bridge.settle()


def checkout(store, shopper, *products) -> requests.Response:
    visitor = customer_visitor(store, shopper)
    for product in products:
        visitor.add_to_cart(product)
    return visitor.checkout(GATEWAY, shopper["email"])


def held(bridge, shopper) -> list[int]:
    return [hold["amount"] for hold in bridge.wallet(shopper)["open_holds"]]


def books_balance(bridge, shopper) -> None:
    wallet = bridge.wallet(shopper)
    lines = [line for line in bridge.statement(shopper) if line["unit"] != "points"]
    assert sum(line["amount"] for line in lines) == wallet["balance"]
    assert wallet["balance"] >= 0 and wallet["available"] >= 0
    assert bridge.cli("ledger", "verify", check=False).returncode == 0
    assert bridge.failed_deliveries() == 0


def wallet_part(order: dict) -> int:
    return -sum(cents(fee["total"]) for fee in order["fee_lines"] if fee["name"] == "Paid from wallet")


# -- behaviour that holds (pinned)


def test_a_checkout_refused_then_retried_on_the_same_draft_reserves_and_captures_once(
    bridge, store, shopper, settings, ebook
):
    """Partial payments off, 5.00 in the wallet: the 19.99 checkout is refused (its draft stays); the customer tops up
    and presses again, the same draft is placed: one reservation, captured once, 19.99 taken, nothing held."""
    settings(wallet_payment_methods=["cheque", GATEWAY], partial_payments=False)
    bridge.credit(shopper, 500)
    visitor = customer_visitor(store, shopper)
    visitor.add_to_cart(ebook)
    refused = visitor.checkout(GATEWAY, shopper["email"])
    assert refused.status_code == 400, refused.text[:500]
    bridge.credit(shopper, 2000)
    placed = visitor.checkout(GATEWAY, shopper["email"])
    assert placed.status_code == 200, placed.text[:500]
    again = visitor.store_api("post", "/checkout", {"payment_method": GATEWAY})  # pressed once more: cart empty
    assert again.status_code >= 400
    deliver_queued(store, bridge)
    store.redeliver(bridge.delivery_url, placed.json()["order_id"])
    bridge.settle()

    order = store.order(placed.json()["order_id"])
    assert order["status"] == "processing"
    kinds = [line["kind"] for line in bridge.statement(shopper)]
    assert kinds.count("capture") == 1 and "payment" not in kinds
    assert (bridge.balance(shopper), held(bridge, shopper)) == (2500 - 1999, [])
    books_balance(bridge, shopper)


def test_two_checkouts_back_to_back_with_a_wallet_for_one_pay_the_first_and_part_of_the_second(
    bridge, store, shopper, ebook
):
    """25.00 in the wallet, two 19.99 checkouts of the same customer before any webhook runs (partial payments on):
    the first reserves 19.99, the second the 5.01 left; once delivered (collapsed, in order), the first is paid, the
    second is paid 5.01 in part and asks 14.98 for the rest; the wallet is empty and nothing is held."""
    bridge.credit(shopper, 2500)
    first = checkout(store, shopper, ebook)
    second = checkout(store, shopper, ebook)
    assert first.status_code == 200 and second.status_code == 200, (first.text[:300], second.text[:300])
    assert sorted(held(bridge, shopper)) == [501, 1999]
    deliver_queued(store, bridge)
    deliver_queued(store, bridge)  # the bridge's pushes' own deliveries

    one, two = store.order(first.json()["order_id"]), store.order(second.json()["order_id"])
    assert one["status"] == "processing" and cents(one["total"]) == 1999 and wallet_part(one) == 0
    assert two["status"] == "pending" and wallet_part(two) == 501 and cents(two["total"]) == 1999 - 501
    assert (bridge.balance(shopper), held(bridge, shopper)) == (0, [])
    books_balance(bridge, shopper)


@pytest.mark.parametrize("status", ["cancelled", "failed"])
def test_an_order_cancelled_or_failed_before_its_webhook_takes_nothing_and_holds_nothing(
    bridge, store, shopper, ebook, status
):
    """The checkout reserves 19.99; the merchant sets the order cancelled (or failed) before any webhook ran (the
    plugin releases at once); the collapsed deliveries then show it so: 50.00 stays, nothing held, nothing charged."""
    bridge.credit(shopper, 5000)
    placed = checkout(store, shopper, ebook)
    assert placed.status_code == 200, placed.text[:500]
    assert held(bridge, shopper) == [1999]
    store.put(f"orders/{placed.json()['order_id']}", {"status": status})
    deliver_queued(store, bridge)

    assert (bridge.balance(shopper), held(bridge, shopper)) == (5000, [])
    assert [line["kind"] for line in bridge.statement(shopper)] == ["adjustment"]
    books_balance(bridge, shopper)


def test_an_order_lowered_before_its_webhook_captures_the_new_total_and_releases_the_rest(
    bridge, store, shopper, ebook, guide
):
    """Checkout of 19.99 + 9.99 reserves 29.98; the merchant removes the 9.99 line before the webhook: the delivery
    captures 19.99 of the reservation and releases the rest."""
    bridge.credit(shopper, 5000)
    placed = checkout(store, shopper, ebook, guide)
    assert placed.status_code == 200, placed.text[:500]
    order_id = placed.json()["order_id"]
    line = next(item for item in store.order(order_id)["line_items"] if item["product_id"] == guide["id"])
    store.put(f"orders/{order_id}", {"line_items": [{"id": line["id"], "quantity": 0}]})
    deliver_queued(store, bridge)
    deliver_queued(store, bridge)

    order = store.order(order_id)
    assert cents(order["total"]) == 1999 and order["status"] == "processing"
    assert (bridge.balance(shopper), held(bridge, shopper)) == (5000 - 1999, [])
    books_balance(bridge, shopper)


def test_an_order_raised_before_its_webhook_is_paid_at_its_new_total(bridge, store, shopper, ebook, guide):
    """Checkout of 19.99 reserves 19.99; the merchant adds a 9.99 line before the webhook: the delivery pays 29.98
    (the reservation released, the payment posted from the wallet), once, nothing held."""
    bridge.credit(shopper, 5000)
    placed = checkout(store, shopper, ebook)
    assert placed.status_code == 200, placed.text[:500]
    order_id = placed.json()["order_id"]
    store.put(f"orders/{order_id}", {"line_items": [{"product_id": guide["id"], "quantity": 1}]})
    deliver_queued(store, bridge)
    deliver_queued(store, bridge)

    order = store.order(order_id)
    assert cents(order["total"]) == 2998 and order["status"] == "processing"
    assert (bridge.balance(shopper), held(bridge, shopper)) == (5000 - 2998, [])
    books_balance(bridge, shopper)


def test_an_order_refunded_in_part_before_its_webhook_leaves_no_reservation_held(bridge, store, shopper, ebook):
    """Checkout of 19.99 reserves it (order on-hold, 50.00 in the wallet); the merchant refunds 5.00 before the webhook
    ran; the collapsed deliveries show the on-hold order with its refund.

    Expected: the reservation ends — captured (19.99 taken, the 5.00 refund back to the wallet: balance 35.01) or
    released (balance 50.00) — so nothing stays held and available equals the balance. Before: the order was neither
    paid nor released: `_may_charge` never charges an order that has refunds ("it was paid"), and only a cancelled or
    failed order releases its reservations, so the hold of 1999 stays open (balance 5000, available 3001) until it
    expires hours later, while the order sits on-hold unpaid in the shop. (Whether the bridge should then capture or
    release is a design question; that it does neither is the fault.)"""
    bridge.credit(shopper, 5000)
    placed = checkout(store, shopper, ebook)
    assert placed.status_code == 200, placed.text[:500]
    store.refund(placed.json()["order_id"], "5.00")
    deliver_queued(store, bridge)
    deliver_queued(store, bridge)

    wallet = bridge.wallet(shopper)
    assert (held(bridge, shopper), wallet["available"]) == ([], wallet["balance"])
    assert wallet["balance"] in (5000 - 1999 + 500, 5000)
    books_balance(bridge, shopper)


def test_an_order_moved_to_another_customer_before_its_webhook_releases_the_first_wallets_reservation(
    bridge, store, shopper, ebook
):
    """Checkout of 19.99 reserves it on the shopper's wallet; the merchant assigns the order to another customer (one
    the bridge has no wallet for) before the webhook. The delivery must release the shopper's reservation (not this
    payer's wallet) and refuse the order for the new payer's empty wallet: shopper 50.00 available, nothing held,
    the other customer charged nothing."""
    bridge.credit(shopper, 5000)
    other = new_customer_with_login(store, "ben")
    placed = checkout(store, shopper, ebook)
    assert placed.status_code == 200, placed.text[:500]
    store.put(f"orders/{placed.json()['order_id']}", {"customer_id": other["id"]})
    deliver_queued(store, bridge)
    deliver_queued(store, bridge)

    wallet = bridge.wallet(shopper)
    assert (wallet["balance"], wallet["available"], wallet["open_holds"]) == (5000, 5000, [])
    assert bridge.balance(other) == 0
    assert store.order(placed.json()["order_id"])["status"] != "processing"
    books_balance(bridge, shopper)


# -- racing a reservation against the order's delivery (a row lock on the wallet, held by the test)


class WalletHeld:
    """The customer's wallet row locked by the test's own transaction: whoever reserves or pays with it queues."""

    def __init__(self, bridge, shopper):
        self.engine = create_engine(bridge.database_url, poolclass=NullPool)
        self.connection = self.engine.connect()
        self.transaction = self.connection.begin()
        self.connection.execute(
            text(
                "SELECT a.id FROM accounts a JOIN customers c ON c.id = a.customer_id "
                "WHERE c.external_id = :customer AND a.kind = 'wallet' FOR UPDATE OF a"
            ),
            {"customer": str(shopper["id"])},
        ).one()

    def waiters(self) -> int:
        with self.engine.connect() as connection:
            return connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
            )

    def wait_for(self, count: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while self.waiters() < count:
            assert time.monotonic() < deadline, f"fewer than {count} waiting on the wallet"
            time.sleep(0.05)

    def release(self) -> None:
        self.transaction.commit()
        self.connection.close()
        self.engine.dispose()


def in_thread(target, results: list) -> threading.Thread:
    def run():
        try:
            results.append(target())
        except BaseException as exc:  # noqa: BLE001 - asserted by the test
            results.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def reserve_call(bridge, shopper, order_id, amount):
    headers = {"Authorization": f"Bearer {bridge.shop['api_key']}", "Idempotency-Key": f"wc-order-{order_id}-{amount}"}
    answer = requests.post(
        f"{bridge.url}/api/v1/orders/{order_id}/reservation",
        json={"customer_id": str(shopper["id"]), "amount": amount},
        headers=headers,
        timeout=60,
    )
    return answer.status_code, answer.json()


def wallet_order_by_rest(store, shopper, product) -> dict:
    """An order the `wallet` gateway is to pay, placed without the checkout (so without a reservation yet)."""
    return store.new_order(
        shopper, [(product, 1)], payment_method=GATEWAY, payment_method_title="Wallet", status="on-hold"
    )


def test_a_reservation_made_while_the_orders_delivery_waits_for_the_wallet_is_captured(bridge, store, shopper, ebook):
    """The reservation of an order takes the wallet first; the order's delivery queues behind it (in
    wb_lock_wallet_for_order, migration 0015): it must capture that reservation, not pay a second time. 50.00 in the
    wallet, a 19.99 order: one capture, 30.01 left, nothing held."""
    bridge.credit(shopper, 5000)
    order = wallet_order_by_rest(store, shopper, ebook)
    lock, results = WalletHeld(bridge, shopper), []
    try:
        reserving = in_thread(lambda: reserve_call(bridge, shopper, order["id"], 1999), results)
        lock.wait_for(1)
        delivering = in_thread(lambda: store.ctl("run-queue"), results)
        lock.wait_for(2)
    finally:
        lock.release()
    reserving.join(60)
    delivering.join(60)
    bridge.settle()
    deliver_queued(store, bridge)

    assert results[0] == (201, results[0][1]) and results[0][1]["amount"] == 1999, results
    kinds = [line["kind"] for line in bridge.statement(shopper)]
    assert kinds.count("capture") == 1 and "payment" not in kinds, kinds
    assert (bridge.balance(shopper), held(bridge, shopper)) == (5000 - 1999, [])
    assert store.order(order["id"])["status"] == "processing"
    books_balance(bridge, shopper)


def test_a_reservation_queued_behind_the_orders_paying_delivery_is_not_left_held(bridge, store, shopper, ebook):
    """The order's delivery takes the wallet first and pays the 19.99 order from it; a reservation for the same order
    (the plugin's process_payment) queued behind it on the wallet. Expected: once the delivery committed the payment
    the reservation is refused (409 order_already_paid) or at least holds nothing — 50.00 - 19.99 = 30.01 available,
    no open hold. Before: the reservation read the order as unpaid before it waited (`_refuse_if_paid`, unlocked,
    before the wallet's lock) and then holds 19.99 more on the paid order: available 10.02, an open hold of 1999 that
    no later delivery of the (now paid) order releases; it only expires hours later."""
    bridge.credit(shopper, 5000)
    order = wallet_order_by_rest(store, shopper, ebook)
    lock, results = WalletHeld(bridge, shopper), []
    try:
        delivering = in_thread(lambda: store.ctl("run-queue"), results)
        lock.wait_for(1)
        reserving = in_thread(lambda: reserve_call(bridge, shopper, order["id"], 1999), results)
        lock.wait_for(2)
    finally:
        lock.release()
    delivering.join(60)
    reserving.join(60)
    bridge.settle()
    deliver_queued(store, bridge)  # the mark-paid push's own delivery

    assert store.order(order["id"])["status"] == "processing"
    kinds = [line["kind"] for line in bridge.statement(shopper)]
    assert kinds.count("payment") + kinds.count("capture") == 1, kinds
    wallet = bridge.wallet(shopper)
    assert (wallet["balance"], wallet["available"], held(bridge, shopper)) == (3001, 3001, [])
    books_balance(bridge, shopper)


# -- an order failed, then paid again on its order-pay page


def pay_for_order(visitor, order: dict) -> requests.Response:
    """The order-pay form posted as a browser does; once more with a fresh form when the store shows it again (seen
    once in a full CI run: the page re-shown, answer 200, never alone)."""
    answer = _post_pay_form(visitor, order)
    return answer if answer.status_code == 302 else _post_pay_form(visitor, order)


def _post_pay_form(visitor, order: dict, method: str = GATEWAY) -> requests.Response:
    path = f"/checkout/order-pay/{order['id']}/?pay_for_order=true&key={order['order_key']}"
    page = visitor.get(path).text
    nonce = re.search(r'name="woocommerce-pay-nonce" value="([^"]+)"', page)
    assert nonce, page[-3000:]
    return visitor.post(
        path,
        data={
            "payment_method": method,
            "woocommerce_pay": "1",
            "woocommerce-pay-nonce": nonce.group(1),
            "_wp_http_referer": path,
        },
        allow_redirects=False,
    )


def test_an_order_failed_then_paid_again_holds_its_money_again(bridge, store, shopper, settings, ebook):
    """Partial payments off, 25.00 in the wallet. Checkout of A (19.99) reserves it; the merchant sets A failed (the
    plugin releases), its deliveries run. The customer pays A again from My Account (order-pay page, wallet gateway):
    the plugin asks to reserve 19.99 for A with the same key as the first time (`wc-order-<id>-1999`) and notes
    "Wallet Bridge reserved €19.99"; A is on-hold. Before A's delivery the customer checks out B (19.99).

    Expected: A's second reservation holds 19.99 (available 25.00 - 19.99 = 5.01), so B is refused at checkout and A is
    paid when delivered: balance 5.01, nothing held. Before: the bridge answered the retry with the first, voided hold
    (a replay of its key: 201, amount 1999, status "voided"), nothing is held (available stays 25.00), B reserves and
    is paid 19.99, and A — which the shop was told is reserved — is refused for lack of money (5.01 available)."""
    settings(wallet_payment_methods=["cheque", GATEWAY], partial_payments=False)
    bridge.credit(shopper, 2500)
    placed = checkout(store, shopper, ebook)
    assert placed.status_code == 200, placed.text[:500]
    order_a = placed.json()["order_id"]
    store.put(f"orders/{order_a}", {"status": "failed"})
    deliver_queued(store, bridge)
    assert (bridge.wallet(shopper)["available"], held(bridge, shopper)) == (2500, [])

    paid_again = pay_for_order(customer_visitor(store, shopper), store.order(order_a))
    notices = re.findall(r"woocommerce-error[^>]*>(.*?)</", paid_again.text, re.S)
    assert paid_again.status_code == 302 and "/order-received/" in paid_again.headers["Location"], notices
    assert store.order(order_a)["status"] == "on-hold"
    available_after_retry = bridge.wallet(shopper)["available"]
    second = checkout(store, shopper, ebook)
    deliver_queued(store, bridge)
    deliver_queued(store, bridge)

    a = store.order(order_a)
    assert available_after_retry == 2500 - 1999, "the retried order's reservation holds nothing"
    assert second.status_code == 400, "B was placed with the money A's reservation should hold"
    assert a["status"] == "processing"
    assert (bridge.balance(shopper), held(bridge, shopper)) == (2500 - 1999, [])
    books_balance(bridge, shopper)


def test_a_short_wallet_credited_before_the_webhook_pays_its_new_part(bridge, store, shopper, ebook):
    """Partial payments on, 10.00 in the wallet: the 19.99 checkout reserves 10.00 (the order waits for 9.99). The
    merchant credits 5.00 before the webhook: the delivery pays what the wallet now has, 15.00 (the reservation
    released, one payment posted with the order's record and the push in one round trip), the order asks 4.99, the
    wallet is empty, nothing held."""
    bridge.credit(shopper, 1000)
    placed = checkout(store, shopper, ebook)
    assert placed.status_code == 200, placed.text[:500]
    assert held(bridge, shopper) == [1000]
    bridge.credit(shopper, 500)
    deliver_queued(store, bridge)
    deliver_queued(store, bridge)

    order = store.order(placed.json()["order_id"])
    assert (order["status"], wallet_part(order), cents(order["total"])) == ("pending", 1500, 499)
    assert (bridge.balance(shopper), held(bridge, shopper)) == (0, [])
    books_balance(bridge, shopper)


def test_place_order_pressed_twice_at_once_pays_each_placed_order_once(bridge, store, shopper, ebook):
    """The customer presses "Place order" twice: two Store API checkouts of the same cart and session reach the bridge
    together (queued on the wallet the test holds). WooCommerce places TWO orders (the second request did not see the
    first's draft: the session is written at the end of a request) — the shop's own double submit, which the block
    checkout's script prevents in a browser; whether the plugin should guard against it is a design question, not
    asserted. The bridge keeps its books: each placed order reserved and captured once, nothing held, the wallet down
    19.99 per placed order."""
    bridge.credit(shopper, 5000)
    first = customer_visitor(store, shopper)
    first.add_to_cart(ebook)
    second = Visitor(store)
    second.http.cookies.update(first.http.cookies)
    second.http.headers["X-WP-Nonce"] = first.http.headers["X-WP-Nonce"]
    second.store_nonce = first.store_nonce
    lock, results = WalletHeld(bridge, shopper), []
    try:
        one = in_thread(lambda: first.checkout(GATEWAY, shopper["email"]), results)
        lock.wait_for(1)
        two = in_thread(lambda: second.checkout(GATEWAY, shopper["email"]), results)
        lock.wait_for(2, timeout=4)
    finally:
        lock.release()
    one.join(60)
    two.join(60)
    deliver_queued(store, bridge)
    deliver_queued(store, bridge)

    orders = [o for o in store.get("orders", customer=shopper["id"], status="any") if o["status"] != "checkout-draft"]
    assert orders and {o["status"] for o in orders} == {"processing"}
    kinds = [line["kind"] for line in bridge.statement(shopper)]
    assert kinds.count("capture") == len(orders) and "payment" not in kinds, kinds
    assert (bridge.balance(shopper), held(bridge, shopper)) == (5000 - 1999 * len(orders), [])
    books_balance(bridge, shopper)
