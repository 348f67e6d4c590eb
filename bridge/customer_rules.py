"""A new customer of the shop gets a wallet, and the sign-up bonus when the shop gives one (once per e-mail address:
WooCommerce gives a customer deleted and registered again a new id)."""

from __future__ import annotations

from sqlalchemy import literal, select
from sqlalchemy.orm import Session

from bridge.accounts import SystemAccount, customer_wallet, system_account
from bridge.db import lowered
from bridge.decisions import promotional_expiry
from bridge.ledger import Actor, Leg, post_transaction
from bridge.lots import LotPolicy
from bridge.models import Account, Customer, Entry, LedgerTransaction, Shop
from bridge.money import format_amount
from bridge.orders import CustomerSnapshot
from bridge.settings_schema import ShopSettings


def apply_new_customer(session: Session, shop: Shop, snapshot: CustomerSnapshot, actor: Actor) -> Customer:
    return apply_customer(session, shop, snapshot, actor, is_new=True)


def apply_customer(
    session: Session, shop: Shop, snapshot: CustomerSnapshot, actor: Actor, *, is_new: bool = False
) -> Customer:
    customer, wallet = customer_wallet(
        session, shop.id, snapshot.external_id, shop.currency, email=snapshot.email, name=snapshot.name
    )
    settings = ShopSettings.load(shop.settings)
    bonus = settings.signup_bonus
    if is_new and bonus > 0 and not _bonus_given_to_the_address(session, shop.id, customer):
        post_transaction(
            session,
            shop_id=shop.id,
            kind="signup_bonus",
            reason=f"Welcome bonus: {format_amount(bonus, shop.currency)}",
            legs=[
                Leg(wallet, bonus),
                Leg(system_account(session, shop.id, SystemAccount.PROMOTIONS, shop.currency), -bonus),
            ],
            idempotency_key=f"customer:{snapshot.external_id}:signup_bonus",
            actor=actor,
            lots=LotPolicy(promo_expires_at=promotional_expiry(settings)),
        )
    return customer


def _bonus_given_to_the_address(session: Session, shop_id: int, customer: Customer) -> bool:
    """Whether another customer of the shop with this e-mail address had the sign-up bonus."""
    if not customer.email:
        return False
    same_address = select(Customer.id).where(
        Customer.shop_id == shop_id,
        Customer.id != customer.id,
        lowered(session, Customer.email) == lowered(session, literal(customer.email)),  # one lower() for both
    )
    bonus = (
        select(Entry.id)
        .join(LedgerTransaction, LedgerTransaction.id == Entry.transaction_id)
        .join(Account, Account.id == Entry.account_id)
        .where(
            LedgerTransaction.shop_id == shop_id,
            LedgerTransaction.kind == "signup_bonus",
            Account.customer_id.in_(same_address),
        )
    )
    return session.execute(bonus.limit(1)).first() is not None
