"""REST authentication as WC_REST_Authentication does it.

- Over http: OAuth 1.0a one-legged, parameters in the query string (what the official `woocommerce`
  client sends). The signature is recomputed the way the store computes it: every query parameter except
  oauth_signature, keys sorted, key and value rawurlencoded (then `%` → `%25`), joined with `%3D`/`%26`,
  signed with HMAC-SHA1/SHA256 under `consumer_secret&`. Timestamps older or newer than 15 minutes and
  reused nonces are refused. Plain `consumer_key`/`consumer_secret` query parameters are ignored over http.
- Over https: HTTP Basic, or `consumer_key`/`consumer_secret` in the query string.
- Basic auth over plain http is accepted only when the simulator allows it (a real store ignores it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from flask import Request

OAUTH_PARAMS = ("oauth_consumer_key", "oauth_timestamp", "oauth_nonce", "oauth_signature", "oauth_signature_method")
TIMESTAMP_WINDOW = 15 * 60
NO_CREDENTIALS = "Sorry, you cannot list resources."


@dataclass
class Credentials:
    consumer_key: str
    consumer_secret: str
    basic_auth_over_http: bool = True
    used_nonces: set[str] = field(default_factory=set)

    def check(self, request: Request) -> str | None:
        """None when the request is authenticated; otherwise the reason, for a 401."""
        https = request.scheme == "https"
        params = query_params(request)
        basic = request.authorization
        if basic is not None and basic.type == "basic" and (https or self.basic_auth_over_http):
            return self._check_pair(basic.username or "", basic.password or "")
        if https and "consumer_key" in params:
            return self._check_pair(params["consumer_key"], params.get("consumer_secret", ""))
        if not https and any(name in params for name in OAUTH_PARAMS):
            return self._check_oauth(request, params)
        return NO_CREDENTIALS

    def _check_pair(self, key: str, secret: str) -> str | None:
        if not _same(key, self.consumer_key):
            return "Consumer key is invalid."
        if not _same(secret, self.consumer_secret):
            return "Consumer secret is invalid."
        return None

    def _check_oauth(self, request: Request, params: dict[str, str]) -> str | None:
        missing = [name for name in OAUTH_PARAMS if not params.get(name)]
        if missing:
            return f"Missing OAuth parameter{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
        if not _same(params["oauth_consumer_key"], self.consumer_key):
            return "Consumer key is invalid."
        method = params["oauth_signature_method"]
        if method not in ("HMAC-SHA1", "HMAC-SHA256"):
            return "Invalid signature - signature method is invalid."
        presented = unquote(params["oauth_signature"].replace(" ", "+"))
        expected = oauth_signature(
            request.method, f"{request.scheme}://{request.host}{request.path}", params, self.consumer_secret, method
        )
        if not hmac.compare_digest(expected, presented):
            return "Invalid signature - provided signature does not match."
        return self._check_timestamp_and_nonce(params["oauth_timestamp"], params["oauth_nonce"])

    def _check_timestamp_and_nonce(self, timestamp: str, nonce: str) -> str | None:
        # Wall-clock time, not the simulator's clock: the client stamps requests with real time.
        if not timestamp.isdigit() or abs(int(timestamp) - time.time()) > TIMESTAMP_WINDOW:
            return "Invalid timestamp."
        if nonce in self.used_nonces:
            return "Invalid nonce - nonce has already been used."
        self.used_nonces.add(nonce)
        return None


def query_params(request: Request) -> dict[str, str]:
    """Query parameters as PHP's $_GET sees them: the last value of a repeated name wins. (The official
    client sends GET parameters twice: once in the signed URL and once more through `params=`.)"""
    return {name: values[-1] for name, values in request.args.lists()}


def oauth_signature(method: str, url: str, params: dict[str, str], consumer_secret: str, algorithm: str) -> str:
    """The OAuth 1.0a signature WooCommerce expects for a request to `url` (scheme, host, path; no query)."""
    pairs = sorted((k, v) for k, v in params.items() if k != "oauth_signature")
    normalized = "%26".join(f"{_encode(k)}%3D{_encode(v)}" for k, v in pairs)
    string_to_sign = f"{method.upper()}&{quote(url, safe='')}&{normalized}"
    digest = hashlib.sha1 if algorithm == "HMAC-SHA1" else hashlib.sha256
    signature = hmac.new(f"{consumer_secret}&".encode(), string_to_sign.encode(), digest).digest()
    return base64.b64encode(signature).decode("ascii")


def _encode(text: str) -> str:
    # rawurlencode(rawurldecode(x)) with "%" doubled, as the store normalizes parameters.
    return quote(unquote(text), safe="~").replace("%", "%25")


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
