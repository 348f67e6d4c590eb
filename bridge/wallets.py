"""What a customer's wallet holds and how it moved; merchant adjustments and holds by the shop."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.accounts import (
    SystemAccount,
    customer_wallet,
    find_customer,
    find_points,
    find_wallet,
    system_account,
    wallet_account,
)
from bridge.errors import IdempotencyConflict, NotFound, ValidationFailed
from bridge.ledger import Actor, Leg, Posted, authorize_hold, ensure_unlocked, post_transaction
from bridge.lots import upcoming_expiries, withdrawable
from bridge.models import Account, Customer, Entry, Hold, LedgerTransaction, Shop, utcnow
from bridge.money import POINTS, exponent, format_amount
from bridge.outbox import note_to_customer
from bridge.settings_schema import ShopSettings
from bridge.states import HoldStatus

MAX_ENTRY_ID = 2**63 - 1  # entries.id is a BIGINT: a cursor beyond it would overflow the query, not page


def require_customer(session: Session, shop: Shop, external_id: str) -> Customer:
    customer = find_customer(session, shop.id, external_id)
    if customer is None:
        raise NotFound("customer not found")
    return customer


def wallet_summary(session: Session, shop: Shop, external_id: str) -> dict:
    customer = require_customer(session, shop, external_id)
    wallet = find_wallet(session, customer, shop.currency)
    balance = wallet.balance if wallet else 0
    points_account = find_points(session, customer)  # reading creates nothing
    points = points_account.balance if points_account else 0
    holds = []
    if wallet:  # an expired hold reserves nothing, even before the hourly job closes it
        holds = (
            session.execute(
                select(Hold)
                .where(Hold.account_id == wallet.id, Hold.status == HoldStatus.OPEN, Hold.expires_at > utcnow())
                .order_by(Hold.id)
            )
            .scalars()
            .all()
        )
    held = sum(hold.amount for hold in holds)
    expiring = upcoming_expiries(session, wallet) if wallet else []
    return {
        "withdrawable": min(withdrawable(session, wallet), balance - held) if wallet else 0,
        "expiring": [
            {
                "amount": lot.remaining,
                "amount_formatted": format_amount(lot.remaining, shop.currency),
                "expires_at": lot.expires_at,
            }
            for lot in expiring
        ],
        "customer_id": customer.external_id,
        "currency": shop.currency,
        "balance": balance,
        "available": balance - held,
        "balance_formatted": format_amount(balance, shop.currency),
        "available_formatted": format_amount(balance - held, shop.currency),
        "points": points,
        "locked": bool(wallet and wallet.locked),
        "open_holds": [{"id": h.id, "amount": h.amount, "reason": h.reason, "expires_at": h.expires_at} for h in holds],
    }


def storefront_rules(shop: Shop) -> dict:
    """The shop's rules its storefront (the WooCommerce plugin) shows customers; it decides none of them."""
    settings = ShopSettings.load(shop.settings)
    names = (
        "partial_payments",
        "wallet_discount_kind",
        "wallet_discount_value",
        "topup_minimum",
        "topup_maximum",
        "points_conversion_points",
        "points_conversion_value",
        "points_conversion_minimum",
    )
    return {"currency": shop.currency, **{name: getattr(settings, name) for name in names}}


def account_overview(session: Session, shop: Shop, external_id: str, movements: int = 10) -> dict:
    """What the shop's "My Account → Wallet" shows, in one call: the wallet, its latest movements, the rules."""
    return {
        **wallet_summary(session, shop, external_id),
        "movements": statement(session, shop, external_id, limit=movements).lines,
        "rules": storefront_rules(shop),
    }


@dataclass(frozen=True)
class StatementPage:
    lines: list[dict]
    next_cursor: str | None


def _encode_cursor(entry_id: int) -> str:
    return base64.urlsafe_b64encode(str(entry_id).encode()).decode()


def _decode_cursor(cursor: str) -> int:
    try:
        entry_id = int(base64.urlsafe_b64decode(cursor.encode()).decode())
    except (ValueError, UnicodeDecodeError):
        entry_id = 0  # not a number: as invalid as one out of range
    if not 0 < entry_id <= MAX_ENTRY_ID:
        raise ValidationFailed("invalid cursor", fields={"cursor": "invalid cursor"})
    return entry_id


def statement(
    session: Session, shop: Shop, external_id: str, *, cursor: str | None = None, limit: int = 50
) -> StatementPage:
    """The customer's wallet and points movements, newest first, paged by entry id (an index scan)."""
    customer = require_customer(session, shop, external_id)
    account_ids = select(Account.id).where(Account.customer_id == customer.id, Account.shop_id == shop.id)
    query = (
        select(Entry, LedgerTransaction)
        .join(LedgerTransaction, LedgerTransaction.id == Entry.transaction_id)
        .where(Entry.account_id.in_(account_ids))
        .order_by(Entry.id.desc())
        .limit(limit + 1)
    )
    if cursor:
        query = query.where(Entry.id < _decode_cursor(cursor))
    rows = session.execute(query).all()
    lines = [_statement_line(entry, tx) for entry, tx in rows[:limit]]
    next_cursor = _encode_cursor(rows[limit - 1][0].id) if len(rows) > limit else None
    return StatementPage(lines, next_cursor)


def _statement_line(entry: Entry, tx: LedgerTransaction) -> dict:
    return {
        "transaction_id": tx.id,
        "kind": tx.kind,
        "reason": tx.reason,
        "amount": entry.amount,
        "currency": entry.currency,
        "amount_formatted": format_amount(entry.amount, entry.currency),
        "balance_after": entry.balance_after,
        "balance_after_formatted": None
        if entry.balance_after is None
        else format_amount(entry.balance_after, entry.currency),
        "unit": "points" if entry.currency == POINTS else "money",
        "order_id": tx.order_ref,
        "refund_id": tx.refund_ref,
        "actor": tx.actor_kind,
        "created_at": tx.created_at,
    }


def adjust_wallet(
    session: Session,
    shop: Shop,
    external_id: str,
    *,
    direction: str,
    amount: int,
    reason: str,
    idempotency_key: str,
    actor: Actor,
) -> Posted:
    """A merchant's manual credit or debit, with its reason, against the merchant-adjustments account."""
    if amount <= 0:
        raise ValidationFailed("amount must be positive", fields={"amount": "must be positive"})
    customer, wallet = customer_wallet(session, shop.id, external_id, shop.currency)
    other = system_account(session, shop.id, SystemAccount.MERCHANT_ADJUSTMENTS, shop.currency)
    signed = amount if direction == "credit" else -amount
    if signed < 0:
        ensure_unlocked(wallet)
    posted = post_transaction(
        session,
        shop_id=shop.id,
        kind="adjustment",
        reason=reason,
        legs=[Leg(wallet, signed), Leg(other, -signed)],
        idempotency_key=f"adjustment:{idempotency_key}",
        actor=actor,
    )
    if posted.replayed and posted.transaction.reason != reason.strip()[:500]:  # the ledger compares the money
        raise IdempotencyConflict(
            "this idempotency key was used with another reason",
            fields={"idempotency_key": "already used with different content"},
        )
    if not posted.replayed:
        verb = "credited to" if signed > 0 else "debited from"
        note = f"{format_amount(amount, shop.currency)} {verb} your wallet: {reason}"
        note_to_customer(
            session,
            shop_id=shop.id,
            customer_id=customer.id,
            note=note,
            dedupe_key=f"adjustment:{posted.transaction.id}",
        )
    return posted


# A second identical movement this soon is more likely the Back button or a second tab than a decision.
REPEAT_WINDOW = timedelta(minutes=10)
# Debits from this many whole units of the shop's currency up (500.00 EUR) are confirmed before they are
# recorded: a slip of the finger (50000 for 500.00) must not empty a wallet. A constant, not a setting, as it only
# asks and never refuses; in currencies of small units (JPY) it asks often.
LARGE_DEBIT_UNITS = 500


@dataclass(frozen=True)
class Doubts:
    """Why a manual movement should be confirmed before it is recorded."""

    repeats_one_of: datetime | None = None  # the same movement was recorded for the customer then
    large_debit: bool = False

    def __bool__(self) -> bool:
        return self.repeats_one_of is not None or self.large_debit


def large_debit(currency: str) -> int:
    return LARGE_DEBIT_UNITS * 10 ** exponent(currency)


def adjustment_doubts(session: Session, shop: Shop, external_id: str, signed: int, idempotency_key: str) -> Doubts:
    """None when this is a resend of the very same form, which its idempotency key already records once."""
    sent_before = select(LedgerTransaction.id).where(
        LedgerTransaction.shop_id == shop.id, LedgerTransaction.idempotency_key == idempotency_key
    )
    if session.scalar(sent_before):
        return Doubts()
    wallet = find_wallet(session, require_customer(session, shop, external_id), shop.currency)
    repeated = wallet and session.scalar(
        select(LedgerTransaction.created_at)
        .join(Entry, Entry.transaction_id == LedgerTransaction.id)
        .where(
            LedgerTransaction.shop_id == shop.id,
            LedgerTransaction.kind == "adjustment",
            LedgerTransaction.created_at >= utcnow() - REPEAT_WINDOW,
            Entry.account_id == wallet.id,
            Entry.amount == signed,
        )
        .order_by(LedgerTransaction.id.desc())
        .limit(1)
    )
    return Doubts(repeated or None, signed <= -large_debit(shop.currency))


# Holds the API made carry this prefix. The bridge's own holds (a checkout's reservation, a withdrawal request's)
# are settled by the order or the request they serve: captured or voided through the API, an order would be paid
# twice or a request left undecidable.
API_HOLD_PREFIX = "hold:"


def require_api_hold(session: Session, shop_id: int, hold_id: int) -> None:
    key = session.scalar(select(Hold.idempotency_key).where(Hold.id == hold_id, Hold.shop_id == shop_id))
    if key is None or not key.startswith(API_HOLD_PREFIX):
        raise NotFound("hold not found")


def hold_on_wallet(
    session: Session,
    shop: Shop,
    external_id: str,
    *,
    amount: int,
    reason: str,
    idempotency_key: str,
    expires_in_seconds: int,
    order_ref: str | None = None,
) -> tuple[Hold, bool]:
    customer = require_customer(session, shop, external_id)
    wallet = wallet_account(session, customer, shop.currency)
    return authorize_hold(
        session,
        account=wallet,
        amount=amount,
        reason=reason,
        idempotency_key=f"{API_HOLD_PREFIX}{idempotency_key}",
        expires_in=timedelta(seconds=expires_in_seconds),
        order_ref=order_ref,
    )
