"""A shop's order as the rules see it, whatever the platform: amounts in minor units, ids as strings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

# Platform statuses mapped onto what the rules care about.
AWAITING_PAYMENT = "awaiting_payment"
PAID = "paid"
CANCELLED = "cancelled"
FAILED = "failed"  # the payment did not go through, and may be tried again (WooCommerce's "failed")
REFUNDED = "refunded"
OTHER = "other"


@dataclass(frozen=True)
class RefundSnapshot:
    external_id: str
    amount: int  # positive minor units
    reason: str
    to_store_credit: int = 0  # part the shop itself already returned to its native store credit (Shopify)
    # The shop says where every part went (Shopify's refund transactions: the card, its store credit): the
    # shop's refund policy cannot send the card's part to the wallet as well.
    settled_by_shop: bool = False


@dataclass(frozen=True)
class OrderSnapshot:
    """The state of an order now (WooCommerce collapses quick changes into one delivery)."""

    external_id: str
    customer_external_id: str | None  # None for guests
    email: str | None
    customer_name: str | None
    currency: str
    status: str  # the platform's own status, e.g. "processing"
    phase: str  # one of the constants above
    total: int
    payment_method: str
    refunds: tuple[RefundSnapshot, ...] = ()
    meta: dict = field(default_factory=dict)  # the platform's order meta_data, key → value
    modified_at: datetime | None = None  # when the shop last changed the order (UTC), if it says
    spent_from_store_credit: int = 0  # paid at the shop's own checkout from its native store credit (Shopify)
    store_credit_spend_unknown: bool = False  # store credit paid part, the body did not say how much: ask the shop
    # What the goods and the shipping cost without tax (after item discounts), for the points they earn;
    # None when the body did not list them (the rules' own snapshots).
    items_excluding_tax: int | None = None
    shipping_excluding_tax: int = 0
    paid_in_shop: bool | None = None  # the shop recorded a payment (WooCommerce's date_paid); None: it does not say
    paid_at: datetime | None = None  # when it did (UTC), if the body says
    refunds_complete: bool = False  # `refunds` lists every refund the order has: one missing was deleted
    # What the bridge's own fee lines on the order (a wallet part, a wallet discount) take off `total` now, as
    # the shop applied them (it caps a fee at what is left, and taxes it); None when the body does not list them.
    wallet_fees: int | None = None
    discount_fees: int = 0  # of `wallet_fees`, the discount's lines: no wallet money, a price the shop gives
    # Read from the shop by the bridge after it saw the order's newest state (`order.read_back`), not delivered:
    # the order's state at that moment, however its date compares.
    read_back: bool = False

    @property
    def wallet_part_fees(self) -> int | None:
        """What the wallet's part lines ("Paid from wallet") take off `total`: the wallet money the shop applies."""
        return None if self.wallet_fees is None else self.wallet_fees - self.discount_fees

    def recorded_paid(self) -> bool:
        """Whether the shop recorded the order as paid: its own word, else a paid or refunded state."""
        return self.paid_in_shop if self.paid_in_shop is not None else self.phase in (PAID, REFUNDED)


@dataclass(frozen=True)
class TrashedOrder:
    """An order the merchant moved to the trash (WooCommerce's `order.deleted` says only its id)."""

    external_id: str


@dataclass(frozen=True)
class CustomerSnapshot:
    external_id: str
    email: str | None
    name: str | None
