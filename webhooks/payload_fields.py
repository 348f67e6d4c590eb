"""Building blocks for parsing webhook bodies of any platform into the snapshots of bridge/orders.py.

Pure: no Flask, no database. Every problem surfaces as one `PayloadInvalid` whose `fields` name the
offending keys as dotted paths ("refunds.0.total"), so the HTTP layer can answer 422 and the inbox can
record why. Money is accepted as decimal strings only and leaves as integer minor units.
"""

from __future__ import annotations

import re

import marshmallow
from marshmallow import EXCLUDE, ValidationError, fields
from marshmallow.validate import Range

from bridge.errors import ValidationFailed
from bridge.money import POINTS, is_currency, parse_amount

WHOLE_PAYLOAD = "_schema"  # the `fields` key for problems with the body as a whole (marshmallow's convention)

MAX_ID = 2**63 - 1  # ids end up in BIGINT-sized columns and strings; bigger is no platform's id
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # NUL (PostgreSQL's text has none) and lone surrogates (no UTF-8)
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


class Text(fields.String):
    """Text only: marshmallow's String would also take bytes. A NUL character or a lone surrogate is dropped: no
    database can store them, and a customer's name with one must not stop the order's money."""

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        return _UNSTORABLE.sub("", value)


class MoneyText(Text):
    """A decimal amount as shops write it ("41.48", "-5.00"). Numbers are refused: floats lose cents.

    Only the shape is checked here; the conversion to minor units needs the currency (`minor_units`).
    """

    default_error_messages = {
        "invalid": "Not a decimal string (amounts are strings, never numbers).",
        "not_decimal": "Not a decimal amount.",
        "too_large": "Amount too large.",
        "too_many_decimals": "Too many decimals.",
    }

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        if isinstance(value, str) and _UNSTORABLE.search(value):  # not dropped as in other text: "4\x001" is no 41
            raise self.make_error("not_decimal")
        text = super()._deserialize(value, attr, data, **kwargs)
        match = _MONEY_RE.fullmatch(text)
        if match is None:
            raise self.make_error("not_decimal")
        if len(match[1]) > _MAX_INTEGER_DIGITS:
            raise self.make_error("too_large")
        if match[2] and len(match[2]) > _MAX_DECIMALS:
            raise self.make_error("too_many_decimals")
        return text


def positive_id(**kwargs) -> fields.Integer:
    """A required JSON integer id in 1..2**63-1 (Shopify's exceed 2**53: Python's json keeps them exact).

    Strict: "12", 12.0 and True are not ids (marshmallow would otherwise coerce the first two)."""
    options = {"required": True, **kwargs}
    return fields.Integer(strict=True, validate=Range(min=1, max=MAX_ID, error="Not a positive id."), **options)


def optional_text(**kwargs) -> Text:
    """Text that may be null or absent (then None)."""
    return Text(allow_none=True, load_default=None, **kwargs)


def validate_currency(code: str) -> None:
    """A known ISO 4217 code in capitals; never the bridge's loyalty points."""
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise ValidationError("Not a three-letter currency code.")
    # Loyalty points are the bridge's own unit, never the currency of a shop order.
    if code == POINTS or not is_currency(code):
        raise ValidationError("Unknown currency.")


class Schema(marshmallow.Schema):
    """Base for payload schemas: keys the bridge does not use are ignored."""

    class Meta:
        unknown = EXCLUDE  # real payloads carry dozens of keys the bridge does not use


# --- loading and converting ---------------------------------------------------------------------------


def load(schema: marshmallow.Schema, data) -> dict:
    """`schema.load(data)`, every problem (a non-object included) as one PayloadInvalid."""
    if not isinstance(data, dict):
        raise PayloadInvalid({WHOLE_PAYLOAD: "Expected a JSON object."})
    try:
        return schema.load(data)
    except ValidationError as exc:
        raise PayloadInvalid(flatten(exc.messages)) from exc


def flatten(messages, path: str = "") -> dict[str, str]:
    """marshmallow's nested messages ({"refunds": {0: {"total": [...]}}}) → {"refunds.0.total": "..."}."""
    if isinstance(messages, dict):
        flat: dict[str, str] = {}
        for key, inner in messages.items():
            # "_schema" is a problem with the object itself, e.g. a refund that is not an object
            inner_path = path if key == WHOLE_PAYLOAD else f"{path}.{key}" if path else str(key)
            flat.update(flatten(inner, inner_path))
        return flat
    text = " ".join(map(str, messages)) if isinstance(messages, list) else str(messages)
    return {path or WHOLE_PAYLOAD: text}


def minor_units(text: str, currency: str, path: str) -> int:
    """A MoneyText value in `currency`'s minor units; too many decimals → PayloadInvalid at `path`."""
    try:
        return parse_amount(text, currency, field=path)
    except ValidationFailed as exc:
        problems = exc.fields or {path: exc.message}
        raise PayloadInvalid({str(key): str(problem) for key, problem in problems.items()}) from exc


def clean(text: str | None) -> str | None:
    """Stripped text, or None when nothing is left."""
    text = (text or "").strip()
    return text or None


def full_name(first: str | None, last: str | None) -> str | None:
    return clean(" ".join(part.strip() for part in (first, last) if part))


def resource_id(data) -> str | None:
    """The id of the resource a delivery is about (its `id`: the order, customer or refund), for the inbox;
    best effort, never raises. Bodies without one (WooCommerce `action.*`) give None."""
    if not isinstance(data, dict):
        return None
    value = data.get("id")
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID:
        return str(value)
    if isinstance(value, str) and 0 < len(value) <= 20 and value.isascii() and value.isdigit():
        return value
    return None
