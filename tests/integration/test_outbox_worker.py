"""The outbox worker's own recovery: what a round broken off by the database leaves is due again at once,
and a message whose earlier attempt may have reached the shop says so to its pusher."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from bridge.db import unit_of_work
from bridge.models import OutboxMessage, utcnow
from bridge.outbox import enqueue
from bridge.usecases import pushes
from sync import worker

FAST = pushes.RetryPolicy(max_attempts=3, base_delay_seconds=0)


def queued(services) -> list[tuple[str, bool]]:
    """(status, due now) per message, by id."""
    with unit_of_work(services.sessions) as session:
        messages = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
        return [(m.status, m.next_attempt_at <= utcnow()) for m in messages]


def test_a_round_the_database_broke_off_leaves_its_claimed_messages_due_now(services, shop, monkeypatch):
    with unit_of_work(services.sessions) as session:
        for order in ("1", "2", "3"):
            enqueue(
                session,
                shop_id=shop.shop.id,
                kind="order.note",
                payload={"order_id": order, "note": "Paid."},
                dedupe_key=f"note:{order}",
            )
    pushed = []
    pushers = {"woocommerce": lambda sessions, shop, message: pushed.append(message.payload["order_id"])}
    record = worker.record

    def record_broken_once(*args, **kwargs):
        monkeypatch.setattr(worker, "record", record)
        raise OperationalError("UPDATE outbox_messages", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(worker, "record", record_broken_once)
    with pytest.raises(OperationalError):
        worker.run_once(services.sessions, pushers, FAST)

    assert queued(services) == [("pending", True)] * 3  # not leased for two minutes
    unknown = []
    pushers = {"woocommerce": lambda sessions, shop, message: unknown.append(pushes.outcome_unknown(message))}
    assert worker.run_once(services.sessions, pushers, FAST) == 3
    assert [status for status, _ in queued(services)] == ["delivered"] * 3
    assert pushed == ["1"] and unknown == [True, False, False]  # the first's push may have landed; no other was tried


def note_and_watch(services, shop) -> tuple[list[bool], dict]:
    """One order note queued; pushers recording, per attempt, whether the worker says its outcome is unknown."""
    with unit_of_work(services.sessions) as session:
        enqueue(
            session,
            shop_id=shop.shop.id,
            kind="order.note",
            payload={"order_id": "1", "note": "Paid."},
            dedupe_key="note:1",
        )
    seen: list[bool] = []
    return seen, {"woocommerce": lambda sessions, shop, message: seen.append(pushes.outcome_unknown(message))}


def test_a_message_whose_lease_ran_out_is_taken_again_as_one_that_may_have_reached_the_shop(services, shop):
    seen, pushers = note_and_watch(services, shop)
    [claimed] = pushes.claim(services.sessions)  # the worker that claimed it is killed mid-call
    message_id = claimed.message.id
    with unit_of_work(services.sessions) as session:
        session.get(OutboxMessage, message_id).next_attempt_at = utcnow()  # its lease runs out
    assert worker.run_once(services.sessions, pushers, FAST) == 1
    with unit_of_work(services.sessions) as session:
        delivered = session.get(OutboxMessage, message_id)
        assert (delivered.status, delivered.last_error) == ("delivered", None)
    assert seen == [True]


def test_a_first_attempt_is_not_taken_for_a_repeat(services, shop):
    seen, pushers = note_and_watch(services, shop)
    assert worker.run_once(services.sessions, pushers, FAST) == 1
    assert seen == [False]


def test_a_round_held_up_by_a_slow_shop_hands_back_what_it_has_not_tried_before_its_lease_ends(services, shop):
    with unit_of_work(services.sessions) as session:
        for order in ("1", "2", "3"):
            enqueue(
                session,
                shop_id=shop.shop.id,
                kind="order.note",
                payload={"order_id": order, "note": "Paid."},
                dedupe_key=f"note:{order}",
            )
    now = [0.0]
    pushed = []

    def slow_shop(sessions, shop, message):
        now[0] += pushes.LEASE.total_seconds() / 2  # each push takes half the lease
        pushed.append(message.payload["order_id"])

    tried = worker.run_once(services.sessions, {"woocommerce": slow_shop}, FAST, clock=lambda: now[0])
    assert (tried, pushed) == (1, ["1"])
    assert queued(services) == [("delivered", False), ("pending", True), ("pending", True)]  # not leased to anyone
