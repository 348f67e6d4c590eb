"""The currencies a shop takes: its own, and those the merchant lists. An order or refund in any other
currency would open a wallet in it that the customer never sees (the statement and the shop show the shop's
currency), so it moves nothing and its delivery is kept as failed, with the reason, for the merchant."""

from __future__ import annotations

from bridge.errors import DomainError
from bridge.models import Shop
from bridge.settings_schema import ShopSettings


class CurrencyNotAccepted(DomainError):
    code = "currency_not_accepted"


def accepted_currencies(shop: Shop) -> list[str]:
    return [shop.currency, *ShopSettings.load(shop.settings).extra_currencies]


def ensure_accepted_currency(shop: Shop, currency: str, what: str = "order") -> None:
    accepted = accepted_currencies(shop)
    if currency not in accepted:
        raise CurrencyNotAccepted(
            f"this {what} is in {currency}, a currency the shop does not accept ({', '.join(accepted)}): nothing was "
            f"moved. To apply it, add {currency} to the accepted currencies in the shop's settings, then retry.",
            fields={"currency": f"{currency} is not accepted"},
        )
