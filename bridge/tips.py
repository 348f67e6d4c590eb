"""Tips paid from the wallet on a paid order: a shop preset (e.g. 15/20/25 %) or a custom amount."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.accounts import SystemAccount, system_account, wallet_account
from bridge.decisions import tip_amount
from bridge.errors import NotFound, ValidationFailed
from bridge.ledger import Actor, Leg, Posted, ensure_unlocked, post_transaction
from bridge.models import Customer, Shop, ShopOrder
from bridge.money import format_amount
from bridge.outbox import enqueue
from bridge.refund_requests import PAID_STATUSES
from bridge.settings_schema import ShopSettings


def tip_order(
    session: Session,
    shop: Shop,
    order_external_id: str,
    *,
    percent_bp: int | None,
    amount: int | None,
    key: str,
    actor: Actor,
) -> Posted:
    """Pay a tip from the customer's wallet on their paid order; reported as its own kind, `tip`."""
    settings = ShopSettings.load(shop.settings)
    if not settings.tips_enabled:
        raise ValidationFailed("this shop takes no tips", fields={"tip": "tips are off in this shop"})
    record = session.execute(
        select(ShopOrder).where(ShopOrder.shop_id == shop.id, ShopOrder.external_id == order_external_id)
    ).scalar_one_or_none()
    if record is None:
        raise NotFound("order not found")
    if record.status not in PAID_STATUSES or record.customer_id is None:
        raise ValidationFailed("tips only on paid orders of a customer", fields={"order_id": "order is not paid"})
    tip = tip_amount(settings, record, percent_bp, amount)
    if tip <= 0:
        raise ValidationFailed("a tip is a positive amount", fields={"amount": "must be positive"})
    wallet = wallet_account(session, session.get(Customer, record.customer_id), record.currency)
    ensure_unlocked(wallet)
    posted = post_transaction(
        session,
        shop_id=shop.id,
        kind="tip",
        reason=f"Tip on order #{order_external_id}",
        legs=[Leg(wallet, -tip), Leg(system_account(session, shop.id, SystemAccount.TIPS, record.currency), tip)],
        idempotency_key=f"tip:{key}",
        actor=actor,
        order_ref=order_external_id,
    )
    if not posted.replayed:
        note = f"Tip of {format_amount(tip, record.currency)} paid from your wallet. Thank you!"
        enqueue(
            session,
            shop_id=shop.id,
            kind="order.note",
            payload={"order_id": order_external_id, "note": note},
            dedupe_key=f"tip:{posted.transaction.id}",
        )
    return posted
