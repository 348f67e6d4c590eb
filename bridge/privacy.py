"""A customer's personal data on request: everything the bridge holds about them (an access request), and its
erasure. Erasing removes their name and e-mail address and scrubs the webhook bodies stored about them and their
orders; the ledger keeps every amount (it is append-only and still verifies) and the balance stays owed until the
merchant settles it. The shop's customer id stays: it is the shop's own key, and holds nothing personal."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bridge.models import (
    Account,
    AuditEvent,
    CreditLot,
    Customer,
    Hold,
    InboxDelivery,
    OutboxMessage,
    Shop,
    ShopOrder,
    TopupRequest,
    WithdrawalRequest,
)
from bridge.wallets import require_customer, statement

# Keys of WooCommerce and Shopify bodies that hold a person's details (whole addresses are dropped at once).
PERSONAL_KEYS = frozenset(
    {
        "email",
        "contact_email",
        "first_name",
        "last_name",
        "name",
        "display_name",
        "username",
        "phone",
        "company",
        "billing",
        "shipping",
        "billing_address",
        "shipping_address",
        "default_address",
        "addresses",
        "address_1",
        "address_2",
        "city",
        "state",
        "postcode",
        "zip",
        "province",
        "customer_ip_address",
        "customer_user_agent",
        "browser_ip",
        "client_details",
        "customer_note",
        "note",
        "avatar_url",
    }
)
CUSTOMER_TOPICS = ("customer.", "customers/")  # WooCommerce's customer.updated, Shopify's customers/update
EXPORT_PAGE = 500


@dataclass(frozen=True)
class Erased:
    deliveries_scrubbed: int


def erase_customer(session: Session, shop: Shop, external_id: str) -> Erased:
    """Remove the customer's name and e-mail, and their details from every stored webhook body about them or
    their orders. Safe to repeat."""
    customer = require_customer(session, shop, external_id)
    customer.name = customer.email = None
    scrubbed = 0
    for delivery in session.scalars(_deliveries_about(session, shop, customer)):
        clean = _scrubbed(delivery.body)
        if clean != delivery.body:
            delivery.body, scrubbed = clean, scrubbed + 1
    return Erased(scrubbed)


def customer_data(session: Session, shop: Shop, external_id: str) -> dict:
    """Everything the bridge holds about one customer, as JSON-ready values (an access request)."""
    customer = require_customer(session, shop, external_id)
    accounts = session.scalars(select(Account).where(Account.customer_id == customer.id)).all()
    account_ids = [account.id for account in accounts]
    return {
        "shop": {"id": shop.id, "name": shop.name, "url": shop.url},
        "customer": _row(customer, "external_id", "name", "email", "created_at"),
        "accounts": [_row(a, "code", "kind", "currency", "balance", "held", "locked") for a in accounts],
        "movements": _all_movements(session, shop, external_id),
        "holds": _rows(
            session,
            select(Hold).where(Hold.account_id.in_(account_ids)),
            "amount",
            "status",
            "reason",
            "order_ref",
            "expires_at",
            "created_at",
        ),
        "credit_lots": _rows(
            session,
            select(CreditLot).where(CreditLot.account_id.in_(account_ids)),
            "kind",
            "source",
            "amount",
            "remaining",
            "expires_at",
        ),
        "orders": _rows(
            session,
            _orders_of(customer),
            "external_id",
            "currency",
            "status",
            "total",
            "wallet_paid",
            "wallet_refunded",
            "points_earned",
            "created_at",
        ),
        "topup_requests": _rows(
            session,
            select(TopupRequest).where(TopupRequest.customer_id == customer.id),
            "amount",
            "currency",
            "order_external_id",
            "created_at",
        ),
        "withdrawal_requests": _rows(
            session,
            select(WithdrawalRequest).where(WithdrawalRequest.customer_id == customer.id),
            "amount",
            "currency",
            "status",
            "decline_reason",
            "created_at",
            "decided_at",
        ),
        "messages_to_the_shop": _rows(
            session,
            select(OutboxMessage).where(
                OutboxMessage.shop_id == shop.id,
                OutboxMessage.payload["order_id"].as_string().in_(_order_ids(customer)),
            ),
            "kind",
            "payload",
            "status",
            "created_at",
        ),
        "webhook_deliveries": [
            {"topic": d.topic, "received_at": d.received_at.isoformat(), "body": _readable(d.body)}
            for d in session.scalars(_deliveries_about(session, shop, customer))
        ],
        "audit_trail": _rows(
            session,
            select(AuditEvent).where(AuditEvent.shop_id == shop.id, AuditEvent.target == customer.external_id),
            "action",
            "field",
            "old_value",
            "new_value",
            "actor",
            "created_at",
        ),
    }


def _orders_of(customer: Customer):
    return select(ShopOrder).where(ShopOrder.customer_id == customer.id).order_by(ShopOrder.id)


def _order_ids(customer: Customer):
    return select(ShopOrder.external_id).where(ShopOrder.customer_id == customer.id).scalar_subquery()


def _deliveries_about(session: Session, shop: Shop, customer: Customer):
    """Stored deliveries about the customer (their own topics) or one of their orders (the other topics)."""
    customer_topic = or_(*(InboxDelivery.topic.startswith(prefix) for prefix in CUSTOMER_TOPICS))
    return (
        select(InboxDelivery)
        .where(
            InboxDelivery.shop_id == shop.id,
            or_(
                customer_topic & (InboxDelivery.resource_id == customer.external_id),
                ~customer_topic & InboxDelivery.resource_id.in_(_order_ids(customer)),
            ),
        )
        .order_by(InboxDelivery.id)
    )


def _scrubbed(body: bytes) -> bytes:
    """The body without a person's details; a body that is not JSON cannot be told apart, so none of it stays."""
    try:
        document = json.loads(body)
    except ValueError:
        return b""
    return json.dumps(_without_personal(document), separators=(",", ":")).encode()


def _without_personal(value):
    if isinstance(value, dict):
        return {key: (None if key in PERSONAL_KEYS else _without_personal(item)) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_personal(item) for item in value]
    return value


def _readable(body: bytes):
    try:
        return json.loads(body)
    except ValueError:
        return None


def _all_movements(session: Session, shop: Shop, external_id: str) -> list[dict]:
    lines, cursor = [], None
    while True:
        page = statement(session, shop, external_id, cursor=cursor, limit=EXPORT_PAGE)
        lines += [{**line, "created_at": line["created_at"].isoformat()} for line in page.lines]
        if not (cursor := page.next_cursor):
            return lines


def _rows(session: Session, query, *names: str) -> list[dict]:
    return [_row(row, *names) for row in session.scalars(query)]


def _row(row, *names: str) -> dict:
    values = {name: getattr(row, name) for name in names}
    return {name: value.isoformat() if hasattr(value, "isoformat") else value for name, value in values.items()}
