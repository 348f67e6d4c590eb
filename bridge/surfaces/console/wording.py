"""Rows of the audit trail and the Operations page in words: what a stored JSON value says, what a message to
the shop was for (the stored payload stays one click away)."""

from __future__ import annotations

import json
from collections import Counter

from bridge.money import format_amount

WEBHOOK_STATES = frozenset({"active", "paused", "disabled", "missing", "unknown"})


def readable(value: str | None) -> str:
    """An audit value as a sentence: JSON objects and lists become words; plain text stays as it is."""
    if value is None:
        return "—"
    try:
        data = json.loads(value)
    except ValueError:
        return value
    return _words(data) if isinstance(data, dict | list) else value


def _words(value) -> str:
    if isinstance(value, dict):
        states = list(value.values())
        if states and all(isinstance(state, str) and state in WEBHOOK_STATES for state in states):
            return ", ".join(f"{count} {state}" for state, count in Counter(states).most_common())
        shown = [(key, item) for key, item in value.items() if item not in (None, "", [], {})]
        return "; ".join(f"{key.replace('_', ' ')}: {_words(item)}" for key, item in shown) or "—"
    if isinstance(value, list):
        return ", ".join(_words(item) for item in value) or "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def message_purpose(kind: str, payload: dict, currency: str) -> str:
    """What a message to the shop was to do, naming the order (and the customer for store credit)."""
    order = f"order #{payload.get('order_id')}"

    def money(key: str) -> str:
        return format_amount(int(payload.get(key) or 0), payload.get("currency") or currency)

    purposes = {
        "order.mark_paid": lambda: f"Mark {order} paid from the wallet",
        "order.add_wallet_fee": lambda: f"Take {money('amount')} off {order} as paid from the wallet",
        "order.mark_unpaid": lambda: f"Set {order} to {payload.get('status')}: the wallet could not pay it",
        "order.remove_wallet_fees": lambda: f"Take the wallet's fee lines off {order}: their money went back",
        "order.note": lambda: (
            f"Note on {order}"
            + ("" if payload.get("customer_note", True) else " (private)")
            + f": “{payload.get('note', '')}”"
        ),
        "order.refund": lambda: f"Refund {money('amount')} of {order} to the card (a wallet withdrawal)",
        "order.create_refund": lambda: f"Refund {money('amount')} of {order}, as the customer asked",
        "store_credit.credit": lambda: (
            f"Add {money('amount')} to customer #{payload.get('customer_id')}'s store credit"
        ),
        "store_credit.debit": lambda: (
            f"Take {money('amount')} from customer #{payload.get('customer_id')}'s store credit"
        ),
        "order.fetch_transactions": lambda: f"Read what {order} paid from store credit",
        "order.read_back": lambda: f"Read {order} back: is it awaiting payment again?",
    }
    return purposes[kind]() if kind in purposes else kind


def delivery_subject(topic: str, resource_id: str | None) -> str:
    """A webhook delivery's subject as a person says it: `order.updated` (WooCommerce) or `orders/updated`
    (Shopify) about 100 is "Order #100 updated"."""
    resource, _, event = topic.replace("/", ".").partition(".")
    name = resource.removesuffix("s").replace("_", " ").capitalize()
    return f"{name} #{resource_id} {event}" if resource_id else f"{name} {event}"
