"""Creating the shop order a top-up is paid through: one fee line, the customer, pending, a marker."""

from __future__ import annotations

from bridge.money import to_decimal_string
from bridge.topups import TOPUP_FEE_NAME, TOPUP_MARKER
from sync.woocommerce.client import WooShop


def create_topup_order(api: WooShop, customer_external_id: str, amount: int, currency: str) -> tuple[str, str]:
    """Returns (order id, payment URL). No product or shipping: the fee line is the whole order."""
    body = {
        "customer_id": int(customer_external_id) if customer_external_id.isdigit() else 0,
        "status": "pending",
        "currency": currency,
        "set_paid": False,
        "fee_lines": [{"name": TOPUP_FEE_NAME, "total": to_decimal_string(amount, currency), "tax_status": "none"}],
        "meta_data": [{"key": TOPUP_MARKER, "value": str(amount)}],
    }
    order = api.post("orders", body).body
    return str(order["id"]), order.get("payment_url") or ""
