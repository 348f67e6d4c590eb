"""WooCommerce webhook bodies → the platform-neutral snapshots of bridge/orders.py. Pure: no Flask, no database.

Only the parts the bridge uses are validated; the many other keys a real payload carries are ignored.
Every problem surfaces as one `PayloadInvalid` whose `fields` name the offending keys as dotted paths
("refunds.0.total"), so the HTTP layer can answer 422 and the inbox can record why. Money leaves this
module as integer minor units only.
"""

from __future__ import annotations

from datetime import UTC

from marshmallow import fields
from marshmallow.validate import Length, Range

from bridge import orders
from bridge.orders import CustomerSnapshot, OrderSnapshot, RefundSnapshot, TrashedOrder
from webhooks.payload_fields import (
    MAX_ID,
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
    "DISCOUNT_FEE_NAME",
    "PHASES",
    "WALLET_FEE_NAME",
    "TOPICS_HANDLED",
    "WHOLE_PAYLOAD",
    "PayloadInvalid",
    "parse_customer",
    "parse_order",
    "parse_trashed_order",
]

# The fee lines the bridge writes on an order (sync/woocommerce/pushes.py): the wallet's part of a partial payment,
# and the discount for paying by wallet. Each lowers the order's total by its amount and the tax the shop puts on it.
WALLET_FEE_NAME = "Paid from wallet"
DISCOUNT_FEE_NAME = "Wallet discount"
BRIDGE_FEE_NAMES = (WALLET_FEE_NAME, DISCOUNT_FEE_NAME)

TOPICS_HANDLED = frozenset(
    {"customer.created", "customer.updated", "order.created", "order.updated", "order.deleted", "order.restored"}
)

# WooCommerce status → what the rules care about. "on-hold" usually means an offline payment is awaited.
# Anything else (checkout-draft, trash, statuses added by plugins) is OTHER: the rules leave it alone.
PHASES = {
    "pending": orders.AWAITING_PAYMENT,
    "on-hold": orders.AWAITING_PAYMENT,
    "processing": orders.PAID,
    "completed": orders.PAID,
    "cancelled": orders.CANCELLED,
    "failed": orders.FAILED,
    "refunded": orders.REFUNDED,
}


# --- schemas ------------------------------------------------------------------------------------------


class _BillingSchema(Schema):
    email = optional_text()
    first_name = optional_text()
    last_name = optional_text()


class _RefundSchema(Schema):
    id = positive_id()
    total = MoneyText(required=True)  # negative: "-5.00"
    reason = optional_text()
    refund = optional_text()  # what older WooCommerce versions (and the REST docs sample) call the reason


class _LineItemSchema(Schema):
    total = MoneyText(required=True)  # after coupons, without tax (WooCommerce keeps item totals net)


class _FeeLineSchema(Schema):
    # Other plugins' fee lines are none of the bridge's business: only its own are read (`_bridge_fees`).
    name = fields.Raw(allow_none=True, load_default=None)
    total = fields.Raw(allow_none=True, load_default="0")
    total_tax = fields.Raw(allow_none=True, load_default="0")


class _MetaSchema(Schema):
    key = Text(required=True)
    value = fields.Raw(allow_none=True, load_default=None)  # kept as-is: plugins store any JSON there


class _OrderSchema(Schema):
    id = positive_id()
    status = Text(required=True, validate=Length(min=1))
    currency = Text(required=True, validate=validate_currency)
    total = MoneyText(required=True)
    customer_id = fields.Integer(  # 0 = guest; a missing key is read as a guest too
        strict=True, load_default=0, validate=Range(min=0, max=MAX_ID, error="Not 0 (guest) or a positive id.")
    )
    billing = fields.Nested(_BillingSchema, allow_none=True, load_default=None)
    payment_method = optional_text()
    refunds = fields.List(fields.Nested(_RefundSchema), load_default=list)
    line_items = fields.List(fields.Nested(_LineItemSchema), load_default=None)
    shipping_total = MoneyText(load_default="0")  # without tax: shipping_tax is apart
    fee_lines = fields.List(fields.Nested(_FeeLineSchema), load_default=list)
    meta_data = fields.List(fields.Nested(_MetaSchema), load_default=list)
    # Site time has no offset; the *_gmt twin is UTC. Used to tell a late, older state from a newer one.
    date_modified_gmt = fields.NaiveDateTime(allow_none=True, load_default=None)
    # Set when the order reached a paid status once (kept after a cancellation): the shop took the money.
    date_paid_gmt = fields.NaiveDateTime(allow_none=True, load_default=None)


class _CustomerSchema(Schema):
    id = positive_id()
    email = optional_text()
    first_name = optional_text()
    last_name = optional_text()


class _TrashedOrderSchema(Schema):
    id = positive_id()  # `order.deleted` (the order moved to the trash) carries only the id


_ORDER = _OrderSchema()
_TRASHED_ORDER = _TrashedOrderSchema()
_CUSTOMER = _CustomerSchema()


# --- public API ---------------------------------------------------------------------------------------


def parse_order(data: dict) -> OrderSnapshot:
    """An `order.*` body (= the REST v3 order) as an OrderSnapshot; raises PayloadInvalid, nothing else."""
    order = load(_ORDER, data)
    currency = order["currency"]
    total = minor_units(order["total"], currency, "total")
    if total < 0:
        raise PayloadInvalid({"total": "Must not be negative."})
    billing = order["billing"] or {}
    customer_id = order["customer_id"]
    return OrderSnapshot(
        external_id=str(order["id"]),
        customer_external_id=str(customer_id) if customer_id else None,
        email=clean(billing.get("email")),
        customer_name=full_name(billing.get("first_name"), billing.get("last_name")),
        currency=currency,
        status=order["status"],
        phase=PHASES.get(order["status"], orders.OTHER),
        total=total,
        payment_method=order["payment_method"] or "",
        # Refunds are read whatever the status: partial refunds leave e.g. "on-hold" or "processing".
        refunds=_refunds(order["refunds"], currency),
        meta={item["key"]: item["value"] for item in order["meta_data"]},  # a repeated key: the last wins
        modified_at=order["date_modified_gmt"].replace(tzinfo=UTC) if order["date_modified_gmt"] else None,
        paid_in_shop=_paid_in_shop(order["date_paid_gmt"], order["status"], "date_paid_gmt" in data),
        paid_at=order["date_paid_gmt"].replace(tzinfo=UTC) if order["date_paid_gmt"] else None,
        refunds_complete="refunds" in data,
        items_excluding_tax=_items_total(order["line_items"], currency),
        shipping_excluding_tax=minor_units(order["shipping_total"], currency, "shipping_total"),
        **_bridge_fees(order["fee_lines"] if "fee_lines" in data else None, currency),
    )


def parse_trashed_order(data: dict) -> TrashedOrder:
    """An `order.deleted` body, `{"id": N}`; raises PayloadInvalid, nothing else."""
    return TrashedOrder(external_id=str(load(_TRASHED_ORDER, data)["id"]))


def parse_customer(data: dict) -> CustomerSnapshot:
    """A `customer.*` body as a CustomerSnapshot; raises PayloadInvalid, nothing else."""
    customer = load(_CUSTOMER, data)
    return CustomerSnapshot(
        external_id=str(customer["id"]),
        email=clean(customer["email"]),
        name=full_name(customer["first_name"], customer["last_name"]),
    )


# --- helpers ------------------------------------------------------------------------------------------


def _refunds(items: list[dict], currency: str) -> tuple[RefundSnapshot, ...]:
    refunds = []
    seen: set[int] = set()
    for index, item in enumerate(items):
        path = f"refunds.{index}"
        if item["id"] in seen:
            raise PayloadInvalid({f"{path}.id": "Duplicate refund id."})
        seen.add(item["id"])
        signed = minor_units(item["total"], currency, f"{path}.total")
        if signed > 0:
            # WooCommerce writes refunds on the order as negative totals; a positive one is not understood
            raise PayloadInvalid({f"{path}.total": "Refund totals are negative."})
        reason = item["reason"] or item["refund"] or ""
        refunds.append(RefundSnapshot(external_id=str(item["id"]), amount=-signed, reason=reason))
    return tuple(refunds)


def _paid_in_shop(date_paid, status: str, said: bool) -> bool | None:
    """Whether the shop recorded a payment. `date_paid` is set when the order reaches its paid status and kept
    after a cancellation or a refund, so an order without it was never paid — even one the merchant set
    "refunded" by hand, for which WooCommerce makes a refund of the whole total (wc_order_fully_refunded).
    Only a paid status without it is left to the status to say: WooCommerce does not date an order of
    virtual goods it moves to processing (WC_Order::maybe_set_date_paid). A body without the key: unknown."""
    if date_paid:
        return True
    if not said or PHASES.get(status) == orders.PAID:
        return None
    return False


def _bridge_fees(fees: list[dict] | None, currency: str) -> dict:
    """What the bridge's own fee lines take off the order's total now (their amounts and their tax), all of them
    (`wallet_fees`; None when the body does not list them) and the discount's alone (`discount_fees`)."""
    if fees is None:
        return {"wallet_fees": None}
    taken = dict.fromkeys(BRIDGE_FEE_NAMES, 0)
    for index, fee in enumerate(fees):
        if fee["name"] in BRIDGE_FEE_NAMES:  # a tuple: a name of any type (a list) is compared, not hashed
            for key in ("total", "total_tax"):
                path = f"fee_lines.{index}.{key}"
                if not isinstance(fee[key], str):
                    raise PayloadInvalid({path: "Not a decimal string (amounts are strings, never numbers)."})
                taken[fee["name"]] -= minor_units(fee[key], currency, path)
    discount = max(taken[DISCOUNT_FEE_NAME], 0)
    return {"wallet_fees": max(taken[WALLET_FEE_NAME], 0) + discount, "discount_fees": discount}


def _items_total(items: list[dict] | None, currency: str) -> int | None:
    if items is None:
        return None
    return sum(minor_units(item["total"], currency, f"line_items.{index}.total") for index, item in enumerate(items))
