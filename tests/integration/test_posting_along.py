"""What follows a posting (`bridge.ledger.Along`): the message a payment sends and what the order it pays records,
written with the posting's own transaction id — in the posting's round trip on PostgreSQL, after it on SQLite — and
only for a posting that happened."""

import pytest
from sqlalchemy import select

from bridge.db import ChangesOfPosting
from bridge.errors import InsufficientFunds
from bridge.ledger import Leg, post_transaction
from bridge.models import OutboxMessage, ShopOrder, utcnow
from bridge.outbox import MessageOfPosting
from tests.integration.test_ledger import _credit, _wallet_and_pool


@pytest.fixture
def funded(session, shop):
    shop_id = shop.shop.id
    wallet, pool = _wallet_and_pool(session, shop_id)
    _credit(session, shop_id, wallet, pool, 1_000, "fund")
    now = utcnow()
    record = ShopOrder(shop_id=shop_id, external_id="o1", currency="EUR", status="pending", total=300)
    record.created_at = record.updated_at = now
    session.add(record)
    session.flush()
    return shop_id, wallet, pool, record


def _pay(session, shop_id, wallet, pool, amount, record, message_key="mark-paid"):
    return post_transaction(
        session,
        shop_id=shop_id,
        kind="payment",
        reason="Payment for order #o1",
        legs=[Leg(wallet, -amount), Leg(pool, amount)],
        idempotency_key="order:o1:payment",
        order_ref="o1",
        along=[
            ChangesOfPosting(record, {"wallet_paid": amount, "payment_outcome": "paid"}),
            MessageOfPosting(shop_id, "order.mark_paid", {"order_id": "o1", "note": "Paid"}, message_key),
        ],
    )


def _message(session, key):
    return session.scalars(select(OutboxMessage).where(OutboxMessage.dedupe_key == key)).one_or_none()


def _stored(session, record) -> tuple:
    session.expire(record)
    return record.wallet_paid, record.payment_outcome


def test_a_payment_writes_its_message_and_its_order_with_its_transaction(session, funded):
    shop_id, wallet, pool, record = funded
    stamped = record.updated_at

    posted = _pay(session, shop_id, wallet, pool, 300, record)

    # PostgreSQL wrote the record in the posting's statement (SQLite sets it, to be flushed as any change)
    assert session.is_modified(record) == (session.get_bind().dialect.name == "sqlite")
    message = _message(session, "mark-paid")
    assert message.payload == {"order_id": "o1", "note": "Paid", "transaction_id": posted.transaction.id}
    assert (message.kind, message.status, message.attempts) == ("order.mark_paid", "pending", 0)
    assert _stored(session, record) == (300, "paid")
    assert record.updated_at > stamped  # stamped as a flush stamps it
    assert wallet.balance == 700


def test_a_replayed_payment_writes_what_follows_with_the_first_transaction(session, funded):
    shop_id, wallet, pool, record = funded
    first = _pay(session, shop_id, wallet, pool, 300, record)

    again = _pay(session, shop_id, wallet, pool, 300, record, message_key="mark-paid-again")

    assert again.replayed and again.transaction.id == first.transaction.id
    assert _message(session, "mark-paid-again").payload["transaction_id"] == first.transaction.id
    assert _stored(session, record) == (300, "paid")
    assert wallet.balance == 700  # moved once


def test_a_refused_payment_writes_nothing_along(session, funded):
    shop_id, wallet, pool, record = funded

    with pytest.raises(InsufficientFunds):
        _pay(session, shop_id, wallet, pool, 1_001, record)

    # before the unit of work rolls back: the statement itself wrote nothing of what follows
    assert _message(session, "mark-paid") is None
    assert _stored(session, record) == (0, None)
