"""bridge.db.insert_or_lock: an order's record is made on its first delivery and found, locked, on every later one
(one statement on PostgreSQL, whichever it is)."""

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from bridge.db import insert_or_lock, unit_of_work
from bridge.models import ShopOrder, utcnow
from tests.integration.test_ledger import _statements_during


def record(shop_id: int, total: int) -> dict:
    now = utcnow()
    return {
        "shop_id": shop_id,
        "external_id": "5001",
        "currency": "EUR",
        "status": "pending",
        "total": total,
        "wallet_paid": 0,
        "wallet_refunded": 0,
        "points_earned": 0,
        "points_clawed_back": 0,
        "created_at": now,
        "updated_at": now,
    }


def test_the_first_call_inserts_and_a_later_one_finds_the_row_unchanged(services, shop):
    with unit_of_work(services.sessions) as session:
        first, created_first = insert_or_lock(
            session, ShopOrder, record(shop.shop.id, 1000), ("shop_id", "external_id")
        )
    with unit_of_work(services.sessions) as session:
        again, created_again = insert_or_lock(
            session, ShopOrder, record(shop.shop.id, 2500), ("shop_id", "external_id")
        )
        assert (again.id, again.total) == (first.id, 1000)  # what is stored, not what the second call offered

    assert (created_first, created_again) == (True, False)


@pytest.mark.postgres_only
def test_an_existing_row_is_found_and_locked_in_one_statement(services, shop, postgres_url):
    with unit_of_work(services.sessions) as session:
        insert_or_lock(session, ShopOrder, record(shop.shop.id, 1000), ("shop_id", "external_id"))
    other = create_engine(postgres_url)
    try:
        with unit_of_work(services.sessions) as session:
            statements = _statements_during(
                services.engine,
                lambda: insert_or_lock(session, ShopOrder, record(shop.shop.id, 1000), ("shop_id", "external_id")),
            )
            with other.connect() as connection, pytest.raises(OperationalError, match="could not obtain lock"):
                connection.execute(text("SELECT id FROM shop_orders WHERE external_id = '5001' FOR UPDATE NOWAIT"))
    finally:
        other.dispose()

    assert statements == 1
