"""Audit of the delivery claim (one UPDATE … RETURNING marks a delivery applied in the transaction that applies it)
and of bridge.db.insert_or_lock (an order's record inserted or found and locked in one statement on PostgreSQL):
races between workers, a merchant's retry and the recovery, refusals, and a concurrent first insert of an order."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import OperationalError

from bridge import order_rules
from bridge.accounts import ensure_customer, find_customer
from bridge.db import insert_or_lock, unit_of_work
from bridge.errors import InvalidState, ValidationFailed
from bridge.ledger import verify
from bridge.models import InboxDelivery, LedgerTransaction, ShopOrder, utcnow
from bridge.surfaces.platforms import TOPICS
from bridge.usecases.deliveries import (
    Topic,
    apply_delivery,
    apply_order_again,
    apply_received,
    reapply,
)
from tests.inbox import record_delivery
from tests.integration.test_inbox_recovery import new_customer
from tests.integration.test_insert_or_lock import record
from tests.integration.test_woocommerce_webhooks import count, fund
from tests.woo import connect_for_tests, order_body, wp_json

ORDER = TOPICS["woocommerce"]["order.created"]


@pytest.fixture
def woo(services, shop):
    connect_for_tests(services, shop.shop.id)
    return shop.shop.id


def store(services, shop_id: int, topic: str, data: dict, status: str = "received") -> int:
    return record_delivery(
        services.sessions,
        shop_id=shop_id,
        platform="woocommerce",
        topic=topic,
        resource_id=str(data["id"]),
        delivery_id=None,
        body=wp_json(data),
        status=status,
    )


def delivery(services, delivery_id: int) -> InboxDelivery:
    with unit_of_work(services.sessions) as session:
        return session.get(InboxDelivery, delivery_id)


def payments(services) -> int:
    return count(services, LedgerTransaction, LedgerTransaction.kind == "payment")


def wait_for_a_lock_waiter(url: str, timeout: float = 10.0) -> None:
    """Until another connection of this database waits on a lock (a claim queued behind a held row)."""
    engine = create_engine(url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                waiting = connection.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND wait_event_type = 'Lock'"
                    )
                )
            if waiting:
                return
            time.sleep(0.02)
        raise AssertionError("nobody queued behind the claimed delivery")
    finally:
        engine.dispose()


def run(target, *args) -> threading.Thread:
    thread = threading.Thread(target=target, args=args)
    thread.start()
    return thread


# --- what the audit found (each failed before its fix) -----------------------------------------------------------


@pytest.mark.postgres_only
def test_a_refusal_recorded_after_another_process_applied_the_delivery_leaves_it_applied(services, woo, postgres_url):
    """Worker A claims the delivery, the merchant's retry B queues behind A's row lock; A's apply raises (a
    transient bug: IntegrityError, say) and rolls its claim back; B claims and applies the delivery and commits;
    A's `_mark_failed`, in a transaction of its own, then overwrote B's `applied` with `failed`."""
    delivery_id = store(services, woo, "customer.created", new_customer(51))
    a_applying, applied, outcomes = threading.Event(), [], {}

    def refusing(session, shop, snapshot, actor):
        a_applying.set()
        wait_for_a_lock_waiter(postgres_url)  # B's claim waits for this transaction
        raise RuntimeError("transient")

    def applying(session, shop, snapshot, actor):
        applied.append(actor)
        time.sleep(0.5)  # A's _mark_failed, begun meanwhile, waits for this transaction

    a = run(lambda: outcomes.__setitem__("A", apply_delivery(services.sessions, delivery_id, refusing, None)))
    assert a_applying.wait(10)
    b = run(lambda: outcomes.__setitem__("B", apply_delivery(services.sessions, delivery_id, applying, None)))
    a.join(30)
    b.join(30)
    after_race = delivery(services, delivery_id)
    # what follows for the merchant: the delivery is listed as failed, and "Retry" applies it a second time
    apply_delivery(services.sessions, delivery_id, applying, None)

    assert outcomes == {"A": "failed", "B": "applied"}
    assert (after_race.status, after_race.error) == ("applied", None)  # was: ("failed", "internal error: …")
    assert len(applied) == 1  # was: 2


def test_a_failed_delivery_whose_retry_meets_a_database_that_stays_away_reports_what_it_is(services, woo):
    """A merchant's retry of a `failed` delivery (the claim takes failed ones too) while the database keeps
    dropping the connection: the claim rolls back, the delivery stays `failed`, yet the retry reported
    `received` — a state it is not in, and one the worker's recovery would pick up (it never will)."""
    delivery_id = store(services, woo, "customer.created", new_customer(52), status="failed")

    def down(session, shop, snapshot, actor):
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))

    returned = apply_delivery(services.sessions, delivery_id, down, None)

    assert returned == delivery(services, delivery_id).status  # was: "received" returned, "failed" stored


def test_a_delivery_whose_apply_keeps_losing_the_database_does_not_starve_the_ones_behind_it(services, woo):
    """The worker claims the oldest `received` delivery; one whose apply raises OperationalError twice (a statement
    timeout or a deadlock its payload causes every time, say) is rolled back to `received` and is the oldest
    again: the round spent its whole budget on it and the delivery behind it was never applied."""
    stuck = store(services, woo, "customer.created", new_customer(55))
    behind = store(services, woo, "customer.created", new_customer(56))
    tries = []

    def apply(session, shop, snapshot, actor):
        tries.append(snapshot["id"])
        if snapshot["id"] == 55:
            raise OperationalError("UPDATE …", {}, Exception("canceling statement due to statement timeout"))
        ensure_customer(session, shop.id, str(snapshot["id"]))

    platforms = {"woocommerce": {"customer.created": Topic(lambda data: data, apply)}}
    apply_received(services.sessions, platforms, limit=5)

    assert delivery(services, stuck).status == "received"  # left for the recovery, as documented
    assert delivery(services, behind).status == "applied"  # was: "received", with tries == [55] * 10


# --- behaviour pinned ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("refusal", "error"),
    [
        (InvalidState("no such thing", code="nope"), "nope: no such thing"),
        (ValidationFailed("bad", fields={"id": "bad"}), "invalid payload: {'id': 'bad'}"),
        (RuntimeError("bug"), "internal error: RuntimeError"),
    ],
)
def test_a_delivery_the_worker_cannot_apply_is_failed_with_nothing_it_moved_and_no_applied_at(
    services, woo, refusal, error
):
    delivery_id = store(services, woo, "customer.created", new_customer(53))

    def writes_then_refuses(session, shop, snapshot, actor):
        ensure_customer(session, shop.id, "53")
        raise refusal

    platforms = {"woocommerce": {"customer.created": Topic(lambda data: data, writes_then_refuses)}}
    assert apply_received(services.sessions, platforms) == 1
    assert apply_received(services.sessions, platforms) == 0  # failed: not claimed again by the worker

    stored = delivery(services, delivery_id)
    assert (stored.status, stored.error, stored.applied_at) == ("failed", error, None)
    with unit_of_work(services.sessions) as session:
        assert find_customer(session, woo, "53") is None  # the claim and what the apply wrote rolled back together


def test_an_ignored_delivery_is_never_claimed_by_a_retry(services, woo):
    delivery_id = store(services, woo, "customer.created", new_customer(54), status="ignored")
    ran = []
    platforms = {"woocommerce": {"customer.created": Topic(lambda data: data, lambda *args: ran.append(args))}}

    outcome = reapply(services.sessions, platforms, delivery_id)

    stored = delivery(services, delivery_id)
    assert (outcome.status, ran, stored.status, stored.applied_at) == ("ignored", [], "ignored", None)


@pytest.mark.postgres_only
def test_two_workers_and_a_merchant_retry_racing_on_one_delivery_apply_it_once(services, woo):
    fund(services, woo, 10_000)
    delivery_id = store(services, woo, "order.created", order_body(id=6001))
    applies, start, outcomes = [], threading.Barrier(3), []

    def slow_apply(session, shop, snapshot, actor):
        applies.append(actor)
        time.sleep(0.2)  # the others arrive while the delivery is claimed
        ORDER.apply(session, shop, snapshot, actor)

    platforms = {"woocommerce": {"order.created": Topic(ORDER.parse, slow_apply)}}

    def worker():
        start.wait(10)
        outcomes.append(apply_received(services.sessions, platforms))

    def merchant():
        start.wait(10)
        outcomes.append(reapply(services.sessions, platforms, delivery_id).status)

    threads = [run(worker), run(worker), run(merchant)]
    for thread in threads:
        thread.join(30)

    assert len(applies) == 1 and payments(services) == 1
    tried, retried = [o for o in outcomes if isinstance(o, int)], [o for o in outcomes if not isinstance(o, int)]
    assert sum(tried) <= 1 and retried == ["applied"]  # whoever lost the race reports the other's apply
    assert delivery(services, delivery_id).status == "applied"
    with unit_of_work(services.sessions) as session:
        assert verify(session) == []


@pytest.mark.postgres_only
def test_an_order_record_whose_concurrent_first_insert_rolls_back_is_created_by_the_waiting_call(services, woo):
    """insert_or_lock's `created` (xmax = 0) when the other inserter of the key rolls back while this call waits on
    it: this call inserts the row, and says so (apply_order's `new_record` depends on it)."""
    inserted, results = threading.Event(), []

    def first():
        session = services.sessions()
        try:
            insert_or_lock(session, ShopOrder, record(woo, 1000), ("shop_id", "external_id"))
            inserted.set()
            time.sleep(0.5)  # the second call waits on this uncommitted row
            session.rollback()
        finally:
            session.close()

    def second():
        with unit_of_work(services.sessions) as session:
            found, created = insert_or_lock(session, ShopOrder, record(woo, 2500), ("shop_id", "external_id"))
            results.append((found.total, created))

    a = run(first)
    assert inserted.wait(10)
    b = run(second)
    a.join(30)
    b.join(30)

    assert results == [(2500, True)]


@pytest.mark.postgres_only
def test_two_workers_inserting_the_same_new_order_at_once_pay_it_once(services, woo, monkeypatch):
    """Both workers reach lock_order_record together (a barrier): one inserts the record (created), the other waits
    for it, then finds it (not created) and sees it paid."""
    fund(services, woo, 10_000)  # the customer exists: both go straight to the order's record
    first = store(services, woo, "order.created", order_body(id=6002))
    second = store(services, woo, "order.updated", order_body(id=6002))
    both_there, created = threading.Barrier(2), []
    real = order_rules.lock_order_record

    def together(session, *args):
        both_there.wait(10)
        locked = real(session, *args)
        created.append(locked.created)
        return locked

    monkeypatch.setattr(order_rules, "lock_order_record", together)
    workers = [run(apply_received, services.sessions, TOPICS, 1) for _ in range(2)]
    for thread in workers:
        thread.join(30)

    assert sorted(created) == [False, True]
    assert payments(services) == 1
    assert (delivery(services, first).status, delivery(services, second).status) == ("applied", "applied")
    with unit_of_work(services.sessions) as session:
        assert verify(session) == []
        assert session.scalar(select(InboxDelivery.applied_at).where(InboxDelivery.id == first)) <= utcnow()


def test_an_order_applied_again_is_its_newest_delivery_waiting_again_and_nothing_else(services, woo):
    """A mark-paid push that found the order raised meanwhile sets the order's newest applied delivery to be applied
    again (`apply_order_again`); older ones, and a customer's with the same id, stay as they are."""
    older = store(services, woo, "order.created", order_body(id=60))
    newer = store(services, woo, "order.updated", order_body(id=60))
    same_id_customer = store(services, woo, "customer.updated", new_customer(60))
    for delivery_id in (older, newer, same_id_customer):
        apply_delivery(services.sessions, delivery_id, lambda *_args: None, None)

    with unit_of_work(services.sessions) as session:
        apply_order_again(session, woo, "60")

    assert [delivery(services, d).status for d in (older, newer, same_id_customer)] == [
        "applied",
        "received",
        "applied",
    ]
    fresh = store(services, woo, "order.created", order_body(id=61))  # not applied yet: its request applies it
    tried = []
    platforms = {"woocommerce": {"order.updated": Topic(lambda data: data, lambda *args: tried.append(args[2]))}}
    assert apply_received(services.sessions, platforms, again_only=True) == 1
    assert [order["id"] for order in tried] == [60]
    assert delivery(services, fresh).status == "received"
