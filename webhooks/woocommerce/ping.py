"""Is a WooCommerce request the unsigned ping? (Signed deliveries are checked by webhooks.signing.)"""

from __future__ import annotations

import re
from collections.abc import Iterable

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
_PING_BODY = re.compile(rb"webhook_id=[0-9]{1,20}")
_DELIVERY_HEADER_PREFIX = "x-wc-webhook-"


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
