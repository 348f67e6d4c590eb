"""Withdrawals: a customer takes back unspent money they deposited (top-ups only; promotional credit
and refunds stay in the shop). Each top-up order it came from is refunded to the card by the shop."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.accounts import SystemAccount, customer_wallet, system_account
from bridge.db import total
from bridge.errors import IdempotencyConflict, NotFound, ValidationFailed
from bridge.ledger import (
    SYSTEM,
    Actor,
    Leg,
    Posted,
    ensure_unlocked,
    find_transaction,
    post_transaction,
    release_expired_holds,
)
from bridge.lots import LotPolicy, deposited, withdrawable
from bridge.models import Account, CreditLot, Customer, Entry, LedgerTransaction, Shop
from bridge.money import format_amount
from bridge.outbox import enqueue
from bridge.topups import take_back_card_refunds


def request_withdrawal(
    session: Session, shop: Shop, external_id: str, amount: int, key: str, actor: Actor
) -> list[Posted]:
    """Debit the wallet from its top-up lots, one transaction per top-up order, each with an outbox
    message asking the shop to refund that order to the card. The same key returns the first result; with
    another amount or customer it is a conflict."""
    earlier = _transactions_for(session, shop, key)
    if earlier:
        _ensure_same_withdrawal(session, earlier, external_id, amount)
        return [Posted(tx, replayed=True) for tx in earlier]
    customer, wallet = customer_wallet(session, shop.id, external_id, shop.currency, lock=True)
    ensure_unlocked(wallet)
    release_expired_holds(session, wallet)
    allowed = min(withdrawable(session, wallet), wallet.available)
    if amount > allowed:
        raise ValidationFailed(
            f"only unspent top-up money can be withdrawn ({format_amount(allowed, shop.currency)} now)",
            fields={"amount": f"at most {format_amount(max(allowed, 0), shop.currency)}"},
        )
    lots = session.execute(
        select(CreditLot).where(*deposited(wallet), CreditLot.remaining > 0).order_by(CreditLot.id)
    ).scalars().all()  # fmt: skip
    posted, left = [], amount
    for index, lot in enumerate(lots):
        if not left:
            break
        portion = min(left, lot.remaining)
        posted.append(_withdraw_from(session, shop, wallet, lot, portion, _lot_key(key, index), actor))
        left -= portion
    return posted


def _lot_key(key: str, index: int) -> str:
    return f"withdrawal:{key}:{index}"


def _transactions_for(session: Session, shop: Shop, key: str) -> list[LedgerTransaction]:
    """The withdrawal's transactions by their exact keys, one per top-up lot (0, 1, …): never another key's
    that begins the same (`x:0` for `x`) nor a restored withdrawal's."""
    found: list[LedgerTransaction] = []
    while (transaction := find_transaction(session, shop.id, _lot_key(key, len(found)))) is not None:
        found.append(transaction)
    return found


def _ensure_same_withdrawal(session: Session, earlier: list[LedgerTransaction], external_id: str, amount: int) -> None:
    """A retry asks for what the first request did: the same amount from the same customer's wallet."""
    debited = session.execute(
        select(Customer.external_id, total(Entry.amount))
        .join(Account, Account.id == Entry.account_id)
        .join(Customer, Customer.id == Account.customer_id)
        .where(Entry.transaction_id.in_([transaction.id for transaction in earlier]), Account.kind == "wallet")
        .group_by(Customer.external_id)
    ).all()
    if [tuple(row) for row in debited] != [(external_id, -amount)]:
        raise IdempotencyConflict(
            "this idempotency key was used for a different withdrawal",
            fields={"idempotency_key": "already used with different content"},
        )


def _withdraw_from(session, shop, wallet, lot: CreditLot, amount: int, key: str, actor: Actor) -> Posted:
    order_id = session.get(LedgerTransaction, lot.transaction_id).order_ref
    posted = post_transaction(
        session, shop_id=shop.id, kind="withdrawal",
        reason=f"Withdrawal of {format_amount(amount, wallet.currency)} to the card that paid top-up #{order_id}",
        legs=[Leg(wallet, -amount),
              Leg(system_account(session, shop.id, SystemAccount.WITHDRAWALS_PAID, wallet.currency), amount)],
        idempotency_key=key, actor=actor, order_ref=order_id, lots=LotPolicy(lot_id=lot.id),
    )  # fmt: skip
    enqueue(session, shop_id=shop.id, kind="order.refund",
            payload={"order_id": order_id, "amount": amount, "transaction_id": posted.transaction.id,
                     "reason": "Wallet withdrawal", "api_refund": True},
            dedupe_key=f"withdrawal:{posted.transaction.id}")  # fmt: skip
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
        session, shop_id=shop.id, kind="withdrawal_reversal",
        reason=f"Withdrawal refused by the shop: {shown} back in the wallet",
        legs=[Leg(wallet, amount),
              Leg(system_account(session, shop.id, SystemAccount.WITHDRAWALS_PAID, wallet.currency), -amount)],
        idempotency_key=f"withdrawal:{transaction_id}:restored", order_ref=withdrawal.order_ref,
    )  # fmt: skip
    if not posted.replayed:
        take_back_card_refunds(session, shop.id, wallet, SYSTEM)  # the shop may have refunded that top-up after all
        note = (f"Your withdrawal of {shown} could not be refunded to your card by the shop. It is back in your "
                "wallet; please contact the shop if you still want it paid out.")
        enqueue(session, shop_id=shop.id, kind="order.note", payload={"order_id": withdrawal.order_ref, "note": note},
                dedupe_key=f"withdrawal:{transaction_id}:refused")  # fmt: skip
        detail = (f"Wallet Bridge: the refund of {shown} to the card for a wallet withdrawal was refused ({why}). "
                  "The money is back in the customer's wallet.")
        enqueue(session, shop_id=shop.id, kind="order.note",
                payload={"order_id": withdrawal.order_ref, "note": detail, "customer_note": False},
                dedupe_key=f"withdrawal:{transaction_id}:refused-detail")  # fmt: skip
    return not posted.replayed


def is_restored(session: Session, shop: Shop, transaction_id: int) -> bool:
    key = f"withdrawal:{transaction_id}:restored"
    query = select(LedgerTransaction.id).where(LedgerTransaction.shop_id == shop.id,
                                               LedgerTransaction.idempotency_key == key)  # fmt: skip
    return session.execute(query).first() is not None
