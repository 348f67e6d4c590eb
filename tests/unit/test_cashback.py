"""What an order earns as cashback: a percentage or a fixed amount, from a minimum order, up to a cap."""

import pytest

from bridge.decisions import cashback_for
from bridge.settings_schema import ShopSettings


def rules(**changes) -> ShopSettings:
    return ShopSettings.load(changes)


@pytest.mark.parametrize(
    ("settings", "base", "earned"),
    [
        (rules(), 10_000, 0),  # off by default
        (rules(cashback_kind="percent", cashback_value=500), 3_000, 150),  # 5 % of €30.00
        (rules(cashback_kind="percent", cashback_value=333), 999, 33),  # rounded down to the cent
        (rules(cashback_kind="fixed", cashback_value=200), 3_000, 200),
        (rules(cashback_kind="fixed", cashback_value=200), 150, 150),  # never more than was paid
        (rules(cashback_kind="percent", cashback_value=500, cashback_minimum_order=5_000), 4_999, 0),
        (rules(cashback_kind="percent", cashback_value=500, cashback_minimum_order=5_000), 5_000, 250),
        (rules(cashback_kind="percent", cashback_value=1_000, cashback_cap=300), 10_000, 300),
        (rules(cashback_kind="percent", cashback_value=500), 0, 0),
    ],
)
def test_cashback_for_an_order(settings, base, earned):
    assert cashback_for(settings, base) == earned
