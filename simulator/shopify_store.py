"""The Shopify simulator's state: customers, orders with their transactions and refunds, and native store
credit accounts. Money is integer minor units; ids are Shopify-sized (above 2**53).

Store credit follows Shopify's rules: an owner holds one account per currency, created by the first
credit; a credit may carry an expiry date, after which what is left of it no longer counts; a debit
spends the soonest-expiring credit first (credits without expiry last) and never more than the balance.
Call with the simulator's lock held.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from simulator.shopify_wire import (
    STORE_CREDIT_GATEWAY,
    gid,
    in_shop_money,
    money,
    money_set,
    rest_date,
)

FIRST_ID = 2**53 + 1  # beyond what a JavaScript number holds exactly, as Shopify's ids are
FIRST_ORDER_NUMBER = 1001


class ShopifySimulatorError(ValueError):
    """A story helper asked for something the shop would not do (unknown id, refund above what is left…)."""


# --- store credit -----------------------------------------------------------------------------------------------


@dataclass
class CreditLot:
    """One credit transaction: what is left of it, until it expires."""

    id: int
    amount: int
    remaining: int
    expires_at: datetime | None
    created_at: datetime
    expired: bool = False


@dataclass(frozen=True)
class AccountEntry:
    """A line of an account's history. `amount` is signed: credits positive, debits and expiries negative."""

    id: int
    kind: str  # "credit", "debit" or "expiration"
    amount: int
    balance_after: int
    at: datetime
    origin: str  # "api", "order", "refund", "merchant" or "expiry"
    expires_at: datetime | None = None
    notify: bool = False


@dataclass
class StoreCreditAccount:
    id: int
    customer_id: int
    currency: str
    lots: list[CreditLot] = field(default_factory=list)
    history: list[AccountEntry] = field(default_factory=list)

    @property
    def gid(self) -> str:
        return gid("StoreCreditAccount", self.id)

    def expire(self, now: datetime, next_id: Callable[[], int]) -> None:
        """Let every credit whose expiry date has come lapse (recorded once, at its expiry time)."""
        due = sorted(
            (lot for lot in self.lots if not lot.expired and lot.expires_at is not None and lot.expires_at <= now),
            key=lambda lot: lot.expires_at,
        )
        for lot in due:
            lot.expired = True
            if lot.remaining:
                balance = self._live_balance()
                self.history.append(
                    AccountEntry(next_id(), "expiration", -lot.remaining, balance, lot.expires_at, "expiry")
                )

    def balance(self) -> int:
        """The balance after `expire()`."""
        return self._live_balance()

    def _live_balance(self) -> int:
        return sum(lot.remaining for lot in self.lots if not lot.expired)

    def credit(
        self, entry_id: int, amount: int, now: datetime, expires_at: datetime | None, origin: str, notify: bool = False
    ) -> AccountEntry:
        self.lots.append(CreditLot(entry_id, amount, amount, expires_at, now))
        entry = AccountEntry(entry_id, "credit", amount, self._live_balance(), now, origin, expires_at, notify)
        self.history.append(entry)
        return entry

    def debit(self, entry_id: int, amount: int, now: datetime, origin: str) -> AccountEntry:
        """Spend `amount` (≤ the balance, checked by the caller), soonest-expiring credit first."""
        left = amount
        live = [lot for lot in self.lots if not lot.expired and lot.remaining]
        for lot in sorted(live, key=lambda lot: (lot.expires_at is None, lot.expires_at or now, lot.id)):
            used = min(lot.remaining, left)
            lot.remaining -= used
            left -= used
            if not left:
                break
        entry = AccountEntry(entry_id, "debit", -amount, self._live_balance(), now, origin)
        self.history.append(entry)
        return entry


# --- orders -----------------------------------------------------------------------------------------------------


@dataclass
class Customer:
    id: int
    email: str
    first_name: str
    last_name: str
    created_at: datetime
    updated_at: datetime
    phone: str | None = None
    note: str | None = None
    tags: str = ""
    verified_email: bool = True


@dataclass
class Transaction:
    id: int
    order_id: int
    kind: str  # "sale", "refund"
    gateway: str
    status: str  # "success", "failure"
    amount: int
    currency: str | None  # refunds/create bodies carry null here, as in Shopify's samples
    created_at: datetime
    parent_id: int | None = None
    message: str | None = None
    error_code: str | None = None


@dataclass
class Refund:
    id: int
    order_id: int
    note: str
    created_at: datetime
    transactions: list[Transaction]

    @property
    def refunded(self) -> int:
        return sum(t.amount for t in self.transactions if t.kind == "refund" and t.status == "success")


@dataclass
class Order:
    id: int
    number: int
    customer_id: int | None
    email: str | None
    currency: str
    total: int
    gateway: str
    created_at: datetime
    updated_at: datetime
    financial_status: str = "paid"
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    transactions: list[Transaction] = field(default_factory=list)
    refunds: list[Refund] = field(default_factory=list)
    item_name: str = "Simulated item"

    @property
    def refunded(self) -> int:
        return sum(r.refunded for r in self.refunds)

    @property
    def gateways(self) -> list[str]:
        names: list[str] = []
        for transaction in self.transactions:
            if transaction.kind == "sale" and transaction.gateway not in names:
                names.append(transaction.gateway)
        return names


class ShopifyStore:
    """Customers, orders and store credit accounts, plus the REST JSON of each."""

    def __init__(
        self,
        *,
        clock: Callable[[], datetime],
        currency: str,
        shop_domain: str,
        utc_offset: timedelta = timedelta(0),
        first_id: int = FIRST_ID,
    ):
        self.clock = clock
        self.currency = currency
        self.shop_domain = shop_domain
        self.utc_offset = utc_offset
        self.customers: dict[int, Customer] = {}
        self.orders: dict[int, Order] = {}
        self.accounts: dict[tuple[int, str], StoreCreditAccount] = {}
        self._ids = itertools.count(first_id)
        self._numbers = itertools.count(FIRST_ORDER_NUMBER)

    def next_id(self) -> int:
        return next(self._ids)

    # --- lookups ------------------------------------------------------------------------------------------------

    def customer(self, customer_id: int) -> Customer:
        found = self.customers.get(customer_id)
        if found is None:
            raise ShopifySimulatorError(f"no customer {customer_id}")
        return found

    def order(self, order_id: int) -> Order:
        found = self.orders.get(order_id)
        if found is None:
            raise ShopifySimulatorError(f"no order {order_id}")
        return found

    def account(self, customer_id: int, currency: str, create: bool = False) -> StoreCreditAccount | None:
        key = (customer_id, currency)
        account = self.accounts.get(key)
        if account is None and create:
            account = self.accounts[key] = StoreCreditAccount(self.next_id(), customer_id, currency)
        if account is not None:
            account.expire(self.clock(), self.next_id)
        return account

    def account_by_id(self, account_id: int) -> StoreCreditAccount | None:
        for account in self.accounts.values():
            if account.id == account_id:
                account.expire(self.clock(), self.next_id)
                return account
        return None

    def accounts_of(self, customer_id: int) -> list[StoreCreditAccount]:
        found = [a for (owner, _), a in self.accounts.items() if owner == customer_id]
        for account in found:
            account.expire(self.clock(), self.next_id)
        return found

    # --- changes ------------------------------------------------------------------------------------------------

    def create_customer(self, email: str, first_name: str, last_name: str, **extra) -> Customer:
        now = self.clock()
        customer = Customer(self.next_id(), email, first_name, last_name, now, now, **extra)
        self.customers[customer.id] = customer
        return customer

    def update_customer(self, customer_id: int, **changes) -> Customer:
        customer = self.customer(customer_id)
        for name, value in changes.items():
            if not hasattr(customer, name) or name in ("id", "created_at"):
                raise ShopifySimulatorError(f"customers have no field {name!r} to change")
            setattr(customer, name, value)
        customer.updated_at = self.clock()
        return customer

    def credit(
        self,
        customer_id: int,
        currency: str,
        amount: int,
        *,
        expires_at: datetime | None = None,
        origin: str,
        notify: bool = False,
    ) -> tuple[StoreCreditAccount, AccountEntry]:
        account = self.account(customer_id, currency, create=True)
        return account, account.credit(self.next_id(), amount, self.clock(), expires_at, origin, notify)

    def debit(self, account: StoreCreditAccount, amount: int, origin: str) -> AccountEntry:
        if amount > account.balance():
            raise ShopifySimulatorError(
                f"store credit of customer {account.customer_id} is {account.balance()} {account.currency}, "
                f"not {amount}"
            )
        return account.debit(self.next_id(), amount, self.clock(), origin)

    def place_order(
        self,
        customer_id: int | None,
        total: int,
        currency: str,
        store_credit: int,
        gateway: str,
        email: str | None = None,
    ) -> Order:
        """A paid checkout: the store-credit part is debited from the customer's account at once."""
        if customer_id is not None:
            customer = self.customer(customer_id)
            email = email or customer.email
        if total < 0 or store_credit < 0 or store_credit > total:
            raise ShopifySimulatorError("store credit must be between 0 and the order total")
        if store_credit and customer_id is None:
            raise ShopifySimulatorError("guests have no store credit")
        account = self.account(customer_id, currency) if store_credit else None
        if store_credit and (account is None or account.balance() < store_credit):
            balance = account.balance() if account else 0
            raise ShopifySimulatorError(f"store credit is {balance} {currency}, the order spends {store_credit}")
        now = self.clock()
        order = Order(self.next_id(), next(self._numbers), customer_id, email, currency, total, gateway, now, now)
        if store_credit:
            self.debit(account, store_credit, "order")
            order.transactions.append(self._sale(order, store_credit, STORE_CREDIT_GATEWAY))
        if total - store_credit or not store_credit:
            order.transactions.append(self._sale(order, total - store_credit, gateway))
        self.orders[order.id] = order
        return order

    def _sale(self, order: Order, amount: int, gateway: str) -> Transaction:
        return Transaction(self.next_id(), order.id, "sale", gateway, "success", amount, order.currency, self.clock())

    def refund(self, order_id: int, amount: int, to_store_credit: int, failed_extra: int | None, note: str) -> Refund:
        """A refund of `amount`, `to_store_credit` of it back to the customer's store credit; with
        `failed_extra`, a failed attempt of that amount comes first among the transactions."""
        order = self.order(order_id)
        if amount <= 0 or amount > order.total - order.refunded:
            left = money(order.total - order.refunded, order.currency)
            raise ShopifySimulatorError(f"refund must be above 0 and at most what is left ({left})")
        if not 0 <= to_store_credit <= amount:
            raise ShopifySimulatorError("the store credit part must be between 0 and the refund")
        if to_store_credit and order.customer_id is None:
            raise ShopifySimulatorError("a guest order cannot be refunded to store credit")
        now = self.clock()
        refund = Refund(self.next_id(), order.id, note, now, [])
        sale = next((t for t in order.transactions if t.gateway == order.gateway), None)
        parent = sale.id if sale else None

        def transaction(amount_: int, gateway: str, status: str, **extra) -> Transaction:
            # Shopify's refunds/create samples carry `currency: null` on every transaction
            return Transaction(self.next_id(), order.id, "refund", gateway, status, amount_, None, now, parent, **extra)

        if failed_extra:
            refund.transactions.append(
                transaction(
                    failed_extra, order.gateway, "failure", message="Transaction declined", error_code="card_declined"
                )
            )
        if amount - to_store_credit:
            refund.transactions.append(transaction(amount - to_store_credit, order.gateway, "success"))
        if to_store_credit:
            refund.transactions.append(transaction(to_store_credit, STORE_CREDIT_GATEWAY, "success"))
            self.credit(order.customer_id, order.currency, to_store_credit, origin="refund")
        order.refunds.append(refund)
        order.financial_status = "refunded" if order.refunded >= order.total else "partially_refunded"
        order.updated_at = now
        return refund

    def cancel(self, order_id: int, reason: str) -> Order:
        order = self.order(order_id)
        if order.cancelled_at is not None:
            raise ShopifySimulatorError(f"order {order_id} is already cancelled")
        order.cancelled_at = order.updated_at = self.clock()
        order.cancel_reason = reason
        if order.financial_status in ("pending", "authorized"):
            order.financial_status = "voided"
        return order

    # --- REST JSON (webhook bodies) -----------------------------------------------------------------------------

    def date(self, moment: datetime | None) -> str | None:
        return rest_date(moment, self.utc_offset)

    def customer_json(self, customer: Customer) -> dict:
        return {
            "id": customer.id,
            "email": customer.email,
            "created_at": self.date(customer.created_at),
            "updated_at": self.date(customer.updated_at),
            "first_name": customer.first_name,
            "last_name": customer.last_name,
            "orders_count": sum(1 for o in self.orders.values() if o.customer_id == customer.id),
            "state": "enabled",
            "total_spent": money(
                sum(
                    in_shop_money(o.total - o.refunded, o.currency, self.currency)
                    for o in self.orders.values()
                    if o.customer_id == customer.id
                ),
                self.currency,
            ),
            "last_order_id": None,
            "note": customer.note,
            "verified_email": customer.verified_email,
            "multipass_identifier": None,
            "tax_exempt": False,
            "tags": customer.tags,
            "last_order_name": None,
            "currency": self.currency,
            "phone": customer.phone,
            "addresses": [],
            "tax_exemptions": [],
            "email_marketing_consent": None,
            "sms_marketing_consent": None,
            "admin_graphql_api_id": gid("Customer", customer.id),
            "default_address": None,
        }

    def _order_customer_json(self, customer: Customer) -> dict:
        """The `customer` inside an order body: fewer keys than the customer resource, as Shopify's orders/create
        sample has it."""
        data = self.customer_json(customer)
        for key in (
            "orders_count",
            "total_spent",
            "last_order_id",
            "last_order_name",
            "addresses",
            "tags",
            "email_marketing_consent",
            "sms_marketing_consent",
        ):
            data.pop(key)
        return data

    def transaction_json(self, transaction: Transaction) -> dict:
        currency = self.orders[transaction.order_id].currency
        return {
            "id": transaction.id,
            "order_id": transaction.order_id,
            "kind": transaction.kind,
            "gateway": transaction.gateway,
            "status": transaction.status,
            "message": transaction.message,
            "created_at": self.date(transaction.created_at),
            "test": True,
            "authorization": None,
            "location_id": None,
            "user_id": None,
            "parent_id": transaction.parent_id,
            "processed_at": self.date(transaction.created_at),
            "device_id": None,
            "error_code": transaction.error_code,
            "source_name": "web",
            "receipt": {},
            "amount": money(transaction.amount, currency),
            "currency": transaction.currency,
            "payment_id": f"#{self.orders[transaction.order_id].number}.{transaction.id % 10}",
            "manual_payment_gateway": False,
            "amount_rounding": None,
            "admin_graphql_api_id": gid("OrderTransaction", transaction.id),
        }

    def refund_json(self, refund: Refund) -> dict:
        currency = self.orders[refund.order_id].currency
        return {
            "id": refund.id,
            "order_id": refund.order_id,
            "created_at": self.date(refund.created_at),
            "note": refund.note or None,
            "user_id": None,
            "processed_at": self.date(refund.created_at),
            "duties": [],
            "total_duties_set": money_set(0, currency, self.currency),
            "return": None,
            "refund_shipping_lines": [],
            "restock": False,
            "admin_graphql_api_id": gid("Refund", refund.id),
            "order_adjustments": [],
            "refund_line_items": [],
            "transactions": [self.transaction_json(t) for t in refund.transactions],
        }

    def order_json(self, order: Order) -> dict:
        """Plain amounts in the shop's currency; each `*_set` also in the one the customer paid in (`presentment`)."""
        currency, paid_in = self.currency, order.currency
        customer = self.customers.get(order.customer_id) if order.customer_id else None
        current = order.total - order.refunded

        def in_shop(minor: int) -> str:
            return money(in_shop_money(minor, paid_in, currency), currency)

        def both(minor: int) -> dict:
            return money_set(minor, paid_in, currency)

        total = in_shop(order.total)
        zero = money(0, currency)
        return {  # no `transactions`: Shopify's order bodies have none (the Admin API has them)
            "id": order.id,
            "admin_graphql_api_id": gid("Order", order.id),
            "app_id": None,
            "browser_ip": "127.0.0.1",
            "buyer_accepts_marketing": False,
            "cancel_reason": order.cancel_reason,
            "cancelled_at": self.date(order.cancelled_at),
            "cart_token": None,
            "checkout_token": None,
            "client_details": None,
            "closed_at": None,
            "confirmation_number": f"SIM{order.number}",
            "confirmed": True,
            "contact_email": order.email,
            "created_at": self.date(order.created_at),
            "currency": currency,
            "current_subtotal_price": in_shop(current),
            "current_subtotal_price_set": both(current),
            "current_total_discounts": zero,
            "current_total_price": in_shop(current),
            "current_total_price_set": both(current),
            "current_total_tax": zero,
            "customer_locale": "en",
            "discount_codes": [],
            "email": order.email or "",
            "estimated_taxes": False,
            "financial_status": order.financial_status,
            "fulfillment_status": None,
            "name": f"#{order.number}",
            "note": None,
            "note_attributes": [],
            "number": order.number - 1000,
            "order_number": order.number,
            "payment_gateway_names": order.gateways,
            "phone": None,
            "presentment_currency": paid_in,
            "processed_at": self.date(order.created_at),
            "source_name": "web",
            "subtotal_price": total,
            "subtotal_price_set": both(order.total),
            "tags": "",
            "tax_lines": [],
            "taxes_included": False,
            "test": True,
            "token": f"sim{order.id:x}",
            "total_discounts": zero,
            "total_line_items_price": total,
            "total_outstanding": zero,
            "total_price": total,
            "total_price_set": both(order.total),
            "total_tax": zero,
            "updated_at": self.date(order.updated_at),
            "user_id": None,
            "billing_address": None,
            "customer": self._order_customer_json(customer) if customer else None,
            "discount_applications": [],
            "fulfillments": [],
            "line_items": [
                {
                    "id": order.id + 1_000_000,
                    "admin_graphql_api_id": gid("LineItem", order.id + 1_000_000),
                    "current_quantity": 1,
                    "fulfillable_quantity": 1,
                    "fulfillment_service": "manual",
                    "fulfillment_status": None,
                    "gift_card": False,
                    "grams": 0,
                    "name": order.item_name,
                    "price": total,
                    "price_set": both(order.total),
                    "product_exists": False,
                    "product_id": None,
                    "properties": [],
                    "quantity": 1,
                    "requires_shipping": False,
                    "sku": "SIM-1",
                    "taxable": False,
                    "title": order.item_name,
                    "total_discount": zero,
                    "variant_id": None,
                    "vendor": None,
                    "tax_lines": [],
                    "duties": [],
                    "discount_allocations": [],
                }
            ],
            "payment_terms": None,
            "refunds": [self.refund_json(r) for r in order.refunds],
            "shipping_address": None,
            "shipping_lines": [],
            "returns": [],
        }
