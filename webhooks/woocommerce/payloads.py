"""WooCommerce webhook bodies → the platform-neutral snapshots of bridge/orders.py. Pure: no Flask, no database.

Only the parts the bridge uses are validated; the many other keys a real payload carries are ignored.
Every problem surfaces as one `PayloadInvalid` whose `fields` name the offending keys as dotted paths
("refunds.0.total"), so the HTTP layer can answer 422 and the inbox can record why. Money leaves this
module as integer minor units only.
"""

from __future__ import annotations

import re
from datetime import UTC

from marshmallow import EXCLUDE, Schema, ValidationError, fields
from marshmallow.validate import Length, Range

from bridge import orders
from bridge.errors import ValidationFailed
from bridge.money import POINTS, is_currency, parse_amount
from bridge.orders import CustomerSnapshot, OrderSnapshot, RefundSnapshot

TOPICS_HANDLED = frozenset({"customer.created", "customer.updated", "order.created", "order.updated"})

WHOLE_PAYLOAD = "_schema"  # the `fields` key for problems with the body as a whole (marshmallow's convention)

# WooCommerce status → what the rules care about. "on-hold" usually means an offline payment is awaited.
# Anything else (checkout-draft, trash, statuses added by plugins) is OTHER: the rules leave it alone.
PHASES = {
    "pending": orders.AWAITING_PAYMENT,
    "on-hold": orders.AWAITING_PAYMENT,
    "processing": orders.PAID,
    "completed": orders.PAID,
    "cancelled": orders.CANCELLED,
    "failed": orders.CANCELLED,
    "refunded": orders.REFUNDED,
}

_MAX_ID = 2**63 - 1  # ids end up in BIGINT-sized columns and strings; bigger is not a WooCommerce id
_MONEY_RE = re.compile(r"-?([0-9]+)(?:\.([0-9]+))?")  # ASCII digits only (\d would accept "٤١")
# 15 integer digits keep even 3-decimal currencies below 2**63 minor units; 12 decimals keep every amount
# within Decimal's 28 significant digits, so scaling to minor units is exact and never rounds silently.
_MAX_INTEGER_DIGITS = 15
_MAX_DECIMALS = 12


class PayloadInvalid(ValidationFailed):
    """A webhook body without the shape the bridge relies on. `fields` maps dotted paths to problems."""

    def __init__(self, fields: dict[str, str]):
        super().__init__(f"invalid webhook payload: {', '.join(sorted(fields))}", fields=dict(fields))


# --- fields -------------------------------------------------------------------------------------------


class _Text(fields.String):
    """Text only: marshmallow's String would also take bytes."""

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        return value


class _MoneyText(_Text):
    """A decimal amount as WooCommerce writes it ("41.48", "-5.00"). Numbers are refused: floats lose cents.

    Only the shape is checked here; the conversion to minor units needs the order's currency.
    """

    default_error_messages = {
        "invalid": "Not a decimal string (amounts are strings, never numbers).",
        "not_decimal": "Not a decimal amount.",
        "too_large": "Amount too large.",
        "too_many_decimals": "Too many decimals.",
    }

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        match = _MONEY_RE.fullmatch(text)
        if match is None:
            raise self.make_error("not_decimal")
        if len(match[1]) > _MAX_INTEGER_DIGITS:
            raise self.make_error("too_large")
        if match[2] and len(match[2]) > _MAX_DECIMALS:
            raise self.make_error("too_many_decimals")
        return text


def _positive_id() -> fields.Integer:
    # strict: "12", 12.0 and True are not ids (marshmallow would otherwise coerce the first two)
    return fields.Integer(strict=True, required=True, validate=Range(min=1, max=_MAX_ID, error="Not a positive id."))


def _optional_text(**kwargs) -> _Text:
    return _Text(allow_none=True, load_default=None, **kwargs)


def _validate_currency(code: str) -> None:
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise ValidationError("Not a three-letter currency code.")
    # Loyalty points are the bridge's own unit, never the currency of a shop order.
    if code == POINTS or not is_currency(code):
        raise ValidationError("Unknown currency.")


# --- schemas ------------------------------------------------------------------------------------------


class _Schema(Schema):
    class Meta:
        unknown = EXCLUDE  # real payloads carry dozens of keys the bridge does not use


class _BillingSchema(_Schema):
    email = _optional_text()
    first_name = _optional_text()
    last_name = _optional_text()


class _RefundSchema(_Schema):
    id = _positive_id()
    total = _MoneyText(required=True)  # negative: "-5.00"
    reason = _optional_text()
    refund = _optional_text()  # what older WooCommerce versions (and the REST docs sample) call the reason


class _MetaSchema(_Schema):
    key = _Text(required=True)
    value = fields.Raw(allow_none=True, load_default=None)  # kept as-is: plugins store any JSON there


class _OrderSchema(_Schema):
    id = _positive_id()
    status = _Text(required=True, validate=Length(min=1))
    currency = _Text(required=True, validate=_validate_currency)
    total = _MoneyText(required=True)
    customer_id = fields.Integer(  # 0 = guest; a missing key is read as a guest too
        strict=True, load_default=0, validate=Range(min=0, max=_MAX_ID, error="Not 0 (guest) or a positive id.")
    )
    billing = fields.Nested(_BillingSchema, allow_none=True, load_default=None)
    payment_method = _optional_text()
    refunds = fields.List(fields.Nested(_RefundSchema), load_default=list)
    meta_data = fields.List(fields.Nested(_MetaSchema), load_default=list)
    # Site time has no offset; the *_gmt twin is UTC. Used to tell a late, older state from a newer one.
    date_modified_gmt = fields.NaiveDateTime(allow_none=True, load_default=None)


class _CustomerSchema(_Schema):
    id = _positive_id()
    email = _optional_text()
    first_name = _optional_text()
    last_name = _optional_text()


_ORDER = _OrderSchema()
_CUSTOMER = _CustomerSchema()


# --- public API ---------------------------------------------------------------------------------------


def parse_order(data: dict) -> OrderSnapshot:
    """An `order.*` body (= the REST v3 order) as an OrderSnapshot; raises PayloadInvalid, nothing else."""
    order = _load(_ORDER, data)
    currency = order["currency"]
    total = _minor_units(order["total"], currency, "total")
    if total < 0:
        raise PayloadInvalid({"total": "Must not be negative."})
    billing = order["billing"] or {}
    customer_id = order["customer_id"]
    return OrderSnapshot(
        external_id=str(order["id"]),
        customer_external_id=str(customer_id) if customer_id else None,
        email=_clean(billing.get("email")),
        customer_name=_full_name(billing.get("first_name"), billing.get("last_name")),
        currency=currency,
        status=order["status"],
        phase=PHASES.get(order["status"], orders.OTHER),
        total=total,
        payment_method=order["payment_method"] or "",
        # Refunds are read whatever the status: partial refunds leave e.g. "on-hold" or "processing".
        refunds=_refunds(order["refunds"], currency),
        meta={item["key"]: item["value"] for item in order["meta_data"]},  # a repeated key: the last wins
        modified_at=order["date_modified_gmt"].replace(tzinfo=UTC) if order["date_modified_gmt"] else None,
    )


def parse_customer(data: dict) -> CustomerSnapshot:
    """A `customer.*` body as a CustomerSnapshot; raises PayloadInvalid, nothing else."""
    customer = _load(_CUSTOMER, data)
    return CustomerSnapshot(
        external_id=str(customer["id"]),
        email=_clean(customer["email"]),
        name=_full_name(customer["first_name"], customer["last_name"]),
    )


def resource_id(topic: str, data) -> str | None:
    """The id of the resource a delivery is about (its `id`), for the inbox; best effort, never raises.

    `topic` is unused for now: every resource topic (order, customer, product, coupon) carries `id`;
    `action.*` bodies have none and give None.
    """
    if not isinstance(data, dict):
        return None
    value = data.get("id")
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= _MAX_ID:
        return str(value)
    if isinstance(value, str) and 0 < len(value) <= 20 and value.isascii() and value.isdigit():
        return value
    return None


# --- helpers ------------------------------------------------------------------------------------------


def _load(schema: Schema, data) -> dict:
    if not isinstance(data, dict):
        raise PayloadInvalid({WHOLE_PAYLOAD: "Expected a JSON object."})
    try:
        return schema.load(data)
    except ValidationError as exc:
        raise PayloadInvalid(_flatten(exc.messages)) from exc


def _flatten(messages, path: str = "") -> dict[str, str]:
    """marshmallow's nested messages ({"refunds": {0: {"total": [...]}}}) → {"refunds.0.total": "..."}."""
    if isinstance(messages, dict):
        flat: dict[str, str] = {}
        for key, inner in messages.items():
            # "_schema" is a problem with the object itself, e.g. a refund that is not an object
            inner_path = path if key == WHOLE_PAYLOAD else f"{path}.{key}" if path else str(key)
            flat.update(_flatten(inner, inner_path))
        return flat
    text = " ".join(map(str, messages)) if isinstance(messages, list) else str(messages)
    return {path or WHOLE_PAYLOAD: text}


def _minor_units(text: str, currency: str, path: str) -> int:
    try:
        return parse_amount(text, currency, field=path)
    except ValidationFailed as exc:
        problems = exc.fields or {path: exc.message}
        raise PayloadInvalid({str(key): str(problem) for key, problem in problems.items()}) from exc


def _refunds(items: list[dict], currency: str) -> tuple[RefundSnapshot, ...]:
    refunds = []
    seen: set[int] = set()
    for index, item in enumerate(items):
        path = f"refunds.{index}"
        if item["id"] in seen:
            raise PayloadInvalid({f"{path}.id": "Duplicate refund id."})
        seen.add(item["id"])
        signed = _minor_units(item["total"], currency, f"{path}.total")
        if signed > 0:
            # WooCommerce writes refunds on the order as negative totals; a positive one is not understood
            raise PayloadInvalid({f"{path}.total": "Refund totals are negative."})
        reason = item["reason"] or item["refund"] or ""
        refunds.append(RefundSnapshot(external_id=str(item["id"]), amount=-signed, reason=reason))
    return tuple(refunds)


def _clean(text: str | None) -> str | None:
    text = (text or "").strip()
    return text or None


def _full_name(first: str | None, last: str | None) -> str | None:
    return _clean(" ".join(part.strip() for part in (first, last) if part))
