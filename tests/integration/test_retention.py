"""`wallet-bridge prune`: old applied deliveries and delivered messages go; anything still to handle stays, and a
delivery that comes again after its row was pruned still moves no money twice."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import func, select

from bridge.db import unit_of_work
from bridge.models import InboxDelivery, LedgerTransaction, OutboxMessage, Shop, utcnow
from bridge.outbox import enqueue
from bridge.usecases.retention import prune
from tests.inbox import record_delivery
from tests.integration.test_topups_withdrawals import paid_topup, wallet, woo  # noqa: F401 (fixture)
from tests.woo import post_delivery

OLD, RECENT = timedelta(days=120), timedelta(days=10)


def delivery(services, shop_id: int, status: str, age: timedelta) -> int:
    delivery_id = record_delivery(
        services.sessions,
        shop_id=shop_id,
        platform="woocommerce",
        topic="order.updated",
        resource_id="1",
        delivery_id=None,
        body=b'{"id":1}',
        status=status,
    )
    with unit_of_work(services.sessions) as session:
        session.get(InboxDelivery, delivery_id).received_at = utcnow() - age
    return delivery_id


def message(services, shop_id: int, status: str, age: timedelta) -> int:
    with unit_of_work(services.sessions) as session:
        enqueue(
            session,
            shop_id=shop_id,
            kind="order.note",
            payload={"order_id": "1", "note": "Paid."},
            dedupe_key=f"note:{status}:{age.days}",
        )
        row = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(1)).one()
        row.status, row.delivered_at = status, (utcnow() - age if status == "delivered" else None)
        return row.id


def remaining(services, model) -> set[int]:
    with unit_of_work(services.sessions) as session:
        return set(session.scalars(select(model.id)))


def test_prune_deletes_only_what_is_old_and_done(services, shop):
    shop_id = shop.shop.id
    gone = {delivery(services, shop_id, "applied", OLD), delivery(services, shop_id, "ignored", OLD)}
    kept = {
        delivery(services, shop_id, "applied", RECENT),
        delivery(services, shop_id, "failed", OLD),
        delivery(services, shop_id, "received", OLD),
    }
    sent_long_ago = message(services, shop_id, "delivered", OLD)
    kept_messages = {
        message(services, shop_id, "delivered", RECENT),
        message(services, shop_id, "dead", OLD),
        message(services, shop_id, "pending", OLD),
    }

    pruned = prune(services.sessions, timedelta(days=90))

    assert (pruned.deliveries, pruned.messages) == (len(gone), 1)
    assert remaining(services, InboxDelivery) == kept
    assert remaining(services, OutboxMessage) == kept_messages and sent_long_ago not in kept_messages


def test_a_delivery_coming_again_after_its_row_was_pruned_moves_no_money(client, services, woo):  # noqa: F811
    post_delivery(client, woo.shop.id, "order.updated", paid_topup())
    with unit_of_work(services.sessions) as session:
        for row in session.scalars(select(InboxDelivery)):
            row.received_at = utcnow() - OLD
    assert prune(services.sessions, timedelta(days=90)).deliveries == 1

    again = post_delivery(client, woo.shop.id, "order.updated", paid_topup())

    assert again.get_json()["status"] == "applied" and wallet(client, woo)["balance"] == 5_000
    with unit_of_work(services.sessions) as session:
        assert session.scalar(select(func.count()).select_from(LedgerTransaction)) == 1


def test_cli_prune_keeps_at_least_thirty_days_and_reports_counts(app, services, shop):
    delivery(services, shop.shop.id, "applied", OLD)
    runner = app.test_cli_runner()
    with app.app_context():
        too_short = runner.invoke(args=["prune", "--days", "7"])
        assert too_short.exit_code == 2 and "7 is not in the range x>=30" in too_short.output
        assert len(remaining(services, InboxDelivery)) == 1
        result = runner.invoke(args=["prune", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"deliveries_deleted": 1, "messages_deleted": 0, "bodies_emptied": 0}


def body_of(services, delivery_id: int) -> bytes:
    with unit_of_work(services.sessions) as session:
        return session.get(InboxDelivery, delivery_id).body


def test_bodies_applied_before_the_shops_retention_are_emptied_and_their_rows_kept(services, shop):
    with unit_of_work(services.sessions) as session:
        stored = session.get(Shop, shop.shop.id)
        stored.settings = {**stored.settings, "webhook_body_retention_days": 7}
    emptied = delivery(services, shop.shop.id, "applied", RECENT)  # 10 days old: beyond the shop's 7
    fresh = delivery(services, shop.shop.id, "applied", timedelta(days=2))
    to_retry = delivery(services, shop.shop.id, "failed", RECENT)  # the only copy to apply it from

    pruned = prune(services.sessions, timedelta(days=90))

    assert (pruned.deliveries, pruned.bodies_dropped) == (0, 1)
    assert (body_of(services, emptied), body_of(services, fresh), body_of(services, to_retry)) == (
        b"",
        b'{"id":1}',
        b'{"id":1}',
    )
    assert prune(services.sessions, timedelta(days=90)).bodies_dropped == 0  # once
