"""Refunds asked for through the bridge: where the money goes (card, wallet or points) and whether the
order is still inside the customer's return window, which depends on their loyalty tier."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import case, select
from sqlalchemy.orm import Session

from bridge.db import insert_ignoring_conflict, total
from bridge.decisions import return_window
from bridge.errors import IdempotencyConflict, NotFound, ValidationFailed
from bridge.models import OrderRefund, RefundRequest, Shop, ShopOrder, utcnow
from bridge.money import format_amount
from bridge.orders import RefundSnapshot
from bridge.outbox import enqueue
from bridge.settings_schema import ShopSettings
from bridge.states import PaymentOutcome

PAID_STATUSES = ("processing", "completed")
REFUNDABLE_STATUSES = (*PAID_STATUSES, "on-hold", "refunded")
DESTINATIONS = ("card", "wallet", "points")

# The refund the bridge makes for a request names it in its reason: an order's deliveries list its refunds with
# their reason but not their meta, and a refund the merchant makes meanwhile may be of the same amount.
_REQUEST_NAMED = re.compile(r"\(wallet request #(\d+)\)$")


def lifetime_spend(session: Session, shop_id: int, customer_id: int) -> int:
    """What the customer paid on orders the shop counts as paid (wallet part of partly paid orders too), less what
    the shop refunded of them: money given back earns no loyalty tier."""
    paid = ShopOrder.total + case((ShopOrder.payment_outcome == PaymentOutcome.PARTIAL, ShopOrder.wallet_paid), else_=0)
    orders = (ShopOrder.shop_id == shop_id, ShopOrder.customer_id == customer_id, ShopOrder.status.in_(PAID_STATUSES))
    refunded = (
        select(total(OrderRefund.amount))
        .join(ShopOrder, ShopOrder.id == OrderRefund.shop_order_id)
        .where(*orders, OrderRefund.deleted_at.is_(None))
    )
    return session.scalar(select(total(paid)).where(*orders)) - session.scalar(refunded)


def request_refund(
    session: Session,
    shop: Shop,
    order_external_id: str,
    *,
    amount: int,
    destination: str,
    reason: str,
    key: str,
    now: datetime | None = None,
) -> RefundRequest:
    """Check the request against the order and the return window, then ask the shop for the refund
    (through the outbox). The ledger moves when the shop's refund delivery arrives, once."""
    now = now or utcnow()
    record = session.execute(  # locked: requests for one order are checked against each other, one at a time
        select(ShopOrder)
        .where(ShopOrder.shop_id == shop.id, ShopOrder.external_id == order_external_id)
        .with_for_update()
    ).scalar_one_or_none()
    if record is None:
        raise NotFound("order not found")
    asked = {"shop_order_id": record.id, "amount": amount, "destination": destination, "reason": reason}
    existing = _request_with_key(session, shop, key)
    if existing is not None:
        return _same_request(existing, asked)
    _check(session, shop, record, amount, destination, now)
    values = {"shop_id": shop.id, "idempotency_key": key, "status": "requested", **asked}
    request = insert_ignoring_conflict(session, RefundRequest, values, ["shop_id", "idempotency_key"])
    if request is None:  # a request for another order took the key meanwhile
        return _same_request(_request_with_key(session, shop, key), asked)
    enqueue(
        session,
        shop_id=shop.id,
        kind="order.create_refund",
        payload={
            "order_id": order_external_id,
            "amount": amount,
            "reason": reason,
            "request_id": request.id,
            "api_refund": destination == "card",
        },
        dedupe_key=f"refund-request:{request.id}",
    )
    return request


def _request_with_key(session: Session, shop: Shop, key: str) -> RefundRequest | None:
    return session.execute(
        select(RefundRequest).where(RefundRequest.shop_id == shop.id, RefundRequest.idempotency_key == key)
    ).scalar_one_or_none()


def _same_request(existing: RefundRequest, asked: dict) -> RefundRequest:
    """The first request made with the key, if this one asks the same; else a conflict."""
    if any(getattr(existing, name) != value for name, value in asked.items()):
        raise IdempotencyConflict("this key was used for another refund", fields={"idempotency_key": "in use"})
    return existing


def _check(session: Session, shop: Shop, record: ShopOrder, amount: int, destination: str, now: datetime) -> None:
    settings = ShopSettings.load(shop.settings)
    if record.status not in REFUNDABLE_STATUSES:
        raise ValidationFailed(f"order is {record.status}", fields={"order_id": f"order is {record.status}"})
    if record.payment_outcome == PaymentOutcome.TOPUP:  # its money is in the wallet: it leaves as a withdrawal
        raise ValidationFailed(
            "a top-up is paid back as a withdrawal", fields={"order_id": "a top-up: ask for a withdrawal"}
        )
    if destination != "card" and record.customer_id is None:
        raise ValidationFailed("guests have no wallet", fields={"destination": "a guest's refund goes to the card"})
    if destination == "card" and record.payment_outcome == PaymentOutcome.PAID:
        raise ValidationFailed("paid from the wallet", fields={"destination": "paid from the wallet: refund to it"})
    age = now - record.created_at
    if record.customer_id is not None:
        tier, days = return_window(settings, lifetime_spend(session, shop.id, record.customer_id))
        if age > timedelta(days=days):
            raise ValidationFailed(
                f"past the {days}-day return window of the {tier} tier",
                fields={"order_id": f"past the {days}-day return window ({tier} tier)"},
            )
    card_days = settings.card_refund_days
    if destination == "card" and card_days and age > timedelta(days=card_days):
        raise ValidationFailed(
            f"card refunds only within {card_days} days",
            fields={"destination": f"card refunds only within {card_days} days: choose wallet"},
        )
    left = record.total - _refunded_or_requested(session, record)
    if amount > left:
        raise ValidationFailed(
            "more than is left to refund", fields={"amount": f"at most {format_amount(max(left, 0), record.currency)}"}
        )


def _refunded_or_requested(session: Session, record: ShopOrder) -> int:
    refunded = session.scalar(
        select(total(OrderRefund.amount)).where(
            OrderRefund.shop_order_id == record.id, OrderRefund.deleted_at.is_(None)
        )
    )
    pending = session.scalar(
        select(total(RefundRequest.amount)).where(
            RefundRequest.shop_order_id == record.id, RefundRequest.status.in_(("requested", "created"))
        )
    )
    return refunded + pending


def reason_naming_request(reason: str, request_id: int) -> str:
    return f"{reason} (wallet request #{request_id})".lstrip()


def match_request(session: Session, record: ShopOrder, refund: RefundSnapshot) -> RefundRequest | None:
    """The request a shop refund answers: by its id once the bridge saw it created, else by the request its
    reason names (the shop may deliver the refund before answering the bridge's POST). A refund naming
    neither is the merchant's own, whatever its amount."""
    named = _REQUEST_NAMED.search(refund.reason)
    requests = session.execute(
        select(RefundRequest)
        .where(RefundRequest.shop_order_id == record.id, RefundRequest.status != "refused")
        .order_by(RefundRequest.id)
    ).scalars()
    for request in requests:
        if request.refund_external_id == refund.external_id:
            return request
        if named and request.refund_external_id is None and request.id == int(named.group(1)):
            return request
    return None


def record_created(session: Session, request_id: int, refund_external_id: str | None, refused: str | None) -> None:
    request = session.get(RefundRequest, request_id)
    if refused:
        request.status = "refused"
        return
    if request.refund_external_id is None:
        request.refund_external_id = refund_external_id
    if request.status == "requested":
        request.status = "created"
