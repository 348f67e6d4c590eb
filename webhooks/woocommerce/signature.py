"""Is a WooCommerce delivery authentic, or is it the unsigned ping? Pure functions that never raise.

WooCommerce signs every delivery with base64(HMAC-SHA256(secret, raw body)) in X-WC-Webhook-Signature.
The body is `wp_json_encode` output (`\\/` escapes, `\\uXXXX` for non-ASCII), so the check must run on the
bytes as received: parsing and re-serialising the JSON never reproduces them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
_PING_BODY = re.compile(rb"webhook_id=[0-9]{1,20}")
_DELIVERY_HEADER_PREFIX = "x-wc-webhook-"


def sign(raw_body: bytes, secret: str) -> str:
    """The X-WC-Webhook-Signature value WooCommerce sends for `raw_body` under `secret`."""
    digest = hmac.new(secret.encode("utf-8"), raw_body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def is_valid_signature(raw_body: bytes, header_value: str | None, secrets: list[str]) -> bool:
    """True when the header is the signature of `raw_body` under any of `secrets` (old and new during rotation).

    Missing, empty, garbled or non-ASCII headers are simply invalid; this never raises.
    """
    if not isinstance(raw_body, bytes | bytearray) or not isinstance(header_value, str):
        return False
    try:
        presented = header_value.strip().encode("ascii")
    except UnicodeEncodeError:
        return False
    if not presented:
        return False
    matched = False
    for secret in secrets or ():
        expected = _expected_signature(bytes(raw_body), secret)
        # Check every secret instead of stopping at the first match, and compare bytes in constant time,
        # so the timing says nothing about how much of a forged signature was right.
        if expected is not None and hmac.compare_digest(expected, presented):
            matched = True
    return matched


def _expected_signature(raw_body: bytes, secret: object) -> bytes | None:
    # An empty secret would let anyone sign (the HMAC key is public), so it never matches anything.
    if not isinstance(secret, str) or not secret:
        return None
    try:
        return sign(raw_body, secret).encode("ascii")
    except UnicodeEncodeError:  # a secret with lone surrogates cannot be the one WooCommerce holds
        return None


def is_ping(content_type: str | None, raw_body: bytes, headers) -> bool:
    """True for the unsigned ping WooCommerce posts when a webhook is created.

    It is a form-encoded `webhook_id=N` body with no X-WC-Webhook-* headers at all (no topic, no
    signature); real deliveries are JSON and carry them. `headers` may be a mapping (werkzeug Headers,
    dict) or a list of (name, value) pairs.
    """
    if not isinstance(content_type, str) or content_type.split(";")[0].strip().lower() != FORM_CONTENT_TYPE:
        return False
    if not isinstance(raw_body, bytes | bytearray) or not _PING_BODY.fullmatch(raw_body):
        return False
    names = _header_names(headers)
    if names is None:
        return False  # unreadable headers: not provably a ping, so the signature check decides
    return not any(name.lower().startswith(_DELIVERY_HEADER_PREFIX) for name in names)


def _header_names(headers) -> list[str] | None:
    if headers is None:
        return []
    try:
        if hasattr(headers, "keys"):
            return [str(name) for name in headers.keys()]  # werkzeug Headers iterate as pairs
        return [str(pair[0]) for pair in _as_pairs(headers)]
    except Exception:  # best effort by design: inspecting a request never raises
        return None


def _as_pairs(headers: Iterable) -> Iterable:
    return (pair for pair in headers if isinstance(pair, list | tuple) and pair)
