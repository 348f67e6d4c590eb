"""Signed, expiring links to a customer's statement: the shop's "My account" page asks the bridge for
one (with its API key) and shows it to the logged-in customer; the link is their only credential. Every
note the bridge writes to a customer about their wallet carries one too, valid longer, because an e-mail
is read days later."""

from __future__ import annotations

import time
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

from bridge.errors import NotFound

SALT = "customer-statement"
LINK_LIFETIME_SECONDS = 3600  # a link shown on the shop's account page, to the customer logged in there
NOTE_LINK_LIFETIME_SECONDS = 30 * 86_400  # a link e-mailed with an order note
NOTE_LINK_LEAD = "Your wallet and its statement:"  # the line that carries the link in a note


@dataclass(frozen=True)
class StatementAccess:
    shop_id: int
    customer_external_id: str


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=SALT)


def make_statement_token(
    secret_key: str, shop_id: int, customer_external_id: str, lifetime: int = LINK_LIFETIME_SECONDS
) -> str:
    """The lifetime travels signed inside the token, so each kind of link expires on its own schedule."""
    return _serializer(secret_key).dumps([shop_id, customer_external_id, lifetime])


def read_statement_token(secret_key: str, token: str) -> StatementAccess:
    """A tampered, foreign or expired link reads as "not found": it gives away nothing."""
    try:
        payload, signed_at = _serializer(secret_key).loads(token, return_timestamp=True)
        shop_id, customer, lifetime = (*payload, LINK_LIFETIME_SECONDS)[:3]  # links made before lifetimes: an hour
        if time.time() - signed_at.timestamp() > int(lifetime):
            raise ValueError("expired")
    except (BadSignature, ValueError, TypeError) as exc:
        raise NotFound("this link is invalid or has expired") from exc
    return StatementAccess(int(shop_id), str(customer))


@dataclass(frozen=True)
class StatementLinks:
    """Makes statement links for where the bridge is served (PUBLIC_URL)."""

    secret_key: str
    public_url: str

    def url(self, shop_id: int, customer_external_id: str, lifetime: int = LINK_LIFETIME_SECONDS) -> str:
        token = make_statement_token(self.secret_key, shop_id, customer_external_id, lifetime)
        return f"{self.public_url}/statement/{token}"

    def note_with_link(self, note: str, shop_id: int, customer_external_id: str | None) -> str:
        """The note as the customer reads it: with a fresh link to their wallet (a guest has none)."""
        if customer_external_id is None:
            return note
        return f"{note}\n\n{NOTE_LINK_LEAD} {self.url(shop_id, customer_external_id, NOTE_LINK_LIFETIME_SECONDS)}"


def without_link(note: str) -> str:
    """A note as the bridge wrote it, before the link was added: the same note pushed again has a new link."""
    return note.split(f"\n\n{NOTE_LINK_LEAD}", 1)[0]
