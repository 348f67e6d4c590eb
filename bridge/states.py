"""The states a row can be in, as enums. Each member is the very string stored in its column (StrEnum), so
rows written before these existed read the same, and a query binds a member as that string."""

from __future__ import annotations

from enum import StrEnum


class PaymentOutcome(StrEnum):
    """What the bridge decided about a shop order's wallet payment (`ShopOrder.payment_outcome`; None: nothing
    yet)."""

    PAID = "paid"  # the wallet paid the whole order
    PARTIAL = "partial"  # the wallet paid part of it (a fee line on the order); another method pays the rest
    UNPAID = "unpaid"  # the wallet could not pay: the shop was told to fail (or hold) the order
    CANCELLED = "cancelled"  # cancelled (or trashed) before the wallet paid anything
    REVERSED = "reversed"  # the wallet payment went back to the wallet (cancelled, or failed after payment)
    STORE_CREDIT = "store_credit"  # spent at the shop's own checkout from its native store credit (Shopify)
    TOPUP = "topup"  # a top-up order: it credited the wallet, the wallet paid nothing


class HoldStatus(StrEnum):
    OPEN = "open"
    CAPTURED = "captured"
    VOIDED = "voided"
    EXPIRED = "expired"


class InboxStatus(StrEnum):
    RECEIVED = "received"  # stored, not applied yet (or left for the worker's recovery)
    APPLIED = "applied"
    IGNORED = "ignored"  # a topic the bridge has no use for
    FAILED = "failed"  # refused or broken: kept for the merchant to look at and retry


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"  # claimed by a worker until its lease ends
    DELIVERED = "delivered"
    DEAD = "dead"  # given up on: the merchant retries it, or a reconciliation makes it redundant
    RECONCILED = "reconciled"  # a dead letter a reconciliation made redundant
