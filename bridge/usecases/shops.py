"""A shop's connection and its catch-up, for the code in sync/ that talks to the shop: what it reads of the shop
before calling it, and what it records after, each in its own short transaction (never across a shop call)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from bridge.db import unit_of_work
from bridge.errors import ValidationFailed
from bridge.ledger import Actor
from bridge.models import Account, Customer, OutboxMessage, Shop, utcnow
from bridge.orders import CustomerSnapshot, OrderSnapshot
from bridge.security import SecretBox
from bridge.shops import get_shop
from bridge.states import OutboxStatus
from bridge.webhook_secrets import refuse_shared_secret

# (session, shop, snapshot, actor): a domain rule that applies what was read from the shop
Apply = Callable[[Session, Shop, object, Actor], object]


@dataclass(frozen=True)
class ShopState:
    shop: Shop  # detached: read it, never change it
    webhook_secret: str
    last_synced_at: datetime | None


def shop_state(sessions: sessionmaker[Session], box: SecretBox, shop_id: int, platform: str) -> ShopState:
    """The shop as a call to it needs it; ValidationFailed when it is not a shop of `platform`."""
    with unit_of_work(sessions) as session:
        shop = get_shop(session, shop_id)
        if shop.platform != platform:
            raise ValidationFailed(f"shop {shop_id} is a {shop.platform} shop", fields={"shop_id": f"not {platform}"})
        session.expunge(shop)
        return ShopState(shop, box.open(shop.webhook_secret_enc), shop.last_synced_at)


def store_keys(
    sessions: sessionmaker[Session],
    box: SecretBox,
    shop_id: int,
    url: str,
    *,
    key: str | None = None,
    secret: str,
    webhook_secret: str | None = None,
) -> None:
    """The shop accepted these keys: stored encrypted. A new webhook secret rotates (the old one stays valid
    until the next, as platforms sign with either for a while). History before the first connection is the
    shop's own business: the first sync starts now, so old pending wallet orders are not charged and old orders
    earn no points."""
    with unit_of_work(sessions) as session:
        shop = get_shop(session, shop_id)
        shop.url, shop.consumer_secret_enc = url.rstrip("/"), box.seal(secret)
        if key is not None:
            shop.consumer_key_enc = box.seal(key)
        if webhook_secret and webhook_secret != box.open(shop.webhook_secret_enc):
            shop.previous_webhook_secret_enc, shop.webhook_secret_enc = (
                shop.webhook_secret_enc,
                box.seal(webhook_secret),
            )
        shop.last_synced_at = shop.last_synced_at or utcnow()


def refuse_secret_of_another_shop(
    sessions: sessionmaker[Session], box: SecretBox, shop_id: int, platform: str, secret: str
) -> None:
    with unit_of_work(sessions) as session:
        refuse_shared_secret(session, box, shop_id, platform, secret)


def apply_pulled(
    sessions: sessionmaker[Session],
    shop_id: int,
    apply: Apply,
    snapshot: OrderSnapshot | CustomerSnapshot,
    actor: Actor,
) -> None:
    """One order or customer read from the shop, applied by the same rules as its webhook, in its own transaction."""
    with unit_of_work(sessions) as session:
        apply(session, session.get(Shop, shop_id), snapshot, actor)


def mark_synced(sessions: sessionmaker[Session], shop_id: int, watermark: datetime) -> None:
    with unit_of_work(sessions) as session:
        session.get(Shop, shop_id).last_synced_at = watermark


def wallets_of(sessions: sessionmaker[Session], shop_id: int) -> list[tuple[str, int, str]]:
    """(customer id, account id, currency) of every wallet of the shop."""
    with unit_of_work(sessions) as session:
        return [
            tuple(row)
            for row in session.execute(
                select(Customer.external_id, Account.id, Account.currency)
                .join(Account, Account.customer_id == Customer.id)
                .where(Account.shop_id == shop_id, Account.kind == "wallet")
                .order_by(Customer.id)
            )
        ]


def balance_of(sessions: sessionmaker[Session], account_id: int) -> int:
    with unit_of_work(sessions) as session:
        return session.get(Account, account_id).balance


def messages_since(
    sessions: sessionmaker[Session], shop_id: int, kinds: Iterable[str], read_at: datetime
) -> list[tuple[int, str, dict]]:
    """(id, status, payload) of the shop's messages of these kinds not delivered (dead included), or delivered
    after `read_at`."""
    with unit_of_work(sessions) as session:
        return [
            tuple(row)
            for row in session.execute(
                select(OutboxMessage.id, OutboxMessage.status, OutboxMessage.payload).where(
                    OutboxMessage.shop_id == shop_id,
                    OutboxMessage.kind.in_(tuple(kinds)),
                    or_(
                        OutboxMessage.status.in_((OutboxStatus.PENDING, OutboxStatus.SENDING, OutboxStatus.DEAD)),
                        OutboxMessage.delivered_at >= read_at,
                    ),
                )
            )
        ]


def mark_reconciled(sessions: sessionmaker[Session], dead: list[int]) -> None:
    """Dead messages whose difference a reconciliation closed: retrying them must not move the money twice."""
    if dead:
        with unit_of_work(sessions) as session:
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(dead), OutboxMessage.status == OutboxStatus.DEAD)
                .values(status=OutboxStatus.RECONCILED)
            )
