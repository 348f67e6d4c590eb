"""Store credit spent at Shopify's checkout, read from the order's transactions. Shopify's order webhooks
carry none (only `payment_gateway_names`), so for an order whose gateways name store credit the outbox
asks the GraphQL Admin API, reads the answer with the webhook bodies' own rules, and records the spend."""

from __future__ import annotations

from bridge.errors import PermanentFailure
from bridge.usecases.pushes import CheckoutSpend
from sync.shopify.client import ShopifyAdmin
from webhooks.shopify.payloads import PayloadInvalid, store_credit_spent

# Order.transactions is a plain list (no pages); an order has a handful.
ORDER_TRANSACTIONS = """
query OrderTransactions($id: ID!) {
  order(id: $id) { transactions(first: 100) { kind status gateway amountSet { shopMoney { amount currencyCode } } } }
}"""


def order_gid(order_id: str) -> str:
    return f"gid://shopify/Order/{order_id}"


def fetch_transactions(api: ShopifyAdmin, order_id: str) -> list[dict]:
    """The order's transactions shaped as REST bodies have them: lower-case kind and status (GraphQL's
    enums are upper case), the amount in the shop's currency, which is the order's `currency` in REST."""
    order = api.graphql(ORDER_TRANSACTIONS, {"id": order_gid(order_id)}).get("order")
    if order is None:
        raise PermanentFailure(f"Shopify has no order {order_id}")
    return [_rest_shaped(node) for node in order.get("transactions") or []]


def _rest_shaped(node: dict) -> dict:
    money = node["amountSet"]["shopMoney"]
    return {
        "kind": node["kind"].lower(),
        "status": node["status"].lower(),
        "gateway": node.get("gateway"),
        "amount": money["amount"],
        "currency": money["currencyCode"],
    }


def checkout_spend(api: ShopifyAdmin, order_id: str, currency: str) -> CheckoutSpend:
    """The `order.fetch_transactions` message: what the order's checkout took from store credit (recorded once)."""
    try:
        spent = store_credit_spent(fetch_transactions(api, order_id), currency)
    except PayloadInvalid as exc:  # asking again brings the same answer
        raise PermanentFailure(f"unreadable transactions of order {order_id}: {exc.fields}") from exc
    return CheckoutSpend(order_id, spent)
