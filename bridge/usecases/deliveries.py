"""Webhook deliveries: every signed delivery is stored before it is answered, then applied once.

Shops never resend a delivery they had answered 200 (WooCommerce never retries at all), so a stored delivery
is the only copy: the merchant's "Retry" of a failed one and the recovery of deliveries left `received` (a
process died, or its database connection dropped, between storing and applying) apply it again from its
stored body, under the same row lock and idempotent rules as when it arrived."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import NamedTuple

from sqlalchemy import Connection, bindparam, exists, func, insert, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bridge.db import single_write, unit_of_work
from bridge.errors import DomainError, InvalidState, ValidationFailed
from bridge.ledger import Actor
from bridge.models import InboxDelivery, Shop, utcnow
from bridge.security import SecretBox
from bridge.states import InboxStatus
from bridge.webhook_secrets import shops_sharing

log = logging.getLogger(__name__)
INBOX_CHANNEL = "inbox_deliveries"  # what a worker LISTENs to for deferred deliveries (bridge.db.Listener)
STALLED_AFTER = timedelta(minutes=1)  # far beyond any delivery's own apply, so the two never race for long
BATCH = 100


class Topic(NamedTuple):
    """How a platform's topic is read and applied."""

    parse: Callable[[object], object]  # the JSON body → a snapshot; raises ValidationFailed
    apply: Callable[[Session, Shop, object, Actor], None]  # the snapshot → the domain's rules


# platform name → its topics (the platform table, handed over by whoever wires the process)
TopicsByPlatform = Mapping[str, Mapping[str, Topic]]


@dataclass(frozen=True)
class ShopKeys:
    secrets: list[str]  # current, and the previous one during a rotation
    url: str
    # what they were read from: a delivery is stored only while the shop's row still holds exactly these
    stored: dict | None = None


class KeysChanged(Exception):
    """The keys this process remembered for a shop are no longer the shop's: the delivery must be checked again."""


_remembered_keys: dict[tuple[int, str], ShopKeys] = {}  # (shop id, platform) → its keys, as last read here
_REMEMBERED_SHOPS = 4096  # bounded: cleared when full


@dataclass(frozen=True)
class Outcome:
    status: InboxStatus  # applied, ignored or failed
    error: str | None = None


class Arrival:
    """A delivery's arrival on one connection: the shop's keys, the checks that need the database, and the delivery
    stored by one INSERT, its only write (with `wake`, the waiting workers told by the same statement).

    The keys are those this process remembers from an earlier delivery (no read): a signature they refuse is checked
    again with the keys stored now (a rotation elsewhere is honoured at once), and the INSERT stores the delivery only
    if the shop's row still holds the keys that accepted it (a secret dropped elsewhere is refused at once)."""

    def __init__(self, connection: Connection, box: SecretBox, shop_id: int, platform: str, *, remembered: bool):
        self.connection, self.box, self.shop_id, self.platform = connection, box, shop_id, platform
        self.keys_query = _SHOP_KEYS if remembered else _SHOP_KEYS_LOCKED
        found = _remembered_keys.get((shop_id, platform)) if remembered else None
        self.keys, self.remembered = found or self._read_keys(), found is not None

    def authentic(self, check: Callable[[ShopKeys], bool]) -> bool:
        """`check` the delivery with the shop's keys: the remembered ones, then, if they refuse it, the stored ones."""
        if check(self.keys):
            return True
        if not self.remembered:
            return False
        self.keys, self.remembered = self._read_keys(), False
        return check(self.keys)

    def confirm(self) -> None:
        """Before an answer that stores nothing (a duplicate, a body that is not JSON): remembered keys that are no
        longer the shop's raise KeysChanged, so that a dropped secret is refused (401) as the store would refuse it."""
        if self.remembered:
            remembered = self.keys
            self.keys, self.remembered = self._read_keys(), False
            if self.keys.stored != remembered.stored:
                raise KeysChanged()

    def _read_keys(self) -> ShopKeys:
        """No such shop on this platform: a secret nobody holds, so the delivery fails its signature check like
        any forged one and the answer never says which shops exist."""
        shop = self.connection.execute(self.keys_query, {"shop_id": self.shop_id}).first()
        if shop is None or shop.platform != self.platform:
            return ShopKeys([secrets.token_urlsafe(32)], "")
        tokens = (shop.webhook_secret_enc, shop.previous_webhook_secret_enc)
        stored = {"url": shop.url, "token": tokens[0], "previous_token": tokens[1]}
        keys = ShopKeys([self.box.open(token) for token in tokens if token], shop.url, stored)
        if len(_remembered_keys) >= _REMEMBERED_SHOPS:
            _remembered_keys.clear()
        _remembered_keys[(self.shop_id, self.platform)] = keys
        return keys

    def shops_sharing_secret(self) -> list[int]:
        return shops_sharing(self.connection, self.box, self.shop_id, self.platform, self.keys.secrets)

    def already_applied(self, delivery_id: str) -> bool:
        """For platforms whose delivery ids are unique per delivery (Shopify), a retried delivery is known."""
        done = (InboxStatus.APPLIED, InboxStatus.IGNORED)
        return (
            self.connection.execute(
                select(InboxDelivery.id)
                .where(
                    InboxDelivery.shop_id == self.shop_id,
                    InboxDelivery.platform == self.platform,
                    InboxDelivery.delivery_id == delivery_id,
                    InboxDelivery.status.in_(done),
                )
                .limit(1)
            ).first()
            is not None
        )

    def store(self, *, wake: bool = False, **delivery) -> int:
        """Store the delivery (the fields of `_delivery_values`) if the shop still holds the keys that accepted it,
        else raise KeysChanged; `wake`: the workers are to apply it."""
        waking = wake and self.connection.dialect.name == "postgresql"  # on SQLite the workers poll
        store = _STORE_CHECKED_AND_WAKE if waking else _STORE_CHECKED
        values = _delivery_values(shop_id=self.shop_id, platform=self.platform, **delivery)
        inbox_id = self.connection.execute(store, values | self.keys.stored).scalar_one_or_none()
        if inbox_id is None:
            _remembered_keys.pop((self.shop_id, self.platform), None)
            raise KeysChanged()
        return inbox_id


# Built once, in Core: every delivery runs these, and building or ORM-compiling them costs more than running them.
_SHOPS, _INBOX = Shop.__table__, InboxDelivery.__table__
_DELIVERY_FIELDS = ("shop_id", "platform", "topic", "resource_id", "delivery_id", "body", "status", "error")
_SHOP_KEYS = select(
    _SHOPS.c.platform, _SHOPS.c.url, _SHOPS.c.webhook_secret_enc, _SHOPS.c.previous_webhook_secret_enc
).where(_SHOPS.c.id == bindparam("shop_id"))
_SHOP_KEYS_LOCKED = _SHOP_KEYS.with_for_update(read=True)  # FOR SHARE: a rotation waits until the store commits
_SHOP_HOLDS_THE_KEYS = exists().where(
    _SHOPS.c.id == bindparam("shop_id"),
    _SHOPS.c.platform == bindparam("platform"),
    _SHOPS.c.url.is_not_distinct_from(bindparam("url")),
    _SHOPS.c.webhook_secret_enc.is_not_distinct_from(bindparam("token")),
    _SHOPS.c.previous_webhook_secret_enc.is_not_distinct_from(bindparam("previous_token")),
)
_STORE_CHECKED = (
    insert(_INBOX)
    .from_select(
        _DELIVERY_FIELDS,
        select(*(bindparam(name, type_=_INBOX.c[name].type) for name in _DELIVERY_FIELDS)).where(_SHOP_HOLDS_THE_KEYS),
    )
    .returning(_INBOX.c.id)
)
_stored = _STORE_CHECKED.cte("stored")
# PostgreSQL delivers a notification when the transaction that sent it commits.
_NOTIFY_WORKERS = func.pg_notify(INBOX_CHANNEL, "")
# The workers are told in the same round trip.
_STORE_CHECKED_AND_WAKE = select(_stored.c.id, _NOTIFY_WORKERS).select_from(_stored)


@contextmanager
def arrival(
    sessions: sessionmaker[Session], box: SecretBox, shop_id: int, platform: str, *, remembered: bool = True
) -> Iterator[Arrival]:
    """`remembered`: start from the keys this process remembers for the shop, if any, the delivery stored by one
    autocommitted INSERT. Otherwise the keys are read under a share lock in one transaction with the store: they
    cannot change in between, so this arrival never raises KeysChanged."""
    with single_write(sessions, atomic=not remembered) as connection:
        yield Arrival(connection, box, shop_id, platform, remembered=remembered)


def _delivery_values(
    *,
    shop_id: int,
    platform: str,
    topic: str,
    resource_id: str | None,
    delivery_id: str | None,
    body: bytes,
    status: InboxStatus = InboxStatus.RECEIVED,
    error: str | None = None,
) -> dict:
    return {
        "shop_id": shop_id,
        "platform": platform,
        "topic": topic[:60],
        "resource_id": resource_id,
        "delivery_id": (delivery_id or "")[:100] or None,
        "body": body,
        "status": status,
        "error": error,
    }


def apply_received(
    sessions: sessionmaker[Session], platforms: TopicsByPlatform, limit: int = 50, again_only: bool = False
) -> int:
    """The worker's share of deferred deliveries (DEFER_DELIVERIES): apply those stored and not yet applied, in
    arrival order; returns how many were tried. Each is claimed in the transaction that applies it, so several
    workers share the waiting deliveries without ever picking the same one. One the database kept failing (left
    `received`) is passed over for the rest of the round, so it cannot hold up those behind it. `again_only`: only
    deliveries set to be applied again (`apply_order_again`), where each request applies its own delivery."""
    claim = _CLAIM_OLDEST_AGAIN if again_only else _CLAIM_OLDEST
    passed_over: list[int] = []
    tried = 0
    while tried < limit and _apply_oldest_received(sessions, platforms, claim, passed_over) is not None:
        tried += 1
    return tried


def _apply_oldest_received(
    sessions: sessionmaker[Session], platforms: TopicsByPlatform, claim, passed_over: list[int]
) -> int | None:
    """Claim the oldest waiting delivery that no other worker holds (SKIP LOCKED) and is not passed over, and apply
    it; returns its id (added to `passed_over` when it is left `received`), None when none waits."""
    claimed: list[int] = []

    def attempt() -> InboxStatus | None:
        with unit_of_work(sessions) as session:
            delivery = _claim(session, claim, passed_over=passed_over)
            if delivery is None:
                return None
            claimed.append(delivery.id)
            topic = _topic(platforms, delivery.platform, delivery.topic)
            return _apply_claimed(session, delivery, topic.apply, topic.parse(json.loads(delivery.body)))

    try:
        status = _guarded(sessions, attempt, lambda: claimed[-1] if claimed else None)
    except ValidationFailed:  # kept as failed with the reason, as an inline delivery would be
        status = InboxStatus.FAILED
    if not claimed:  # none waits, or the database refused the claim itself
        return None
    if status == InboxStatus.RECEIVED:
        passed_over.append(claimed[-1])
    return claimed[-1]


Apply = Callable[[Session, Shop, object, Actor], None]


def apply_delivery(sessions: sessionmaker[Session], delivery_id: int, apply: Apply, parsed: object) -> InboxStatus:
    """Apply a stored delivery in one transaction; returns its final status (see `_guarded`)."""

    def attempt() -> InboxStatus:
        with unit_of_work(sessions) as session:
            delivery = _claim(session, _CLAIM_ONE, inbox_id=delivery_id)
            if delivery is None:  # applied or ignored already (by another process, it may be)
                return InboxStatus(session.scalar(_STATUS, {"inbox_id": delivery_id}))
            return _apply_claimed(session, delivery, apply, parsed)

    return _guarded(sessions, attempt, lambda: delivery_id)


def _guarded(
    sessions: sessionmaker[Session], attempt: Callable[[], InboxStatus | None], delivery: Callable[[], int | None]
) -> InboxStatus | None:
    """Run one apply attempt (`delivery` names the row it locked). A payload the rules refuse is kept as
    `failed` with the reason, for the merchant to inspect and retry. A database that dropped the connection (or
    a deadlock) gets one more try at once; after that the delivery stays `received`, and the worker's recovery
    applies it later."""
    try:
        try:
            return attempt()
        except OperationalError:  # the pool hands the second try a fresh connection (bridge.db.make_engine)
            log.warning("delivery %s: database error, trying once more", delivery(), exc_info=True)
            return attempt()
    except ValidationFailed as exc:
        _mark_failed(sessions, delivery(), f"invalid payload: {exc.fields or exc.message}")
        raise
    except DomainError as exc:
        _mark_failed(sessions, delivery(), f"{exc.code}: {exc.message}")
        return InboxStatus.FAILED
    except OperationalError:
        log.exception("delivery %s left for the worker's recovery", delivery())
        return _status_of(sessions, delivery())
    except Exception as exc:  # a bug must not lose the delivery: it stays stored, marked, and retryable
        log.exception("delivery %s could not be applied", delivery())
        _mark_failed(sessions, delivery(), f"internal error: {exc.__class__.__name__}")
        return InboxStatus.FAILED


class Claimed(NamedTuple):
    id: int
    platform: str
    topic: str
    body: bytes
    shop: Shop


def _claiming(which):
    """A delivery is claimed by marking it applied, under its row lock: the mark commits with what applying it
    moves, or rolls back with it (a refused delivery is then marked failed on its own). Applied and ignored
    deliveries are never claimed."""
    return (
        update(_INBOX)
        .where(_INBOX.c.id == which, _INBOX.c.status.in_((InboxStatus.RECEIVED, InboxStatus.FAILED)))
        .values(status=InboxStatus.APPLIED, applied_at=bindparam("now"), error=None)
        .returning(_INBOX.c.id, _INBOX.c.platform, _INBOX.c.topic, _INBOX.c.body, _INBOX.c.shop_id)
    )


def _with_shop(claim):
    """PostgreSQL: the claim and the delivery's shop in one statement (SQLite's RETURNING cannot join)."""
    claimed = claim.cte("claimed")
    columns = (claimed.c.id, claimed.c.platform, claimed.c.topic, claimed.c.body)
    return select(*columns, Shop).join(Shop, Shop.id == claimed.c.shop_id)


def _oldest_waiting_id(*where):
    return (
        select(_INBOX.c.id)
        .where(
            _INBOX.c.status == InboxStatus.RECEIVED,
            _INBOX.c.id.not_in(bindparam("passed_over", expanding=True)),
            *where,
        )
        .order_by(_INBOX.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )


# Built once: a worker claims every delivery it applies. A delivery waiting with an `applied_at` was applied before
# and set to be applied again.
_CLAIM_OLDEST = _claiming(_oldest_waiting_id())
_CLAIM_OLDEST_AGAIN = _claiming(_oldest_waiting_id(_INBOX.c.applied_at.is_not(None)))
_CLAIM_ONE = _claiming(bindparam("inbox_id"))
_CLAIM_WITH_SHOP = {claim: _with_shop(claim) for claim in (_CLAIM_OLDEST, _CLAIM_OLDEST_AGAIN, _CLAIM_ONE)}


def _claim(session: Session, claim, **params) -> Claimed | None:
    params["now"] = utcnow()
    if session.get_bind().dialect.name == "postgresql":
        row = session.execute(_CLAIM_WITH_SHOP[claim], params).first()
        return None if row is None else Claimed(*row)
    row = session.execute(claim, params).first()
    return None if row is None else Claimed(*row[:4], session.get(Shop, row.shop_id))


def _apply_claimed(session: Session, delivery: Claimed, apply: Apply, parsed: object) -> InboxStatus:
    apply(session, delivery.shop, parsed, Actor("webhook", f"{delivery.platform}:{delivery.id}"))
    return InboxStatus.APPLIED


def _topic(platforms: TopicsByPlatform, platform: str, name: str) -> Topic:
    topic = platforms.get(platform, {}).get(name)
    if topic is None:
        raise InvalidState(f"deliveries of {platform} {name} cannot be applied", code="unknown_topic")
    return topic


def apply_order_again(session: Session, shop_id: int, order_id: str) -> None:
    """Set the order's newest applied delivery to be applied again by a worker (it keeps its `applied_at`, which
    tells it from one not applied yet): a state met while the order's payment was still being written on the shop,
    which only now can be settled."""
    session.execute(_APPLY_AGAIN, {"of_shop": shop_id, "order_id": order_id})
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_WAKE)


_NEWEST_APPLIED_OF_ORDER = (
    select(func.max(_INBOX.c.id))
    .where(
        _INBOX.c.shop_id == bindparam("of_shop"),
        _INBOX.c.resource_id == bindparam("order_id"),
        _INBOX.c.topic.startswith("order"),  # WooCommerce's order.*, Shopify's orders/*: not a customer's id
        _INBOX.c.status == InboxStatus.APPLIED,
    )
    .scalar_subquery()
)
_APPLY_AGAIN = update(_INBOX).where(_INBOX.c.id == _NEWEST_APPLIED_OF_ORDER).values(status=InboxStatus.RECEIVED)
_WAKE = select(_NOTIFY_WORKERS)


def _mark_failed(sessions: sessionmaker[Session], delivery_id: int | None, error: str) -> None:
    """Record why applying failed, unless another process applied the delivery meanwhile (its claim waited for this
    attempt's to roll back): what it applied stands."""
    if delivery_id is None:  # the worker failed before it claimed one: nothing to mark
        return
    with unit_of_work(sessions) as session:
        session.execute(_MARK_FAILED, {"inbox_id": delivery_id, "error": error})


_STATUS = select(_INBOX.c.status).where(_INBOX.c.id == bindparam("inbox_id"))
_MARK_FAILED = (
    update(_INBOX)
    .where(_INBOX.c.id == bindparam("inbox_id"), _INBOX.c.status.in_((InboxStatus.RECEIVED, InboxStatus.FAILED)))
    .values(status=InboxStatus.FAILED, error=bindparam("error"))
)


def _status_of(sessions: sessionmaker[Session], delivery_id: int | None) -> InboxStatus:
    """The delivery's stored status after an attempt the database refused: what it was before (a retried `failed`
    one stays failed), read again if the database is back; `received` while it is still away (or none was claimed)."""
    if delivery_id is None:
        return InboxStatus.RECEIVED
    try:
        with unit_of_work(sessions) as session:
            return InboxStatus(session.scalar(_STATUS, {"inbox_id": delivery_id}))
    except OperationalError:
        return InboxStatus.RECEIVED


def reapply(sessions: sessionmaker[Session], platforms: TopicsByPlatform, delivery_id: int) -> Outcome:
    """Parse the stored body again and apply it; a delivery already applied is left as it is."""
    with unit_of_work(sessions) as session:
        delivery = session.get(InboxDelivery, delivery_id)
        platform, name, body = delivery.platform, delivery.topic, delivery.body
    return _apply_stored(sessions, platforms, delivery_id, platform, name, body)


def _apply_stored(
    sessions: sessionmaker[Session],
    platforms: TopicsByPlatform,
    delivery_id: int,
    platform: str,
    name: str,
    body: bytes,
) -> Outcome:
    try:
        topic = _topic(platforms, platform, name)
    except InvalidState as exc:
        return Outcome(InboxStatus.FAILED, exc.message)
    try:
        snapshot = topic.parse(json.loads(body))
    except (ValueError, DomainError) as exc:  # still unreadable: say so on the delivery
        error = f"on retry: {getattr(exc, 'message', None) or exc}"[:1000]
        with unit_of_work(sessions) as session:
            session.get(InboxDelivery, delivery_id).error = error
        return Outcome(InboxStatus.FAILED, error)
    try:
        status = apply_delivery(sessions, delivery_id, topic.apply, snapshot)
    except DomainError as exc:  # the payload is refused: apply_delivery marked it failed, with the reason
        return Outcome(InboxStatus.FAILED, exc.message)
    return Outcome(status, _error_of(sessions, delivery_id) if status == InboxStatus.FAILED else None)


def recover_stalled(
    sessions: sessionmaker[Session], platforms: TopicsByPlatform, stalled_after: timedelta = STALLED_AFTER
) -> int:
    """Apply deliveries stored but left `received` for longer than `stalled_after`; returns how many were
    applied. Safe with several workers: apply_delivery locks each row and skips what is already applied."""
    cutoff = utcnow() - stalled_after
    with unit_of_work(sessions) as session:
        stalled = session.scalars(
            select(InboxDelivery.id)
            .where(InboxDelivery.status == InboxStatus.RECEIVED, InboxDelivery.received_at <= cutoff)
            .order_by(InboxDelivery.id)  # in arrival order, as they would have been applied
            .limit(BATCH)
        ).all()
    applied = 0
    for delivery_id in stalled:
        outcome = reapply(sessions, platforms, delivery_id)
        applied += outcome.status == InboxStatus.APPLIED
        log.warning("stalled delivery %s re-applied: %s %s", delivery_id, outcome.status, outcome.error or "")
    return applied


def _error_of(sessions: sessionmaker[Session], delivery_id: int) -> str | None:
    with unit_of_work(sessions) as session:
        return session.get(InboxDelivery, delivery_id).error
