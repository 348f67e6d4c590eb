"""Withdrawals: a customer takes back unspent money they deposited (top-ups only; promotional credit
and refunds stay in the shop). Each top-up order it came from is refunded to the card by the shop."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bridge.accounts import SystemAccount, ensure_customer, system_account, wallet_account
from bridge.db import insert_ignoring_conflict, total
from bridge.errors import IdempotencyConflict, InvalidState, NotFound, ValidationFailed
from bridge.ledger import (
    SYSTEM,
    Actor,
    Leg,
    Posted,
    authorize_hold,
    ensure_unlocked,
    find_transaction,
    post_transaction,
    release_expired_holds,
    void_hold,
)
from bridge.lots import LotPolicy, deposited, withdrawable
from bridge.models import Account, CreditLot, Customer, Entry, LedgerTransaction, Shop, WithdrawalRequest, utcnow
from bridge.money import format_amount
from bridge.outbox import enqueue, note_to_customer
from bridge.settings_schema import ShopSettings
from bridge.topups import take_back_card_refunds

# A request waits for the merchant, its amount held on the wallet meanwhile; a hold needs an expiry, and this one
# outlasts any queue a shop keeps (an expired hold frees the money, and approval checks it is still there).
PENDING_HOLD = timedelta(days=365)


@dataclass(frozen=True)
class Withdrawal:
    request: WithdrawalRequest
    posted: list[Posted]  # the payout's transactions, one per top-up order (none while the request waits)
    replayed: bool


def request_withdrawal(
    session: Session, shop: Shop, external_id: str, amount: int, key: str, actor: Actor
) -> Withdrawal:
    """A customer asks to withdraw deposited money, within the shop's limits and what they deposited and have not
    spent (less what their other requests wait for). Paid out at once when the shop approves withdrawals
    automatically; otherwise its amount is held until the merchant approves or declines it. The same key returns
    the first request; with another amount or customer it is a conflict. The wallet is locked before the key is
    looked up: the same request sent twice at once waits for the first, and then finds it."""
    customer = ensure_customer(session, shop.id, external_id)
    wallet = wallet_account(session, customer, shop.currency, lock=True)
    earlier = _request_with_key(session, shop, key)
    if earlier is not None:
        return _replayed(session, shop, earlier, external_id, amount)
    settings = ShopSettings.load(shop.settings)
    _ensure_within_limits(settings, amount, shop.currency)
    ensure_unlocked(wallet)
    release_expired_holds(session, wallet)
    _ensure_withdrawable(session, wallet, amount)
    values = {"shop_id": shop.id, "customer_id": customer.id, "idempotency_key": key, "amount": amount}
    request = insert_ignoring_conflict(
        session,
        WithdrawalRequest,
        {**values, "currency": shop.currency, "status": "pending"},
        ["shop_id", "idempotency_key"],
    )
    if request is None:  # another customer's request took the key meanwhile
        return _replayed(session, shop, _request_with_key(session, shop, key), external_id, amount)
    if settings.withdrawal_approval == "automatic":
        return Withdrawal(request, _pay_out(session, shop, wallet, request, actor), replayed=False)
    hold, _ = authorize_hold(
        session,
        account=wallet,
        amount=amount,
        expires_in=PENDING_HOLD,
        reason=f"Withdrawal request #{request.id}, waiting for the shop's approval",
        idempotency_key=f"withdrawal-request:{request.id}",
    )
    request.hold_id = hold.id
    return Withdrawal(request, [], replayed=False)


def _request_with_key(session: Session, shop: Shop, key: str) -> WithdrawalRequest | None:
    return session.execute(
        select(WithdrawalRequest).where(WithdrawalRequest.shop_id == shop.id, WithdrawalRequest.idempotency_key == key)
    ).scalar_one_or_none()


def approve_withdrawal(session: Session, shop: Shop, request_id: int, actor: Actor) -> Withdrawal:
    """The merchant approves a waiting request: its hold is released and the money paid out, if the customer
    still has it (a hold can expire). Approving it again returns the first payout."""
    request = _locked_request(session, shop, request_id)
    if request.status == "approved":
        return Withdrawal(request, _posted(session, shop, request), replayed=True)
    if request.status != "pending":
        raise InvalidState(f"this request was {request.status}", fields={"request_id": request.status})
    void_hold(session, shop_id=shop.id, hold_id=request.hold_id)
    wallet = wallet_account(session, session.get(Customer, request.customer_id), request.currency, lock=True)
    ensure_unlocked(wallet)
    release_expired_holds(session, wallet)
    _ensure_withdrawable(session, wallet, request.amount, besides=request.id)
    return Withdrawal(request, _pay_out(session, shop, wallet, request, actor), replayed=False)


def decline_withdrawal(session: Session, shop: Shop, request_id: int, reason: str, actor: Actor) -> Withdrawal:
    """The merchant declines a waiting request: the held money is free again and the customer is told why.
    Declining it again changes nothing (replayed)."""
    request = _locked_request(session, shop, request_id)
    if request.status == "declined":
        return Withdrawal(request, [], replayed=True)
    if request.status != "pending":
        raise InvalidState(f"this request was {request.status}", fields={"request_id": request.status})
    void_hold(session, shop_id=shop.id, hold_id=request.hold_id)
    # what the card got back of a top-up while the request held the money was left in the wallet (it takes only what
    # is free): free now, it goes
    customer = session.get(Customer, request.customer_id)
    take_back_card_refunds(session, shop.id, wallet_account(session, customer, request.currency), actor)
    _decided(request, "declined", actor)
    request.decline_reason = reason
    shown = format_amount(request.amount, request.currency)
    note_to_customer(
        session,
        shop_id=shop.id,
        customer_id=request.customer_id,
        note=f"Your request to withdraw {shown} was declined: {reason} The money stays in your wallet.",
        dedupe_key=f"withdrawal-request:{request.id}:declined",
    )
    return Withdrawal(request, [], replayed=False)


def withdrawal_requests(
    session: Session, shop: Shop, status: str, limit: int = 100, after: int = 0
) -> list[tuple[WithdrawalRequest, Customer]]:
    """A shop's requests in one state with their customers: the waiting ones oldest first (a queue, paged by the
    last id shown: `after`), the decided newest first."""
    order = WithdrawalRequest.id.asc() if status == "pending" else WithdrawalRequest.id.desc()
    rows = session.execute(
        select(WithdrawalRequest, Customer)
        .join(Customer, Customer.id == WithdrawalRequest.customer_id)
        .where(WithdrawalRequest.shop_id == shop.id, WithdrawalRequest.status == status, WithdrawalRequest.id > after)
        .order_by(order)
        .limit(limit)
    ).all()
    return [(request, customer) for request, customer in rows]


def waiting_requests(session: Session, shop: Shop) -> int:
    return session.scalar(
        select(func.count())
        .select_from(WithdrawalRequest)
        .where(WithdrawalRequest.shop_id == shop.id, WithdrawalRequest.status == "pending")
    )


def _ensure_within_limits(settings: ShopSettings, amount: int, currency: str) -> None:
    minimum, maximum = max(settings.withdrawal_minimum, 1), settings.withdrawal_maximum  # never nothing
    if amount < minimum:
        raise ValidationFailed(
            f"a withdrawal is at least {format_amount(minimum, currency)}",
            fields={"amount": f"at least {format_amount(minimum, currency)}"},
        )
    if maximum and amount > maximum:
        raise ValidationFailed(
            f"a withdrawal is at most {format_amount(maximum, currency)}",
            fields={"amount": f"at most {format_amount(maximum, currency)}"},
        )


def _ensure_withdrawable(session: Session, wallet: Account, amount: int, besides: int | None = None) -> None:
    """Only unspent top-up money leaves, and only once: what other waiting requests hold is already promised."""
    waiting = select(total(WithdrawalRequest.amount)).where(
        WithdrawalRequest.customer_id == wallet.customer_id,
        WithdrawalRequest.currency == wallet.currency,
        WithdrawalRequest.status == "pending",
        WithdrawalRequest.id != (besides or 0),
    )
    allowed = min(withdrawable(session, wallet) - session.scalar(waiting), wallet.available)
    if amount > allowed:
        raise ValidationFailed(
            f"only unspent top-up money can be withdrawn ({format_amount(max(allowed, 0), wallet.currency)} now)",
            fields={"amount": f"at most {format_amount(max(allowed, 0), wallet.currency)}"},
        )


def _pay_out(session: Session, shop: Shop, wallet: Account, request: WithdrawalRequest, actor: Actor) -> list[Posted]:
    """Debit the wallet from its top-up lots, one transaction per top-up order, each with an outbox message asking
    the shop to refund that order to the card."""
    lots = (
        session.execute(select(CreditLot).where(*deposited(wallet), CreditLot.remaining > 0).order_by(CreditLot.id))
        .scalars()
        .all()
    )
    posted, left = [], request.amount
    for index, lot in enumerate(lots):
        if not left:
            break
        portion = min(left, lot.remaining)
        posted.append(
            _withdraw_from(session, shop, wallet, lot, portion, _lot_key(request.idempotency_key, index), actor)
        )
        left -= portion
    _decided(request, "approved", actor)
    return posted


def _decided(request: WithdrawalRequest, status: str, actor: Actor) -> None:
    request.status, request.decided_at = status, utcnow()
    request.decided_by = f"{actor.kind}:{actor.id}" if actor.id else actor.kind


def _locked_request(session: Session, shop: Shop, request_id: int) -> WithdrawalRequest:
    request = session.execute(
        select(WithdrawalRequest)
        .where(WithdrawalRequest.id == request_id, WithdrawalRequest.shop_id == shop.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if request is None:
        raise NotFound("withdrawal request not found")
    return request


def _replayed(session: Session, shop: Shop, request: WithdrawalRequest, external_id: str, amount: int) -> Withdrawal:
    """A retry asks for what the first request did: the same amount from the same customer's wallet."""
    customer = session.get(Customer, request.customer_id)
    if (customer.external_id, request.amount) != (external_id, amount):
        raise IdempotencyConflict(
            "this idempotency key was used for a different withdrawal",
            fields={"idempotency_key": "already used with different content"},
        )
    return Withdrawal(request, _posted(session, shop, request), replayed=True)


def _posted(session: Session, shop: Shop, request: WithdrawalRequest) -> list[Posted]:
    return [Posted(tx, replayed=True) for tx in _transactions_for(session, shop, request.idempotency_key)]


def _lot_key(key: str, index: int) -> str:
    return f"withdrawal:{key}:{index}"


def _transactions_for(session: Session, shop: Shop, key: str) -> list[LedgerTransaction]:
    """The withdrawal's transactions by their exact keys, one per top-up lot (0, 1, …): never another key's
    that begins the same (`x:0` for `x`) nor a restored withdrawal's."""
    found: list[LedgerTransaction] = []
    while (transaction := find_transaction(session, shop.id, _lot_key(key, len(found)))) is not None:
        found.append(transaction)
    return found


def _withdraw_from(session, shop, wallet, lot: CreditLot, amount: int, key: str, actor: Actor) -> Posted:
    order_id = session.get(LedgerTransaction, lot.transaction_id).order_ref
    posted = post_transaction(
        session,
        shop_id=shop.id,
        kind="withdrawal",
        reason=f"Withdrawal of {format_amount(amount, wallet.currency)} to the card that paid top-up #{order_id}",
        legs=[
            Leg(wallet, -amount),
            Leg(system_account(session, shop.id, SystemAccount.WITHDRAWALS_PAID, wallet.currency), amount),
        ],
        idempotency_key=key,
        actor=actor,
        order_ref=order_id,
        lots=LotPolicy(lot_id=lot.id),
    )
    enqueue(
        session,
        shop_id=shop.id,
        kind="order.refund",
        payload={
            "order_id": order_id,
            "amount": amount,
            "transaction_id": posted.transaction.id,
            "reason": "Wallet withdrawal",
            "api_refund": True,
        },
        dedupe_key=f"withdrawal:{posted.transaction.id}",
    )
    return posted


def restore_refused_withdrawal(session: Session, shop: Shop, transaction_id: int, why: str) -> bool:
    """The shop refused to refund the card: the money goes back to the wallet (into the lot it came
    from), once. The customer is told in plain words; the shop's technical reason (`why`) goes to the
    merchant in a private note, never to the customer or their statement. Returns False when it was
    restored before."""
    withdrawal = session.get(LedgerTransaction, transaction_id)
    if withdrawal is None or withdrawal.shop_id != shop.id or withdrawal.kind != "withdrawal":
        raise NotFound("withdrawal not found")
    wallet, debited = session.execute(
        select(Account, Entry.amount)
        .join(Entry, Entry.account_id == Account.id)
        .where(Entry.transaction_id == withdrawal.id, Account.kind == "wallet")
    ).one()
    amount, shown = -debited, format_amount(-debited, wallet.currency)
    posted = post_transaction(
        session,
        shop_id=shop.id,
        kind="withdrawal_reversal",
        reason=f"Withdrawal refused by the shop: {shown} back in the wallet",
        legs=[
            Leg(wallet, amount),
            Leg(system_account(session, shop.id, SystemAccount.WITHDRAWALS_PAID, wallet.currency), -amount),
        ],
        idempotency_key=f"withdrawal:{transaction_id}:restored",
        order_ref=withdrawal.order_ref,
    )
    if not posted.replayed:
        take_back_card_refunds(session, shop.id, wallet, SYSTEM)  # the shop may have refunded that top-up after all
        note = (
            f"Your withdrawal of {shown} could not be refunded to your card by the shop. It is back in your "
            "wallet; please contact the shop if you still want it paid out."
        )
        enqueue(
            session,
            shop_id=shop.id,
            kind="order.note",
            payload={"order_id": withdrawal.order_ref, "note": note},
            dedupe_key=f"withdrawal:{transaction_id}:refused",
        )
        detail = (
            f"Wallet Bridge: the refund of {shown} to the card for a wallet withdrawal was refused ({why}). "
            "The money is back in the customer's wallet."
        )
        enqueue(
            session,
            shop_id=shop.id,
            kind="order.note",
            payload={"order_id": withdrawal.order_ref, "note": detail, "customer_note": False},
            dedupe_key=f"withdrawal:{transaction_id}:refused-detail",
        )
    return not posted.replayed


def is_restored(session: Session, shop: Shop, transaction_id: int) -> bool:
    key = f"withdrawal:{transaction_id}:restored"
    query = select(LedgerTransaction.id).where(
        LedgerTransaction.shop_id == shop.id, LedgerTransaction.idempotency_key == key
    )
    return session.execute(query).first() is not None
