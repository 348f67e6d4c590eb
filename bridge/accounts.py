"""Customers and their accounts, created on first use; system accounts per shop for the other side."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import String, bindparam, cast, literal, select
from sqlalchemy.orm import Session

from bridge.db import insert_ignoring_conflict
from bridge.models import Account, Customer, utcnow
from bridge.money import POINTS
from bridge.process_cache import attached, cached, columns_of, remember_on_commit


class SystemAccount(StrEnum):
    """The shop's side of each kind of movement, so every transaction balances."""

    REFUNDS_ISSUED = "refunds_issued"
    TOPUPS_RECEIVED = "topups_received"
    WALLET_PAYMENTS = "wallet_payments"
    PROMOTIONS = "promotions"
    POINTS_ISSUED = "points_issued"
    POINTS_CONVERSION = "points_conversion"
    MERCHANT_ADJUSTMENTS = "merchant_adjustments"
    EXPIRED_CREDIT = "expired_credit"
    WITHDRAWALS_PAID = "withdrawals_paid"
    TIPS = "tips"


def ensure_customer(
    session: Session, shop_id: int, external_id: str, *, email: str | None = None, name: str | None = None
) -> Customer:
    """The shop's customer by its own id, created on first sight; contact details refreshed when given."""
    customer = find_customer(session, shop_id, external_id) or insert_ignoring_conflict(
        session,
        Customer,
        {"shop_id": shop_id, "external_id": external_id, "email": email, "name": name, "created_at": utcnow()},
        ["shop_id", "external_id"],
    )
    customer = customer or find_customer(session, shop_id, external_id)  # created meanwhile by another request
    return with_contact(customer, email, name)


def with_contact(customer: Customer, email: str | None, name: str | None) -> Customer:
    """The customer with the contact details a shop sent, where it sent any."""
    if email and customer.email != email:
        customer.email = email
    if name and customer.name != name:
        customer.name = name
    return customer


def customer_wallet(
    session: Session,
    shop_id: int,
    external_id: str,
    currency: str,
    *,
    lock: bool = False,
    email: str | None = None,
    name: str | None = None,
) -> tuple[Customer, Account]:
    """`ensure_customer` then `wallet_account`, in one statement when both exist (the common case: every
    payment and top-up of a known customer)."""
    query = _LOCKED_CUSTOMER_WALLET if lock else _CUSTOMER_WALLET
    found = session.execute(
        query,
        {"shop_id": shop_id, "external_id": external_id, "currency": currency},
        execution_options={"populate_existing": True},
    ).one_or_none()
    if found is None:  # a new customer, or one without a wallet in this currency yet
        customer = ensure_customer(session, shop_id, external_id, email=email, name=name)
        return customer, wallet_account(session, customer, currency, lock)
    return with_contact(found.Customer, email, name), found.Account


# Built once: these lookups run on every payment, and building the expression costs more than running it.
_CUSTOMER = select(Customer).where(
    Customer.shop_id == bindparam("shop_id"), Customer.external_id == bindparam("external_id")
)
_ACCOUNT = select(Account).where(Account.shop_id == bindparam("shop_id"), Account.code == bindparam("code"))
_LOCKED_ACCOUNT = _ACCOUNT.with_for_update()  # FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE serializes writers
_CUSTOMER_WALLET = _CUSTOMER.add_columns(Account).join(
    Account,
    (Account.shop_id == Customer.shop_id)
    & (Account.code == literal("wallet:") + cast(Customer.id, String) + ":" + bindparam("currency")),
)  # the code wallet_account gives it, so the lookup is the unique (shop_id, code) index
_LOCKED_CUSTOMER_WALLET = _CUSTOMER_WALLET.with_for_update(of=Account)


def find_customer(session: Session, shop_id: int, external_id: str) -> Customer | None:
    return session.execute(_CUSTOMER, {"shop_id": shop_id, "external_id": external_id}).scalar_one_or_none()


def lock_account(session: Session, account: Account) -> Account:
    """The account re-read under its row lock, for a decision on its current balance."""
    return _find_account(session, account.shop_id, account.code, lock=True)


def _find_account(session: Session, shop_id: int, code: str, lock: bool = False) -> Account | None:
    query = _LOCKED_ACCOUNT if lock else _ACCOUNT
    return session.execute(
        query, {"shop_id": shop_id, "code": code}, execution_options={"populate_existing": True}
    ).scalar_one_or_none()


def _ensure_account(session: Session, shop_id: int, code: str, lock: bool = False, **columns) -> Account:
    """Select first: accounts exist after their first use, so the common path is one indexed read.
    `lock` holds the row until commit, for a decision that reads the balance before moving money."""
    return (
        _find_account(session, shop_id, code, lock)
        or insert_ignoring_conflict(
            session, Account, {"shop_id": shop_id, "code": code, "created_at": utcnow(), **columns}, ["shop_id", "code"]
        )
        or _find_account(session, shop_id, code, lock)
    )


def wallet_code(customer: Customer, currency: str) -> str:
    return f"wallet:{customer.id}:{currency}"


def wallet_account(session: Session, customer: Customer, currency: str, lock: bool = False) -> Account:
    return _ensure_account(
        session,
        customer.shop_id,
        wallet_code(customer, currency),
        lock,
        kind="wallet",
        customer_id=customer.id,
        currency=currency,
        balance=0,
        held=0,
        overdraft_limit=0,
        locked=False,
    )


def points_account(session: Session, customer: Customer, lock: bool = False) -> Account:
    return _ensure_account(
        session,
        customer.shop_id,
        f"points:{customer.id}",
        lock,
        kind="points",
        customer_id=customer.id,
        currency=POINTS,
        balance=0,
        held=0,
        overdraft_limit=0,
        locked=False,
    )


def system_account(session: Session, shop_id: int, purpose: SystemAccount, currency: str) -> Account:
    """A system account's row never changes (no running balance, never locked), so each process reads it once."""
    code = f"system:{purpose}:{currency}"
    columns = cached(session, "system_accounts", (shop_id, code))
    if columns is not None:
        return attached(session, Account, columns)
    account = _ensure_account(
        session, shop_id, code, kind="system", currency=currency, balance=0, held=0, overdraft_limit=0, locked=False
    )
    remember_on_commit(session, "system_accounts", (shop_id, code), columns_of(account))
    return account


def find_wallet(session: Session, customer: Customer, currency: str) -> Account | None:
    return _find_account(session, customer.shop_id, f"wallet:{customer.id}:{currency}")


def find_points(session: Session, customer: Customer) -> Account | None:
    return _find_account(session, customer.shop_id, f"points:{customer.id}")
