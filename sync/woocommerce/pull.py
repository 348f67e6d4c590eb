"""Pulling orders and new customers from a WooCommerce shop: what webhooks cannot be trusted to bring.

WooCommerce never retries a failed delivery, and events that happen while a webhook is paused or
disabled are never sent, not even after it is re-activated. So a periodic sync re-activates our
webhooks, reads the customers registered since the last sync (a lost `customer.created` is a lost
wallet and sign-up bonus; the first sync reads those registered since the shop was added to the bridge)
and every order modified since then (`modified_after`, in UTC with
`dates_are_gmt=true`), applying each one's current state with the same idempotent rules as a
webhook: an order already handled moves no money a second time, a bonus is given once per customer.

Pages are listed by order id, not by modification date: an order modified while the sync pages (the
bridge's own outbox keeps writing to orders) would move to the end of a date-ordered listing, and the
order that slid into its place on a page already read would be missed. By id, nothing moves; an order
modified after it was read is brought by its webhook or by the next sync, whose window overlaps this one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from bridge.config import Settings
from bridge.customer_rules import apply_new_customer
from bridge.errors import DomainError, PermanentFailure, TemporaryFailure
from bridge.ledger import Actor
from bridge.models import utcnow
from bridge.order_rules import apply_order
from bridge.security import SecretBox
from bridge.usecases import shops
from bridge.usecases.order_release import orders_holding_a_wallet_part, release_deleted_orders
from sync.woocommerce.client import WooResponse, WooShop
from sync.woocommerce.connect import (
    PAGE_SIZE,
    WebhookResult,
    delivery_url_for,
    ensure_webhooks,
    int_header,
    total_pages,
)
from webhooks.woocommerce.payloads import parse_customer, parse_order

log = logging.getLogger(__name__)

OVERLAP = timedelta(minutes=5)  # site clocks and modification dates are coarse; re-applying is harmless
ACTOR = Actor("system", "sync")

Progress = Callable[[int, int], None]  # (orders done, orders in total so far)


@dataclass
class Skipped:
    id: object  # the order's or customer's id as the shop gave it
    error: str


@dataclass
class SyncResult:
    shop_id: int
    modified_after: datetime | None
    orders_seen: int = 0
    applied: int = 0
    skipped: list[Skipped] = field(default_factory=list)  # orders
    signups_seen: int = 0  # customers registered within the window (their sign-up bonus is keyed: given once)
    skipped_customers: list[Skipped] = field(default_factory=list)
    webhooks: WebhookResult | None = None  # None when not checked (no public_url, or the check failed)
    webhook_error: str | None = None
    last_synced_at: datetime | None = None
    orders_released: int = 0  # held a wallet part and are gone from the shop: the wallet part went back

    @property
    def webhooks_reactivated(self) -> int:
        return len(self.webhooks.reactivated) if self.webhooks else 0

    def as_dict(self) -> dict:
        return {
            "shop_id": self.shop_id,
            "modified_after": _iso(self.modified_after),
            "orders_seen": self.orders_seen,
            "applied": self.applied,
            "skipped": len(self.skipped),
            "skipped_orders": [{"id": s.id, "error": s.error} for s in self.skipped],
            "signups_seen": self.signups_seen,
            "skipped_customers": [{"id": s.id, "error": s.error} for s in self.skipped_customers],
            "webhooks_reactivated": self.webhooks_reactivated,
            "webhooks": self.webhooks.as_dict() if self.webhooks else None,
            "webhook_error": self.webhook_error,
            "orders_released": self.orders_released,
            "last_synced_at": _iso(self.last_synced_at),
        }

    @property
    def error(self) -> str | None:
        return f"webhooks not checked: {self.webhook_error}" if self.webhook_error else None

    def report(self) -> list[str]:
        """For people (`wallet-bridge sync`)."""
        data = self.as_dict()
        lines = [
            f"{key}: {data[key]}"
            for key in (
                "orders_seen",
                "applied",
                "skipped",
                "signups_seen",
                "webhooks_reactivated",
                "orders_released",
                "last_synced_at",
            )
        ]
        lines += [f"  skipped order {skipped.id}: {skipped.error}" for skipped in self.skipped]
        lines += [f"  skipped customer {skipped.id}: {skipped.error}" for skipped in self.skipped_customers]
        if self.webhooks is not None and self.webhooks.created:
            lines.append(f"webhooks created again: {', '.join(map(str, self.webhooks.created))}")
        return lines


def catch_up(
    sessions: sessionmaker[Session],
    secrets: SecretBox,
    shop_id: int,
    settings: Settings,
    progress: Progress | None = None,
) -> SyncResult:
    """`wallet-bridge sync` for a WooCommerce shop."""
    return sync_shop(
        sessions,
        secrets,
        shop_id,
        timeout=settings.sync_timeout_seconds,
        progress=progress,
        public_url=settings.public_url,
    )


def sync_shop(
    sessions: sessionmaker[Session],
    secrets: SecretBox,
    shop_id: int,
    *,
    timeout: float,
    progress: Progress | None = None,
    public_url: str | None = None,
    now: Callable[[], datetime] = utcnow,
) -> SyncResult:
    """Re-activate our webhooks (when `public_url` is given), then apply every customer registered and
    every order modified since the last sync, each in its own transaction, and move `last_synced_at` forward.

    An order the rules refuse (a malformed body, an unknown currency…) is skipped and reported, not
    retried. A shop that cannot be reached raises TemporaryFailure and nothing is moved forward; a
    shop without REST keys raises NotConnected.
    """
    started = now()
    state = shops.shop_state(sessions, secrets, shop_id, "woocommerce")
    api = WooShop.for_shop(state.shop, secrets, timeout)
    webhook_secret, since = state.webhook_secret, state.last_synced_at
    # Customers registered before the shop joined the bridge are not new to it: they get no sign-up bonus.
    signups_since = since or state.shop.created_at
    result = SyncResult(shop_id, since)

    # Webhooks first: from here on the shop sends again, and the pull covers what happened before.
    if public_url:
        try:
            result.webhooks = ensure_webhooks(api, delivery_url_for(public_url, shop_id), webhook_secret)
        except (TemporaryFailure, PermanentFailure) as exc:
            result.webhook_error = str(exc)
            log.warning("shop %s: webhooks not checked: %s", shop_id, exc)

    _pull_signups(api, sessions, shop_id, signups_since, result)
    _pull_orders(api, sessions, shop_id, since, result, progress)
    _release_deleted_orders(api, sessions, shop_id, result)

    # What changes from now on is read by the next sync; the overlap covers coarse and skewed shop clocks.
    watermark = started - OVERLAP if since is None else max(since, started - OVERLAP)
    shops.mark_synced(sessions, shop_id, watermark)
    result.last_synced_at = watermark
    log.info(
        "shop %s synced: seen=%s applied=%s skipped=%s webhooks reactivated=%s",
        shop_id,
        result.orders_seen,
        result.applied,
        len(result.skipped),
        result.webhooks_reactivated,
    )
    return result


def _pull_signups(
    api: WooShop, sessions: sessionmaker[Session], shop_id: int, since: datetime, result: SyncResult
) -> None:
    """A lost `customer.created` loses a sign-up bonus. GET /customers has no date filter: newest first,
    read until a page reaches customers registered before the window."""
    params = {"orderby": "registered_date", "order": "desc", "role": "all", "per_page": PAGE_SIZE}
    page = 1
    while True:
        response = _read_page(api, "customers", **params, page=page)
        customers = response.body if isinstance(response.body, list) else []
        for data in customers:
            registered = _date_gmt(data, "date_created_gmt") if isinstance(data, dict) else None
            if registered is not None and registered < since:
                return
            if registered is not None:
                result.signups_seen += 1
                _apply_signup(sessions, shop_id, data, result)
        if page >= total_pages(response) or not customers:
            return
        page += 1


def _apply_signup(sessions: sessionmaker[Session], shop_id: int, data: dict, result: SyncResult) -> None:
    try:
        shops.apply_pulled(sessions, shop_id, apply_new_customer, parse_customer(data), ACTOR)
    except DomainError as exc:
        error = f"{exc.code}: {exc.message}" + (f" {exc.fields}" if exc.fields else "")
        result.skipped_customers.append(Skipped(data.get("id"), error))
        log.warning("shop %s: customer %r skipped: %s", shop_id, data.get("id"), error)


def _pull_orders(
    api: WooShop,
    sessions: sessionmaker[Session],
    shop_id: int,
    since: datetime | None,
    result: SyncResult,
    progress: Progress | None,
) -> None:
    params = {"orderby": "id", "order": "asc", "per_page": PAGE_SIZE}
    if since is not None:
        params.update(modified_after=_wc_utc(since), dates_are_gmt="true")
    page, total = 1, 0
    while True:  # until X-WP-TotalPages (read again on every page: new orders add pages) or an empty page
        response = _read_page(api, "orders", **params, page=page)
        orders = response.body if isinstance(response.body, list) else []
        total = max(total, int_header(response, "x-wp-total", default=0), result.orders_seen + len(orders))
        for data in orders:
            _apply(sessions, shop_id, data, result)
            if progress:
                progress(result.orders_seen, total)
        if page >= total_pages(response) or not orders:
            return
        page += 1


def _release_deleted_orders(api: WooShop, sessions: sessionmaker[Session], shop_id: int, result: SyncResult) -> None:
    """Orders holding a wallet part that the shop no longer lists (deleted for good, or trashed while its webhook
    was lost): their wallet part goes back. An answer that is not a list releases nothing."""
    holding = orders_holding_a_wallet_part(sessions, shop_id)
    listed: set[str] = set()
    for start in range(0, len(holding), PAGE_SIZE):
        chunk = holding[start : start + PAGE_SIZE]
        found = _read_page(api, "orders", include=",".join(chunk), status="any", per_page=PAGE_SIZE).body
        if not isinstance(found, list):
            return
        listed |= {str(order.get("id")) for order in found if isinstance(order, dict)}
    gone = [external_id for external_id in holding if external_id not in listed]
    result.orders_released = release_deleted_orders(sessions, shop_id, gone, ACTOR)


def _shop_busy(exc: BaseException) -> bool:
    return isinstance(exc, TemporaryFailure) and (exc.status is None or exc.status == 429 or exc.status >= 500)


# A page of 100 orders is the heaviest read a shop serves, and a busy shop may time out or fail for a moment.
# Reads are safe to repeat: the page is read again (after 1, 2, 4 s) before the whole sync gives up.
@retry(
    retry=retry_if_exception(_shop_busy),
    stop=stop_after_attempt(4),
    wait=wait_exponential(multiplier=1, max=4),
    reraise=True,
)
def _read_page(api: WooShop, endpoint: str, **params) -> WooResponse:
    return api.get(endpoint, **params)


def _apply(sessions: sessionmaker[Session], shop_id: int, data, result: SyncResult) -> None:
    result.orders_seen += 1
    order_id = data.get("id") if isinstance(data, dict) else None
    try:
        shops.apply_pulled(sessions, shop_id, apply_order, parse_order(data), ACTOR)
    except DomainError as exc:  # PayloadInvalid included: the order is reported, the sync goes on
        error = f"{exc.code}: {exc.message}" + (f" {exc.fields}" if exc.fields else "")
        result.skipped.append(Skipped(order_id, error))
        log.warning("shop %s: order %r skipped: %s", shop_id, order_id, error)
        return
    result.applied += 1


def _wc_utc(moment: datetime) -> str:
    """ISO 8601 without offset, as WooCommerce reads it with dates_are_gmt=true."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None, microsecond=0).isoformat()


def _date_gmt(data: dict, name: str) -> datetime | None:
    value = data.get(name)
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC) if isinstance(value, str) else None
    except ValueError:
        return None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
