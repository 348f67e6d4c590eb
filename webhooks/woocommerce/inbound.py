"""WooCommerce deliveries: topics → domain rules. Parsing turns the payload into a platform-neutral snapshot.

WooCommerce never retries a failed delivery and disables the webhook after repeated failures, so everything
that was signed is stored before it is answered. Its unsigned ping (when a webhook is created) is answered 200."""

from __future__ import annotations

from bridge.customer_rules import apply_customer, apply_new_customer
from bridge.order_rules import apply_order, release_trashed_order
from webhooks.inbound import Inbound, Topic
from webhooks.woocommerce.payloads import parse_customer, parse_order, parse_trashed_order
from webhooks.woocommerce.ping import is_ping


def pong(content_type: str | None, raw: bytes, headers) -> dict | None:
    """Unsigned, stores nothing, shop or no shop: only HTTP 200 clears a WooCommerce ping."""
    return {"status": "pong"} if is_ping(content_type, raw, headers) else None


WOOCOMMERCE = Inbound(
    name="woocommerce",
    topic_header="X-WC-Webhook-Topic",
    signature_header="X-WC-Webhook-Signature",
    delivery_id_header="X-WC-Webhook-Delivery-ID",
    topics={
        "customer.created": Topic(parse_customer, apply_new_customer),
        "customer.updated": Topic(parse_customer, apply_customer),
        "order.created": Topic(parse_order, apply_order),
        "order.updated": Topic(parse_order, apply_order),
        "order.deleted": Topic(parse_trashed_order, release_trashed_order),  # to the trash: undone like a cancel
        # out of the trash: the whole order, as an update (WooCommerce sends no order.updated for it)
        "order.restored": Topic(parse_order, apply_order),
    },
    unsigned_answer=pong,
)
