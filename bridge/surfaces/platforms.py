"""The one table of shop platforms. A platform brings its deliveries in (webhooks/<name>/), takes the bridge's
changes out (sync/<name>/) and tells the surfaces what differs for its merchants; adding one means its own
folders and a row here. Nothing outside the platform packages branches on a platform's name."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from markupsafe import Markup

from bridge.services import Services
from bridge.statement_links import StatementLinks
from bridge.store_credit import mirror_platform
from bridge.usecases.deliveries import TopicsByPlatform
from bridge.usecases.pushes import RetryPolicy
from sync.shopify import connect as shopify_connect
from sync.shopify import store_credit as shopify_store_credit
from sync.shopify.store_credit import make_pusher as shopify_pusher
from sync.woocommerce import connect as woocommerce_connect
from sync.woocommerce import pull as woocommerce_pull
from sync.woocommerce import topups as woocommerce_topups
from sync.woocommerce.pushes import make_pusher as woocommerce_pusher
from sync.worker import Pusher
from webhooks.inbound import Inbound
from webhooks.shopify.inbound import SHOPIFY
from webhooks.woocommerce.inbound import WOOCOMMERCE


@dataclass(frozen=True)
class Platform:
    inbound: Inbound
    title: str  # as merchants know it
    make_pusher: Callable  # (secret box, timeout in seconds, statement links) → the worker's Pusher
    delivery_url: Callable[[str, int], str]  # (PUBLIC_URL, shop id) → where the platform delivers webhooks
    delivery_warnings: Callable[[str], list[str]]  # what keeps the platform from delivering to that URL
    admin_paths: Mapping[str, str]  # the shop's own admin pages for an order and a customer ({id} replaced)
    connection_template: str  # the console's connection form for the platform's shops
    next_steps_template: str  # what a merchant does once the shop is made
    unchecked_hint: str  # what to do before the console knows the state of the shop's webhooks
    webhook_help: Markup  # how the platform treats failing webhooks, and what repairs them
    catch_up: Callable  # (sessions, secret box, shop id, settings, progress) → a result: `wallet-bridge sync`
    topup_orders: Callable | None = None  # (secret box, timeout) → TopupOrders (bridge/usecases/wallets.py)
    mirrors_store_credit: bool = False  # the shop keeps each wallet in its own store credit (bridge/store_credit.py)

    @property
    def name(self) -> str:
        return self.inbound.name


PLATFORMS: Mapping[str, Platform] = {
    platform.name: platform
    for platform in (
        Platform(
            inbound=WOOCOMMERCE,
            title="WooCommerce",
            make_pusher=woocommerce_pusher,
            delivery_url=woocommerce_connect.delivery_url_for,
            delivery_warnings=woocommerce_connect.delivery_warnings,
            admin_paths={
                "order": "/wp-admin/post.php?post={id}&action=edit",
                "customer": "/wp-admin/user-edit.php?user_id={id}",
            },
            connection_template="_woocommerce_connection.html",
            next_steps_template="_woocommerce_next_steps.html",
            unchecked_hint="Press “Test connection” to read the webhooks' state from the shop.",
            webhook_help=Markup(
                "WooCommerce disables a webhook after repeated failed deliveries and never re-sends what it "
                "missed; “Connect and install webhooks” re-activates them, and <code>wallet-bridge sync</code> "
                "pulls the orders changed meanwhile."
            ),
            catch_up=woocommerce_pull.catch_up,
            topup_orders=woocommerce_topups.topup_orders,
        ),
        Platform(
            inbound=SHOPIFY,
            title="Shopify",
            make_pusher=lambda secrets, timeout, _links: shopify_pusher(secrets, timeout),  # no order notes
            delivery_url=shopify_connect.callback_url,
            delivery_warnings=shopify_connect.delivery_warnings,
            admin_paths={"order": "/admin/orders/{id}", "customer": "/admin/customers/{id}"},
            connection_template="_shopify_connection.html",
            next_steps_template="_shopify_next_steps.html",
            unchecked_hint="Connect to subscribe the webhooks.",
            webhook_help=Markup(
                "Shopify retries a failed delivery for 48 hours, then may remove the subscription; connecting "
                "again subscribes what is missing, and <code>wallet-bridge sync</code> brings every wallet and "
                "its store credit back in step."
            ),
            catch_up=shopify_store_credit.catch_up,
            mirrors_store_credit=True,
        ),
    )
}

TOPICS: TopicsByPlatform = {name: platform.inbound.topics for name, platform in PLATFORMS.items()}


def install() -> None:
    """What the domain must know of the platforms in this process: whose wallets are mirrored."""
    for platform in PLATFORMS.values():
        if platform.mirrors_store_credit:
            mirror_platform(platform.name)


def pushers_for(services: Services) -> dict[str, Pusher]:
    settings = services.settings
    timeout, links = settings.shop_timeout_seconds, StatementLinks(settings.secret_key, settings.public_url)
    return {name: platform.make_pusher(services.secrets, timeout, links) for name, platform in PLATFORMS.items()}


def retry_policy(services: Services) -> RetryPolicy:
    settings = services.settings
    return RetryPolicy(settings.outbox_max_attempts, settings.outbox_base_delay_seconds)
