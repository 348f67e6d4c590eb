import pytest

from bridge.errors import ValidationFailed
from bridge.money import format_amount, parse_amount, percent_of, pro_rata, to_decimal_string


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("29.35", "EUR", 2935),
        ("-9.00", "EUR", -900),
        ("0", "EUR", 0),
        ("1500", "JPY", 1500),
        ("1.005", "KWD", 1005),
        ("41.48", "EUR", 4148),
        ("10", "EUR", 1000),
        ("1061.02", "HUF", 106102),  # ISO 4217 gives HUF two decimals (CLDR, which babel follows, none)
        ("15000.50", "IDR", 1500050),
        ("0.125", "IQD", 125),
        ("12.50", "BGN", 1250),  # withdrawn by ISO 4217 (2026): a shop made in it still reads its amounts
        ("5.0000000000000000000000000000000", "EUR", 500),  # trailing zeros beyond 28 digits
        ("-0.10", "EUR", -10),
    ],
)
def test_parse_shop_amounts(text, currency, minor):
    assert parse_amount(text, currency) == minor


# "5.000…001": Decimal's 28 digits rounded it to 5.00 (found by an outside audit, session 13); "٣": not ASCII
@pytest.mark.parametrize(
    "bad", [29.35, "1.005", "abc", "", "1e3", None, True, "1.2.3", "5." + "0" * 30 + "1", "٣", "1" * 1_001]
)
def test_parse_refuses_floats_and_garbage(bad):
    with pytest.raises(ValidationFailed):
        parse_amount(bad, "EUR")


def test_unknown_currency_is_refused():
    with pytest.raises(ValidationFailed):
        parse_amount("1.00", "XYZ")


def test_formatting_round_trips_through_decimal_strings():
    assert to_decimal_string(2935, "EUR") == "29.35"
    assert to_decimal_string(-5, "EUR") == "-0.05"
    assert to_decimal_string(1500, "JPY") == "1500"
    assert format_amount(2935, "EUR") == "€29.35"
    assert format_amount(1250, "PTS") == "1,250 points"


def test_formatting_shows_every_minor_unit_and_no_more():
    """Shown in CLDR's style, but never rounded to its digits: 1061.02 HUF is not shown as 1,061."""
    assert format_amount(106102, "HUF") == "HUF1,061.02"
    assert format_amount(499000, "HUF") == "HUF4,990"
    assert format_amount(165000, "JPY") == "¥165,000"
    assert format_amount(12340, "KWD") == "KWD12.340"
    assert format_amount(-500, "EUR") == "-€5.00"


def test_percent_and_pro_rata_round_down():
    assert percent_of(999, 1000) == 99
    assert pro_rata(1, 3, 1000) == 333
    assert pro_rata(5, 0, 1000) == 0
