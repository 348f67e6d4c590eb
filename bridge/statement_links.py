"""Signed, expiring links to a customer's statement: the shop's "My account" page asks the bridge for
one (with its API key) and shows it to the logged-in customer; the link is their only credential."""

from __future__ import annotations

from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from bridge.errors import NotFound

SALT = "customer-statement"
LINK_LIFETIME_SECONDS = 3600


@dataclass(frozen=True)
class StatementAccess:
    shop_id: int
    customer_external_id: str


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=SALT)


def make_statement_token(secret_key: str, shop_id: int, customer_external_id: str) -> str:
    return _serializer(secret_key).dumps([shop_id, customer_external_id])


def read_statement_token(secret_key: str, token: str, max_age: int = LINK_LIFETIME_SECONDS) -> StatementAccess:
    """A tampered, foreign or expired link reads as "not found": it gives away nothing."""
    try:
        shop_id, customer = _serializer(secret_key).loads(token, max_age=max_age)
    except (BadSignature, SignatureExpired, ValueError, TypeError) as exc:
        raise NotFound("this link is invalid or has expired") from exc
    return StatementAccess(int(shop_id), str(customer))
