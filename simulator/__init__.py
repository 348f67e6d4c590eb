"""An in-memory WooCommerce shop for end-to-end tests and demos: see simulator.woocommerce."""

from simulator.errors import WooError
from simulator.rest import RestCall
from simulator.webhooks import Delivery, PendingDelivery, Webhook
from simulator.wire import webhook_signature, wp_json
from simulator.woocommerce import ManualClock, ShopSimulator, create_simulator

__all__ = [
    "Delivery",
    "ManualClock",
    "PendingDelivery",
    "RestCall",
    "ShopSimulator",
    "Webhook",
    "WooError",
    "create_simulator",
    "webhook_signature",
    "wp_json",
]
