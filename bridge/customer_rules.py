"""A new customer of the shop gets a wallet, and the sign-up bonus when the shop gives one (once)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bridge.accounts import SystemAccount, customer_wallet, system_account
from bridge.decisions import promotional_expiry
from bridge.ledger import Actor, Leg, post_transaction
from bridge.lots import LotPolicy
from bridge.models import Customer, Shop
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
    if is_new and bonus > 0:
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
