"""Pulling orders from a WooCommerce shop: what webhooks cannot be trusted to bring.

WooCommerce never retries a failed delivery, and events that happen while a webhook is paused or
disabled are never sent, not even after it is re-activated. So a periodic sync re-activates our
webhooks and reads every order modified since the last sync (`modified_after`, in UTC with
`dates_are_gmt=true`), applying each one's current state with the same idempotent rules as a
webhook: an order already handled moves no money a second time.

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

from bridge.db import unit_of_work
from bridge.errors import DomainError, ValidationFailed
from bridge.ledger import Actor
from bridge.models import Shop, utcnow
from bridge.order_rules import apply_order
from bridge.security import SecretBox
from bridge.shops import get_shop
from sync.woocommerce.client import WooShop
from sync.woocommerce.connect import (
    PAGE_SIZE,
    WebhookResult,
    delivery_url_for,
    ensure_webhooks,
    int_header,
    total_pages,
)
from sync.worker import PermanentFailure, TemporaryFailure
from webhooks.woocommerce.payloads import parse_order

log = logging.getLogger(__name__)

OVERLAP = timedelta(minutes=5)  # site clocks and modification dates are coarse; re-applying is harmless
ACTOR = Actor("system", "sync")

Progress = Callable[[int, int], None]  # (orders done, orders in total so far)


@dataclass
class SkippedOrder:
    order_id: object
    error: str


@dataclass
class SyncResult:
    shop_id: int
    modified_after: datetime | None
    orders_seen: int = 0
    applied: int = 0
    skipped: list[SkippedOrder] = field(default_factory=list)
    webhooks: WebhookResult | None = None  # None when not checked (no public_url, or the check failed)
    webhook_error: str | None = None
    last_synced_at: datetime | None = None

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
            "skipped_orders": [{"id": s.order_id, "error": s.error} for s in self.skipped],
            "webhooks_reactivated": self.webhooks_reactivated,
            "webhooks": self.webhooks.as_dict() if self.webhooks else None,
            "webhook_error": self.webhook_error,
            "last_synced_at": _iso(self.last_synced_at),
        }


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
    """Re-activate our webhooks (when `public_url` is given), then apply every order modified since the
    last sync, each in its own transaction, and move `last_synced_at` forward.

    An order the rules refuse (a malformed body, an unknown currency…) is skipped and reported, not
    retried. A shop that cannot be reached raises TemporaryFailure and nothing is moved forward; a
    shop without REST keys raises NotConnected.
    """
    started = now()
    with unit_of_work(sessions) as session:
        shop = get_shop(session, shop_id)
        if shop.platform != "woocommerce":
            raise ValidationFailed(f"shop {shop_id} is a {shop.platform} shop", fields={"shop_id": "not WooCommerce"})
        api = WooShop.for_shop(shop, secrets, timeout)
        webhook_secret = secrets.open(shop.webhook_secret_enc)
        since = shop.last_synced_at
    result = SyncResult(shop_id, since)

    # Webhooks first: from here on the shop sends again, and the pull covers what happened before.
    if public_url:
        try:
            result.webhooks = ensure_webhooks(api, delivery_url_for(public_url, shop_id), webhook_secret)
        except (TemporaryFailure, PermanentFailure) as exc:
            result.webhook_error = str(exc)
            log.warning("shop %s: webhooks not checked: %s", shop_id, exc)

    params = {"orderby": "id", "order": "asc", "per_page": PAGE_SIZE}
    if since is not None:
        params.update(modified_after=_wc_utc(since), dates_are_gmt="true")
    page, total = 1, 0
    while True:  # until X-WP-TotalPages (read again on every page: new orders add pages) or an empty page
        response = api.get("orders", **params, page=page)
        orders = response.body if isinstance(response.body, list) else []
        total = max(total, int_header(response, "x-wp-total", default=0), result.orders_seen + len(orders))
        for data in orders:
            _apply(sessions, shop_id, data, result)
            if progress:
                progress(result.orders_seen, total)
        if page >= total_pages(response) or not orders:
            break
        page += 1

    # What changes from now on is read by the next sync; the overlap covers coarse and skewed shop clocks.
    watermark = started - OVERLAP if since is None else max(since, started - OVERLAP)
    with unit_of_work(sessions) as session:
        session.get(Shop, shop_id).last_synced_at = watermark
    result.last_synced_at = watermark
    log.info(
        "shop %s synced: seen=%s applied=%s skipped=%s webhooks reactivated=%s",
        shop_id, result.orders_seen, result.applied, len(result.skipped), result.webhooks_reactivated,
    )  # fmt: skip
    return result


def _apply(sessions: sessionmaker[Session], shop_id: int, data, result: SyncResult) -> None:
    result.orders_seen += 1
    order_id = data.get("id") if isinstance(data, dict) else None
    try:
        snapshot = parse_order(data)
        with unit_of_work(sessions) as session:
            apply_order(session, session.get(Shop, shop_id), snapshot, ACTOR)
    except DomainError as exc:  # PayloadInvalid included: the order is reported, the sync goes on
        error = f"{exc.code}: {exc.message}" + (f" {exc.fields}" if exc.fields else "")
        result.skipped.append(SkippedOrder(order_id, error))
        log.warning("shop %s: order %r skipped: %s", shop_id, order_id, error)
        return
    result.applied += 1


def _wc_utc(moment: datetime) -> str:
    """ISO 8601 without offset, as WooCommerce reads it with dates_are_gmt=true."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None, microsecond=0).isoformat()


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
