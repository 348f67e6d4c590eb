"""Creating the shop order a top-up is paid through: one fee line, the customer, pending, a marker."""

from __future__ import annotations

from bridge.models import Shop
from bridge.money import to_decimal_string
from bridge.security import SecretBox
from bridge.topups import TOPUP_FEE_NAME, TOPUP_MARKER
from bridge.usecases.wallets import CreateTopupOrder
from sync.woocommerce.client import WooShop

TOPUP_REQUEST_MARKER = "_wallet_bridge_topup_request"  # order meta: the TopupRequest's id
RECENT_ORDERS = 20  # a retry follows the call whose answer it lost: the customer's newest orders hold it


def topup_orders(secrets: SecretBox, timeout: float):
    """The shop → how its top-up orders are made; raises PermanentFailure for a shop not connected yet."""

    def for_shop(shop: Shop) -> CreateTopupOrder:
        api = WooShop.for_shop(shop, secrets, timeout)
        return lambda customer_id, amount, currency, request_id, retry: create_topup_order(
            api, customer_id, amount, currency, request_id, retry=retry
        )

    return for_shop


def create_topup_order(
    api: WooShop, customer_external_id: str, amount: int, currency: str, request_id: int, *, retry: bool
) -> tuple[str, str]:
    """Returns (order id, payment URL). No product or shipping: the fee line is the whole order. On a retry,
    an order already made for this request (the shop applied the POST but its answer was lost, or the web
    process died before recording it) is returned instead of a second one."""
    customer_id = int(customer_external_id) if customer_external_id.isdigit() else 0
    order = _order_made_for(api, customer_id, request_id) if retry else None
    if order is None:
        order = api.post("orders", _order_body(customer_id, amount, currency, request_id)).body
    return str(order["id"]), order.get("payment_url") or ""


def _order_body(customer_id: int, amount: int, currency: str, request_id: int) -> dict:
    return {
        "customer_id": customer_id,
        "status": "pending",
        "currency": currency,
        "set_paid": False,
        "fee_lines": [{"name": TOPUP_FEE_NAME, "total": to_decimal_string(amount, currency), "tax_status": "none"}],
        "meta_data": [
            {"key": TOPUP_MARKER, "value": str(amount)},
            {"key": TOPUP_REQUEST_MARKER, "value": str(request_id)},
        ],
    }


def _order_made_for(api: WooShop, customer_id: int, request_id: int) -> dict | None:
    # Any status (not trash): the shopper may already have paid it from their account page.
    orders = api.get("orders", customer=customer_id, status="any", per_page=RECENT_ORDERS).body
    return next((order for order in orders if _marker(order) == str(request_id)), None)


def _marker(order: dict) -> str | None:
    return next((m.get("value") for m in order.get("meta_data") or [] if m.get("key") == TOPUP_REQUEST_MARKER), None)
