"""Which pusher delivers a shop's outbox messages, by platform."""

from __future__ import annotations

from bridge.services import Services
from bridge.statement_links import StatementLinks
from sync.shopify.store_credit import make_pusher as shopify_pusher
from sync.woocommerce.pushes import make_pusher as woocommerce_pusher
from sync.worker import RetryPolicy


def pushers_for(services: Services) -> dict:
    settings = services.settings
    timeout, links = settings.shop_timeout_seconds, StatementLinks(settings.secret_key, settings.public_url)
    return {
        "woocommerce": woocommerce_pusher(services.secrets, timeout, links),
        "shopify": shopify_pusher(services.secrets, timeout),
    }


def retry_policy(services: Services) -> RetryPolicy:
    settings = services.settings
    return RetryPolicy(settings.outbox_max_attempts, settings.outbox_base_delay_seconds)
