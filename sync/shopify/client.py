"""Shopify's GraphQL Admin API through `requests`: the access token is decrypted only here, throttled
queries wait as long as Shopify's leaky bucket says and are tried again, and failures are sorted into
"retry later" and "retrying cannot help" for the outbox."""

from __future__ import annotations

import math
import time

import requests

from bridge.errors import PermanentFailure, TemporaryFailure
from bridge.models import Shop
from bridge.security import SecretBox
from sync.shop_http import shop_session

API_VERSION = "2026-01"
THROTTLE_ATTEMPTS = 5
MAX_THROTTLE_WAIT_SECONDS = 10.0


class Throttled(TemporaryFailure):
    pass


class ShopifyAdmin:
    def __init__(self, shop_url: str, access_token: str, timeout: float = 10.0, sleep=None):
        base = shop_url.rstrip("/")
        self.endpoint = f"{base if '//' in base else 'https://' + base}/admin/api/{API_VERSION}/graphql.json"
        self._token, self._timeout, self._sleep = access_token, timeout, sleep
        self._http = shop_session()

    @classmethod
    def for_shop(cls, shop: Shop, secrets: SecretBox, timeout: float = 10.0) -> ShopifyAdmin:
        token = secrets.open(shop.consumer_secret_enc)  # a Shopify shop keeps its Admin API token here
        if not token:
            raise PermanentFailure(f"shop {shop.id} has no Admin API token: run `wallet-bridge shop connect`")
        return cls(shop.url, token, timeout)

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        """The `data` of a query; waits out throttling (Shopify says how long) up to a few times."""
        for _attempt in range(THROTTLE_ATTEMPTS):
            try:
                return self._once(query, variables or {})
            except Throttled as exc:
                (self._sleep or time.sleep)(min(exc.wait_seconds, MAX_THROTTLE_WAIT_SECONDS))
        raise TemporaryFailure("Shopify kept throttling the bridge", status=429, code="THROTTLED")

    def _once(self, query: str, variables: dict) -> dict:
        try:
            response = self._http.post(
                self.endpoint,
                json={"query": query, "variables": variables},
                timeout=self._timeout,
                headers={"X-Shopify-Access-Token": self._token, "Content-Type": "application/json"},
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TemporaryFailure(f"Shopify unreachable ({exc.__class__.__name__})") from exc
        body = _json(response)
        if response.status_code == 429 or _has_error(body, "THROTTLED"):
            raise _throttle(body, response.headers.get("Retry-After"))
        if _has_error(body, "INTERNAL_SERVER_ERROR"):  # Shopify's side, answered 200: the outbox tries again
            raise TemporaryFailure("Shopify failed on its side (INTERNAL_SERVER_ERROR)", status=response.status_code)
        if response.status_code >= 500 or response.status_code in (401, 403):
            raise TemporaryFailure(f"Shopify answered HTTP {response.status_code}", status=response.status_code)
        if response.status_code >= 300 or body.get("errors"):  # a 3xx too: redirects are never followed
            raise PermanentFailure(
                f"Shopify refused the query: {str(body.get('errors'))[:300]}", status=response.status_code
            )
        return body.get("data") or {}


def _json(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _has_error(body: dict, code: str) -> bool:
    errors = body.get("errors")
    return isinstance(errors, list) and any(
        isinstance(e, dict) and (e.get("extensions") or {}).get("code") == code for e in errors
    )


def _throttle(body: dict, retry_after: str | None) -> Throttled:
    """How long to wait: the seconds an HTTP 429's Retry-After names; else until the bucket holds what the query
    costs, (cost − available) / restore rate."""
    cost = (body.get("extensions") or {}).get("cost") or {}
    status = cost.get("throttleStatus") or {}
    needed = float(cost.get("requestedQueryCost") or 10) - float(status.get("currentlyAvailable") or 0)
    rate = float(status.get("restoreRate") or 50) or 50.0
    failure = Throttled("Shopify throttled the query", status=429, code="THROTTLED")
    failure.wait_seconds = max(_seconds(retry_after) or needed / rate, 0.05)
    return failure


def _seconds(header: str | None) -> float | None:
    """A Retry-After of seconds ("2.0"); None for none, a date, or nonsense (NaN compares false)."""
    try:
        seconds = float(header or "nan")
    except ValueError:
        return None
    return seconds if 0 < seconds < math.inf else None
