"""Mirroring wallets to a shop's native store credit (Shopify), so a customer can spend the wallet at the
shop's own checkout. Every wallet movement the bridge makes becomes a credit or debit message in the
same transaction; movements the shop made itself (spending at its checkout, its refunds to store credit)
are recorded under NATIVE keys and not sent back."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.ledger import subscribe
from bridge.models import CreditLot, Customer, LedgerTransaction, Shop
from bridge.outbox import enqueue
from bridge.process_cache import cached, remember_on_commit

NATIVE = "native:"  # idempotency-key prefix of movements the shop already made on its side
_mirrored_platforms: set[str] = set()


def mirror_platform(platform: str) -> None:
    """The platform's shops keep wallets in their own store credit: every wallet posting is mirrored there."""
    _mirrored_platforms.add(platform)
    subscribe(mirror)


def is_mirrored(shop: Shop) -> bool:
    return shop.platform in _mirrored_platforms


def native_key(key: str) -> str:
    return NATIVE + key


def mirror(session: Session, transaction: LedgerTransaction, legs) -> None:
    """Queue the wallet legs of a posted transaction for the shop's store credit, when it has one."""
    wallet_legs = [leg for leg in legs if leg.account.kind == "wallet"]
    if not wallet_legs or transaction.idempotency_key.startswith(NATIVE):
        return
    if shop_platform(session, transaction.shop_id) not in _mirrored_platforms:
        return
    for leg in wallet_legs:
        customer = session.get(Customer, leg.account.customer_id)
        for index, (amount, expires_at) in enumerate(_portions(session, transaction, leg)):
            kind = "store_credit.credit" if amount > 0 else "store_credit.debit"
            payload = {
                "customer_id": customer.external_id,
                "currency": leg.account.currency,
                "amount": abs(amount),
                "expires_at": expires_at.isoformat() if expires_at else None,
                "transaction_id": transaction.id,
            }
            enqueue(
                session,
                shop_id=transaction.shop_id,
                kind=kind,
                payload=payload,
                dedupe_key=f"mirror:{transaction.id}:{leg.account.id}:{index}",
            )


def shop_platform(session: Session, shop_id: int) -> str:
    """A shop's platform never changes: read once per process."""
    platform = cached(session, "shop_platforms", shop_id)
    if platform is None:
        platform = session.get(Shop, shop_id).platform  # usually in the session already
        remember_on_commit(session, "shop_platforms", shop_id, platform)
    return platform


def _portions(session: Session, transaction: LedgerTransaction, leg) -> list[tuple[int, object]]:
    """A credit splits by the expiry of the lots it made (the shop's credit expires with them); a debit
    is one amount."""
    if leg.amount < 0:
        return [(leg.amount, None)]
    session.flush()
    by_expiry: dict = defaultdict(int)
    lots = select(CreditLot).where(CreditLot.transaction_id == transaction.id, CreditLot.account_id == leg.account.id)
    for lot in session.execute(lots).scalars():
        by_expiry[lot.expires_at] += lot.amount
    restored = leg.amount - sum(by_expiry.values())  # money given back to older lots
    if restored:
        by_expiry[None] += restored
    return [(amount, expires_at) for expires_at, amount in by_expiry.items()]
