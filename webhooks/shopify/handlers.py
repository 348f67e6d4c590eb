"""Shopify topics → the same domain rules as every platform."""

from __future__ import annotations

from bridge.currencies import ensure_accepted_currency
from bridge.customer_rules import apply_customer
from bridge.order_rules import apply_order, apply_refund_event, find_order
from webhooks.shopify.payloads import parse_customer, parse_order, parse_refund


def _apply_refund(session, shop, parsed, actor) -> None:
    refund = parsed.refund
    if parsed.currency is not None:
        ensure_accepted_currency(shop, parsed.currency, "refund")
    known = find_order(session, shop.id, parsed.order_external_id) if parsed.currency is None else None
    if known is not None:  # every transaction said `currency: null`: read in the order's own (¥100 is not 100.00)
        refund = parse_refund(parsed.body, currency=known.currency).refund
    apply_refund_event(session, shop, parsed.order_external_id, refund, actor)


HANDLERS = {
    "customers/create": (
        parse_customer,
        lambda session, shop, snapshot, actor: apply_customer(session, shop, snapshot, actor, is_new=True),
    ),
    "customers/update": (
        parse_customer,
        lambda session, shop, snapshot, actor: apply_customer(session, shop, snapshot, actor, is_new=False),
    ),
    "orders/paid": (parse_order, apply_order),
    "orders/updated": (parse_order, apply_order),
    "orders/cancelled": (parse_order, apply_order),
    "refunds/create": (parse_refund, _apply_refund),
}
