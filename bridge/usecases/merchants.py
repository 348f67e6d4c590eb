"""The merchants' side of the console as commands: signing in and out, the first run, shops and their teams,
passwords. Each is one transaction (sign-in: two, see `sign_in`); the console's pages read through `reading`."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from bridge import audit
from bridge.db import unit_of_work
from bridge.errors import ValidationFailed
from bridge.models import LoginAttempt, MerchantUser, Shop, utcnow
from bridge.security import SecretBox
from bridge.settings_schema import load_settings
from bridge.shops import NewShop, create_shop
from bridge.users import (
    SignIn,
    add_membership,
    any_user_exists,
    change_password,
    check_new_user,
    check_sign_in,
    claim_attempt,
    create_user,
    find_user,
    lock_first_run,
    over_limit,
    remove_membership,
    set_password,
)


def sign_in(sessions: sessionmaker[Session], email: str, password: str, ip: str, now: datetime | None = None) -> SignIn:
    """Check the password, at most MAX_FAILURES_PER_EMAIL (and _PER_IP) times per window.

    Each attempt first claims a slot: its row is committed, then counted with every row committed before it.
    Of any number of parallel attempts, the k-th to commit counts at least k, so no more than the limit ever
    reach the password check (reading the count first let 40 parallel guesses through 21 times against a limit
    of 5). A refused attempt gives its slot back, so guessing on does not keep the window open; a wrong
    password keeps it as the failure's record; signing in clears the e-mail's."""
    now = now or utcnow()
    with unit_of_work(sessions) as session:
        claimed = claim_attempt(session, email, ip, now)
    with unit_of_work(sessions) as session:
        refusal = over_limit(session, email, ip, now)
        if refusal is not None:
            session.execute(delete(LoginAttempt).where(LoginAttempt.id == claimed))
        else:
            return check_sign_in(session, email, password, now)
    raise refusal


def sign_out_everywhere(sessions: sessionmaker[Session], user_id: int) -> None:
    """Every session of the user ends, any copy of its cookie too: a cookie is signed, not stored, so only the
    database (which every web process reads on each request) can make it worthless."""
    with unit_of_work(sessions) as session:
        session.execute(
            update(MerchantUser)
            .where(MerchantUser.id == user_id)
            .values(session_generation=MerchantUser.session_generation + 1)
        )


def first_run(
    sessions: sessionmaker[Session],
    box: SecretBox,
    platforms: Collection[str],
    *,
    email: str,
    name: str,
    password: str,
    new_shop: dict | None,
    take_over: Iterable[int],
) -> tuple[MerchantUser | None, NewShop | None]:
    """The first user, with a new shop (`new_shop`: name, platform, url, currency) or the shops made before
    that they take over. Raises ValidationFailed; returns (None, None) when someone finished first."""
    with unit_of_work(sessions) as session:
        lock_first_run(session)
        if any_user_exists(session):  # someone finished set-up a moment ago
            return None, None
        user = create_user(session, email=email, name=name, password=password)
        created = _new_shop(session, box, platforms, user, new_shop) if new_shop else None
        for shop_id in take_over:
            add_membership(session, user, shop_id)
            audit.record(session, audit.Who.of(user), "team.add", shop_id=shop_id, target=user.email, new=user.email)
        return user, created


def new_shop(sessions: sessionmaker[Session], box: SecretBox, platforms: Collection[str], **shop) -> NewShop:
    """A shop made by an operator (`wallet-bridge shop create`): no user manages it until one takes it over."""
    with unit_of_work(sessions) as session:
        return create_shop(session, box, platforms=platforms, **shop)


def add_shop(
    sessions: sessionmaker[Session], box: SecretBox, platforms: Collection[str], user: MerchantUser, shop: dict
) -> NewShop:
    with unit_of_work(sessions) as session:
        return _new_shop(session, box, platforms, user, shop)


def _new_shop(session: Session, box: SecretBox, platforms: Collection[str], user: MerchantUser, shop: dict) -> NewShop:
    """Field errors name the shop's name `shop_name`: the first run's command carries the user's name too."""
    try:
        created = create_shop(session, box, platforms=platforms, **shop)
    except ValidationFailed as exc:
        fields = {("shop_name" if key == "name" else key): why for key, why in (exc.fields or {}).items()}
        raise ValidationFailed(exc.message, fields=fields or None) from exc
    add_membership(session, user, created.shop.id)
    audit.record(
        session,
        audit.Who.of(user),
        "shop.create",
        shop_id=created.shop.id,
        new=f"{created.shop.name} ({created.shop.currency})",
    )
    return created


def new_password(
    sessions: sessionmaker[Session],
    user: MerchantUser,
    current: str,
    new: str,
    ip: str,
    now: datetime | None = None,
) -> MerchantUser:
    """A user's own new password, checked against the current one. The current password is a guess like a sign-in's,
    counted with them (`sign_in`: a slot claimed first): a session cookie someone copied must not try passwords
    unthrottled, then change it and keep the account. A wrong current password keeps its slot; anything else (the
    change made, a new password too short) gives it back; a change clears the e-mail's failures as a sign-in does."""
    now = now or utcnow()
    with unit_of_work(sessions) as session:
        claimed = claim_attempt(session, user.email, ip, now)
    with unit_of_work(sessions) as session:
        refusal = over_limit(session, user.email, ip, now)
        if refusal is None:
            user = session.merge(user)
            try:
                change_password(session, user, current, new)
            except ValidationFailed as exc:
                refusal = exc
            else:
                audit.record(session, audit.Who.of(user), "user.password", shop_id=None, target=user.email)
                session.execute(delete(LoginAttempt).where(LoginAttempt.email == user.email))
                return user
        if "current_password" not in (refusal.fields or {}):
            session.execute(delete(LoginAttempt).where(LoginAttempt.id == claimed))
    raise refusal


def reset_password(sessions: sessionmaker[Session], email: str, new: str, who: audit.Who) -> MerchantUser:
    with unit_of_work(sessions) as session:
        user = set_password(session, email, new)
        audit.record(session, who, "user.password", shop_id=None, target=user.email)
        return user


def create_user_for_shops(
    sessions: sessionmaker[Session], who: audit.Who, *, email: str, name: str, password: str, shop_ids: Iterable[int]
) -> MerchantUser:
    with unit_of_work(sessions) as session:
        user = create_user(session, email=email, name=name, password=password)
        for shop_id in shop_ids:
            add_membership(session, user, shop_id)
            audit.record(session, who, "team.add", shop_id=shop_id, target=user.email, new=user.email)
        return user


def add_team_member(
    sessions: sessionmaker[Session], shop_id: int, who: audit.Who, *, email: str, name: str, password: str
) -> MerchantUser:
    """An existing user joins the shop's team, or a new one is made with this password."""
    with unit_of_work(sessions) as session:
        user = find_user(session, email)
        if user is None:
            problems = check_new_user(email, name, password)
            if problems:
                raise ValidationFailed("invalid user", fields=problems)
            user = create_user(session, email=email, name=name, password=password)
        add_membership(session, user, shop_id)
        audit.record(session, who, "team.add", shop_id=shop_id, target=user.email, new=user.email)
        return user


def remove_team_member(
    sessions: sessionmaker[Session], shop_id: int, user_id: int, who: audit.Who
) -> MerchantUser | None:
    with unit_of_work(sessions) as session:
        user = remove_membership(session, shop_id, user_id)
        if user is not None:
            audit.record(session, who, "team.remove", shop_id=shop_id, target=user.email, old=user.email)
        return user


def record(sessions: sessionmaker[Session], who: audit.Who, action: str, **details) -> None:
    """An audit line on its own (a check that changed nothing but must be on record)."""
    record_all(sessions, who, [(action, details)])


def record_all(sessions: sessionmaker[Session], who: audit.Who, lines: Iterable[tuple[str, dict]]) -> None:
    """Audit lines about one thing that happened (a connection: what changed, and its check), together."""
    with unit_of_work(sessions) as session:
        for action, details in lines:
            audit.record(session, who, action, **details)


# (stored settings, the shop's currency) → (the new settings, or None when the change is refused; the changes as
# shown to people: name → (old, new))
SettingsChange = Callable[[dict, str], tuple[dict | None, dict]]


def change_settings(
    sessions: sessionmaker[Session], shop_id: int, who: audit.Who, action: str, change: SettingsChange
) -> tuple[dict | None, dict]:
    """Merge a change into the shop's settings under its row lock: two people saving two sections at once both
    keep theirs. Returns what `change` did."""
    with unit_of_work(sessions) as session:
        shop = session.execute(select(Shop).where(Shop.id == shop_id).with_for_update()).scalar_one()
        new_settings, shown = change(load_settings(shop.settings), shop.currency)
        if new_settings is not None:
            audit.record_changes(session, who, action, shop_id=shop_id, diff=shown)
            shop.settings = new_settings
        return new_settings, shown
