"""Top-ups without a product checkout: the bridge creates a shop order for the amount; when the shop
says it is paid, the wallet is credited once with what was actually paid."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from bridge.accounts import (
    SystemAccount,
    customer_wallet,
    lock_account,
    system_account,
    wallet_account,
)
from bridge.db import insert_ignoring_conflict, total
from bridge.decisions import promotional_expiry, share, topup_bonus
from bridge.errors import DomainError, IdempotencyConflict, ValidationFailed
from bridge.ledger import Actor, Leg, ensure_unlocked, post_transaction, release_expired_holds
from bridge.lots import LotPolicy, deposited
from bridge.models import (
    Account,
    CreditLot,
    Customer,
    LedgerTransaction,
    LotMovement,
    OrderRefund,
    Shop,
    ShopOrder,
    TopupRequest,
    utcnow,
)
from bridge.money import format_amount
from bridge.settings_schema import ShopSettings

TOPUP_MARKER = "_wallet_bridge_topup"  # order meta: the amount requested, in minor units
TOPUP_FEE_NAME = "Wallet top-up"


def check_topup_amount(settings: ShopSettings, amount: int, currency: str) -> None:
    low, high = settings.topup_minimum, settings.topup_maximum
    if amount < low:
        raise ValidationFailed(
            f"the smallest top-up is {format_amount(low, currency)}",
            fields={"amount": f"at least {format_amount(low, currency)}"},
        )
    if amount > high:
        raise ValidationFailed(
            f"the largest top-up is {format_amount(high, currency)}",
            fields={"amount": f"at most {format_amount(high, currency)}"},
        )


class RequestInProgress(DomainError):
    code = "request_in_progress"


def begin_topup(
    session: Session, shop: Shop, external_id: str, amount: int, key: str, lease: timedelta
) -> tuple[TopupRequest, bool]:
    """Record the request once per key and claim the creation of its shop order for this call. Returns (the
    request, whether an earlier call may have made the order already: look for it before making one). A
    request that has its order is returned as it is (the caller sees `order_external_id`). While another call
    is creating the order, a retry raises RequestInProgress rather than make a second one; a claim older
    than `lease` belonged to a call that died, and is taken over."""
    check_topup_amount(ShopSettings.load(shop.settings), amount, shop.currency)
    customer, wallet = customer_wallet(session, shop.id, external_id, shop.currency)
    ensure_unlocked(wallet)
    now = utcnow()
    created = insert_ignoring_conflict(
        session,
        TopupRequest,
        {
            "shop_id": shop.id,
            "customer_id": customer.id,
            "idempotency_key": key,
            "amount": amount,
            "currency": shop.currency,
            "creating_since": now,
            "created_at": now,
        },
        ["shop_id", "idempotency_key"],
    )
    if created is not None:
        return created, False
    request = session.execute(
        select(TopupRequest).where(TopupRequest.shop_id == shop.id, TopupRequest.idempotency_key == key)
    ).scalar_one()
    if (request.customer_id, request.amount) != (customer.id, amount):
        raise IdempotencyConflict("this key was used for another top-up", fields={"idempotency_key": "in use"})
    if request.order_external_id is None and not _claim(session, request, now, lease):
        raise RequestInProgress(
            "this top-up's shop order is still being created: retry in a few seconds",
            fields={"idempotency_key": "in progress"},
        )
    return request, True


def _claim(session: Session, request: TopupRequest, now: datetime, lease: timedelta) -> bool:
    """One conditional UPDATE, so that of two retries at once only one claims (the database decides)."""
    claimed = session.execute(
        update(TopupRequest)
        .where(
            TopupRequest.id == request.id,
            TopupRequest.order_external_id.is_(None),
            or_(TopupRequest.creating_since.is_(None), TopupRequest.creating_since < now - lease),
        )
        .values(creating_since=now)
    )
    return claimed.rowcount == 1


def end_topup_claim(
    session: Session, request_id: int, order_external_id: str | None = None, payment_url: str | None = None
) -> TopupRequest:
    """The call that claimed the request is done: with the shop order it made or found, or without (the shop
    failed; the next retry looks for an order before making one)."""
    request = session.get(TopupRequest, request_id)
    request.creating_since = None
    if order_external_id is not None:
        request.order_external_id, request.payment_url = order_external_id, payment_url
    return request


def requested_topup(meta: dict) -> int | None:
    """The amount the bridge asked for, from the marker it wrote on the order (None: not a top-up)."""
    value = meta.get(TOPUP_MARKER)
    if value is None:
        return None
    text = str(value)
    return int(text) if text.isdigit() else 0


def credit_paid_topup(
    session: Session, shop: Shop, settings: ShopSettings, customer: Customer, order, actor: Actor
) -> int:
    """Credit what the customer actually paid (a coupon never credits more than was paid), plus the
    shop's bonus above its threshold as promotional credit. Returns the amount credited."""
    credited = min(order.total, requested_topup(order.meta) or 0)
    if credited <= 0:
        return 0
    wallet = wallet_account(session, customer, order.currency)
    bonus = topup_bonus(settings, credited)
    legs = [
        Leg(wallet, credited + bonus),
        Leg(system_account(session, shop.id, SystemAccount.TOPUPS_RECEIVED, order.currency), -credited),
    ]
    if bonus:
        legs.append(Leg(system_account(session, shop.id, SystemAccount.PROMOTIONS, order.currency), -bonus))
    reason = f"Top-up (order #{order.external_id})" + (
        f" with a {format_amount(bonus, order.currency)} bonus" if bonus else ""
    )
    post_transaction(
        session,
        shop_id=shop.id,
        kind="topup",
        reason=reason,
        legs=legs,
        idempotency_key=f"order:{order.external_id}:topup",
        actor=actor,
        order_ref=order.external_id,
        lots=LotPolicy(promo_expires_at=promotional_expiry(settings)),
    )
    return credited + bonus


def take_back_card_refunds(
    session: Session, shop_id: int, wallet: Account, actor: Actor, only_order: str | None = None
) -> None:
    """Money the card got back for a top-up must not stay in the wallet too. Decided on totals per top-up,
    whenever its lot may hold such money: when the top-up's refunds arrive, and when money spent from the
    lot comes back into it (an order it paid cancelled or refunded, a withdrawal refused). What the card
    got back, less what withdrawals already took from the lot, is taken from what is left of it. Refunds
    the bridge itself asked for (withdrawals) were debited when asked, so they take nothing more."""
    wallet = lock_account(session, wallet)  # lots read under the wallet's lock: nothing else moves them now
    release_expired_holds(session, wallet)
    for lot, order_external_id, refunded in _lots_of_refunded_topups(session, only_order, deposited(wallet)):
        already = _taken_from(session, lot, ("withdrawal", "withdrawal_reversal"))
        due = min(min(refunded, lot.amount) - already, lot.remaining, max(wallet.available, 0))
        if due <= 0:
            continue
        reason = f"Top-up #{order_external_id} refunded to the card by the shop"
        key = f"order:{order_external_id}:card-refunds:{refunded}"
        _move_card_refund(session, wallet, lot, -due, reason, order_external_id, key, actor)
    _settle_refunded_bonuses(session, shop_id, wallet, actor, only_order)


def _settle_refunded_bonuses(
    session: Session, shop_id: int, wallet: Account, actor: Actor, only_order: str | None, every: bool = False
) -> None:
    """A top-up's bonus rewarded the deposit: its share of what the card got back goes too (from what is left of
    the bonus: what was spent of it stays spent, until it comes back), else a refunded top-up would pay its bonus
    out for nothing; a share a refund the shop deleted took comes back into the bonus (`every`: bonuses spent or
    without refunds left included)."""
    for bonus, order_external_id, refunded, deposit in _refunded_topup_bonuses(session, wallet, only_order, every):
        due = share(min(refunded, deposit), deposit, bonus.amount)
        taken = _taken_from(session, bonus, ("promotion",))
        if taken > due:  # what leaves the wallet: negative, given back
            amount = due - taken
            reason = f"Bonus of top-up #{order_external_id} given back: its refund was deleted by the shop"
        else:
            amount = min(due - taken, bonus.remaining, max(wallet.available, 0))
            reason = f"Bonus of top-up #{order_external_id} taken back: the top-up was refunded to the card"
        if amount == 0:
            continue
        post_transaction(
            session,
            shop_id=shop_id,
            kind="promotion",
            reason=reason,
            legs=[
                Leg(wallet, -amount),
                Leg(system_account(session, shop_id, SystemAccount.PROMOTIONS, wallet.currency), amount),
            ],
            idempotency_key=_bonus_key(session, bonus, f"order:{order_external_id}:bonus-back:{due}:after-{taken}"),
            actor=actor,
            order_ref=order_external_id,
            lots=LotPolicy(lot_id=bonus.id),  # from the bonus, or back into it with its expiry
        )


def _bonus_key(session: Session, bonus: CreditLot, decision: str) -> str:
    """Each state of the bonus decided once: the same figures after a refund deleted and made again are a new one."""
    moves = session.scalar(select(func.count(LotMovement.id)).where(LotMovement.lot_id == bonus.id))
    return f"{decision}:moves-{moves}"


def _refunded_topup_bonuses(session: Session, wallet: Account, only_order: str | None, every: bool = False):
    """(bonus lot, its top-up order, refunded to the card, the deposit it rewarded) for the wallet's top-up bonuses
    with money left (`every`: all the order's)."""
    deposit_lot = aliased(CreditLot)
    deposit = (
        select(deposit_lot.amount)
        .where(deposit_lot.transaction_id == CreditLot.transaction_id, deposit_lot.kind == "cash")
        .scalar_subquery()
    )
    bonuses = (CreditLot.account_id == wallet.id, CreditLot.kind == "promotional", LedgerTransaction.kind == "topup")
    return [row for row in _lots_of_refunded_topups(session, only_order, bonuses, deposit, every=every) if row[3]]


def give_back_deleted_topup_refunds(
    session: Session, shop_id: int, wallet: Account, actor: Actor, order_external_id: str
) -> None:
    """A top-up's refund the shop deleted: what it took from the top-up's lot, beyond what the refunds left now
    took, comes back to the lot (the card got nothing)."""
    wallet = lock_account(session, wallet)
    for lot, _order, refunded in _lots_of_refunded_topups(session, order_external_id, deposited(wallet), every=True):
        excess = _taken_from(session, lot, ("withdrawal", "withdrawal_reversal")) - min(refunded, lot.amount)
        if excess <= 0:
            continue
        reason = f"Top-up #{order_external_id}: its refund was deleted by the shop, the money is back"
        key = f"order:{order_external_id}:refunds-deleted:{refunded}"
        _move_card_refund(session, wallet, lot, excess, reason, order_external_id, key, actor)
    _settle_refunded_bonuses(session, shop_id, wallet, actor, order_external_id, every=True)


def _move_card_refund(
    session: Session, wallet: Account, lot: CreditLot, amount: int, reason: str, order_external_id: str, key: str, actor
):
    """Money the card got back for a top-up taken from its lot (`amount` < 0), or given back to it (a refund
    deleted), against what the shop paid out. Keyed by the lot's state decided on: every later change to the lot is
    a new decision."""
    movements = session.scalar(select(func.count(LotMovement.id)).where(LotMovement.lot_id == lot.id))
    post_transaction(
        session,
        shop_id=wallet.shop_id,
        kind="withdrawal" if amount < 0 else "withdrawal_reversal",
        reason=reason,
        legs=[
            Leg(wallet, amount),
            Leg(system_account(session, wallet.shop_id, SystemAccount.WITHDRAWALS_PAID, wallet.currency), -amount),
        ],
        idempotency_key=f"{key}:lot-moved-{movements}",
        actor=actor,
        order_ref=order_external_id,
        lots=LotPolicy(lot_id=lot.id) if amount < 0 else LotPolicy(),
    )


def _lots_of_refunded_topups(
    session: Session, only_order: str | None, lots: tuple, *columns, every: bool = False
) -> list:
    """(lot, top-up order id, refunded to the card, *columns) for the `lots` with money left whose top-up order
    has refunds (`every`: all the order's lots)."""
    refunded = (
        select(total(OrderRefund.amount))
        .where(OrderRefund.shop_order_id == ShopOrder.id, OrderRefund.deleted_at.is_(None))
        .scalar_subquery()
    )
    query = (
        select(CreditLot, ShopOrder.external_id, refunded, *columns)
        .join(LedgerTransaction, LedgerTransaction.id == CreditLot.transaction_id)
        .join(
            ShopOrder,
            and_(ShopOrder.shop_id == LedgerTransaction.shop_id, ShopOrder.external_id == LedgerTransaction.order_ref),
        )
        .where(*lots)
        .order_by(CreditLot.id)
    )
    if not every:
        query = query.where(CreditLot.remaining > 0, refunded > 0)
    if only_order is not None:
        query = query.where(ShopOrder.external_id == only_order)
    return session.execute(query.execution_options(populate_existing=True)).all()


def _taken_from(session: Session, lot: CreditLot, kinds: tuple[str, ...]) -> int:
    """What transactions of these kinds took from the lot."""
    return session.scalar(
        select(total(LotMovement.amount))
        .join(LedgerTransaction, LedgerTransaction.id == LotMovement.transaction_id)
        .where(LotMovement.lot_id == lot.id, LedgerTransaction.kind.in_(kinds))
    )
