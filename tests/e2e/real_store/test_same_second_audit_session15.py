"""Session 15, outside audit: refunds made, deleted and made again within one second on the real store.

WooCommerce dates an order's changes to the second, and the bridge (since this session) no longer takes a refund it
applied for deleted when a delivered state *of the same second as the newest seen* leaves it out: it reads the order
back (`order.read_back`) and only that state decides. A deleted refund is taken back from the lots it made first;
top-up orders record their newest state's date. This file drives that on the real store: synchronous deliveries of
one second, background (async) deliveries that collapse, states delivered late (a true redelivery of the current
state, or an older state captured from the shop's REST answer and posted signed as WooCommerce would), the outbox
worker stopped so a read-back waits, and top-up orders refunded by the merchant.

Expectations come from the SHOP's figures only: what the customer paid from the wallet (the whole total of a wallet
order, or the "Paid from wallet" line) and by card, what refunds the shop lists now (after deletions) and where its
policy sends them. The wallet ends exactly there; read-backs settle (no message retried for ever, none dead); the
statement adds up and `ledger verify` is clean.

Held: a refund made and deleted in one second (wallet order, top-up) is read back and taken back, once; a partly
paid order's full refund deleted in its second holds the wallet part again; a read-back held up by a stopped worker
decides right whether the refund was deleted meanwhile or still stands (asked once for two late copies); quick
refunds and deletions, sync or background, end at the shop's refunds; no outbox message left pending or dead.
Findings (each reproduced in three runs): an older state delivered late that lists a refund the shop has since
deleted, unseen by the bridge, was applied (wallet order: +5.00; top-up: -5.00), and, a second older, not healed even
when a newer refund is missing from it — fixed in session 15 for states a second or more older; open (strict xfail)
for a state of the same second. A deleted top-up refund gave back the cash, not the bonus taken with it (fixed in
session 15)."""

from __future__ import annotations

import os
import random
import time

import pytest
from hypothesis import given, note
from hypothesis import strategies as st
from sqlalchemy import text
from woocommerce import oauth

from tests.e2e.real_store.harness import money, paid_by_wallet
from tests.e2e.real_store.test_async_money_audit_session14 import flush
from tests.e2e.real_store.test_audit_session10 import books_balance, pay_rest_by_card, refunded, wallet_fee
from tests.e2e.real_store.test_points_and_bonuses_audit_session13 import (
    audited,
    statement_adds_up,
    topped_up,
    touch,
)
from tests.e2e.real_store.test_refunds_withdrawals_audit_session13 import delete_refund
from tests.woo import wp_json
from webhooks.signing import sign

pytestmark = pytest.mark.real_store


# -- helpers


def next_second() -> float:
    """Sleep to just past the next whole second; returns that second."""
    now = time.time()
    time.sleep(1.02 - (now % 1))
    return int(time.time())


def same_second(started: int) -> bool:
    return int(time.time()) == started


def post_late(bridge, store, body: dict, *, settle: bool = True) -> None:
    """An older state of the order delivered late: the shop's REST answer for it (what `order.updated` carries, built
    by the same controller), encoded like wp_json_encode and signed with the shop's webhook secret (`shop create`'s),
    as WooCommerce sends it."""
    hook = next(h for h in store.our_webhooks(bridge.delivery_url) if h["topic"] == "order.updated")
    raw = wp_json(body)
    headers = {
        "Content-Type": "application/json",
        "X-WC-Webhook-Source": store.url.rstrip("/") + "/",
        "X-WC-Webhook-Topic": "order.updated",
        "X-WC-Webhook-Resource": "order",
        "X-WC-Webhook-Event": "updated",
        "X-WC-Webhook-ID": str(hook["id"]),
        "X-WC-Webhook-Delivery-ID": "late" + str(body["id"]),
        "X-WC-Webhook-Signature": sign(raw, bridge.shop["webhook_secret"]),
    }
    response = bridge.http.post(bridge.delivery_url, data=raw, headers=headers, timeout=60)
    assert response.status_code == 200, response.text[:500]
    if settle:
        bridge.settle()
    else:  # the worker is down: only the delivery itself is waited for
        inbox_applied(bridge)


def inbox_applied(bridge, timeout: float = 30.0) -> None:
    query = text("SELECT count(*) FROM inbox WHERE status = 'received'")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with bridge.db.connect() as connection:
            if connection.execute(query).scalar() == 0:
                return
        time.sleep(0.1)
    raise AssertionError("a delivery was not applied")


def outbox_of(bridge, order_id) -> list[tuple]:
    query = text("SELECT kind, status, attempts FROM outbox WHERE payload->>'order_id' = :id ORDER BY id")
    with bridge.db.connect() as connection:
        return [tuple(row) for row in connection.execute(query, {"id": str(order_id)})]


def outbox_at_rest(bridge, order_id) -> list[tuple]:
    """Every message about the order sent: none waiting, none given up on (dead), none retried more than once."""
    rows = outbox_of(bridge, order_id)
    assert all(status == "delivered" for _kind, status, _attempts in rows), rows
    return rows


def read_backs(bridge, order_id) -> int:
    return sum(kind == "order.read_back" for kind, _s, _a in outbox_of(bridge, order_id))


# -- a wallet order: refund made, deleted and made again in one second (deliveries in order)


def test_a_refund_made_and_deleted_in_one_second_is_taken_back_after_the_read_back(bridge, store, customer, mug):
    """19.99 paid from the wallet (50.00 funds). Within one second the merchant refunds 5.00 and deletes that refund
    (and saves the order: a deletion sends nothing): both deliveries carry the same second, the second leaves the
    refund out, the bridge reads the order back. Later 8.00 is refunded. The shop: 19.99 paid, one refund of 8.00 to
    the wallet: 50.00 - 19.99 + 8.00."""
    order = paid_by_wallet(bridge, store, customer, [(mug, 1)])
    for _attempt in range(3):
        started = next_second()
        first = store.refund(order["id"], "5.00")
        delete_refund(store, order["id"], first["id"])
        if same_second(started):
            break
    bridge.settle()
    assert read_backs(bridge, order["id"]) >= 1, outbox_of(bridge, order["id"])
    assert refunded(store.order(order["id"])) == 0
    assert bridge.balance(customer) == 5000 - 1999
    store.refund(order["id"], "8.00")
    bridge.settle()
    store.redeliver(bridge.delivery_url, order["id"])
    bridge.settle()
    assert bridge.balance(customer) == 5000 - 1999 + 800
    outbox_at_rest(bridge, order["id"])
    statement_adds_up(bridge, customer)
    books_balance(bridge)


def test_the_full_refund_of_a_partly_paid_order_deleted_in_its_second_holds_the_wallet_part_again(
    bridge, store, customer, mug
):
    """10.00 from the wallet and 29.98 by card; within one second the merchant refunds the 29.98 (the order turns
    refunded: the 10.00 and the 29.98 to the wallet), deletes that refund and sets the order processing again. The
    shop: processing, 10.00 from the wallet, 29.98 by card, nothing refunded: the wallet holds 0.00. Set refunded
    afterwards (WooCommerce refunds the 29.98): 39.98 back, once."""
    bridge.credit(customer, 1000)
    order = store.new_order(customer, [(mug, 2)])
    bridge.settle()
    pay_rest_by_card(store, order["id"])
    bridge.settle()
    assert bridge.balance(customer) == 0
    for _attempt in range(3):
        started = next_second()
        refund = store.refund(order["id"], "29.98")
        store.api.delete(f"orders/{order['id']}/refunds/{refund['id']}", params={"force": "true"})
        store.put(f"orders/{order['id']}", {"status": "processing"})
        if same_second(started):
            break
    bridge.settle()
    shown = store.order(order["id"])
    assert (shown["status"], shown["refunds"], wallet_fee(shown)) == ("processing", [], 1000)
    assert bridge.balance(customer) == 0, outbox_of(bridge, order["id"])
    time.sleep(1)
    store.put(f"orders/{order['id']}", {"status": "refunded"})
    bridge.settle()
    assert refunded(store.order(order["id"])) == 2998
    assert bridge.balance(customer) == 1000 + 2998
    outbox_at_rest(bridge, order["id"])
    statement_adds_up(bridge, customer)
    books_balance(bridge)


# -- a property: quick refunds and deletions of one wallet order, in one second or a few, sync or background


QUICK = st.lists(
    st.one_of(
        st.tuples(st.just("refund"), st.sampled_from([100, 250, 500])),
        st.tuples(st.just("delete"), st.integers(0, 3)),
        st.tuples(st.just("deliver")),
        st.tuples(st.just("pause")),
    ),
    min_size=3,
    max_size=7,
)


@audited(int(os.environ.get("SAME_SECOND_EXAMPLES", 4)))
@given(background=st.booleans(), ops=QUICK)
def test_random_quick_refunds_and_deletions_end_at_the_shops_refunds(bridge, store, mug, monkeypatch, background, ops):
    """A 19.99 wallet order (50.00 funds); the merchant refunds and deletes refunds back to back (most land in the same
    second), deliveries synchronous or in the background (`deliver` runs the queue). At the end (and after a true
    redelivery) the wallet holds 30.01 plus the refunds the shop still lists, every read-back done."""
    monkeypatch.setattr(oauth, "randint", random.SystemRandom().randint)
    customer = store.new_customer("qik")
    bridge.settle()
    order = paid_by_wallet(bridge, store, customer, [(mug, 1)])
    store.switch("async", background)
    standing: list[int] = []
    log = [f"#{order['id']} {'background' if background else 'sync'}"]
    try:
        next_second()
        for op in ops:
            kind, *args = op
            if kind == "refund":
                standing.append(store.refund(order["id"], money(args[0]))["id"])
                log.append(f"refund {money(args[0])} at {time.time() % 60:.2f}")
            elif kind == "delete" and standing:
                rid = standing.pop(args[0] % len(standing))
                delete_refund(store, order["id"], rid)
                log.append(f"delete #{rid} at {time.time() % 60:.2f}")
            elif kind == "deliver" and background:
                flush(bridge, store)
                log.append("queue run")
            elif kind == "pause":
                time.sleep(0.6)
                log.append("pause")
            note(log[-1])
        touch(store, order["id"])
        flush(bridge, store) if background else bridge.settle()
        store.redeliver(bridge.delivery_url, order["id"])
        flush(bridge, store) if background else bridge.settle()
    finally:
        store.switch("async", False)
    shown = store.order(order["id"])
    story = "\n".join([*log, f"shop refunds {shown['refunds']}", f"outbox {outbox_of(bridge, order['id'])}"])
    assert bridge.balance(customer) == 5000 - 1999 + refunded(shown), story
    outbox_at_rest(bridge, order["id"])
    statement_adds_up(bridge, customer)


# -- an older state delivered after the newer one


def made_then_deleted_unseen(bridge, store, customer, mug, *, one_second: bool, again: bool) -> tuple[dict, dict]:
    """19.99 paid from the wallet (50.00 funds); background delivery on; the merchant refunds 5.00 (the state listing
    it is captured), deletes it (and, `again`, refunds 8.00) — within one second of the capture or a second later.
    The queue runs: the bridge sees only the final state. Returns the order and the captured older state."""
    order = paid_by_wallet(bridge, store, customer, [(mug, 1)])
    store.switch("async", True)
    flush(bridge, store)
    for _attempt in range(3):
        started = next_second()
        first = store.refund(order["id"], "5.00")
        older = store.order(order["id"])
        if not one_second:
            time.sleep(1.1)
        delete_refund(store, order["id"], first["id"])
        if again:
            store.refund(order["id"], "8.00")
        if same_second(started) == one_second:
            break
    flush(bridge, store)
    return order, older


SAME_SECOND_OPEN = pytest.mark.xfail(
    strict=True,
    reason="finding (open): a late state of the same second as the newest seen, listing a refund the shop has since "
    "deleted (the bridge never saw it), is applied: +5.00 in the wallet while the shop lists no such refund. Either "
    "state may be the newer within a second; a refund new in it is applied. A state a second older is fixed "
    "(session 15: bridge.order_rules._without_refunds_deleted_since)",
)


@pytest.mark.parametrize(
    "one_second", [pytest.param(True, marks=SAME_SECOND_OPEN), False], ids=["same-second", "a-second-older"]
)
def test_a_late_older_state_listing_a_deleted_refund_credits_nothing(bridge, store, customer, mug, one_second):
    """The shop: 19.99 paid from the wallet, no refund (made and deleted). The bridge saw the final state; the older
    state listing the 5.00 refund arrives late (two PHP workers, a delivery held up). The wallet stays at 30.01."""
    order, older = made_then_deleted_unseen(bridge, store, customer, mug, one_second=one_second, again=False)
    assert bridge.balance(customer) == 5000 - 1999
    post_late(bridge, store, older)
    assert store.order(order["id"])["refunds"] == []
    assert bridge.balance(customer) == 5000 - 1999, outbox_of(bridge, order["id"])
    outbox_at_rest(bridge, order["id"])
    statement_adds_up(bridge, customer)


@pytest.mark.parametrize("one_second", [True, False], ids=["same-second", "a-second-older"])
def test_a_late_older_state_listing_a_refund_deleted_and_made_again_ends_at_the_shops_refund(
    bridge, store, customer, mug, one_second
):
    """The same, the merchant refunding 8.00 after the deletion: the shop lists one refund of 8.00; the wallet ends at
    30.01 + 8.00 once the late state and whatever it makes the bridge ask are through."""
    order, older = made_then_deleted_unseen(bridge, store, customer, mug, one_second=one_second, again=True)
    kept = refunded(store.order(order["id"]))  # 8.00 (more if the second was missed and the steps made again)
    assert bridge.balance(customer) == 5000 - 1999 + kept
    post_late(bridge, store, older)
    assert refunded(store.order(order["id"])) == kept
    assert bridge.balance(customer) == 5000 - 1999 + kept, outbox_of(bridge, order["id"])
    outbox_at_rest(bridge, order["id"])
    statement_adds_up(bridge, customer)


# -- the read-back waits (the worker stopped)


def test_a_read_back_held_up_while_the_refund_is_really_deleted_takes_it_back_once(bridge, store, customer, mug):
    """19.99 paid from the wallet. Within one second the merchant saves the order (that state is captured) and
    refunds 5.00 (applied: 35.01). The captured state arrives late: the same second, without the refund, so the bridge
    asks the shop; its worker is down, the read-back waits. Meanwhile the merchant deletes the refund for real (a
    later second: taken back at once). The worker comes back and the read-back runs: the wallet ends at the shop's
    30.01 (nothing taken twice), and the late state alone took nothing."""
    order = paid_by_wallet(bridge, store, customer, [(mug, 1)])
    for _attempt in range(3):
        started = next_second()
        touch(store, order["id"])
        older = store.order(order["id"])
        refund = store.refund(order["id"], "5.00")
        if same_second(started):
            break
    bridge.settle()
    made = refunded(store.order(order["id"]))  # 5.00 (more if the second was missed and the steps made again)
    assert bridge.balance(customer) == 5000 - 1999 + made
    bridge.stop("worker")
    try:
        post_late(bridge, store, older, settle=False)
        assert bridge.balance(customer) == 5000 - 1999 + made  # the late state took nothing back
        assert read_backs(bridge, order["id"]) == 1, outbox_of(bridge, order["id"])
        time.sleep(1)
        delete_refund(store, order["id"], refund["id"])
        inbox_applied(bridge)
        assert bridge.balance(customer) == 5000 - 1999 + made - 500
    finally:
        bridge.start_worker()
    bridge.settle()
    assert refunded(store.order(order["id"])) == made - 500
    assert bridge.balance(customer) == 5000 - 1999 + made - 500
    outbox_at_rest(bridge, order["id"])
    statement_adds_up(bridge, customer)


def test_a_read_back_held_up_keeps_a_refund_the_shop_still_lists(bridge, store, customer, mug):
    """The same without the deletion: the read-back finds the 5.00 refund listed, nothing leaves the wallet."""
    order = paid_by_wallet(bridge, store, customer, [(mug, 1)])
    for _attempt in range(3):
        started = next_second()
        touch(store, order["id"])
        older = store.order(order["id"])
        store.refund(order["id"], "5.00")
        if same_second(started):
            break
    bridge.settle()
    bridge.stop("worker")
    try:
        post_late(bridge, store, older, settle=False)
        post_late(bridge, store, older, settle=False)  # twice: one question to the shop
    finally:
        bridge.start_worker()
    bridge.settle()
    assert read_backs(bridge, order["id"]) == 1, outbox_of(bridge, order["id"])
    assert bridge.balance(customer) == 5000 - 1999 + refunded(store.order(order["id"]))
    outbox_at_rest(bridge, order["id"])
    statement_adds_up(bridge, customer)


# -- top-up orders


def test_a_topup_refund_made_and_deleted_in_one_second_gives_the_deposit_back(bridge, store, customer):
    """A 20.00 top-up paid by card; within one second the merchant refunds 5.00 and deletes it; later refunds 3.00.
    The shop: 20.00 paid, 3.00 back to the card: the wallet holds 17.00."""
    made = topped_up(bridge, store, customer, 2000)
    order_id = made["order_id"]
    for _attempt in range(3):
        started = next_second()
        first = store.refund(order_id, "5.00")
        delete_refund(store, order_id, first["id"])
        if same_second(started):
            break
    bridge.settle()
    assert store.order(order_id)["refunds"] == []
    assert bridge.balance(customer) == 2000, outbox_of(bridge, order_id)
    time.sleep(1)
    store.refund(order_id, "3.00")
    bridge.settle()
    store.redeliver(bridge.delivery_url, order_id)
    bridge.settle()
    assert bridge.balance(customer) == 1700
    outbox_at_rest(bridge, order_id)
    statement_adds_up(bridge, customer)


@pytest.mark.parametrize(
    "one_second", [pytest.param(True, marks=SAME_SECOND_OPEN), False], ids=["same-second", "a-second-older"]
)
def test_a_late_older_topup_state_listing_a_deleted_refund_takes_nothing(bridge, store, customer, one_second):
    """A 20.00 top-up paid by card; background delivery; the merchant refunds 5.00 (state captured) and deletes it;
    the bridge sees the final state, then the captured one late. The shop refunded nothing: 20.00 stays."""
    made = topped_up(bridge, store, customer, 2000)
    order_id = made["order_id"]
    store.switch("async", True)
    for _attempt in range(3):
        started = next_second()
        first = store.refund(order_id, "5.00")
        older = store.order(order_id)
        if not one_second:
            time.sleep(1.1)
        delete_refund(store, order_id, first["id"])
        if same_second(started) == one_second:
            break
    flush(bridge, store)
    assert bridge.balance(customer) == 2000
    post_late(bridge, store, older)
    assert store.order(order_id)["refunds"] == []
    assert bridge.balance(customer) == 2000, outbox_of(bridge, order_id)
    statement_adds_up(bridge, customer)


def test_a_topup_with_a_bonus_whose_refund_is_deleted_gives_the_bonus_back_too(bridge, store, settings, customer):
    """10 % top-up bonus: 20.00 paid by card gives 22.00. The merchant refunds 10.00 (10.00 and its 1.00 bonus
    leave: 11.00), then deletes the refund: the shop's figures are again 20.00 paid, nothing refunded: 22.00."""
    settings(topup_bonus_bp=1000)
    made = topped_up(bridge, store, customer, 2000)
    assert bridge.balance(customer) == 2200
    refund = store.refund(made["order_id"], "10.00")
    bridge.settle()
    assert bridge.balance(customer) == 1100
    time.sleep(1)
    delete_refund(store, made["order_id"], refund["id"])
    bridge.settle()
    assert store.order(made["order_id"])["refunds"] == []
    assert bridge.balance(customer) == 2200
    statement_adds_up(bridge, customer)
