"""Wallet movements mirrored to Shopify's native store credit (credit and debit mutations), and the
reconciliation that compares every wallet with its store credit account and closes any difference."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bridge.db import unit_of_work
from bridge.models import Account, Customer, OutboxMessage, Shop
from bridge.money import parse_amount, to_decimal_string
from bridge.security import SecretBox
from sync.shopify.client import ShopifyAdmin
from sync.shopify.order_transactions import fetch_and_record_checkout_spend
from sync.worker import PermanentFailure

CREDIT = """
mutation Credit($id: ID!, $creditInput: StoreCreditAccountCreditInput!) {
  storeCreditAccountCredit(id: $id, creditInput: $creditInput) {
    storeCreditAccountTransaction { amount { amount currencyCode } account { id balance { amount currencyCode } } }
    userErrors { field message code }
  }
}"""

DEBIT = """
mutation Debit($id: ID!, $debitInput: StoreCreditAccountDebitInput!) {
  storeCreditAccountDebit(id: $id, debitInput: $debitInput) {
    storeCreditAccountTransaction { amount { amount currencyCode } account { id balance { amount currencyCode } } }
    userErrors { field message code }
  }
}"""

BALANCES = """
query StoreCredit($id: ID!) {
  customer(id: $id) { storeCreditAccounts(first: 10) { nodes { id balance { amount currencyCode } } } }
}"""


def customer_gid(customer_id: str) -> str:
    return f"gid://shopify/Customer/{customer_id}"


def credit(api: ShopifyAdmin, customer_id: str, amount: int, currency: str, expires_at: str | None = None) -> None:
    credit_input = {"creditAmount": {"amount": to_decimal_string(amount, currency), "currencyCode": currency},
                    "expiresAt": expires_at, "notify": False}  # fmt: skip
    result = api.graphql(CREDIT, {"id": customer_gid(customer_id), "creditInput": credit_input})
    _raise_user_errors(result.get("storeCreditAccountCredit"))


def debit(api: ShopifyAdmin, customer_id: str, amount: int, currency: str) -> None:
    debit_input = {"debitAmount": {"amount": to_decimal_string(amount, currency), "currencyCode": currency}}
    result = api.graphql(DEBIT, {"id": customer_gid(customer_id), "debitInput": debit_input})
    _raise_user_errors(result.get("storeCreditAccountDebit"))


def _raise_user_errors(payload: dict | None) -> None:
    errors = (payload or {}).get("userErrors") or []
    if payload is None or errors:
        raise PermanentFailure(f"Shopify refused the store credit change: {errors or 'no result'}",
                               code=(errors[0].get("code") if errors else None))  # fmt: skip


def balance(api: ShopifyAdmin, customer_id: str, currency: str) -> int:
    data = api.graphql(BALANCES, {"id": customer_gid(customer_id)})
    accounts = ((data.get("customer") or {}).get("storeCreditAccounts") or {}).get("nodes") or []
    return sum(parse_amount(a["balance"]["amount"], currency) for a in accounts
               if a["balance"]["currencyCode"] == currency)  # fmt: skip


def make_pusher(secrets: SecretBox, timeout: float):
    """The worker's entry point for Shopify shops."""

    def push(sessions: sessionmaker[Session], shop: Shop, message: OutboxMessage) -> None:
        api, p = ShopifyAdmin.for_shop(shop, secrets, timeout), message.payload
        if message.kind == "store_credit.credit":
            credit(api, p["customer_id"], p["amount"], p["currency"], p.get("expires_at"))
        elif message.kind == "store_credit.debit":
            debit(api, p["customer_id"], p["amount"], p["currency"])
        elif message.kind == "order.fetch_transactions":
            fetch_and_record_checkout_spend(sessions, api, shop.id, p["order_id"], p["currency"])
        elif message.kind == "order.note":
            return  # Shopify has no customer notes on orders; it notifies store-credit changes itself
        else:
            raise PermanentFailure(f"{message.kind} does not apply to Shopify shops")

    return push


@dataclass
class Reconciliation:
    wallets: int = 0
    in_step: int = 0
    drifts: list[dict] = field(default_factory=list)  # {customer_id, currency, ledger, shopify, fixed}

    def as_dict(self) -> dict:
        return {"wallets": self.wallets, "in_step": self.in_step, "drifts": self.drifts}


def reconcile(sessions: sessionmaker[Session], secrets: SecretBox, shop_id: int, *, fix: bool = True,
              timeout: float = 10.0) -> Reconciliation:  # fmt: skip
    """Compare every wallet with the customer's store credit; the ledger is the record, so a difference is
    closed by crediting or debiting Shopify (when `fix`). Run it after an outage or a dead letter."""
    with unit_of_work(sessions) as session:
        shop = session.get(Shop, shop_id)
        wallets = session.execute(
            select(Customer.external_id, Account.currency, Account.balance)
            .join(Account, Account.customer_id == Customer.id)
            .where(Account.shop_id == shop_id, Account.kind == "wallet")
            .order_by(Customer.id)
        ).all()
        api = ShopifyAdmin.for_shop(shop, secrets, timeout)
    result = Reconciliation()
    for customer_id, currency, ledger in wallets:
        result.wallets += 1
        shopify = balance(api, customer_id, currency)
        if shopify == ledger:
            result.in_step += 1
            continue
        if fix and ledger > shopify:
            credit(api, customer_id, ledger - shopify, currency)
        elif fix:
            debit(api, customer_id, shopify - ledger, currency)
        result.drifts.append({"customer_id": customer_id, "currency": currency, "ledger": ledger,
                              "shopify": shopify, "fixed": fix})  # fmt: skip
    return result
