"""Session 13: an outside audit of refunds asked through the bridge, withdrawals and promotional expiry, on the real
store.

Checked from the shop's side: per order, what comes back to the wallet never exceeds what the customer paid from it
plus what the shop refunded to it (plus the shop's stated refund bonus); the shop never refunds more than an order's
total; a withdrawal pays out only deposited money, never more than was deposited and not spent; retries move
nothing twice; balances never go negative; the statement adds up and `ledger verify` is clean.
Refund requests go through `POST /api/v1/orders/<id>/refunds` (the worker makes the refund in the store), merchant
refunds through wc/v3 as wp-admin does (`api_refund: false`), withdrawals through the API and the console's
Withdrawals page, expiry through `bridge.usecases.expiry.expire_credit` (what `wallet-bridge expire` runs) at a
later clock.
Six findings; five fixed in the same session (their tests failed before): a refund request on a top-up order took the
deposit from the wallet while the card got nothing (refused now: a top-up leaves as a withdrawal); a top-up refunded
to the card while a withdrawal request held it stayed in the wallet once the request was declined; a top-up refund
deleted in the shop was never given back; a deleted refund still counted against what a request may ask; lifetime
spend for return windows counted money refunded. Open (strict xfail): a merchant's card refund of the same amount is
taken for the customer's pending wallet request (the order's webhook lists refunds without their meta, so the bridge
matches a refund it has not yet seen answered by amount).
"""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.real_store.harness import CARD_METHOD, cents, run_later
from tests.e2e.real_store.test_points_and_bonuses_audit_session13 import (
    card_order,
    statement_adds_up,
    topped_up,
    touch,
)
from tests.e2e.real_store.test_views_audit_session13 import Console, merchant  # noqa: F401 - a fixture

pytestmark = pytest.mark.real_store


# -- helpers


def ask_refund(bridge, order_id, amount: int, destination: str, *, expect: int = 202, key: str | None = None):
    body = {"amount": amount, "destination": destination, "reason": "Customer asked"}
    return bridge.api("post", f"/orders/{order_id}/refunds", body, expect=expect, key=key)


def status_of(bridge, path: str, body: dict, key: str) -> int:
    """One API call's status code, for calls made at once from several threads."""
    headers = {"Authorization": f"Bearer {bridge.shop['api_key']}", "Idempotency-Key": key}
    return bridge.http.post(f"{bridge.url}/api/v1{path}", json=body, headers=headers, timeout=60).status_code


def shop_refunds(store, order_id) -> list[int]:
    return sorted(-cents(refund["total"]) for refund in store.order(order_id)["refunds"])


def order_lines(bridge, customer, order_id) -> list[dict]:
    return [line for line in bridge.statement(customer) if str(line["order_id"]) == str(order_id)]


def back_for(bridge, customer, order_id) -> int:
    """Net money the order's lines moved into the wallet (credits less debits)."""
    return sum(line["amount"] for line in order_lines(bridge, customer, order_id) if line["unit"] == "money")


def delete_refund(store, order_id, refund_id) -> None:
    response = store.api.delete(f"orders/{order_id}/refunds/{refund_id}", params={"force": "true"})
    assert response.status_code == 200, response.text[:300]
    touch(store, order_id)


def expire(bridge, days: int = 2) -> int:
    """`wallet-bridge expire` as cron would run it `days` from now (the use case, with a later clock)."""
    from bridge.usecases.expiry import expire_credit

    return run_later(bridge, expire_credit, days)


@pytest.fixture
def console(bridge, merchant):  # noqa: F811
    return Console(bridge, merchant)


# -- refunds asked through the bridge


def test_refund_requests_on_a_card_order_with_the_wallet_bonus_repeat_and_cap(bridge, store, settings, customer, mug):
    settings(refund_wallet_bonus_bp=1000)
    order = card_order(store, customer, [(mug, 2)])  # 39.98 by card
    bridge.settle()
    oid = order["id"]

    first = ask_refund(bridge, oid, 1000, "wallet", key=f"rr-{oid}-a")
    again = ask_refund(bridge, oid, 1000, "wallet", key=f"rr-{oid}-a")  # a retry of the same request
    assert first["request_id"] == again["request_id"]
    ask_refund(bridge, oid, 2000, "wallet", key=f"rr-{oid}-a", expect=409)  # the key, other content
    ask_refund(bridge, oid, 2999, "wallet", expect=422)  # 29.98 is left
    bridge.settle()
    assert shop_refunds(store, oid) == [1000]
    assert bridge.balance(customer) == 1000 + 100  # the card's 10.00 and the 10 % bonus

    with ThreadPoolExecutor(4) as pool:  # four requests at once for 20.00 of the 29.98 left: one is made
        answers = list(
            pool.map(
                lambda i: status_of(
                    bridge, f"/orders/{oid}/refunds", {"amount": 2000, "destination": "wallet"}, f"p{oid}-{i}"
                ),
                range(4),
            )
        )
    assert sorted(answers) == [202, 422, 422, 422]
    ask_refund(bridge, oid, 998, "wallet")
    bridge.settle()
    assert shop_refunds(store, oid) == [998, 1000, 2000] and store.order(oid)["status"] == "refunded"
    wallet = bridge.wallet(customer)
    assert wallet["balance"] == 3998 + 399 and wallet["withdrawable"] == 0
    assert back_for(bridge, customer, oid) == 3998 + 399  # the shop's refunds plus the stated bonus, no more
    ask_refund(bridge, oid, 1, "wallet", expect=422)  # nothing left
    statement_adds_up(bridge, customer)


def test_refund_requests_on_a_partly_paid_order_give_the_wallet_part_back_once(bridge, store, settings, customer, mug):
    settings(refund_wallet_bonus_bp=1000)
    bridge.credit(customer, 500)
    order = store.new_order(customer, [(mug, 1)])  # 19.99: 5.00 from the wallet, 14.99 by card
    bridge.settle()
    oid = order["id"]
    assert cents(store.order(oid)["total"]) == 1499
    store.put(f"orders/{oid}", {"payment_method": CARD_METHOD, "payment_method_title": "Card", "set_paid": True})
    bridge.settle()
    assert bridge.balance(customer) == 0

    ask_refund(bridge, oid, 1500, "wallet", expect=422)  # the store can refund 14.99 at most
    ask_refund(bridge, oid, 500, "points")  # 5.00 of the card's money as points (no conversion rate: none)
    ask_refund(bridge, oid, 999, "wallet")
    bridge.settle()
    assert shop_refunds(store, oid) == [500, 999]
    ask_refund(bridge, oid, 1, "wallet", expect=422)
    assert store.order(oid)["status"] == "refunded"
    # the wallet part back whole (the shop refunded everything it could), the card's 9.99 with its 10 % bonus
    assert bridge.balance(customer) == 500 + 999 + 99
    assert back_for(bridge, customer, oid) == -500 + 500 + 999 + 99
    statement_adds_up(bridge, customer)


def test_a_merchants_refund_to_the_card_is_not_taken_for_the_customers_wallet_request(
    bridge, store, settings, customer, mug
):
    """The shop refunds merchant refunds to the card (`refund_destination: original`). The customer asks the bridge
    for 10.00 to the wallet; before the worker makes that refund, the merchant refunds 10.00 in wp-admin (to the card,
    by hand). The store then has 9.99 left and refuses the bridge's own 10.00. The shop refunded 10.00, to the card:
    the wallet must not get it (and its bonus) as well."""
    settings(refund_destination="original", refund_wallet_bonus_bp=1000)
    order = card_order(store, customer, [(mug, 1)])  # 19.99 by card
    bridge.settle()
    bridge.stop("worker")
    try:
        ask_refund(bridge, order["id"], 1000, "wallet")
        store.refund(order["id"], "10.00")  # the merchant, in wp-admin: to the card
    finally:
        bridge.start_worker()
    bridge.settle()

    assert shop_refunds(store, order["id"]) == [1000]  # the bridge's own refund was refused: 9.99 left
    # one refund by the shop, to the card: nothing of it is the wallet's
    assert bridge.balance(customer) == 0, "the merchant's card refund was credited to the wallet too (with bonus)"
    statement_adds_up(bridge, customer)


def test_a_refund_deleted_in_the_shop_leaves_its_amount_refundable_through_the_bridge(bridge, store, customer, mug):
    """The merchant refunds 10.00, then deletes that refund: the store has 19.99 to refund again, so a customer's
    request for 19.99 is one the store accepts."""
    order = card_order(store, customer, [(mug, 1)])
    bridge.settle()
    refund = store.refund(order["id"], "10.00")
    bridge.settle()
    assert bridge.balance(customer) == 1000
    delete_refund(store, order["id"], refund["id"])
    bridge.settle()
    assert bridge.balance(customer) == 0 and store.order(order["id"])["refunds"] == []

    ask_refund(bridge, order["id"], 1999, "wallet")  # the store can refund all of it
    bridge.settle()
    assert shop_refunds(store, order["id"]) == [1999]
    assert bridge.balance(customer) == 1999
    statement_adds_up(bridge, customer)


def test_return_windows_count_lifetime_spend_the_shop_kept(bridge, store, settings, customer, mug):
    """Standard customers may return nothing (0 days), Gold ones (lifetime spend 30.00) for 30 days. A customer who
    bought 39.98 and got 39.97 of it back has spent 0.01 there: one more 19.99 order is not Gold."""
    windows = [
        {"tier": "Standard", "min_lifetime_spend": 0, "days": 0},
        {"tier": "Gold", "min_lifetime_spend": 3000, "days": 30},
    ]
    settings(return_windows=windows)
    order = card_order(store, customer, [(mug, 1)])
    bridge.settle()
    ask_refund(bridge, order["id"], 100, "wallet", expect=422)  # Standard: past its 0-day window

    big = card_order(store, customer, [(mug, 2)])
    bridge.settle()
    store.refund(big["id"], "39.97")  # all but 0.01 back
    bridge.settle()
    assert store.order(big["id"])["status"] == "processing"
    # kept by the shop: 19.99 + 0.01 = 20.00 < 30.00, still Standard
    refused = ask_refund(bridge, order["id"], 100, "wallet", expect=422)
    assert "Standard" in str(refused)


def test_a_refund_request_on_a_topup_order_never_takes_the_deposit_for_nothing(bridge, store, customer):
    """A top-up order is a paid order of the customer's: asking the bridge to refund it "to the wallet" must not end
    with the deposit gone from the wallet while the card got nothing back (the bridge makes such refunds with
    `api_refund: false`: the store moves no money)."""
    made = topped_up(bridge, store, customer, 2000)
    answer = bridge.http.post(
        f"{bridge.url}/api/v1/orders/{made['order_id']}/refunds",
        json={"amount": 2000, "destination": "wallet", "reason": "Refund my top-up"},
        headers={"Authorization": f"Bearer {bridge.shop['api_key']}", "Idempotency-Key": secrets.token_hex(8)},
        timeout=60,
    )
    bridge.settle()
    refunds = store.order(made["order_id"])["refunds"]
    wallet = bridge.wallet(customer)
    # refused (422), or honoured as asked: either way the customer still has the 20.00 they deposited
    assert (wallet["balance"], wallet["withdrawable"]) == (2000, 2000), (answer.status_code, answer.text, refunds)
    statement_adds_up(bridge, customer)


# -- withdrawals


def test_parallel_withdrawals_pay_out_the_deposit_once(bridge, store, settings, customer):
    topped_up(bridge, store, customer, 2000)
    bridge.stop("worker")  # the store's offline gateway would refuse the payouts and restore them meanwhile
    try:
        with ThreadPoolExecutor(4) as pool:
            answers = list(
                pool.map(
                    lambda i: status_of(
                        bridge, f"/customers/{customer['id']}/withdrawals", {"amount": 1500}, f"w{customer['id']}-{i}"
                    ),
                    range(4),
                )
            )
        assert sorted(answers) == [201, 422, 422, 422]
        wallet = bridge.wallet(customer)
        assert (wallet["balance"], wallet["withdrawable"]) == (500, 500)
    finally:
        bridge.start_worker()
    bridge.settle()
    assert bridge.balance(customer) == 2000  # refused by the offline gateway: back once
    statement_adds_up(bridge, customer)


def test_withdrawals_after_a_partly_refunded_topup_and_with_promotional_money(bridge, store, settings, mug):
    settings(signup_bonus=700, topup_bonus_bp=1000, topup_bonus_threshold=0)
    customer = store.new_customer("wes")
    bridge.settle()
    made = topped_up(bridge, store, customer, 2000)  # 20.00 and a 2.00 bonus
    store.refund(made["order_id"], "5.00")  # the merchant refunds 5.00 of it to the card
    bridge.settle()
    wallet = bridge.wallet(customer)
    assert (wallet["balance"], wallet["withdrawable"]) == (700 + 1500 + 150, 1500)
    bridge.api("post", f"/customers/{customer['id']}/withdrawals", {"amount": 1501}, expect=422)
    bridge.stop("worker")
    try:
        bridge.api("post", f"/customers/{customer['id']}/withdrawals", {"amount": 1500}, expect=201)
        assert bridge.wallet(customer)["withdrawable"] == 0 and bridge.balance(customer) == 850
    finally:
        bridge.start_worker()
    bridge.settle()  # the offline gateway refuses: the 15.00 comes back, still withdrawable, the 5.00 stays taken
    wallet = bridge.wallet(customer)
    assert (wallet["balance"], wallet["withdrawable"]) == (700 + 1500 + 150, 1500)
    statement_adds_up(bridge, customer)


def test_a_declined_withdrawal_does_not_leave_a_topup_refunded_meanwhile_in_the_wallet(
    bridge, store, settings, customer, console
):
    """Manual approval: the customer asks to withdraw their 20.00 top-up (held). The merchant refunds the top-up to
    the card by hand in wp-admin, then declines the request on the console (so the bridge does not pay it again).
    The card got the 20.00 back: the wallet must not keep it too."""
    settings(withdrawal_approval="manual")
    made = topped_up(bridge, store, customer, 2000)
    asked = bridge.api("post", f"/customers/{customer['id']}/withdrawals", {"amount": 2000}, expect=201)
    assert asked["status"] == "pending" and bridge.wallet(customer)["available"] == 0
    store.refund(made["order_id"], "20.00")  # the card gets the deposit back
    bridge.settle()

    answer = console.post_form(
        console.shop(f"/withdrawals/{asked['request_id']}/decline"),
        {"reason": "Refunded to your card by hand"},
        token_from=console.shop("/withdrawals"),
    )
    assert answer.status_code == 302
    bridge.settle()

    wallet = bridge.wallet(customer)
    # deposited 20.00, all of it back on the card: nothing left to spend or withdraw
    assert (wallet["balance"], wallet["withdrawable"]) == (0, 0), wallet
    statement_adds_up(bridge, customer)


def test_an_approved_withdrawal_the_gateway_refuses_comes_back_once(bridge, store, settings, customer, console):
    settings(withdrawal_approval="manual")
    topped_up(bridge, store, customer, 2000)
    asked = bridge.api("post", f"/customers/{customer['id']}/withdrawals", {"amount": 1200}, expect=201)
    bridge.api("post", f"/customers/{customer['id']}/withdrawals", {"amount": 900}, expect=422)  # 8.00 not promised
    path = console.shop(f"/withdrawals/{asked['request_id']}/approve")
    for _ in range(2):  # a double click
        assert console.post_form(path, {}, token_from=console.shop("/withdrawals")).status_code == 302
    bridge.settle()
    assert bridge.balance(customer) == 2000
    kinds = [line["kind"] for line in bridge.statement(customer)]
    assert kinds.count("withdrawal") == 1 and kinds.count("withdrawal_reversal") == 1
    statement_adds_up(bridge, customer)


def test_a_topup_refund_deleted_in_the_shop_gives_the_deposit_back(bridge, store, customer):
    """The merchant refunds 5.00 of a 20.00 top-up (taken from the wallet), then deletes that refund: the shop's books
    say 20.00 deposited and nothing refunded, so the wallet holds (and may withdraw) 20.00 again."""
    made = topped_up(bridge, store, customer, 2000)
    refund = store.refund(made["order_id"], "5.00")
    bridge.settle()
    assert bridge.balance(customer) == 1500
    delete_refund(store, made["order_id"], refund["id"])
    bridge.settle()
    assert store.order(made["order_id"])["refunds"] == []

    wallet = bridge.wallet(customer)
    assert (wallet["balance"], wallet["withdrawable"]) == (2000, 2000), wallet
    statement_adds_up(bridge, customer)


# -- promotional expiry


def test_an_order_paid_with_promo_money_that_expired_since_gives_back_only_what_is_not_expired(
    bridge, store, settings, mug
):
    settings(signup_bonus=500, promotional_expiry_days=1, refund_wallet_bonus_bp=1000)
    customer = store.new_customer("eve")
    bridge.settle()
    bridge.credit(customer, 1499)  # cash
    order = store.new_order(customer, [(mug, 1)])  # 19.99: the bonus (expiring) first, then the cash
    bridge.settle()
    assert store.order(order["id"])["status"] == "processing" and bridge.balance(customer) == 0
    assert expire(bridge) == 0  # nothing left to expire

    store.refund(order["id"], "19.99")
    bridge.settle()
    assert bridge.balance(customer) == 1999  # the order's wallet payment back (no bonus: no card money)
    expire(bridge)
    expire(bridge)  # a second run moves nothing
    wallet = bridge.wallet(customer)
    assert wallet["balance"] == 1499 and wallet["withdrawable"] == 0
    assert back_for(bridge, customer, order["id"]) == 0
    statement_adds_up(bridge, customer)


def test_expiry_while_money_is_held_expires_the_rest_once_the_hold_ends(bridge, store, settings):
    settings(signup_bonus=500, promotional_expiry_days=1)
    customer = store.new_customer("ivy")
    bridge.settle()
    bridge.credit(customer, 1000)
    hold = bridge.api(
        "post", f"/customers/{customer['id']}/holds", {"amount": 1200, "reason": "reservation"}, expect=201
    )
    expire(bridge)  # 3.00 is free: of the 5.00 expired, 2.00 stays until the hold ends
    wallet = bridge.wallet(customer)
    assert (wallet["balance"], wallet["available"]) == (1200, 0)
    bridge.api("post", f"/holds/{hold['hold_id']}/void")
    expire(bridge)
    wallet = bridge.wallet(customer)
    assert wallet["balance"] == 1000 and wallet["available"] == 1000 and wallet["balance"] >= 0
    statement_adds_up(bridge, customer)
