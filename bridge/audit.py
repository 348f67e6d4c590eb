"""The audit trail: who changed what in a shop, when, from what to what. Rows are only ever added."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.models import AuditEvent, MerchantUser


@dataclass(frozen=True)
class Who:
    """The person (or tool) making a change."""

    label: str  # an e-mail address, or "cli"
    user_id: int | None = None

    @classmethod
    def of(cls, user: MerchantUser) -> Who:
        return cls(user.email, user.id)


CLI = Who("cli")


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def changes(old: dict, new: dict) -> dict[str, tuple[object, object]]:
    """Field → (old, new) for every key whose value differs."""
    return {key: (old.get(key), new.get(key)) for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)}


def record(
    session: Session,
    who: Who,
    action: str,
    *,
    shop_id: int | None,
    target: str | None = None,
    field: str | None = None,
    old=None,
    new=None,
) -> AuditEvent:
    event = AuditEvent(
        shop_id=shop_id,
        user_id=who.user_id,
        actor=who.label[:320],
        action=action[:60],
        target=(target or None) and target[:200],
        field=field,
        old_value=_text(old),
        new_value=_text(new),
    )
    session.add(event)
    return event


def record_changes(
    session: Session,
    who: Who,
    action: str,
    *,
    shop_id: int,
    diff: dict[str, tuple[object, object]],
    target: str | None = None,
) -> int:
    """One row per changed field; returns how many."""
    for field, (old, new) in diff.items():
        record(session, who, action, shop_id=shop_id, target=target, field=field, old=old, new=new)
    return len(diff)


def recent(
    session: Session,
    shop_id: int,
    *,
    limit: int = 50,
    before_id: int | None = None,
    action_prefix: str | None = None,
) -> list[AuditEvent]:
    """Newest first, paged by id (the (shop_id, id) index)."""
    query = select(AuditEvent).where(AuditEvent.shop_id == shop_id)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    if action_prefix:
        query = query.where(AuditEvent.action.startswith(action_prefix, autoescape=True))
    return list(session.execute(query.order_by(AuditEvent.id.desc()).limit(limit)).scalars())


def latest(session: Session, shop_id: int, action: str) -> AuditEvent | None:
    return session.execute(
        select(AuditEvent)
        .where(AuditEvent.shop_id == shop_id, AuditEvent.action == action)
        .order_by(AuditEvent.id.desc())
        .limit(1)
    ).scalar_one_or_none()
