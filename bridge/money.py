"""Money as integer minor units. Parsing shop strings and formatting for people happen only here."""

from __future__ import annotations

import re
from decimal import Decimal

from babel import Locale
from babel.numbers import format_currency, get_currency_precision, list_currencies
from iso4217 import Currency

from bridge.errors import ValidationFailed

POINTS = "PTS"  # loyalty points: a unit of their own, exponent 0, never mixed with money
_AMOUNT_RE = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")  # ASCII digits: int() would read "٣" as 3
_SIGNED = re.compile(r"(-?)([0-9]+)(\.?)([0-9]*)")
GROUPED = re.compile(r"-?\d{1,3}(,\d{3})+")  # 1,234,567: commas between groups of three digits
_DECIMAL_COMMA = re.compile(r"-?\d+,\d{1,2}")  # 12,5 or 12,50: a thousands separator is followed by three digits
AMBIGUOUS_COMMA = "Write it without thousands separators (1,250 could be 1250.00 or 1.25)."
# ISO 4217's exponents, not CLDR's digits (babel's get_currency_precision): CLDR shows HUF, IDR, COP … without
# decimals, but they have two (a shop on WooCommerce's default of 2 decimals sends "1061.02" HUF of tax). A code
# ISO has withdrawn (BGN, HRK …) keeps CLDR's digits: a shop made in it still reads its wallets.
_EXPONENTS = {code: get_currency_precision(code) for code in list_currencies()} | {
    currency.code: currency.exponent for currency in Currency if currency.exponent is not None
}


def is_currency(code: str) -> bool:
    return code == POINTS or code in _EXPONENTS


def exponent(currency: str) -> int:
    """Digits after the decimal point for an ISO 4217 currency (EUR 2, JPY 0, KWD 3)."""
    if currency == POINTS:
        return 0
    if currency not in _EXPONENTS:
        raise ValidationFailed(f"unknown currency {currency!r}", fields={"currency": "unknown currency"})
    return _EXPONENTS[currency]


def parse_amount(text: str | int, currency: str, field: str = "amount") -> int:
    """Turn a shop's decimal string ("29.35", "-9.00") into minor units; floats are refused."""
    if isinstance(text, bool) or isinstance(text, float):
        raise ValidationFailed("amounts must be decimal strings, not floats", fields={field: "not a decimal string"})
    return parse_scaled(str(text) if isinstance(text, int) else text, exponent(currency), field)


MAX_WHOLE_DIGITS = 1_000  # read in microseconds, then refused by the field's own range; an int of more takes seconds


def parse_scaled(text: str, places: int, field: str = "amount") -> int:
    """A plain decimal string ("29.35": ASCII digits, no exponent) times 10**places, exactly: Decimal's 28 digits
    would round 5.000…0001 to 5 before the fraction is seen. More decimals than `places` (but zeros) are refused."""
    if not isinstance(text, str) or not _AMOUNT_RE.match(text.strip()):
        raise ValidationFailed(f"{text!r} is not an amount", fields={field: "not a decimal amount"})
    sign, whole, _, fraction = _SIGNED.match(text.strip()).groups()
    if fraction[places:].strip("0"):
        raise ValidationFailed(f"{text} has more decimals than {places}", fields={field: "too many decimals"})
    if len(whole.lstrip("0")) > MAX_WHOLE_DIGITS:
        raise ValidationFailed(f"{field} is too large", fields={field: "too large"})
    minor = int(whole + fraction[:places].ljust(places, "0"))
    return -minor if sign else minor


def with_decimal_point(typed: str, field: str = "amount") -> str:
    """A number a person typed, with a decimal comma made a point and thousands separators dropped. A comma that
    could be either (1,250: 1250 or 1.25?) is refused rather than guessed: a wrong guess scales it a thousandfold."""
    if "," not in typed:
        return typed
    if _DECIMAL_COMMA.fullmatch(typed):
        return typed.replace(",", ".")
    whole, point, _ = typed.partition(".")
    if GROUPED.fullmatch(whole) and (point or whole.count(",") > 1):
        return typed.replace(",", "")
    raise ValidationFailed(AMBIGUOUS_COMMA, fields={field: "ambiguous comma"})


def to_decimal_string(minor: int, currency: str) -> str:
    """Minor units as the plain decimal string shops expect ("29.35")."""
    places = exponent(currency)
    value = Decimal(minor).scaleb(-places)
    return f"{value:.{places}f}"


_LOCALE = Locale.parse("en_US")  # parsed once: by name, each call would parse it again


def format_amount(minor: int, currency: str) -> str:
    """Minor units for people: "€29.35", "1,250 points"."""
    if currency == POINTS:
        return f"{minor:,} points"
    # not rounded to CLDR's digits: 1061.02 HUF is shown whole ("HUF1,061.02"), 4990.00 as "HUF4,990"
    return format_currency(
        Decimal(minor).scaleb(-exponent(currency)), currency, locale=_LOCALE, decimal_quantization=False
    )


def percent_of(minor: int, basis_points: int) -> int:
    """A percentage of an amount, rounded down to the minor unit (basis points: 1500 = 15 %)."""
    return (minor * basis_points) // 10_000


def pro_rata(part: int, whole: int, amount: int) -> int:
    """amount × part / whole in integers, rounded down so that repeated shares never exceed the whole."""
    if whole <= 0:
        return 0
    return (amount * part) // whole
