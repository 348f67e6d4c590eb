"""Read models for the console's pages: customer lists, statements, webhook health, failures."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from bridge import audit
from bridge.db import lowered
from bridge.models import (
    Account,
    CreditLot,
    Customer,
    Entry,
    InboxDelivery,
    LedgerTransaction,
    OutboxMessage,
    Shop,
    utcnow,
)
from bridge.reports import shop_timezone, start_of
from bridge.states import InboxStatus, OutboxStatus
from bridge.surfaces.platforms import PLATFORMS

SORTS = {"email", "name", "customer", "balance", "points", "last_movement"}
PAGE_SIZE = 25
STATEMENT_PAGE = 50


@dataclass(frozen=True)
class CustomerRow:
    customer: Customer
    balance: int
    held: int
    locked: bool
    points: int
    last_movement_at: datetime | None


@dataclass(frozen=True)
class CustomerPage:
    rows: list[CustomerRow]
    total: int
    page: int  # as asked for: past the last page, `rows` is empty and `past_end` says why
    pages: int

    @property
    def past_end(self) -> bool:
        return self.page > self.pages


@dataclass(frozen=True)
class CustomerFilters:
    q: str = ""  # in the e-mail or the name, whatever the case; or the shop's customer id exactly
    locked: bool = False
    with_balance: bool = False
    expiring_within: int | None = None  # days: promotional credit that expires by then


def _greatest(session: Session, a, b):
    if session.get_bind().dialect.name == "postgresql":
        return func.greatest(a, b)  # ignores NULLs
    # SQLite's two-argument max is scalar, and NULL if either is: 0 stands for none, and none stays NULL (sorted last)
    return func.nullif(func.max(func.coalesce(a, 0), func.coalesce(b, 0)), 0)


def _conditions(session: Session, shop: Shop, wallet, filters: CustomerFilters, now: datetime) -> list:
    conditions = [Customer.shop_id == shop.id]
    q = filters.q.strip()
    if q:
        needle = q.lower()
        conditions.append(
            or_(
                lowered(session, Customer.email).contains(needle, autoescape=True),
                lowered(session, Customer.name).contains(needle, autoescape=True),
                Customer.external_id == q,
            )
        )
    if filters.locked:
        conditions.append(wallet.locked.is_(True))
    if filters.with_balance:
        conditions.append(wallet.balance != 0)
    if filters.expiring_within is not None:
        conditions.append(
            select(CreditLot.id)
            .where(
                CreditLot.account_id == wallet.id,
                CreditLot.remaining > 0,
                CreditLot.expires_at >= now,
                CreditLot.expires_at < now + timedelta(days=filters.expiring_within),
            )
            .exists()
        )
    return conditions


def customer_page(
    session: Session,
    shop: Shop,
    filters: CustomerFilters = CustomerFilters(),
    *,
    sort: str = "last_movement",
    descending: bool = True,
    page: int = 1,
    per_page: int = PAGE_SIZE,
    now: datetime | None = None,
) -> CustomerPage:
    """The shop's customers with balance, points and last movement; searched by e-mail, name or the shop's
    customer id, filtered, sorted and paged. The last movement is the newest entry of the customer's two
    accounts, each found by a backward scan of the (account_id, id) index."""
    wallet, points = aliased(Account), aliased(Account)
    with_wallet = and_(wallet.customer_id == Customer.id, wallet.kind == "wallet", wallet.currency == shop.currency)
    conditions = _conditions(session, shop, wallet, filters, now or utcnow())
    newest_wallet = select(func.max(Entry.id)).where(Entry.account_id == wallet.id).scalar_subquery()
    newest_points = select(func.max(Entry.id)).where(Entry.account_id == points.id).scalar_subquery()
    newest = _greatest(session, newest_wallet, newest_points).label("newest_entry")
    query = (
        select(
            Customer,
            func.coalesce(wallet.balance, 0),
            func.coalesce(wallet.held, 0),
            func.coalesce(wallet.locked, False),
            func.coalesce(points.balance, 0),
            newest,
        )
        .outerjoin(wallet, with_wallet)
        .outerjoin(points, and_(points.customer_id == Customer.id, points.kind == "points"))
        .where(*conditions)
    )
    counted = select(func.count()).select_from(Customer).outerjoin(wallet, with_wallet).where(*conditions)
    order = {
        "email": Customer.email,
        "name": Customer.name,
        "customer": Customer.external_id,
        "balance": func.coalesce(wallet.balance, 0),
        "points": func.coalesce(points.balance, 0),
        "last_movement": newest,
    }[sort if sort in SORTS else "last_movement"]
    order = order.desc().nulls_last() if descending else order.asc().nulls_last()
    total = int(session.scalar(counted))
    pages = max(1, -(-total // per_page))
    page = max(page, 1)
    if page > pages:
        return CustomerPage([], total, page, pages)
    rows = session.execute(
        query.order_by(order, Customer.id.desc()).limit(per_page).offset((page - 1) * per_page)
    ).all()
    newest_ids = [row[5] for row in rows if row[5]]
    when = (
        dict(session.execute(select(Entry.id, Entry.created_at).where(Entry.id.in_(newest_ids))).all())
        if newest_ids
        else {}
    )
    return CustomerPage(
        [
            CustomerRow(c, int(balance), int(held), bool(locked), int(pts), when.get(entry_id))
            for c, balance, held, locked, pts, entry_id in rows
        ],
        total,
        page,
        pages,
    )


@dataclass(frozen=True)
class StatementLine:
    entry_id: int
    created_at: datetime
    kind: str
    reason: str
    amount: int
    currency: str
    balance_after: int | None
    order_ref: str | None
    refund_ref: str | None
    actor_kind: str
    actor_id: str | None
    transaction_id: int


def statement_page(
    session: Session,
    shop: Shop,
    customer: Customer,
    *,
    kind: str | None = None,
    start: date | None = None,
    end: date | None = None,
    before: int | None = None,
    limit: int = STATEMENT_PAGE,
) -> tuple[list[StatementLine], int | None]:
    """The customer's wallet and points movements, newest first, filtered by kind and period (days of the shop's
    time zone, end inclusive); paged by entry id. Returns the lines and the id to pass as `before` for older ones."""
    accounts = select(Account.id).where(Account.shop_id == shop.id, Account.customer_id == customer.id)
    query = (
        select(Entry, LedgerTransaction)
        .join(LedgerTransaction, LedgerTransaction.id == Entry.transaction_id)
        .where(Entry.account_id.in_(accounts))
    )
    if kind:
        query = query.where(LedgerTransaction.kind == kind)
    tz = shop_timezone(shop.settings)
    if start:
        query = query.where(Entry.created_at >= start_of(start, tz))
    if end:
        query = query.where(Entry.created_at < start_of(end + timedelta(days=1), tz))
    if before:
        query = query.where(Entry.id < before)
    rows = session.execute(query.order_by(Entry.id.desc()).limit(limit + 1)).all()
    lines = [
        StatementLine(
            e.id,
            e.created_at,
            tx.kind,
            tx.reason,
            e.amount,
            e.currency,
            e.balance_after,
            tx.order_ref,
            tx.refund_ref,
            tx.actor_kind,
            tx.actor_id,
            tx.id,
        )
        for e, tx in rows[:limit]
    ]
    return lines, (lines[-1].entry_id if len(rows) > limit else None)


# Webhooks and failures ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TopicHealth:
    topic: str
    last_received_at: datetime | None
    last_status: str | None
    state: str | None  # as the shop reported it at the last check: active | paused | disabled | missing


def webhook_health(session: Session, shop_id: int) -> tuple[list[TopicHealth], audit.AuditEvent | None]:
    """Per topic: the newest delivery stored in the inbox, and the webhook's state at the last check
    (test connection or install), read from the audit trail."""
    check = audit.latest(session, shop_id, "connection.check")
    states = {}
    if check is not None and check.new_value:
        try:
            states = json.loads(check.new_value).get("webhooks", {})
        except (ValueError, AttributeError):
            states = {}
    health = []
    for topic in PLATFORMS[session.get(Shop, shop_id).platform].inbound.topics:
        newest = session.execute(
            select(InboxDelivery.received_at, InboxDelivery.status)
            .where(InboxDelivery.shop_id == shop_id, InboxDelivery.topic == topic)
            .order_by(InboxDelivery.received_at.desc())
            .limit(1)
        ).first()
        health.append(
            TopicHealth(topic, newest[0] if newest else None, newest[1] if newest else None, states.get(topic))
        )
    return health, check


def inbox_failures(session: Session, shop_id: int, limit: int = 100) -> list[InboxDelivery]:
    return list(
        session.execute(
            select(InboxDelivery)
            .where(InboxDelivery.shop_id == shop_id, InboxDelivery.status == InboxStatus.FAILED)
            .order_by(InboxDelivery.id.desc())
            .limit(limit)
        ).scalars()
    )


def dead_letters(session: Session, shop_id: int, limit: int = 100) -> list[OutboxMessage]:
    return list(
        session.execute(
            select(OutboxMessage)
            .where(OutboxMessage.status == OutboxStatus.DEAD, OutboxMessage.shop_id == shop_id)
            .order_by(OutboxMessage.id.desc())
            .limit(limit)
        ).scalars()
    )


def failure_counts(session: Session, shop_id: int) -> dict[str, int]:
    inbox = session.scalar(
        select(func.count())
        .select_from(InboxDelivery)
        .where(InboxDelivery.shop_id == shop_id, InboxDelivery.status == InboxStatus.FAILED)
    )
    outbox = dict(
        session.execute(
            select(OutboxMessage.status, func.count())
            .where(
                OutboxMessage.shop_id == shop_id,
                OutboxMessage.status.in_([OutboxStatus.DEAD, OutboxStatus.PENDING, OutboxStatus.SENDING]),
            )
            .group_by(OutboxMessage.status)
        ).all()
    )
    waiting = outbox.get(OutboxStatus.PENDING, 0) + outbox.get(OutboxStatus.SENDING, 0)
    return {
        "inbox_failed": int(inbox or 0),
        "outbox_dead": int(outbox.get(OutboxStatus.DEAD, 0)),
        "outbox_waiting": int(waiting),
    }


def customer_count(session: Session, shop_id: int) -> int:
    return int(session.scalar(select(func.count()).select_from(Customer).where(Customer.shop_id == shop_id)))
