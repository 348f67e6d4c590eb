"""The wc/v3 JSON shapes, key for key in the order a WooCommerce 10 store sends them (compare the captured
deliveries in tests/fixtures/woocommerce/captured/). The same dict is the REST response and the webhook
payload, as on a real store."""

from __future__ import annotations

import hashlib
from decimal import Decimal

from simulator.store import (
    BILLING_FIELDS,
    EDITABLE_STATUSES,
    SHIPPING_FIELDS,
    TAX_RATE_ID,
    Customer,
    FeeLine,
    LineItem,
    Meta,
    Note,
    Order,
    Refund,
    ShippingLine,
    Store,
)
from simulator.webhooks import Webhook
from simulator.wire import WC_VERSION, gmt_date, money, price_number, site_date

CURRENCY_SYMBOLS = {
    "EUR": "\u20ac",
    "USD": "$",
    "GBP": "\u00a3",
    "JPY": "\u00a5",
    "CHF": "CHF",
    "SEK": "kr",
    "PLN": "z\u0142",
    "CAD": "$",
    "AUD": "$",
}
ALLOW_ALL = {"allow": ["GET", "POST", "PUT", "PATCH", "DELETE"]}
CUSTOMER_BILLING = (
    "first_name",
    "last_name",
    "company",
    "address_1",
    "address_2",
    "city",
    "postcode",
    "country",
    "state",
    "email",
    "phone",
)
CUSTOMER_SHIPPING = tuple(name for name in CUSTOMER_BILLING if name != "email")


def api_base(url: str) -> str:
    return f"{url}/wp-json/wc/v3"


def meta_json(metas: list[Meta]) -> list[dict]:
    return [{"id": m.id, "key": m.key, "value": m.value} for m in metas]


def order_json(order: Order, store: Store, url: str) -> dict:
    """GET /orders/<id> and the order.* webhook payload."""
    cents = _formatter(store)
    site, base = (lambda moment: site_date(moment, store.utc_offset)), api_base(url)
    links = {
        "self": [{"href": f"{base}/orders/{order.id}", "targetHints": ALLOW_ALL}],
        "collection": [{"href": f"{base}/orders"}],
        "email_templates": [{"embeddable": True, "href": f"{base}/orders/{order.id}/actions/email_templates"}],
    }
    if order.customer_id:
        links["customer"] = [{"href": f"{base}/customers/{order.customer_id}"}]
    return {
        "id": order.id,
        "parent_id": 0,
        "status": order.status,
        "currency": order.currency,
        "version": WC_VERSION,
        "prices_include_tax": False,
        "date_created": site(order.created),
        "date_modified": site(order.modified),
        "discount_total": cents(0),
        "discount_tax": cents(0),
        "shipping_total": cents(order.shipping_total),
        "shipping_tax": cents(order.shipping_tax),
        "cart_tax": cents(order.cart_tax),
        "total": cents(order.total),
        "total_tax": cents(order.cart_tax + order.shipping_tax),
        "customer_id": order.customer_id,
        "order_key": order.order_key,
        "billing": {name: order.billing[name] for name in BILLING_FIELDS},
        "shipping": {name: order.shipping[name] for name in SHIPPING_FIELDS},
        "payment_method": order.payment_method,
        "payment_method_title": order.payment_method_title,
        "transaction_id": order.transaction_id,
        "customer_ip_address": order.customer_ip_address,
        "customer_user_agent": order.customer_user_agent,
        "created_via": order.created_via,
        "customer_note": order.customer_note,
        "date_completed": site(order.date_completed),
        "date_paid": site(order.date_paid),
        "cart_hash": "",
        "number": str(order.id),
        "meta_data": meta_json(order.meta),
        "line_items": [_line_item_json(item, store) for item in order.line_items],
        "tax_lines": _tax_lines_json(order, store),
        "shipping_lines": [_shipping_json(line, store) for line in order.shipping_lines],
        "fee_lines": [_fee_json(fee, store) for fee in order.fee_lines],
        "coupon_lines": [],
        "refunds": [{"id": r.id, "reason": r.reason, "total": cents(-r.amount)} for r in order.refunds],
        "payment_url": f"{url}/checkout/order-pay/{order.id}/?pay_for_order=true&key={order.order_key}",
        "is_editable": order.status in EDITABLE_STATUSES,
        "needs_payment": order.needs_payment,
        "needs_processing": True,
        "date_created_gmt": gmt_date(order.created),
        "date_modified_gmt": gmt_date(order.modified),
        "date_completed_gmt": gmt_date(order.date_completed),
        "date_paid_gmt": gmt_date(order.date_paid),
        "currency_symbol": CURRENCY_SYMBOLS.get(order.currency, order.currency),
        "_links": links,
    }


def _formatter(store: Store):
    return lambda minor: money(minor, store.decimals)


def _taxes(store: Store, tax: int, subtotal: bool) -> list[dict]:
    if not store.tax_rate_bp or not tax:
        return []
    amount = money(tax, store.decimals)
    return [{"id": TAX_RATE_ID, "total": amount, "subtotal": amount if subtotal else ""}]


def _line_item_json(item: LineItem, store: Store) -> dict:
    cents = _formatter(store)
    return {
        "id": item.id,
        "name": item.name,
        "product_id": item.product_id,
        "variation_id": item.variation_id,
        "quantity": item.quantity,
        "tax_class": "",
        "subtotal": cents(item.subtotal),
        "subtotal_tax": cents(item.tax),
        "total": cents(item.total),
        "total_tax": cents(item.tax),
        "taxes": _taxes(store, item.tax, True),
        "meta_data": [],
        "sku": item.sku,
        "price": price_number(item.total, item.quantity, store.decimals),
        "image": {"id": "", "src": ""},
        "parent_name": None,
    }


def _shipping_json(line: ShippingLine, store: Store) -> dict:
    cents = _formatter(store)
    return {
        "id": line.id,
        "method_title": line.method_title,
        "method_id": line.method_id,
        "instance_id": "",
        "total": cents(line.total),
        "total_tax": cents(line.tax),
        "taxes": _taxes(store, line.tax, False),
        "tax_status": "taxable",
        "meta_data": [],
    }


def _fee_json(fee: FeeLine, store: Store) -> dict:
    cents = _formatter(store)
    return {
        "id": fee.id,
        "name": fee.name,
        "tax_class": fee.tax_class,
        "tax_status": fee.tax_status,
        "amount": fee.amount,
        "total": cents(fee.total),
        "total_tax": cents(fee.tax),
        "taxes": _taxes(store, fee.tax, False),
        "meta_data": [],
    }


def _tax_lines_json(order: Order, store: Store) -> list[dict]:
    if order.tax_line_id is None:
        return []
    percent = Decimal(store.tax_rate_bp) / 100
    return [
        {
            "id": order.tax_line_id,
            "rate_code": f"TAX-{TAX_RATE_ID}",
            "rate_id": TAX_RATE_ID,
            "label": "Tax",
            "compound": False,
            "tax_total": money(order.cart_tax, store.decimals),
            "shipping_tax_total": money(order.shipping_tax, store.decimals),
            "rate_percent": int(percent) if percent == percent.to_integral_value() else float(percent),
            "meta_data": [],
        }
    ]


def refund_json(refund: Refund, store: Store, url: str) -> dict:
    """POST/GET /orders/<id>/refunds: here the amount is positive (the order's `refunds` list is negative)."""
    cents, base = _formatter(store), api_base(url)
    items = [
        {
            "id": item.id,
            "name": item.source.name,
            "product_id": item.source.product_id,
            "variation_id": item.source.variation_id,
            "quantity": -item.quantity,
            "tax_class": "",
            "subtotal": cents(-item.total),
            "subtotal_tax": cents(0),
            "total": cents(-item.total),
            "total_tax": cents(0),
            "taxes": [],
            "meta_data": [{"id": item.meta_id, "key": "_refunded_item_id", "value": str(item.source.id)}],
            "sku": item.source.sku,
            "price": -price_number(item.total, item.quantity or 1, store.decimals),
        }
        for item in refund.items
    ]
    return {
        "id": refund.id,
        "date_created": site_date(refund.created, store.utc_offset),
        "date_created_gmt": gmt_date(refund.created),
        "amount": cents(refund.amount),
        "reason": refund.reason,
        "refunded_by": 1,
        "refunded_payment": refund.refunded_payment,
        "meta_data": meta_json(refund.meta),
        "line_items": items,
        "_links": {
            "self": [{"href": f"{base}/orders/{refund.order_id}/refunds/{refund.id}"}],
            "collection": [{"href": f"{base}/orders/{refund.order_id}/refunds"}],
            "up": [{"href": f"{base}/orders/{refund.order_id}"}],
        },
    }


def note_json(note: Note, store: Store, url: str) -> dict:
    base = api_base(url)
    return {
        "id": note.id,
        "author": note.author,
        "date_created": site_date(note.created, store.utc_offset),
        "date_created_gmt": gmt_date(note.created),
        "note": note.note,
        "customer_note": note.customer_note,
        "_links": {
            "self": [{"href": f"{base}/orders/{note.order_id}/notes/{note.id}"}],
            "collection": [{"href": f"{base}/orders/{note.order_id}/notes"}],
            "up": [{"href": f"{base}/orders/{note.order_id}"}],
        },
    }


def customer_json(customer: Customer, store: Store, url: str) -> dict:
    """GET /customers/<id> and the customer.* webhook payload."""
    site, base = (lambda moment: site_date(moment, store.utc_offset)), api_base(url)
    email_hash = hashlib.sha256(customer.email.strip().lower().encode()).hexdigest()
    return {
        "id": customer.id,
        "date_created": site(customer.created),
        "date_created_gmt": gmt_date(customer.created),
        "date_modified": site(customer.modified),
        "date_modified_gmt": gmt_date(customer.modified),
        "email": customer.email,
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "role": customer.role,
        "username": customer.username,
        "billing": {name: customer.billing[name] for name in CUSTOMER_BILLING},
        "shipping": {name: customer.shipping[name] for name in CUSTOMER_SHIPPING},
        "is_paying_customer": customer.is_paying_customer,
        "avatar_url": f"https://secure.gravatar.com/avatar/{email_hash}?s=96&d=mm&r=g",
        "meta_data": meta_json(customer.meta),
        "_links": {
            "self": [{"href": f"{base}/customers/{customer.id}", "targetHints": ALLOW_ALL}],
            "collection": [{"href": f"{base}/customers"}],
        },
    }


def webhook_json(hook: Webhook, store: Store, url: str) -> dict:
    """GET /webhooks/<id>. The secret is never shown, as on a real store."""
    base = api_base(url)
    return {
        "id": hook.id,
        "name": hook.name,
        "status": hook.status,
        "topic": hook.topic,
        "resource": hook.resource,
        "event": hook.event,
        "hooks": hook.hooks,
        "delivery_url": hook.delivery_url,
        "date_created": site_date(hook.created, store.utc_offset),
        "date_created_gmt": gmt_date(hook.created),
        "date_modified": site_date(hook.modified, store.utc_offset),
        "date_modified_gmt": gmt_date(hook.modified),
        "_links": {"self": [{"href": f"{base}/webhooks/{hook.id}"}], "collection": [{"href": f"{base}/webhooks"}]},
    }
