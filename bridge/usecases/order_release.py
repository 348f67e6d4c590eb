"""Orders the shop leaves hanging with the customer's wallet money in them.

A wallet order paid partly (the wallet part taken, another method for the rest) whose other payment failed
keeps the wallet part while the customer may still try again. WooCommerce never cancels a failed order, so
a customer who walks away would lose it for good: after the shop's `failed_order_release_days` it goes back
to the wallet, as a cancellation would return it (hourly, by `wallet-bridge expire`). A
trashed order (`order.deleted`) gives it back at once; one deleted for good (no webhook: a sync finds it gone) at
the next sync. All reuse the cancellation's reversal, keyed once per order: a later cancellation, or a second run,
moves nothing more.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bridge.db import unit_of_work
from bridge.decisions import release_cutoff
from bridge.ledger import Actor
from bridge.models import Shop, ShopOrder, utcnow
from bridge.order_rules import reverse_recorded_order
from bridge.settings_schema import ShopSettings
from bridge.states import PaymentOutcome

FAILED = "failed"  # WooCommerce's status of an order whose payment did not go through
JOB = Actor("system", "expire")


def release_abandoned_failed_orders(sessions: sessionmaker[Session], now: datetime | None = None) -> int:
    """Give back the wallet part of every failed order left so for the shop's number of days, each order in its
    own transaction under its row lock (safe to run from several hosts at once). Returns how many."""
    now = now or utcnow()
    with unit_of_work(sessions) as session:
        rules = {shop.id: ShopSettings.load(shop.settings) for shop in session.scalars(select(Shop))}
        cutoffs = {shop_id: cutoff for shop_id, rule in rules.items() if (cutoff := release_cutoff(rule, now))}
        due = [
            (shop_id, order.external_id)
            for shop_id, cutoff in cutoffs.items()
            for order in session.scalars(_abandoned(shop_id, cutoff))
        ]
    return sum(
        _release(
            sessions,
            _abandoned(shop_id, cutoffs[shop_id]),
            shop_id,
            external_id,
            f"left unpaid for {rules[shop_id].failed_order_release_days} days",
            JOB,
        )
        for shop_id, external_id in due
    )


def _abandoned(shop_id: int, cutoff: datetime):
    """The shop's failed orders still holding a wallet part, unchanged since `cutoff`."""
    return _with_a_wallet_part(shop_id).where(
        ShopOrder.status == FAILED,
        ShopOrder.updated_at < cutoff,
        func.coalesce(ShopOrder.last_modified_at, ShopOrder.updated_at) < cutoff,
    )


def orders_holding_a_wallet_part(sessions: sessionmaker[Session], shop_id: int) -> list[str]:
    """The shop's orders that hold a wallet part while the rest is still to pay: those a shop that deleted them for
    good (WooCommerce sends no webhook for that) would leave holding the customer's money."""
    with unit_of_work(sessions) as session:
        return list(session.scalars(_holding_a_wallet_part(shop_id).with_only_columns(ShopOrder.external_id)))


def release_deleted_orders(sessions: sessionmaker[Session], shop_id: int, external_ids: list[str], actor: Actor) -> int:
    """Give back the wallet part of orders the shop no longer has (a sync found them gone), each in its own
    transaction, decided again under its row lock. Returns how many."""
    due = _holding_a_wallet_part(shop_id)
    return sum(
        _release(sessions, due, shop_id, external_id, "deleted in the shop", actor) for external_id in external_ids
    )


def _with_a_wallet_part(shop_id: int):
    return select(ShopOrder).where(
        ShopOrder.shop_id == shop_id,
        ShopOrder.payment_outcome == PaymentOutcome.PARTIAL,
        ShopOrder.wallet_paid > ShopOrder.wallet_refunded,
    )


def _holding_a_wallet_part(shop_id: int):
    """Partly paid, the rest not paid by another method."""
    return _with_a_wallet_part(shop_id).where(ShopOrder.card_paid.is_(None))


def _release(sessions: sessionmaker[Session], due, shop_id: int, external_id: str, why: str, actor: Actor) -> int:
    """Undo the order as a cancellation would, if it is still `due` (decided again under the row's lock: a delivery
    may have paid or cancelled it meanwhile), in a transaction of its own. 1 when it was."""
    with unit_of_work(sessions) as session:
        still = due.where(ShopOrder.external_id == external_id)
        if session.scalars(still.with_for_update().execution_options(populate_existing=True)).first() is None:
            return 0
        reverse_recorded_order(session, session.get(Shop, shop_id), external_id, why, actor)
        return 1
