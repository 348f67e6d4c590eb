"""An order's record (`ShopOrder`), read and row-locked for the decision an order delivery makes, with the
customer it names: on PostgreSQL in one statement, the first of the few that apply a wallet-paid order."""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import bindparam, literal_column, select, true
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session, aliased

from bridge.accounts import ensure_customer, with_contact
from bridge.db import insert_or_lock
from bridge.models import Customer, ShopOrder, utcnow
from bridge.orders import OrderSnapshot


class LockedOrder(NamedTuple):
    record: ShopOrder
    created: bool  # this call inserted the record
    customer: Customer | None  # the customer the delivery names, created on first sight


def lock_order_record(session: Session, shop_id: int, order: OrderSnapshot) -> LockedOrder:
    """The order's record, inserted as first seen or the existing one locked for this transaction, and the customer
    the delivery names (on PostgreSQL found in the same statement when known)."""
    values = _new_record(shop_id, order)
    if session.get_bind().dialect.name != "postgresql" or not order.customer_external_id:
        customer = _named_customer(session, shop_id, order)
        values["customer_id"] = customer.id if customer else None
        record, created = insert_or_lock(session, ShopOrder, values, ("shop_id", "external_id"))
        return LockedOrder(record, created, customer)
    found = session.execute(
        _LOCK_WITH_CUSTOMER,
        {**values, "customer_external_id": order.customer_external_id},
        execution_options={"populate_existing": True},
    ).one()
    record, customer = found[0], found[2]
    if customer is None:  # first seen: created now (the record's customer is set by the rules' `_payer`)
        customer = _named_customer(session, shop_id, order)
    return LockedOrder(record, found.created, with_contact(customer, order.email, order.customer_name))


def _named_customer(session: Session, shop_id: int, order: OrderSnapshot) -> Customer | None:
    if not order.customer_external_id:
        return None
    return ensure_customer(session, shop_id, order.customer_external_id, email=order.email, name=order.customer_name)


def _new_record(shop_id: int, order: OrderSnapshot) -> dict:
    """A new order's record, as first seen. Its newest state is this one from the start (what the rules would set
    at the end), so that applying its first delivery leaves nothing of the record to write but what it decides."""
    now = utcnow()
    fresh = (shop_id, order.external_id, order.currency, order.status, order.total, 0, 0, 0, 0, order.modified_at)
    return dict(zip(_NEW_RECORD_COLUMNS, (*fresh, now, now), strict=True))


_NEW_RECORD_COLUMNS = (
    "shop_id", "external_id", "currency", "status", "total", "wallet_paid", "wallet_refunded", "points_earned",
    "points_clawed_back", "last_modified_at", "created_at", "updated_at",
)  # fmt: skip


def _lock_with_customer():
    """INSERT … ON CONFLICT DO UPDATE (a no-op that locks an existing row; xmax is 0 only on a row just inserted)
    of the record, its customer id taken from the customer found by the shop's id in the same statement."""
    found = (
        select(Customer)
        .where(Customer.shop_id == bindparam("shop_id"), Customer.external_id == bindparam("customer_external_id"))
        .cte("found")
    )
    upsert = postgresql.insert(ShopOrder).values(
        {name: bindparam(name) for name in _NEW_RECORD_COLUMNS} | {"customer_id": select(found.c.id).scalar_subquery()}
    )
    upsert = upsert.on_conflict_do_update(
        index_elements=["shop_id", "external_id"], set_={"shop_id": upsert.excluded.shop_id}
    )
    upserted = upsert.returning(*ShopOrder.__table__.c, literal_column("xmax = 0").label("created")).cte("upserted")
    return (
        select(
            aliased(ShopOrder, upserted),
            upserted.c.created,
            aliased(Customer, found),
        )
        .outerjoin(found, true())
        .add_cte(found)
    )


_LOCK_WITH_CUSTOMER = _lock_with_customer()
