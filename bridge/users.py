"""Merchant users: argon2 passwords, the shops each may manage, and sign-in throttled in the database.

Sign-in attempts are rows in `login_attempts` (a failed one stays), counted per e-mail and per client address
over a sliding window, so every web process (several gunicorn workers, several hosts) sees the same count.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, exists, func, select, text
from sqlalchemy.orm import Session

from bridge.errors import DomainError, NotFound, ValidationFailed
from bridge.models import LoginAttempt, MerchantUser, Shop, ShopMembership

PASSWORD_MIN_LENGTH = 10
PASSWORD_MAX_LENGTH = 200
THROTTLE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_EMAIL = 5
MAX_FAILURES_PER_IP = 20
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the e-mail is unknown, so an unknown address takes as long as a wrong password.
    Made on first use: an argon2 hash costs most of a second, which every process start would otherwise pay."""
    return _hasher.hash("not a password of anyone")


class TooManyAttempts(DomainError):
    code = "too_many_attempts"

    def __init__(self, retry_after: timedelta):
        minutes = max(1, int(retry_after.total_seconds() // 60) + (1 if retry_after.total_seconds() % 60 else 0))
        super().__init__(f"Too many failed sign-ins. Try again in {minutes} minute{'s' if minutes > 1 else ''}.")
        self.retry_after = retry_after


def normalize_email(email: str) -> str:
    return (email or "").strip().lower()


def check_new_user(email: str, name: str, password: str) -> dict[str, str]:
    """The rules for a new user, one message per field (shared by the first-run page and the CLI)."""
    problems: dict[str, str] = {}
    email = normalize_email(email)
    if not _EMAIL_RE.match(email) or len(email) > 320:
        problems["email"] = "Enter a valid e-mail address."
    if not (name or "").strip():
        problems["name"] = "Enter a name."
    elif len(name.strip()) > 200:
        problems["name"] = "At most 200 characters."
    problems.update(check_password(password, email))
    return problems


def check_password(password: str, email: str = "") -> dict[str, str]:
    if len(password or "") < PASSWORD_MIN_LENGTH:
        return {"password": f"At least {PASSWORD_MIN_LENGTH} characters."}
    if len(password) > PASSWORD_MAX_LENGTH:
        return {"password": f"At most {PASSWORD_MAX_LENGTH} characters."}
    if email and password.strip().lower() == normalize_email(email):
        return {"password": "The password cannot be the e-mail address."}
    return {}


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def find_user(session: Session, email: str) -> MerchantUser | None:
    return session.execute(
        select(MerchantUser).where(MerchantUser.email == normalize_email(email))
    ).scalar_one_or_none()


def any_user_exists(session: Session) -> bool:
    return session.execute(select(MerchantUser.id).limit(1)).first() is not None


def create_user(session: Session, *, email: str, name: str, password: str) -> MerchantUser:
    """A new merchant user. Raises ValidationFailed naming each field that is wrong."""
    problems = check_new_user(email, name, password)
    if not problems and find_user(session, email) is not None:
        problems["email"] = "A user with this e-mail address already exists."
    if problems:
        raise ValidationFailed("cannot create the user: " + ", ".join(sorted(problems)), fields=problems)
    user = MerchantUser(email=normalize_email(email), name=name.strip(), password_hash=hash_password(password))
    session.add(user)
    session.flush()
    return user


def add_membership(session: Session, user: MerchantUser, shop_id: int, role: str = "owner") -> ShopMembership:
    existing = session.execute(
        select(ShopMembership).where(ShopMembership.user_id == user.id, ShopMembership.shop_id == shop_id)
    ).scalar_one_or_none()
    if existing is not None:
        return existing
    if session.get(Shop, shop_id) is None:
        raise ValidationFailed(f"there is no shop {shop_id}", fields={"shop": "unknown shop"})
    membership = ShopMembership(user_id=user.id, shop_id=shop_id, role=role)
    session.add(membership)
    session.flush()
    return membership


def remove_membership(session: Session, shop_id: int, user_id: int) -> MerchantUser | None:
    """Take someone off a shop's team (None: not a member). The last member stays: nobody could manage the
    shop any more. The team's rows are locked, so two members removing each other cannot both go."""
    team = (
        session.execute(select(ShopMembership).where(ShopMembership.shop_id == shop_id).with_for_update())
        .scalars()
        .all()
    )
    membership = next((m for m in team if m.user_id == user_id), None)
    if membership is None:
        return None
    if len(team) == 1:
        raise ValidationFailed("the shop's only member cannot be removed", fields={"member": "the only member"})
    session.delete(membership)
    return session.get(MerchantUser, user_id)


def user_shops(session: Session, user_id: int) -> list[Shop]:
    return list(
        session.execute(
            select(Shop)
            .join(ShopMembership, ShopMembership.shop_id == Shop.id)
            .where(ShopMembership.user_id == user_id)
            .order_by(Shop.name, Shop.id)
        ).scalars()
    )


def shops_without_members(session: Session) -> list[Shop]:
    """Shops nobody manages: made with `wallet-bridge shop create` or the demo before the console's first user."""
    managed = exists().where(ShopMembership.shop_id == Shop.id)
    return list(session.scalars(select(Shop).where(~managed).order_by(Shop.name, Shop.id)))


def shop_for_user(session: Session, user_id: int, shop_id: int) -> Shop | None:
    """The shop if the user belongs to it; None otherwise (callers answer 404, never 403)."""
    return session.execute(
        select(Shop)
        .join(ShopMembership, ShopMembership.shop_id == Shop.id)
        .where(ShopMembership.user_id == user_id, Shop.id == shop_id)
    ).scalar_one_or_none()


def shop_members(session: Session, shop_id: int) -> list[tuple[MerchantUser, ShopMembership]]:
    rows = session.execute(
        select(MerchantUser, ShopMembership)
        .join(ShopMembership, ShopMembership.user_id == MerchantUser.id)
        .where(ShopMembership.shop_id == shop_id)
        .order_by(MerchantUser.email)
    ).all()
    return [(user, membership) for user, membership in rows]


def lock_first_run(session: Session) -> None:
    """Serialise first-run set-ups, so two browsers racing on an empty database create one first user.
    SQLite already serialises writers (BEGIN IMMEDIATE); PostgreSQL takes a transaction advisory lock."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(727274)"))


# Sign-in -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignIn:
    user: MerchantUser | None  # None: wrong e-mail or password (never says which)


def _attempts_since(session: Session, column, value: str, since: datetime) -> tuple[int, datetime | None]:
    count, oldest = session.execute(
        select(func.count(), func.min(LoginAttempt.created_at)).where(column == value, LoginAttempt.created_at >= since)
    ).one()
    return count, oldest


def claim_attempt(session: Session, email: str, ip: str, now: datetime) -> int:
    attempt = LoginAttempt(email=normalize_email(email)[:320], ip=ip[:64], created_at=now)
    session.add(attempt)
    # Old rows are worth nothing: keep the table small (both indexes lead with a column, not the date).
    session.execute(delete(LoginAttempt).where(LoginAttempt.created_at < now - timedelta(days=1)))
    session.flush()
    return attempt.id


def over_limit(session: Session, email: str, ip: str, now: datetime) -> TooManyAttempts | None:
    """Refused when this attempt (counted) is past the e-mail's or the address's limit in the window."""
    for column, value, limit in (
        (LoginAttempt.email, normalize_email(email)[:320], MAX_FAILURES_PER_EMAIL),
        (LoginAttempt.ip, ip[:64], MAX_FAILURES_PER_IP),
    ):
        count, oldest = _attempts_since(session, column, value, now - THROTTLE_WINDOW)
        if count > limit:
            oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=now.tzinfo)
            return TooManyAttempts(oldest + THROTTLE_WINDOW - now)
    return None


def check_sign_in(session: Session, email: str, password: str, now: datetime) -> SignIn:
    user = find_user(session, email)
    try:
        _hasher.verify(user.password_hash if user else _dummy_hash(), password or "")
    except (VerificationError, InvalidHashError):
        return SignIn(None)
    if user is None:  # cannot happen (the dummy hash matches no one), but never sign in nobody
        return SignIn(None)
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = now
    session.execute(delete(LoginAttempt).where(LoginAttempt.email == user.email))
    return SignIn(user)


def change_password(session: Session, user: MerchantUser, current: str, new: str) -> None:
    try:
        _hasher.verify(user.password_hash, current or "")
    except (VerificationError, InvalidHashError) as exc:
        raise ValidationFailed("wrong password", fields={"current_password": "This is not your password."}) from exc
    problems = check_password(new, user.email)
    if problems:
        raise ValidationFailed("invalid password", fields={"new_password": problems["password"]})
    user.password_hash = hash_password(new)


def set_password(session: Session, email: str, new: str) -> MerchantUser:
    """An operator's reset (the user forgot it): no current password asked. Every session of the user ends (each
    is bound to the password's hash) and their failed sign-ins are forgotten, so they can sign in at once."""
    user = find_user(session, email)
    if user is None:
        raise NotFound(f"there is no user {normalize_email(email)}")
    problems = check_password(new, user.email)
    if problems:
        raise ValidationFailed(f"password: {problems['password']}", fields=problems)
    user.password_hash = hash_password(new)
    session.execute(delete(LoginAttempt).where(LoginAttempt.email == user.email))
    return user


def session_fingerprint(user: MerchantUser) -> str:
    """Bound into the session cookie: a password change signs out every other session of the user."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]
