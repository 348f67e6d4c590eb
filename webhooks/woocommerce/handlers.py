"""WooCommerce topics → domain rules. Parsing turns the payload into a platform-neutral snapshot."""

from __future__ import annotations

from bridge.customer_rules import apply_customer
from bridge.order_release import release_trashed_order
from bridge.order_rules import apply_order
from webhooks.woocommerce.payloads import parse_customer, parse_order, parse_trashed_order

# topic → (parse the JSON body, apply the snapshot)
HANDLERS = {
    "customer.created": (
        parse_customer,
        lambda session, shop, snapshot, actor: apply_customer(session, shop, snapshot, actor, is_new=True),
    ),
    "customer.updated": (
        parse_customer,
        lambda session, shop, snapshot, actor: apply_customer(session, shop, snapshot, actor, is_new=False),
    ),
    "order.created": (parse_order, apply_order),
    "order.updated": (parse_order, apply_order),
    "order.deleted": (parse_trashed_order, release_trashed_order),  # moved to the trash: undone like a cancellation
}
