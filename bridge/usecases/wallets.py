"""A shop's customers' wallets, as the HTTP API (and the shop's plugin) ask for them: each function is one
command or one read, in one transaction, for the shop that owns the API key."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bridge import audit
from bridge.accounts import wallet_account
from bridge.db import unit_of_work
from bridge.errors import PermanentFailure, ShopCallFailed, ValidationFailed
from bridge.ledger import Actor, Posted, capture_hold, expire_stale_holds, void_hold
from bridge.models import Customer, Entry, Hold, Shop, TopupRequest
from bridge.money import format_amount, parse_amount, with_decimal_point
from bridge.points import convert_points
from bridge.privacy import customer_data, erase_customer
from bridge.refund_requests import request_refund
from bridge.reservations import left_to_pay, release_reservation, reserve_for_order
from bridge.settings_schema import ShopSettings
from bridge.shops import get_shop
from bridge.tips import tip_order
from bridge.topups import begin_topup, end_topup_claim
from bridge.wallets import (
    Doubts,
    account_overview,
    adjust_wallet,
    adjustment_doubts,
    hold_on_wallet,
    require_api_hold,
    require_customer,
    statement,
    storefront_rules,
    wallet_summary,
)
from bridge.withdrawals import Withdrawal, approve_withdrawal, decline_withdrawal, request_withdrawal


def summary(sessions: sessionmaker[Session], shop_id: int, customer_id: str) -> dict:
    with unit_of_work(sessions) as session:
        return wallet_summary(session, get_shop(session, shop_id), customer_id)


def shop_rules(sessions: sessionmaker[Session], shop_id: int) -> dict:
    """The shop of an API key and the rules its storefront shows."""
    with unit_of_work(sessions) as session:
        shop = get_shop(session, shop_id)
        return {"name": shop.name, "rules": storefront_rules(shop)}


def account(sessions: sessionmaker[Session], shop_id: int, customer_id: str) -> dict:
    with unit_of_work(sessions) as session:
        return account_overview(session, get_shop(session, shop_id), customer_id)


def statement_page(sessions: sessionmaker[Session], shop_id: int, customer_id: str, **query) -> dict:
    with unit_of_work(sessions) as session:
        page = statement(session, get_shop(session, shop_id), customer_id, **query)
        return {"lines": page.lines, "next_cursor": page.next_cursor}


def adjust(
    sessions: sessionmaker[Session], shop_id: int, customer_id: str, *, key: str, actor: Actor, **adjustment
) -> dict:
    with unit_of_work(sessions) as session:
        shop = get_shop(session, shop_id)
        posted = adjust_wallet(session, shop, customer_id, idempotency_key=key, actor=actor, **adjustment)
        wallet = wallet_summary(session, shop, customer_id)
        return {
            "transaction_id": posted.transaction.id,
            "replayed": posted.replayed,
            "balance": wallet["balance"],
            "available": wallet["available"],
        }


def hold(
    sessions: sessionmaker[Session],
    shop_id: int,
    customer_id: str,
    *,
    key: str,
    amount: int,
    reason: str,
    expires_in_seconds: int,
    order_id: str | None = None,
) -> dict:
    with unit_of_work(sessions) as session:
        shop = get_shop(session, shop_id)
        held, replayed = hold_on_wallet(
            session,
            shop,
            customer_id,
            amount=amount,
            reason=reason,
            idempotency_key=key,
            expires_in_seconds=expires_in_seconds,
            order_ref=order_id,
        )
        available = wallet_summary(session, shop, customer_id)["available"]
        return {
            "hold_id": held.id,
            "status": held.status,
            "amount": held.amount,
            "replayed": replayed,
            "available": available,
        }


def reserve(
    sessions: sessionmaker[Session],
    shop_id: int,
    order_id: str,
    *,
    key: str,
    customer_id: str,
    amount: int,
    expires_in_seconds: int,
) -> dict:
    """Wallet money reserved for an order at checkout (all asked, or what the wallet has: partial payments)."""
    with unit_of_work(sessions) as session:
        shop = get_shop(session, shop_id)
        held, replayed = reserve_for_order(
            session,
            shop,
            customer_id,
            order_id,
            amount=amount,
            idempotency_key=key,
            expires_in=timedelta(seconds=expires_in_seconds),
        )
        available = wallet_summary(session, shop, customer_id)["available"]
        reserved = held.amount if held else 0
        return {
            "hold_id": held.id if held else None,
            "status": held.status if held else "nothing_due",
            "amount": reserved,
            "replayed": replayed,
            "left_to_pay": left_to_pay(shop, amount, reserved),
            "available": available,
        }


def release(sessions: sessionmaker[Session], shop_id: int, order_id: str) -> int:
    """What the order no longer reserves (minor units)."""
    with unit_of_work(sessions) as session:
        return release_reservation(session, shop_id, order_id)


def capture(sessions: sessionmaker[Session], shop_id: int, hold_id: int, amount: int | None, actor: Actor) -> dict:
    with unit_of_work(sessions) as session:
        require_api_hold(session, shop_id, hold_id)
        posted = capture_hold(session, shop_id=shop_id, hold_id=hold_id, amount=amount, actor=actor)
        return _hold_state(session.get(Hold, hold_id), posted.transaction.id)


def void(sessions: sessionmaker[Session], shop_id: int, hold_id: int) -> dict:
    with unit_of_work(sessions) as session:
        require_api_hold(session, shop_id, hold_id)
        return _hold_state(void_hold(session, shop_id=shop_id, hold_id=hold_id))


def _hold_state(held: Hold, transaction_id: int | None = None) -> dict:
    return {
        "hold_id": held.id,
        "status": held.status,
        "captured_amount": held.captured_amount,
        "transaction_id": transaction_id or held.capture_transaction_id,
    }


def convert(
    sessions: sessionmaker[Session], shop_id: int, customer_id: str, points: int | None, key: str, actor: Actor
) -> dict:
    with unit_of_work(sessions) as session:
        shop = get_shop(session, shop_id)
        customer = require_customer(session, shop, customer_id)
        posted = convert_points(
            session, shop, ShopSettings.load(shop.settings), customer, points, f"conversion:{key}", actor=actor
        )
        wallet = wallet_summary(session, shop, customer_id)
        return {
            "transaction_id": posted.transaction.id,
            "replayed": posted.replayed,
            "points": wallet["points"],
            "balance": wallet["balance"],
        }


# (customer id, amount, currency, top-up request id, retry: look for an order made before) → (order id, URL)
CreateTopupOrder = Callable[[str, int, str, int, bool], tuple[str, str]]
# the shop → how to make its top-up orders; raises PermanentFailure when the shop cannot (not connected)
TopupOrders = Callable[[Shop], CreateTopupOrder]


def top_up(
    sessions: sessionmaker[Session],
    shop_id: int,
    customer_id: str,
    amount: int,
    key: str,
    lease: timedelta,
    orders: TopupOrders,
) -> dict:
    """Record the request, have the shop make the order it is paid through, record the order. The shop is
    called between two transactions: a call that dies there leaves a claim the next retry takes over; when
    the shop fails, ShopCallFailed is raised and nothing is recorded."""
    with unit_of_work(sessions) as session:
        shop = get_shop(session, shop_id)
        try:  # before anything is written: an unconnected shop cannot take a top-up
            create_order = orders(shop)
        except PermanentFailure as exc:
            raise ValidationFailed(str(exc), fields={"shop": "not connected"}, code="shop_not_connected") from exc
        request, retry = begin_topup(session, shop, customer_id, amount, key, lease)
        if request.order_external_id:
            return _topup_out(request)
        request_id, currency = request.id, request.currency
    try:
        order_id, payment_url = create_order(customer_id, amount, currency, request_id, retry)
    except ShopCallFailed:  # no order recorded: the same key finds or creates it later
        with unit_of_work(sessions) as session:
            end_topup_claim(session, request_id)
        raise
    with unit_of_work(sessions) as session:
        return _topup_out(end_topup_claim(session, request_id, order_id, payment_url))


def _topup_out(request: TopupRequest) -> dict:
    return {"order_id": request.order_external_id, "payment_url": request.payment_url, "amount": request.amount}


def withdraw(
    sessions: sessionmaker[Session], shop_id: int, customer_id: str, amount: int, key: str, actor: Actor
) -> dict:
    with unit_of_work(sessions) as session:
        shop = get_shop(session, shop_id)
        require_customer(session, shop, customer_id)
        made = request_withdrawal(session, shop, customer_id, amount, key, actor)
        return {
            "request_id": made.request.id,
            "status": made.request.status,
            "amount": made.request.amount,
            "transaction_ids": [p.transaction.id for p in made.posted],
            "replayed": made.replayed,
            "balance": wallet_summary(session, shop, customer_id)["balance"],
        }


@dataclass(frozen=True)
class Requested:
    amount: int
    currency: str
    status: str  # pending: waits for the merchant's approval; approved: paid out


def withdraw_from_statement(
    sessions: sessionmaker[Session], shop_id: int, external_id: str, amount_text: str, form_token: str
) -> Requested:
    """The customer asks to withdraw from their statement page (a decimal comma is fine); once per form."""
    with unit_of_work(sessions) as session:
        shop = get_shop(session, shop_id)
        customer = require_customer(session, shop, external_id)
        amount = parse_amount(with_decimal_point(amount_text.strip()), shop.currency)
        made = request_withdrawal(
            session,
            shop,
            external_id,
            amount,
            f"statement:{customer.id}:{form_token}:withdraw",
            Actor("customer", external_id),
        )
        return Requested(made.request.amount, made.request.currency, made.request.status)


def decide_withdrawal(
    sessions: sessionmaker[Session], shop_id: int, request_id: int, who: audit.Who, *, approve: bool, reason: str = ""
) -> Withdrawal:
    """The merchant approves (pays out) or declines (frees the hold, tells the customer why) a waiting request;
    audited once, not when it was already decided."""
    actor = Actor("merchant", who.label[:120])
    with unit_of_work(sessions) as session:
        shop = get_shop(session, shop_id)
        if approve:
            made = approve_withdrawal(session, shop, request_id, actor)
        else:
            made = decline_withdrawal(session, shop, request_id, reason, actor)
        asked = made.request
        if not made.replayed:
            customer = session.get(Customer, asked.customer_id)
            audit.record(
                session,
                who,
                f"withdrawal.{'approve' if approve else 'decline'}",
                shop_id=shop_id,
                target=customer.external_id,
                field=f"request #{asked.id}",
                old="pending",
                new=f"{asked.status}: {format_amount(asked.amount, asked.currency)}"
                + (f" ({asked.decline_reason})" if asked.decline_reason else ""),
            )
        return made


def personal_data(sessions: sessionmaker[Session], shop_id: int, external_id: str, who: audit.Who) -> dict:
    """Everything held about a customer (an access request), audited without the data itself."""
    with unit_of_work(sessions) as session:
        data = customer_data(session, get_shop(session, shop_id), external_id)
        audit.record(
            session, who, "customer.export", shop_id=shop_id, target=external_id, field="personal data", new="exported"
        )
        return data


def erase(sessions: sessionmaker[Session], shop_id: int, external_id: str, who: audit.Who) -> None:
    """An erasure request: personal data scrubbed, the ledger (and the balance owed) untouched; audited."""
    with unit_of_work(sessions) as session:
        erased = erase_customer(session, get_shop(session, shop_id), external_id)
        audit.record(
            session,
            who,
            "customer.erase",
            shop_id=shop_id,
            target=external_id,
            field="personal data",
            new=f"erased; {erased.deliveries_scrubbed} stored webhook bodies scrubbed",
        )


def ask_refund(sessions: sessionmaker[Session], shop_id: int, order_id: str, key: str, **request) -> dict:
    with unit_of_work(sessions) as session:
        made = request_refund(session, get_shop(session, shop_id), order_id, key=key, **request)
        return {"request_id": made.id, "status": made.status, "destination": made.destination, "amount": made.amount}


def tip(
    sessions: sessionmaker[Session],
    shop_id: int,
    order_id: str,
    *,
    percent_bp: int | None,
    amount: int | None,
    key: str,
    actor: Actor,
) -> dict:
    with unit_of_work(sessions) as session:
        posted = tip_order(
            session, get_shop(session, shop_id), order_id, percent_bp=percent_bp, amount=amount, key=key, actor=actor
        )
        tipped = session.scalar(select(func.max(Entry.amount)).where(Entry.transaction_id == posted.transaction.id))
        return {"transaction_id": posted.transaction.id, "replayed": posted.replayed, "amount": tipped}


def known_customer(sessions: sessionmaker[Session], shop_id: int, customer_id: str) -> None:
    """Raises NotFound unless the shop has this customer."""
    with unit_of_work(sessions) as session:
        require_customer(session, get_shop(session, shop_id), customer_id)


def release_stale_holds(sessions: sessionmaker[Session]) -> int:
    """Holds whose time ran out give their money back to `available` (`wallet-bridge expire`)."""
    with unit_of_work(sessions) as session:
        return expire_stale_holds(session)


@dataclass(frozen=True)
class Adjusted:
    posted: Posted | None  # None: not recorded, for the doubts to be confirmed first
    balance: int = 0
    doubts: Doubts = Doubts()


def adjust_by_merchant(
    sessions: sessionmaker[Session],
    shop_id: int,
    external_id: str,
    who: audit.Who,
    actor: Actor,
    *,
    direction: str,
    amount: int,
    reason: str,
    key: str,
    confirmed: bool,
) -> Adjusted:
    """A manual credit or debit from the console, recorded only once its doubts were confirmed."""
    signed = amount if direction == "credit" else -amount
    with unit_of_work(sessions) as session:
        shop = get_shop(session, shop_id)
        doubts = Doubts() if confirmed else adjustment_doubts(session, shop, external_id, signed, f"adjustment:{key}")
        if doubts:
            return Adjusted(None, doubts=doubts)
        posted = adjust_wallet(
            session,
            shop,
            external_id,
            direction=direction,
            amount=amount,
            reason=reason,
            idempotency_key=key,
            actor=actor,
        )
        balance = wallet_summary(session, shop, external_id)["balance"]
        if not posted.replayed:
            audit.record(
                session,
                who,
                f"wallet.{direction}",
                shop_id=shop_id,
                target=external_id,
                field="balance",
                old=format_amount(balance - signed, shop.currency),
                new=format_amount(balance, shop.currency),
            )
        return Adjusted(posted, balance)


def set_locked(sessions: sessionmaker[Session], shop_id: int, external_id: str, locked: bool, who: audit.Who) -> bool:
    """Lock or unlock the customer's wallet; False when it already was."""
    with unit_of_work(sessions) as session:
        shop = get_shop(session, shop_id)
        wallet = wallet_account(session, require_customer(session, shop, external_id), shop.currency)
        if bool(wallet.locked) == locked:
            return False
        wallet.locked = locked
        state = {False: "unlocked", True: "locked"}
        audit.record(
            session,
            who,
            f"wallet.{'lock' if locked else 'unlock'}",
            shop_id=shop_id,
            target=external_id,
            field="locked",
            old=state[not locked],
            new=state[locked],
        )
        return True


def convert_from_statement(sessions: sessionmaker[Session], shop_id: int, external_id: str, form_token: str) -> None:
    """The customer converts all their points from their statement page (the form's token: once per form)."""
    with unit_of_work(sessions) as session:
        shop = get_shop(session, shop_id)
        customer = require_customer(session, shop, external_id)
        key, actor = f"statement:{customer.id}:{form_token}", Actor("customer", customer.external_id)
        convert_points(session, shop, ShopSettings.load(shop.settings), customer, None, key, actor=actor)
