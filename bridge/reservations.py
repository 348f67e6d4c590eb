"""Reservations for orders: the shop's checkout (the WooCommerce plugin's `wallet` gateway) reserves the wallet
money an order will take before the order is placed; the order's own delivery captures it (bridge/order_rules.py)
or, cancelled or failed, voids it. A hold keyed by the order: an order has at most one open reservation, so a
retried checkout reserves once, and a checkout retried for another amount replaces it. The bridge decides what
the wallet covers (all, or what it has when the shop takes partial payments): the plugin holds no money rules.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from sqlalchemy import Boolean, bindparam, column, select, text
from sqlalchemy.orm import Session

from bridge.accounts import wallet_account, wallet_code
from bridge.decisions import wallet_due, wallet_held
from bridge.errors import IdempotencyConflict, InsufficientFunds, InvalidState, NotFound
from bridge.ledger import authorize_hold, ensure_unlocked, release_expired_holds, void_hold
from bridge.models import Account, Customer, Hold, Shop, ShopOrder, utcnow
from bridge.money import format_amount
from bridge.settings_schema import ShopSettings
from bridge.states import HoldStatus
from bridge.wallets import require_customer


def _key_prefix(order_external_id: str) -> str:
    return f"reservation:{order_external_id}:"


def reserve_for_order(
    session: Session,
    shop: Shop,
    customer_external_id: str,
    order_external_id: str,
    *,
    amount: int,
    idempotency_key: str,
    expires_in: timedelta,
) -> tuple[Hold | None, bool]:
    """Reserve the order's `amount` on the customer's wallet, or, short and the shop taking partial payments,
    all the wallet has (the rest is paid another way). Returns (hold, replayed): the order's open reservation
    when it already holds that, whatever the key; no hold when the wallet has nothing to pay."""
    customer = require_customer(session, shop, customer_external_id)
    reservations = open_reservations(session, shop.id, order_external_id)  # holds are locked before the wallet
    wallet = wallet_account(session, customer, shop.currency, lock=True)
    # read under the wallet's lock: an order delivery paying the order meanwhile held it until its commit
    _refuse_if_paid(session, shop.id, order_external_id)
    raced = _made_meanwhile(session, shop.id, order_external_id, {hold.id for hold in reservations})
    if raced is not None:  # a parallel checkout of the order reserved while this one waited for the wallet
        return raced, True
    release_expired_holds(session, wallet)
    ensure_unlocked(wallet)
    mine = [hold for hold in reservations if hold.account_id == wallet.id and hold.expires_at > utcnow()]
    covered = _covered(shop, wallet.available + sum(hold.amount for hold in mine), amount)
    if len(reservations) == len(mine) == 1 and mine[0].amount == covered:
        return mine[0], True
    hold_key = _hold_key(session, shop.id, order_external_id, idempotency_key, amount)  # before this voids any
    for hold in reservations:  # the checkout now asks for another amount (or another customer pays)
        void_hold(session, shop_id=shop.id, hold_id=hold.id)
    if covered == 0:  # the discount for paying by wallet takes the whole total off: nothing to hold
        return None, False
    return authorize_hold(
        session,
        account=wallet,
        amount=covered,
        reason=f"Payment for order #{order_external_id}",
        idempotency_key=hold_key,
        expires_in=expires_in,
        order_ref=order_external_id,
    )


def _hold_key(session: Session, shop_id: int, order_external_id: str, idempotency_key: str, amount: int) -> str:
    """The request's key, hashed so that any Idempotency-Key fits the hold's key column beside the order id, with
    the amount asked (the same key asking another amount is a conflict); numbered after each hold made with it
    before: an order paid again (failed, then paid on its order-pay page) is asked for with the same key and amount,
    and so is one whose wallet covers more since it was picked (topped up meanwhile)."""
    key = _key_prefix(order_external_id) + hashlib.sha256(idempotency_key.encode()).hexdigest()[:40] + "-"
    asked = f"{key}{amount}"
    made_with_key = Hold.idempotency_key.startswith(key, autoescape=True)
    earlier = session.scalars(select(Hold.idempotency_key).where(Hold.shop_id == shop_id, made_with_key)).all()
    if any(made != asked and not made.startswith(f"{asked}:") for made in earlier):
        raise IdempotencyConflict(
            "this idempotency key was used for another amount", fields={"idempotency_key": "used for another amount"}
        )
    return f"{asked}:{len(earlier)}" if earlier else asked


def _made_meanwhile(session: Session, shop_id: int, order_external_id: str, seen: set[int]) -> Hold | None:
    """An open reservation of the order committed after `seen` was read (read, not locked: the wallet's lock
    is held, and holds are locked before accounts)."""
    return session.scalars(
        select(Hold)
        .where(
            Hold.shop_id == shop_id,
            Hold.order_ref == order_external_id,
            Hold.status == HoldStatus.OPEN,
            Hold.idempotency_key.startswith(_key_prefix(order_external_id), autoescape=True),
            Hold.id.not_in(seen),
        )
        .order_by(Hold.id)
        .limit(1)
        .execution_options(populate_existing=True)
    ).first()


def left_to_pay(shop: Shop, amount: int, reserved: int) -> int:
    """What another payment method pays of an order of `amount` the wallet reserved `reserved` for: nothing when
    the wallet pays it whole (its discount is taken off the order, not paid)."""
    if reserved >= wallet_due(ShopSettings.load(shop.settings), amount):
        return 0
    return amount - reserved


def _covered(shop: Shop, available: int, amount: int) -> int:
    """What the wallet pays of `amount`: all of it (less its discount), or what it has when the shop takes partial
    payments (as the order's delivery decides: bridge.order_rules._collect_wallet_payment)."""
    settings = ShopSettings.load(shop.settings)
    if available >= wallet_due(settings, amount):
        return wallet_due(settings, amount)
    if available > 0 and settings.partial_payments:
        return available
    raise InsufficientFunds(
        f"insufficient wallet balance ({format_amount(max(available, 0), shop.currency)} available)",
        fields={"amount": "exceeds the available balance"},
    )


def _refuse_if_paid(session: Session, shop_id: int, order_external_id: str) -> None:
    """An order that holds wallet money its delivery took (before any reservation) needs none; one whose wallet
    money went back (failed, then paid again on its order-pay page) does."""
    record = session.scalar(
        select(ShopOrder).where(ShopOrder.shop_id == shop_id, ShopOrder.external_id == order_external_id)
    )
    if record is not None and wallet_held(record) > 0:
        raise InvalidState(
            f"order #{order_external_id} is already paid from the wallet",
            fields={"order_id": "already paid"},
            code="order_already_paid",
        )


def open_reservations(session: Session, shop_id: int, order_external_id: str) -> list[Hold]:
    """The order's open reservations (one, but for a race of two first checkouts), locked, oldest first."""
    found = session.execute(_OPEN_RESERVATIONS, _of_order(shop_id, order_external_id))
    return list(found.scalars())


def _of_order(shop_id: int, order_external_id: str) -> dict:
    """The parameters of `_OPEN_RESERVATIONS`: its LIKE pattern escaped as `startswith(autoescape=True)` does."""
    prefix = _key_prefix(order_external_id).replace("/", "//").replace("%", "/%").replace("_", "/_")
    return {"shop_id": shop_id, "order_ref": order_external_id, "key_pattern": prefix + "%"}


# Built once: every wallet-paid order's delivery looks for its checkout's reservation.
_OPEN_RESERVATIONS = (
    select(Hold)
    .where(
        Hold.shop_id == bindparam("shop_id"),
        Hold.order_ref == bindparam("order_ref"),
        Hold.status == HoldStatus.OPEN,
        Hold.idempotency_key.like(bindparam("key_pattern"), escape="/"),
    )
    .order_by(Hold.id)
    .with_for_update()
    .execution_options(populate_existing=True)
)


def lock_order_funds(
    session: Session, shop_id: int, order_external_id: str, customer: Customer, currency: str
) -> tuple[list[Hold], Account]:
    """The order's open reservations and the wallet paying it, locked in that order (capture and void lock them so):
    on PostgreSQL in one round trip, with the reservations read only when the order has one."""
    if session.get_bind().dialect.name == "postgresql":
        parameters = {"code": wallet_code(customer, currency), **_of_order(shop_id, order_external_id)}
        found = session.execute(_WALLET_FOR_ORDER, parameters, execution_options={"populate_existing": True}).first()
        if found is not None:  # else no wallet yet: made below
            return open_reservations(session, shop_id, order_external_id) if found.reserved else [], found.Account
    reservations = open_reservations(session, shop_id, order_external_id)
    return reservations, wallet_account(session, customer, currency, lock=True)


# Migration 0015's function: the wallet's columns as the model lists them (its own names: no input in this text),
# read after both locks were taken.
_WALLET_COLUMNS = ", ".join(f"(w.wallet).{column.name}" for column in Account.__table__.c)
_WALLET_FOR_ORDER = select(Account, column("reserved")).from_statement(
    text(
        f"SELECT {_WALLET_COLUMNS}, w.reserved "  # noqa: S608  # nosec B608
        "FROM wb_lock_wallet_for_order(:shop_id, :code, :order_ref, :key_pattern) AS w"
    ).columns(*Account.__table__.c, column("reserved", Boolean))
)


def release_order_reservations(session: Session, shop_id: int, order_external_id: str) -> int:
    """Void what the order still reserves (cancelled, failed, refused); returns how much went back."""
    released = 0
    for hold in open_reservations(session, shop_id, order_external_id):
        released += void_hold(session, shop_id=shop_id, hold_id=hold.id).amount
    return released


def release_reservation(session: Session, shop_id: int, order_external_id: str) -> int:
    """The API's release: as above, for an order that was reserved for (another shop's order is not found)."""
    reserved = session.scalar(
        select(Hold.id)
        .where(
            Hold.shop_id == shop_id,
            Hold.order_ref == order_external_id,
            Hold.idempotency_key.startswith(_key_prefix(order_external_id), autoescape=True),
        )
        .limit(1)
    )
    if reserved is None:
        raise NotFound("no reservation for this order")
    return release_order_reservations(session, shop_id, order_external_id)
