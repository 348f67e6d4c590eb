"""HMAC-SHA256 webhook signatures as WooCommerce and Shopify send them: base64 of the raw digest of the
raw body bytes. Pure functions of bytes and strings that never raise; a signer beside the checker so
tests make real signatures.

Both platforms sign the body exactly as sent (WooCommerce's `wp_json_encode` escapes `/` and non-ASCII),
so the check must run on the bytes as received: parsing and re-serialising the JSON never reproduces them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


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
