"""Shopify webhook bodies → the platform-neutral snapshots of bridge/orders.py. Pure: no Flask, no database.

Bodies are the REST Admin resources (API 2026-01): `customers/*` a customer, `orders/*` an order,
`refunds/create` a refund object, not wrapped. Only the parts the bridge uses are validated; every
problem is one `PayloadInvalid` naming dotted paths ("refunds.0.transactions.1.amount"). Money arrives
as decimal strings and leaves as integer minor units; ids exceed 2**53 and stay exact (Python's json).

Money actually moved is read from transactions, never from line items (Shopify's own samples disagree
between the two): a refund returned the sum of its `kind == "refund"`, `status == "success"`
transactions, and the part whose `gateway` is "shopify_store_credit" went back to Shopify's native store
credit. Store credit spent at checkout is the order's successful "sale"/"capture" transactions on that
gateway. Shopify's own order bodies carry no transactions, only `payment_gateway_names`: when those name
the store credit gateway, the snapshot says the spend is unknown and the outbox worker reads the order's
transactions from the Admin API (sync/shopify/order_transactions.py, through `store_credit_spent`). The
bridge never charges a Shopify order itself, so `payment_method` is always "".
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from fractions import Fraction

from marshmallow import ValidationError, fields

from bridge import orders
from bridge.orders import CustomerSnapshot, OrderSnapshot, RefundSnapshot
from webhooks.payload_fields import (
    WHOLE_PAYLOAD,
    MoneyText,
    PayloadInvalid,
    Schema,
    Text,
    clean,
    full_name,
    load,
    minor_units,
    optional_text,
    positive_id,
    validate_currency,
)

__all__ = [
    "FALLBACK_CURRENCY",
    "PHASES",
    "STORE_CREDIT_GATEWAY",
    "TOPICS_HANDLED",
    "WHOLE_PAYLOAD",
    "PayloadInvalid",
    "ShopifyRefund",
    "parse_customer",
    "parse_order",
    "parse_refund",
    "store_credit_spent",
]

TOPICS_HANDLED = frozenset(
    {"customers/create", "customers/update", "orders/paid", "orders/cancelled", "orders/updated", "refunds/create"}
)

STORE_CREDIT_GATEWAY = "shopify_store_credit"  # the gateway of transactions paid from / refunded to store credit
_SPENDING_KINDS = ("sale", "capture")  # an "authorization" moves no money; its "capture" does
_SUCCESS = "success"

# financial_status → what the rules care about (an order with `cancelled_at` is CANCELLED whatever it says).
# Anything else ("expired", statuses added later) is OTHER: the rules leave it alone.
PHASES = {
    "pending": orders.AWAITING_PAYMENT,
    "authorized": orders.AWAITING_PAYMENT,
    "partially_paid": orders.PAID,
    "paid": orders.PAID,
    "partially_refunded": orders.PAID,
    "refunded": orders.REFUNDED,
    "voided": orders.CANCELLED,
}

# refunds/create transactions often carry `currency: null`; without a currency from the payload or the
# caller, amounts are read with this currency's two decimals.
FALLBACK_CURRENCY = "EUR"


@dataclass(frozen=True)
class ShopifyRefund:
    """A `refunds/create` body: the refund and the order it belongs to.

    `currency` is the first non-null transaction currency, None when every transaction says null: the amounts
    were then read in a guessed currency, and `body` lets whoever knows the order's currency read them again."""

    order_external_id: str
    refund: RefundSnapshot
    currency: str | None
    body: dict = field(default_factory=dict, compare=False, repr=False)

    def in_customers_currency(self, order_currency: str | None) -> bool:
        """Whether the transactions are in the currency the customer paid in, not the shop's (whose currency is
        the known order's, else the body's `total_duties_set.shop_money`): they are read in shop money only with
        the order's own rate, when the order's update lists this refund."""
        paid_in = self.currency or _duties_currency(self.body, "presentment_money")
        shop = order_currency or _duties_currency(self.body, "shop_money")
        return _is_known_currency(paid_in) and _is_known_currency(shop) and paid_in != shop


# --- fields and schemas -------------------------------------------------------------------------------


class _UtcDateTime(fields.AwareDateTime):
    """An ISO 8601 date with an offset ("2021-12-31T19:00:00-05:00"), returned in UTC."""

    default_error_messages = {"out_of_range": "Date out of range."}

    def _deserialize(self, value, attr, data, **kwargs) -> datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(UTC)
        except (OverflowError, ValueError):  # year 1 minus an offset, year 9999 plus one
            raise self.make_error("out_of_range") from None


class _PersonSchema(Schema):
    """A customer, or the `customer` of an order."""

    id = positive_id()
    email = optional_text()
    first_name = optional_text()
    last_name = optional_text()


class _TransactionSchema(Schema):
    kind = Text(required=True)  # sale, capture, authorization, void, refund, change, suggested_refund
    status = Text(required=True)  # success, failure, error, pending
    gateway = optional_text()
    amount = MoneyText(required=True)
    currency = Text(allow_none=True, load_default=None, validate=validate_currency)  # null in the samples


class _RefundSchema(Schema):
    """A refund inside an order's `refunds`."""

    id = positive_id()
    note = optional_text()
    transactions = fields.List(fields.Nested(_TransactionSchema), load_default=list)


class _RefundEventSchema(_RefundSchema):
    """A `refunds/create` body."""

    order_id = positive_id()


class _NoteAttributeSchema(Schema):
    name = Text(required=True)
    value = fields.Raw(allow_none=True, load_default=None)  # kept as-is


class _TaxLineSchema(Schema):
    price = MoneyText(required=True)


class _TaxedLineSchema(Schema):
    """A line item or a shipping line: only its taxes are read (the order's subtotal has the items' price)."""

    discounted_price = MoneyText(load_default="0")  # shipping lines: the price after discounts
    tax_lines = fields.List(fields.Nested(_TaxLineSchema), load_default=list)


class _MoneySchema(Schema):
    amount = MoneyText(required=True)
    currency_code = Text(required=True, validate=validate_currency)


class _MoneySetSchema(Schema):
    """A REST `*_set`: the amount in the shop's currency and in the customer's (presentment) currency."""

    shop_money = fields.Nested(_MoneySchema, required=True)
    presentment_money = fields.Nested(_MoneySchema, required=True)


class _OrderSchema(Schema):
    id = positive_id()
    currency = Text(required=True, validate=validate_currency)  # always the shop's
    total_price = MoneyText(required=True)  # in the shop's currency
    # The customer paid in this currency (multi-currency checkouts): then the refunds' transactions are in it.
    presentment_currency = Text(allow_none=True, load_default=None, validate=validate_currency)
    total_price_set = fields.Nested(_MoneySetSchema, allow_none=True, load_default=None)
    financial_status = optional_text()
    cancelled_at = _UtcDateTime(allow_none=True, load_default=None)
    updated_at = _UtcDateTime(allow_none=True, load_default=None)
    email = optional_text()
    contact_email = optional_text()
    customer = fields.Nested(_PersonSchema, allow_none=True, load_default=None)  # null or absent: a guest
    refunds = fields.List(fields.Nested(_RefundSchema), load_default=list)
    # Absent from Shopify's order bodies (None then, to tell from an empty list); read if a body has them.
    transactions = fields.List(fields.Nested(_TransactionSchema), allow_none=False, load_default=None)
    payment_gateway_names = fields.List(Text(), allow_none=True, load_default=list)
    note_attributes = fields.List(fields.Nested(_NoteAttributeSchema), allow_none=True, load_default=list)
    # The items after discounts, before shipping; with their taxes when `taxes_included` (then taken off).
    subtotal_price = MoneyText(allow_none=True, load_default=None)
    taxes_included = fields.Boolean(allow_none=True, load_default=False)
    line_items = fields.List(fields.Nested(_TaxedLineSchema), load_default=list)
    shipping_lines = fields.List(fields.Nested(_TaxedLineSchema), load_default=list)


class _TransactionsSchema(Schema):
    """An order's transactions read apart from its body, wrapped so that problems name "transactions.N"."""

    transactions = fields.List(fields.Nested(_TransactionSchema), required=True)


_ORDER = _OrderSchema()
_TRANSACTIONS = _TransactionsSchema()
_REFUND_EVENT = _RefundEventSchema()
_CUSTOMER = _PersonSchema()


# --- public API ---------------------------------------------------------------------------------------


def parse_customer(data) -> CustomerSnapshot:
    """A `customers/*` body as a CustomerSnapshot; raises PayloadInvalid, nothing else."""
    customer = load(_CUSTOMER, data)
    return CustomerSnapshot(
        external_id=str(customer["id"]),
        email=clean(customer["email"]),
        name=full_name(customer["first_name"], customer["last_name"]),
    )


def parse_order(data) -> OrderSnapshot:
    """An `orders/*` body as an OrderSnapshot; raises PayloadInvalid, nothing else."""
    order = load(_ORDER, data)
    currency = order["currency"]
    total = minor_units(order["total_price"], currency, "total_price")
    if total < 0:
        raise PayloadInvalid({"total_price": "Must not be negative."})
    customer = order["customer"] or {}
    financial_status = order["financial_status"] or ""
    cancelled = order["cancelled_at"] is not None
    presented = _presentment(order)
    refunds = _order_refunds(order["refunds"], currency, presented)
    # Store credit a checkout in another currency spent came from the customer's account in that currency, not
    # from the one the shop's wallet mirrors.
    transactions = [] if presented else order["transactions"]
    gateways = () if presented else order["payment_gateway_names"] or ()
    return OrderSnapshot(
        external_id=str(order["id"]),
        customer_external_id=str(customer["id"]) if customer else None,
        email=clean(order["email"]) or clean(order["contact_email"]) or clean(customer.get("email")),
        customer_name=full_name(customer.get("first_name"), customer.get("last_name")),
        currency=currency,
        status="cancelled" if cancelled else financial_status,
        phase=orders.CANCELLED if cancelled else PHASES.get(financial_status, orders.OTHER),
        total=total,
        payment_method="",  # spending happens at Shopify's checkout, through its native store credit
        refunds=refunds,
        meta={item["name"]: item["value"] for item in order["note_attributes"] or ()},  # repeated: the last wins
        modified_at=order["updated_at"],
        spent_from_store_credit=_spent(transactions or [], currency),
        store_credit_spend_unknown=transactions is None and STORE_CREDIT_GATEWAY in gateways,
        items_excluding_tax=_items_excluding_tax(order, currency),
        shipping_excluding_tax=_shipping_excluding_tax(order, currency),
    )


def parse_refund(data, currency: str | None = None) -> ShopifyRefund:
    """A `refunds/create` body (not wrapped) as a ShopifyRefund; raises PayloadInvalid, nothing else.

    Amounts are read in the first non-null transaction currency; when all are null, in `currency` (the
    order's, if the caller knows it), else in the currency of the body's `total_duties_set.shop_money`
    (present in every refund body, even when transactions say null), else with FALLBACK_CURRENCY's."""
    refund = load(_REFUND_EVENT, data)
    found = _transaction_currency(refund["transactions"])
    reading = next(
        code
        for code in (found, currency, _duties_currency(data, "shop_money"), FALLBACK_CURRENCY)
        if _is_known_currency(code)
    )
    return ShopifyRefund(
        order_external_id=str(refund["order_id"]),
        refund=_refund_snapshot(refund, reading, ""),
        currency=found,
        body=data,
    )


def store_credit_spent(transactions, currency: str) -> int:
    """What an order's transactions, read apart from its webhook body and shaped as REST has them (kind,
    status, gateway, amount, currency), spent from store credit at checkout, in `currency`'s minor units;
    raises PayloadInvalid ("transactions.1.amount"), nothing else."""
    return _spent(load(_TRANSACTIONS, {"transactions": transactions})["transactions"], currency)


# --- helpers ------------------------------------------------------------------------------------------


def _items_excluding_tax(order: dict, currency: str) -> int | None:
    if order["subtotal_price"] is None:
        return None
    subtotal = minor_units(order["subtotal_price"], currency, "subtotal_price")
    return subtotal - (_taxes(order["line_items"], currency, "line_items") if order["taxes_included"] else 0)


def _shipping_excluding_tax(order: dict, currency: str) -> int:
    lines = order["shipping_lines"]
    shipping = sum(
        minor_units(line["discounted_price"], currency, f"shipping_lines.{index}.discounted_price")
        for index, line in enumerate(lines)
    )
    return shipping - (_taxes(lines, currency, "shipping_lines") if order["taxes_included"] else 0)


def _taxes(lines: list[dict], currency: str, path: str) -> int:
    return sum(
        minor_units(tax["price"], currency, f"{path}.{index}.tax_lines.{number}.price")
        for index, line in enumerate(lines)
        for number, tax in enumerate(line["tax_lines"])
    )


@dataclass(frozen=True)
class _Presentment:
    """An order the customer paid in another currency than the shop's: its transactions are in `currency`, and
    `shop_per_unit` is what one of its minor units is in the shop's (the order's own rate: its total in both)."""

    currency: str
    shop_per_unit: Fraction

    def in_shop_money(self, amount: int) -> int:
        return round(amount * self.shop_per_unit)  # half to even, in integers


def _presentment(order: dict) -> _Presentment | None:
    presented, shop = order["presentment_currency"], order["currency"]
    if presented is None or presented == shop:
        return None
    total = order["total_price_set"]
    if total is None:
        raise PayloadInvalid({"total_price_set": "Required when presentment_currency differs from currency."})
    for side, code in (("shop_money", shop), ("presentment_money", presented)):
        if total[side]["currency_code"] != code:
            raise PayloadInvalid({f"total_price_set.{side}.currency_code": f"Must be {code}."})
    in_shop = minor_units(total["shop_money"]["amount"], shop, "total_price_set.shop_money.amount")
    in_presented = minor_units(
        total["presentment_money"]["amount"], presented, "total_price_set.presentment_money.amount"
    )
    if in_shop < 0 or in_presented < 0:
        raise PayloadInvalid({"total_price_set": "Must not be negative."})
    return _Presentment(presented, Fraction(in_shop, in_presented) if in_presented > 0 else Fraction(0))


def _order_refunds(items: list[dict], currency: str, presented: _Presentment | None) -> tuple[RefundSnapshot, ...]:
    refunds = []
    seen: set[int] = set()
    for index, item in enumerate(items):
        path = f"refunds.{index}"
        if item["id"] in seen:
            raise PayloadInvalid({f"{path}.id": "Duplicate refund id."})
        seen.add(item["id"])
        refunds.append(_refund_snapshot(item, presented.currency if presented else currency, f"{path}."))
    return tuple(refunds) if presented is None else _in_shop_money(refunds, presented)


def _in_shop_money(refunds: list[RefundSnapshot], presented: _Presentment) -> tuple[RefundSnapshot, ...]:
    """Refunds read in the customer's currency, in the shop's: each is what the running total converted grows by
    (converted one by one, three refunds making the whole total could round to more than it). Store credit
    returned in the customer's currency went to their account in it: no wallet mirrors it."""
    converted, refunded = [], 0
    for refund in sorted(refunds, key=lambda refund: int(refund.external_id)):
        before, refunded = presented.in_shop_money(refunded), refunded + refund.amount
        converted.append(replace(refund, amount=presented.in_shop_money(refunded) - before, to_store_credit=0))
    return tuple(converted)


def _refund_snapshot(refund: dict, currency: str, prefix: str) -> RefundSnapshot:
    path = f"{prefix}transactions"
    return RefundSnapshot(
        external_id=str(refund["id"]),
        amount=_sum(refund["transactions"], currency, path, _refunded),
        reason=refund["note"] or "",
        to_store_credit=_sum(refund["transactions"], currency, path, _refunded_to_store_credit),
        settled_by_shop=True,
    )


def _sum(transactions: list[dict], currency: str, path: str, counts) -> int:
    """The amounts of the transactions `counts` selects, in minor units; counted amounts are never negative."""
    total = 0
    for index, transaction in enumerate(transactions):
        if not counts(transaction):
            continue
        amount_path = f"{path}.{index}.amount"
        amount = minor_units(transaction["amount"], currency, amount_path)
        if amount < 0:
            raise PayloadInvalid({amount_path: "Must not be negative."})
        total += amount
    return total


def _spent(transactions: list[dict], currency: str) -> int:
    return _sum(transactions, currency, "transactions", _spends_store_credit)


def _refunded(transaction: dict) -> bool:
    return transaction["kind"] == "refund" and transaction["status"] == _SUCCESS


def _refunded_to_store_credit(transaction: dict) -> bool:
    return _refunded(transaction) and transaction["gateway"] == STORE_CREDIT_GATEWAY


def _spends_store_credit(transaction: dict) -> bool:
    return (
        transaction["gateway"] == STORE_CREDIT_GATEWAY
        and transaction["kind"] in _SPENDING_KINDS
        and transaction["status"] == _SUCCESS
    )


def _transaction_currency(transactions: list[dict]) -> str | None:
    found = None
    for index, transaction in enumerate(transactions):
        code = transaction["currency"]
        if code is None:
            continue
        if found is None:
            found = code
        elif code != found:
            raise PayloadInvalid({f"transactions.{index}.currency": f"Differs from {found}."})
    return found


def _duties_currency(data: dict, side: str) -> object:
    """`total_duties_set.<side>.currency_code` (`shop_money` or `presentment_money`), or None; read leniently
    (it is only a hint)."""
    node: object = data
    for key in ("total_duties_set", side, "currency_code"):
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _is_known_currency(code: object) -> bool:
    if not isinstance(code, str):
        return False
    try:
        validate_currency(code)
    except ValidationError:
        return False
    return True
