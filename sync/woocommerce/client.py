"""The shop's REST API through the official `woocommerce` client, with errors sorted into
"retry later" and "retrying cannot help". Credentials are decrypted only here and never logged."""

from __future__ import annotations

import json
from dataclasses import dataclass
from secrets import token_hex
from urllib.parse import urlencode

import requests
import woocommerce
from requests.auth import HTTPBasicAuth
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter
from woocommerce.oauth import OAuth

from bridge.errors import PermanentFailure, TemporaryFailure
from bridge.models import Shop
from bridge.security import SecretBox
from sync.shop_http import shop_session

RETRY_LATER = {408, 409, 425, 429, 500, 502, 503, 504}


class NotConnected(PermanentFailure):
    pass


@dataclass
class WooResponse:
    status: int
    body: object
    headers: dict


class _UniqueNonceOAuth(OAuth):
    """The official nonce is 8 random digits (hashed): over ~10^4 calls per key two collide (the birthday
    bound) and the store answers 401 "Invalid nonce". 128 random bits never do."""

    @staticmethod
    def generate_nonce() -> str:
        return token_hex(16)


class _UniqueNonceAPI(woocommerce.API):
    """The client builds its OAuth in the private `__get_oauth_url` and offers no hook for the class, so this
    overrides that name-mangled method (patching `woocommerce.api.OAuth` would change every client in the
    process). WooShop passes no `oauth_timestamp`, so the OAuth stamps the call with the current time.

    It also sends through `requests.request`, where no adapter can be mounted: `__request` is overridden the
    same way to send the same request (basic auth over https, a signed OAuth URL over http, JSON bodies)
    through the shop session, which checks the address of every connection and follows no redirect."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.http = shop_session()

    def _API__get_oauth_url(self, url: str, method: str, **_) -> str:
        oauth = _UniqueNonceOAuth(url, self.consumer_key, self.consumer_secret, version=self.version, method=method)
        return oauth.get_oauth_url()

    def _API__request(self, method: str, endpoint: str, data, params: dict | None = None) -> requests.Response:
        url, auth, params = self._API__get_url(endpoint), None, dict(params or {})
        if self.is_ssl:
            auth = HTTPBasicAuth(self.consumer_key, self.consumer_secret)
        else:  # the parameters are signed as part of the URL
            url, params = self._API__get_oauth_url(f"{url}?{urlencode(params)}", method), {}
        headers = {"user-agent": self.user_agent, "accept": "application/json"}
        if data is not None:
            data = json.dumps(data, ensure_ascii=False).encode("utf-8")
            headers["content-type"] = "application/json;charset=utf-8"
        return self.http.request(
            method,
            url,
            params=params,
            data=data,
            auth=auth,
            headers=headers,
            timeout=self.timeout,
            verify=self.verify_ssl,
        )


class WooShop:
    """One shop's wc/v3 API."""

    def __init__(self, url: str, consumer_key: str, consumer_secret: str, timeout: float = 10.0):
        self._api = _UniqueNonceAPI(
            url=url, consumer_key=consumer_key, consumer_secret=consumer_secret, version="wc/v3", timeout=timeout
        )

    @classmethod
    def for_shop(cls, shop: Shop, secrets: SecretBox, timeout: float = 10.0) -> WooShop:
        key, secret = secrets.open(shop.consumer_key_enc), secrets.open(shop.consumer_secret_enc)
        if not key or not secret:
            raise NotConnected(f"shop {shop.id} has no REST credentials: run `wallet-bridge shop connect`")
        return cls(shop.url, key, secret, timeout)

    def get(self, endpoint: str, **params) -> WooResponse:
        return self._call("get", endpoint, params=params)

    def put(self, endpoint: str, data: dict) -> WooResponse:
        return self._call("put", endpoint, data=data)

    def post(self, endpoint: str, data: dict) -> WooResponse:
        return self._call("post", endpoint, data=data)

    # Connection resets and timeouts get two quick retries in place before the outbox backs off.
    @retry(
        retry=retry_if_exception_type(requests.ConnectionError),
        stop=stop_after_attempt(3),
        wait=wait_exponential_jitter(multiplier=0.2, max=1.0),
        reraise=True,
    )
    def _send(self, method: str, endpoint: str, **kwargs) -> requests.Response:
        if method == "get":
            return self._api.get(endpoint, params=kwargs.get("params") or {})
        return getattr(self._api, method)(endpoint, kwargs["data"])

    def _call(self, method: str, endpoint: str, **kwargs) -> WooResponse:
        try:
            response = self._send(method, endpoint, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TemporaryFailure(f"{method.upper()} {endpoint}: shop unreachable ({exc.__class__.__name__})") from exc
        body = _json_or_text(response)
        if 300 <= response.status_code < 400:
            raise PermanentFailure(
                f"{method.upper()} {endpoint}: HTTP {response.status_code}, a redirect (the bridge "
                "follows none): connect the shop with the address it redirects to",
                status=response.status_code,
            )
        if response.status_code >= 400:
            message = body.get("message") if isinstance(body, dict) else str(body)[:200]
            code = body.get("code") if isinstance(body, dict) else None
            error = f"{method.upper()} {endpoint}: HTTP {response.status_code} {message}"
            failure = TemporaryFailure if response.status_code in RETRY_LATER | {401, 403} else PermanentFailure
            raise failure(error, status=response.status_code, code=code)
        return WooResponse(response.status_code, body, dict(response.headers))


def _json_or_text(response: requests.Response):
    try:
        return response.json()
    except ValueError:
        return response.text
