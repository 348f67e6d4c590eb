"""Loyalty points: earned on paid orders, clawed back on refunds, converted to wallet money."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bridge.accounts import SystemAccount, find_wallet, points_account, system_account, wallet_account
from bridge.db import total
from bridge.decisions import conversion_value, points_for, points_money, promotional_expiry
from bridge.errors import InsufficientFunds, ValidationFailed
from bridge.ledger import SYSTEM, Actor, Leg, Posted, ensure_unlocked, find_transaction, post_transaction
from bridge.lots import LotPolicy
from bridge.models import Account, Customer, Entry, LedgerTransaction, Shop
from bridge.money import POINTS
from bridge.orders import OrderSnapshot
from bridge.promotions import give_back, lots_left, take_back
from bridge.settings_schema import ShopSettings


def earn_points(
    session: Session,
    shop: Shop,
    settings: ShopSettings,
    customer: Customer,
    paid: int,
    order: OrderSnapshot,
    key: str,
    already: int = 0,
) -> int:
    """The points `paid` earns, less those the order `already` holds, once per key; returns how many."""
    earned = points_for(settings, paid, order.currency) - already
    if earned <= 0:
        return 0
    credit_points(session, shop, customer, earned, key, order.external_id, f"Points for order #{order.external_id}")
    return earned


def credit_points(session: Session, shop: Shop, customer: Customer, points: int, key: str, order_ref: str, reason: str):
    """`points` the order earned (again), once per key."""
    post_transaction(
        session,
        shop_id=shop.id,
        kind="points_earned",
        reason=reason,
        legs=[
            Leg(points_account(session, customer), points),
            Leg(system_account(session, shop.id, SystemAccount.POINTS_ISSUED, POINTS), -points),
        ],
        idempotency_key=key,
        order_ref=order_ref,
    )


@dataclass(frozen=True)
class Clawback:
    taken: int
    shortfall: int


def claw_back_points(
    session: Session, shop: Shop, customer: Customer, points: int, key: str, order_ref: str, reason: str | None = None
) -> Clawback:
    """Take back up to `points`; points already spent cannot be taken, and the shortfall is reported."""
    account = points_account(session, customer, lock=True)
    taken = max(0, min(points, account.balance))
    if taken:
        post_transaction(
            session,
            shop_id=shop.id,
            kind="points_clawback",
            reason=reason or f"Points taken back: order #{order_ref} refunded or cancelled",
            legs=[
                Leg(account, -taken),
                Leg(system_account(session, shop.id, SystemAccount.POINTS_ISSUED, POINTS), taken),
            ],
            idempotency_key=key,
            order_ref=order_ref,
        )
    return Clawback(taken, points - taken)


def settle_converted(
    session: Session, shop: Shop, settings: ShopSettings, customer: Customer, order_ref: str, shortfall: int
) -> None:
    """The money of points the order owes back and the customer converted before it did (`shortfall`), at the shop's
    rate (by the customer, or at the shop's threshold): taken from what is left of the conversions' lots, or given
    back when the order owes fewer (a refund deleted). Else buying, converting and refunding would pay the points
    out. Counted for the whole order, so refunds in parts take what one full refund would."""
    wallet = find_wallet(session, customer, shop.currency)
    if wallet is None:
        return
    due = points_money(settings, shortfall)
    taken = converted_money_taken(session, wallet, order_ref)
    if due == taken:
        return
    wallet = wallet_account(session, customer, shop.currency, lock=True)
    key = f"order:{order_ref}:points-converted:{due}:after-{taken}"
    if due > taken:
        take_back(
            session,
            wallet,
            lots_left(session, wallet, "points_conversion"),
            min(due - taken, wallet.available),
            kind="points_clawback",
            reason=f"Converted points taken back: order #{order_ref} refunded or cancelled",
            counterpart=SystemAccount.POINTS_CONVERSION,
            key=key,
            order_ref=order_ref,
        )
        return
    give_back(
        session,
        wallet,
        taken - due,
        kind="points_clawback",
        reason=f"Converted points' money given back: order #{order_ref} owes fewer points (a refund was deleted)",
        counterpart=SystemAccount.POINTS_CONVERSION,
        key=key,
        order_ref=order_ref,
        expires_at=promotional_expiry(settings),
    )


def converted_money_taken(session: Session, wallet: Account, order_ref: str) -> int:
    """What `settle_converted` took from the wallet for the order, less what it gave back."""
    moved = (
        select(total(Entry.amount))
        .join(LedgerTransaction, LedgerTransaction.id == Entry.transaction_id)
        .where(
            Entry.account_id == wallet.id,
            LedgerTransaction.shop_id == wallet.shop_id,
            LedgerTransaction.order_ref == order_ref,
            LedgerTransaction.kind == "points_clawback",
        )
    )
    return -session.scalar(moved)


def convert_points(
    session: Session,
    shop: Shop,
    settings: ShopSettings,
    customer: Customer,
    points: int | None,
    key: str,
    actor: Actor = SYSTEM,
) -> Posted:
    """Turn points into wallet money at the shop's rate (all convertible points when `points` is None).
    A repeated key returns the first conversion, even though the points it used are gone now; the same key
    for other points or another customer is a conflict."""
    account = points_account(session, customer)
    wallet = wallet_account(session, customer, shop.currency)
    earlier = find_transaction(session, shop.id, key)
    if earlier is None:
        requested = account.balance if points is None else points
        _ensure_enough_points(settings, requested, account.balance)
        ensure_unlocked(wallet)
    else:  # a retry: its points are spent now, so the ledger compares the entries it would make with the first's
        requested = _points_used_by(session, earlier) if points is None else points
    used, money = conversion_value(settings, requested)
    if money <= 0:
        raise ValidationFailed("these points are worth nothing at the shop's rate", fields={"points": "worth 0"})
    try:
        return post_transaction(
            session,
            shop_id=shop.id,
            kind="points_conversion",
            reason=f"{used} points converted to wallet money",
            legs=[
                Leg(account, -used),
                Leg(system_account(session, shop.id, SystemAccount.POINTS_ISSUED, POINTS), used),
                Leg(wallet, money),
                Leg(system_account(session, shop.id, SystemAccount.POINTS_CONVERSION, shop.currency), -money),
            ],
            idempotency_key=key,
            actor=actor,
            lots=LotPolicy(promo_expires_at=promotional_expiry(settings)),
        )
    except InsufficientFunds:  # another conversion spent these points since they were read
        raise _not_enough_points() from None


def convertible_from(settings: ShopSettings) -> int:
    """The fewest points a conversion takes: the shop's minimum, and at least one step."""
    return max(settings.points_conversion_minimum, settings.points_conversion_points)


def _ensure_enough_points(settings: ShopSettings, requested: int, balance: int) -> None:
    if requested < convertible_from(settings):
        raise ValidationFailed("not enough points to convert", fields={"points": "below the conversion minimum"})
    if requested > balance:
        raise _not_enough_points()


def _not_enough_points() -> InsufficientFunds:
    return InsufficientFunds("not enough points", fields={"points": "exceeds the points balance"})


def _points_used_by(session: Session, conversion: LedgerTransaction) -> int:
    """The points a conversion took: what "all convertible points" meant when it was made."""
    taken = select(total(Entry.amount)).where(
        Entry.transaction_id == conversion.id, Entry.currency == POINTS, Entry.amount < 0
    )
    return -session.scalar(taken)


def convert_points_automatically(
    session: Session, shop: Shop, settings: ShopSettings, customer: Customer
) -> Posted | None:
    threshold = settings.points_auto_convert_threshold
    account = points_account(session, customer)
    if not threshold or account.balance < threshold:
        return None
    # Keyed by the newest points entry: each earning that crosses the threshold converts once.
    newest = session.scalar(select(func.max(Entry.id)).where(Entry.account_id == account.id))
    return convert_points(session, shop, settings, customer, None, f"points:auto:{account.id}:{newest}")
