"""Cashback: a share of what a customer paid for an order (a percentage or a fixed amount, from a minimum order,
up to a cap), credited to their wallet as promotional credit (it may expire, like bonuses) once the order reaches
the status the merchant picks. Refunds take it back pro rata, as they do loyalty points, and a cancelled order
all of it, from what is left of it (bridge.promotions)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.accounts import SystemAccount, find_wallet, system_account, wallet_account
from bridge.db import total
from bridge.decisions import cashback_for, promotional_expiry
from bridge.ledger import Actor, Leg, find_transaction, post_transaction
from bridge.lots import LotPolicy
from bridge.models import Customer, Entry, LedgerTransaction, Shop
from bridge.money import format_amount
from bridge.orders import OrderSnapshot
from bridge.promotions import give_back, lots_left, take_back
from bridge.settings_schema import ShopSettings

KINDS = ("cashback", "cashback_reversal")


def credit_cashback(
    session: Session,
    shop: Shop,
    settings: ShopSettings,
    customer: Customer,
    order: OrderSnapshot,
    base: int,
    key: str,
    actor: Actor,
    already: int = 0,
) -> int:
    """Credit the order's cashback on `base`, less what it `already` holds, once (by `key`); what it credited, 0
    when none is due or it was credited before."""
    amount = cashback_for(settings, base) - already
    if amount <= 0 or find_transaction(session, shop.id, key) is not None:
        return 0
    post_transaction(
        session,
        shop_id=shop.id,
        kind="cashback",
        reason=f"Cashback on order #{order.external_id} ({format_amount(base, order.currency)} paid)",
        legs=[
            Leg(wallet_account(session, customer, order.currency), amount),
            Leg(system_account(session, shop.id, SystemAccount.PROMOTIONS, order.currency), -amount),
        ],
        idempotency_key=key,
        actor=actor,
        order_ref=order.external_id,
        lots=LotPolicy(promo_expires_at=promotional_expiry(settings)),
    )
    return amount


def cashback_kept(session: Session, shop_id: int, customer: Customer, order_ref: str, currency: str) -> int:
    """The order's cashback still in the wallet's books: credited less taken back."""
    wallet = find_wallet(session, customer, currency)  # reading creates nothing
    if wallet is None:
        return 0
    return session.scalar(
        select(total(Entry.amount))
        .join(LedgerTransaction, LedgerTransaction.id == Entry.transaction_id)
        .where(
            LedgerTransaction.shop_id == shop_id,
            LedgerTransaction.order_ref == order_ref,
            LedgerTransaction.kind.in_(KINDS),
            Entry.account_id == wallet.id,
        )
    )


def take_back_cashback(
    session: Session, shop: Shop, customer: Customer, order_ref: str, currency: str, due: int, key: str, actor: Actor
) -> int:
    """Take back up to `due` of the order's cashback, once per key, from what is left of its own lots; returns what
    was taken."""
    wallet = wallet_account(session, customer, currency, lock=True)
    wanted = min(due, wallet.available, cashback_kept(session, shop.id, customer, order_ref, currency))
    return take_back(
        session,
        wallet,
        lots_left(session, wallet, "cashback", order_ref),
        wanted,
        kind="cashback_reversal",
        reason=f"Cashback taken back: order #{order_ref} refunded or cancelled",
        counterpart=SystemAccount.PROMOTIONS,
        key=key,
        order_ref=order_ref,
        actor=actor,
    )


def give_back_cashback(
    session: Session,
    shop: Shop,
    settings: ShopSettings,
    customer: Customer,
    order_ref: str,
    currency: str,
    *,
    taken_under: str,
    key: str,
    actor: Actor,
) -> int:
    """What the take-backs keyed under `taken_under` took, credited again (a refund the shop deleted: the order is paid
    again and earns its cashback again), once per key; returns it."""
    wallet = find_wallet(session, customer, currency)
    if wallet is None:
        return 0
    taken = -session.scalar(
        select(total(Entry.amount))
        .join(LedgerTransaction, LedgerTransaction.id == Entry.transaction_id)
        .where(
            Entry.account_id == wallet.id,
            LedgerTransaction.shop_id == shop.id,
            LedgerTransaction.kind == "cashback_reversal",
            LedgerTransaction.idempotency_key.startswith(f"{taken_under}:", autoescape=True),
        )
    )
    if taken > 0:
        give_back(
            session,
            wallet,
            taken,
            kind="cashback",
            reason=f"Cashback on order #{order_ref} again: its refund was deleted by the shop",
            counterpart=SystemAccount.PROMOTIONS,
            key=key,
            order_ref=order_ref,
            expires_at=promotional_expiry(settings),
            actor=actor,
        )
    return max(taken, 0)
