"""Wallet movements mirrored to Shopify's native store credit (credit and debit mutations), and the
reconciliation that compares every wallet with its store credit account and closes any difference.

Shopify's store credit mutations take no idempotency key, so a credit whose answer was lost (a timeout, a
dropped connection, a worker killed mid-call) may have been made. Before such a message is tried again,
the account's recent transactions tell: Shopify's transactions of the message's shape (kind, amount,
expiry) since it was written, less those the bridge's delivered messages of the same shape made; one left
over is this message's, and it is not sent again."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from bridge.config import Settings
from bridge.errors import PermanentFailure
from bridge.models import OutboxMessage, Shop, utcnow
from bridge.money import parse_amount, to_decimal_string
from bridge.security import SecretBox
from bridge.states import OutboxStatus
from bridge.usecases import shops
from bridge.usecases.pushes import Outcome, delivered_payloads, outcome_unknown
from sync.shopify.client import ShopifyAdmin
from sync.shopify.order_transactions import checkout_spend

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

ACCOUNTS = """
query StoreCredit($id: ID!) {
  customer(id: $id) { storeCreditAccounts(first: 10) { nodes { balance { amount currencyCode }
    transactions(first: 1, sortKey: CREATED_AT, reverse: true) { nodes { createdAt } } } } }
}"""

RECENT_TRANSACTIONS = """
query RecentStoreCredit($id: ID!) {
  customer(id: $id) { storeCreditAccounts(first: 10) { nodes { balance { currencyCode }
    transactions(first: 100, sortKey: CREATED_AT, reverse: true) {
      nodes { __typename createdAt amount { amount currencyCode }
              ... on StoreCreditAccountCreditTransaction { expiresAt } }
      pageInfo { hasNextPage } } } } }
}"""
TRANSACTION_TYPES = {
    "store_credit.credit": "StoreCreditAccountCreditTransaction",
    "store_credit.debit": "StoreCreditAccountDebitTransaction",
}
# How far before a message was written its transaction may show on Shopify's clock: the two clocks' skew.
CLOCK_MARGIN = timedelta(minutes=10)


def customer_gid(customer_id: str) -> str:
    return f"gid://shopify/Customer/{customer_id}"


def credit(api: ShopifyAdmin, customer_id: str, amount: int, currency: str, expires_at: str | None = None) -> None:
    credit_input = {
        "creditAmount": {"amount": to_decimal_string(amount, currency), "currencyCode": currency},
        "expiresAt": expires_at,
        "notify": False,
    }
    result = api.graphql(CREDIT, {"id": customer_gid(customer_id), "creditInput": credit_input})
    _raise_user_errors(result.get("storeCreditAccountCredit"))


def debit(api: ShopifyAdmin, customer_id: str, amount: int, currency: str) -> None:
    debit_input = {"debitAmount": {"amount": to_decimal_string(amount, currency), "currencyCode": currency}}
    result = api.graphql(DEBIT, {"id": customer_gid(customer_id), "debitInput": debit_input})
    _raise_user_errors(result.get("storeCreditAccountDebit"))


def _raise_user_errors(payload: dict | None) -> None:
    errors = (payload or {}).get("userErrors") or []
    if payload is None or errors:
        raise PermanentFailure(
            f"Shopify refused the store credit change: {errors or 'no result'}",
            code=(errors[0].get("code") if errors else None),
        )


@dataclass(frozen=True)
class StoreCredit:
    balance: int
    last_moved_at: datetime | None


def store_credit(api: ShopifyAdmin, customer_id: str, currency: str) -> StoreCredit:
    """The customer's store credit in `currency`, and when it last moved."""
    mine = _accounts(api, ACCOUNTS, customer_id, currency)
    moments = [_instant(t["createdAt"]) for a in mine for t in a["transactions"]["nodes"]]
    return StoreCredit(sum(parse_amount(a["balance"]["amount"], currency) for a in mine), max(moments, default=None))


def make_pusher(secrets: SecretBox, timeout: float):
    """The worker's entry point for Shopify shops."""

    def push(sessions: sessionmaker[Session], shop: Shop, message: OutboxMessage) -> list[Outcome]:
        api, p = ShopifyAdmin.for_shop(shop, secrets, timeout), message.payload
        if message.kind in TRANSACTION_TYPES and outcome_unknown(message) and already_made(sessions, api, message):
            return []
        if message.kind == "store_credit.credit":
            credit(api, p["customer_id"], p["amount"], p["currency"], p.get("expires_at"))
        elif message.kind == "store_credit.debit":
            debit(api, p["customer_id"], p["amount"], p["currency"])
        elif message.kind == "order.fetch_transactions":
            return [checkout_spend(api, p["order_id"], p["currency"])]
        elif message.kind != "order.note":  # Shopify has no customer notes; it notifies store-credit changes itself
            raise PermanentFailure(f"{message.kind} does not apply to Shopify shops")
        return []

    return push


def _accounts(api: ShopifyAdmin, query: str, customer_id: str, currency: str) -> list[dict]:
    """The customer's store credit accounts in `currency`, as `query` reads them."""
    data = api.graphql(query, {"id": customer_gid(customer_id)})
    accounts = ((data.get("customer") or {}).get("storeCreditAccounts") or {}).get("nodes") or []
    return [account for account in accounts if account["balance"]["currencyCode"] == currency]


def already_made(sessions: sessionmaker[Session], api: ShopifyAdmin, message: OutboxMessage) -> bool:
    """Whether an earlier attempt at this credit or debit reached Shopify (see the module's docstring)."""
    since = message.created_at - CLOCK_MARGIN
    return _shopify_transactions_like(api, message, since) > _delivered_like(sessions, message, since)


def _shopify_transactions_like(api: ShopifyAdmin, message: OutboxMessage, since: datetime) -> int:
    p, wanted = message.payload, _shape(message.kind, message.payload)
    count = 0
    for account in _accounts(api, RECENT_TRANSACTIONS, p["customer_id"], p["currency"]):
        page = account["transactions"]
        recent = [t for t in page["nodes"] if _instant(t["createdAt"]) >= since]
        if page["pageInfo"]["hasNextPage"] and len(recent) == len(page["nodes"]):
            raise PermanentFailure(
                "too many recent store credit transactions to tell whether an earlier attempt "
                "was made: run `wallet-bridge sync` to reconcile, then retry or drop this message"
            )
        count += sum(
            1
            for t in recent
            if t["__typename"] == TRANSACTION_TYPES[message.kind] and _alike(_shopify_shape(t, message.kind), wanted)
        )
    return count


def _delivered_like(sessions: sessionmaker[Session], message: OutboxMessage, since: datetime) -> int:
    """The bridge's other messages of the same shape delivered since `since` (each made one transaction)."""
    payloads = delivered_payloads(sessions, message, since)
    p, wanted = message.payload, _shape(message.kind, message.payload)
    return sum(
        1
        for other in payloads
        if other["customer_id"] == p["customer_id"] and _alike(_shape(message.kind, other), wanted)
    )


def _shape(kind: str, payload: dict) -> tuple[str, int, datetime | None]:
    """(currency, amount, expiry) of a message; a debit has no expiry."""
    expires_at = _instant(payload.get("expires_at")) if kind == "store_credit.credit" else None
    return payload["currency"], payload["amount"], expires_at


def _shopify_shape(transaction: dict, kind: str) -> tuple[str, int, datetime | None]:
    currency = transaction["amount"]["currencyCode"]
    amount = abs(parse_amount(transaction["amount"]["amount"], currency))  # a debit's amount is negative
    expires_at = _instant(transaction.get("expiresAt")) if kind == "store_credit.credit" else None
    return currency, amount, expires_at


def _alike(a: tuple[str, int, datetime | None], b: tuple[str, int, datetime | None]) -> bool:
    """Same currency and amount, and expiries within a second (Shopify keeps whole seconds)."""
    (currency_a, amount_a, expiry_a), (currency_b, amount_b, expiry_b) = a, b
    if (currency_a, amount_a) != (currency_b, amount_b) or (expiry_a is None) != (expiry_b is None):
        return False
    return expiry_a is None or abs(expiry_a - expiry_b) < timedelta(seconds=1)


def _instant(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


# A store credit movement younger than this may still have its webhook on the way (a checkout spend, a refund).
QUIET = timedelta(minutes=10)


@dataclass
class Reconciliation:
    wallets: int = 0
    in_step: int = 0
    drifts: list[dict] = field(default_factory=list)  # {customer_id, currency, ledger, shopify, fixed}
    unsettled: list[dict] = field(default_factory=list)  # {customer_id, currency, ledger, shopify, why}

    error = None  # a reconciliation that could not run raises instead

    def as_dict(self) -> dict:
        return {"wallets": self.wallets, "in_step": self.in_step, "drifts": self.drifts, "unsettled": self.unsettled}

    def report(self) -> list[str]:
        """For people (`wallet-bridge sync`)."""
        lines = [
            f"wallets: {self.wallets}, in step: {self.in_step}, drifted (fixed): {len(self.drifts)}, "
            f"still moving (left for the next run): {len(self.unsettled)}"
        ]
        for drift in [*self.drifts, *self.unsettled]:
            why = f" — {drift['why']}" if "why" in drift else ""
            lines.append(
                f"  customer {drift['customer_id']} {drift['currency']}: ledger {drift['ledger']}, "
                f"Shopify {drift['shopify']}{why}"
            )
        return lines


def catch_up(
    sessions: sessionmaker[Session], secrets: SecretBox, shop_id: int, settings: Settings, progress=None
) -> Reconciliation:
    """`wallet-bridge sync` for a Shopify shop: staying in sync means every wallet equals the customer's store
    credit (no progress to show: one read per wallet)."""
    return reconcile(sessions, secrets, shop_id, timeout=settings.sync_timeout_seconds)


def reconcile(
    sessions: sessionmaker[Session], secrets: SecretBox, shop_id: int, *, fix: bool = True, timeout: float = 10.0
) -> Reconciliation:
    """Compare every wallet with the customer's store credit; the ledger is the record, so a difference is
    closed by crediting or debiting Shopify (when `fix`). Run it after an outage or a dead letter.

    A difference that is still moving is left for the next run: store credit messages not yet on Shopify's
    side of its read (the outbox will close it), or a movement on Shopify whose webhook may be on its way.
    Shopify is read first and the wallet after, so a movement in between shows as a message in flight. Dead
    messages of a wallet it fixed are marked `reconciled`, so that retrying them cannot move the money twice."""
    api = ShopifyAdmin.for_shop(shops.shop_state(sessions, secrets, shop_id, "shopify").shop, secrets, timeout)
    wallets = shops.wallets_of(sessions, shop_id)
    result = Reconciliation()
    for customer_id, account_id, currency in wallets:
        result.wallets += 1
        read_at = utcnow()
        shopify = store_credit(api, customer_id, currency)
        ledger = shops.balance_of(sessions, account_id)
        if shopify.balance == ledger:
            result.in_step += 1
            continue
        in_flight, dead = _wallet_messages(sessions, shop_id, customer_id, currency, read_at)
        found = {"customer_id": customer_id, "currency": currency, "ledger": ledger, "shopify": shopify.balance}
        why = _still_moving(in_flight, shopify.last_moved_at, read_at)
        if why:
            result.unsettled.append({**found, "why": why})
            continue
        if fix:
            _close(api, customer_id, currency, ledger - shopify.balance)
            shops.mark_reconciled(sessions, dead)
        result.drifts.append({**found, "fixed": fix})
    return result


def _wallet_messages(
    sessions, shop_id: int, customer_id: str, currency: str, read_at: datetime
) -> tuple[int, list[int]]:
    """How many of the wallet's store credit messages Shopify's read may not include (not delivered, or
    delivered after it), and its dead ones. Read after the balance: a movement posted meanwhile shows here."""
    messages = shops.messages_since(sessions, shop_id, TRANSACTION_TYPES, read_at)
    wallet = (customer_id, currency)
    mine = [(id_, status) for id_, status, p in messages if (p["customer_id"], p["currency"]) == wallet]
    dead = [id_ for id_, status in mine if status == OutboxStatus.DEAD]
    return len(mine) - len(dead), dead


def _still_moving(in_flight: int, last_moved_at: datetime | None, read_at: datetime) -> str | None:
    if in_flight:
        return f"{in_flight} store credit message(s) on their way to Shopify"
    if last_moved_at is not None and last_moved_at > read_at - QUIET:
        return f"store credit moved on Shopify at {last_moved_at.isoformat()}; its webhook may be on its way"
    return None


def _close(api: ShopifyAdmin, customer_id: str, currency: str, difference: int) -> None:
    if difference > 0:
        credit(api, customer_id, difference, currency)
    else:
        debit(api, customer_id, -difference, currency)
