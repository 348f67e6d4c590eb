"""The one door every HTTP call to a shop goes through (WooCommerce's REST API, Shopify's Admin API, connecting,
testing a connection, sync, pushes): it decides which addresses a shop URL may reach.

A shop URL is typed by a merchant, and the bridge calls it from inside its own network with the shop's keys. So
every new connection first resolves the host and refuses unless each address it resolves to is public: loopback,
private, link-local (cloud metadata at 169.254.169.254), multicast, reserved and unspecified addresses are refused,
also when written as IPv4-mapped IPv6, 6to4, Teredo or NAT64 or in the numeric forms the C library accepts
(0x7f000001, 2130706433, 127.1). The socket is then opened to the address that was checked, not to a second
resolution, so a name whose answer changes between the check and the connection (DNS rebinding) gains nothing.
Every refusal says the same words, whatever the reason. No redirect is ever followed (a 3xx is the answer), and no
proxy or .netrc from the environment is used: the check must see the shop's own address.

An answer is read up to MAX_ANSWER_BYTES and no further: a shop URL is the merchant's to choose, and a server there
that answers without end would otherwise fill the memory of the process serving every other shop too. For the same
reason a call ends ANSWER_DEADLINE_SECONDS after it began, answered or not: the read timeout bounds each wait for a
byte, so a server sending its answer a byte at a time could otherwise hold the thread (an outbox worker's, pushing
for every shop) as long as it liked.

`ALLOW_PRIVATE_SHOP_URLS` (development, tests, the demo) also admits loopback and private networks (10/8,
172.16/12, 192.168/16, 100.64/10, fc00::/7); link-local, multicast and the rest stay refused even then.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from bridge.errors import TemporaryFailure

log = logging.getLogger(__name__)

REFUSED = "the bridge does not call this address: a shop must be at a public internet address"
MAX_ANSWER_BYTES = 16 * 1024 * 1024  # a page of 100 WooCommerce orders is a few hundred kB
ANSWER_DEADLINE_SECONDS = 30.0  # a healthy shop answers in a second or two; the read timeout is 10 s per byte
PRIVATE_NETWORKS = tuple(
    ip_network(net) for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)
NAT64 = ip_network("64:ff9b::/96")
Address = IPv4Address | IPv6Address


class ShopAddressRefused(TemporaryFailure):
    """Temporary for the outbox: a name that pointed somewhere refused may point back (or the message is
    dead-lettered after its attempts, for someone to look at)."""

    def __init__(self) -> None:
        super().__init__(REFUSED, code="address_refused")


class ShopAnswerTooLarge(TemporaryFailure):
    """Temporary for the outbox (a shop's answer may shrink again); the console says it as it is."""

    def __init__(self) -> None:
        super().__init__(
            f"the shop answered with more than {MAX_ANSWER_BYTES // 2**20} MB, which the bridge does not read",
            code="answer_too_large",
        )


class ShopTooSlow(TemporaryFailure):
    """Temporary for the outbox: the shop may answer in time again (or the message is dead-lettered). It names the
    call by its method and path only: a query string may carry the shop's OAuth keys."""

    def __init__(self, request: requests.PreparedRequest) -> None:
        call = f"{request.method} {urlsplit(request.url).path}"
        super().__init__(
            f"the shop did not finish its answer to {call} within {ANSWER_DEADLINE_SECONDS:.0f} seconds",
            code="answer_too_slow",
        )


_allow_private = False


def allow_private_addresses(allowed: bool) -> None:
    """Set once for the process by the app factory, from ALLOW_PRIVATE_SHOP_URLS."""
    global _allow_private
    _allow_private = allowed


@contextmanager
def private_addresses_allowed() -> Iterator[None]:
    """For the demo's own run: its simulated shop is on 127.0.0.1."""
    saved = _allow_private
    allow_private_addresses(True)
    try:
        yield
    finally:
        allow_private_addresses(saved)


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, by the system's resolver. Tests replace this function."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_allowed(address: Address, allow_private: bool = False) -> bool:
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        return is_allowed(embedded, allow_private)
    if allow_private and (address.is_loopback or any(address in net for net in PRIVATE_NETWORKS)):
        return True
    if (
        address.is_multicast
        or address.is_unspecified
        or address.is_link_local
        or address.is_reserved
        or getattr(address, "is_site_local", False)
    ):
        return False
    return address.is_global


def checked_address(host: str, port: int) -> str:
    """The address to connect to for `host`; raises ShopAddressRefused unless every address it has is allowed."""
    literal = _literal(host)
    try:
        addresses = [literal] if literal else [ip_address(a.split("%")[0]) for a in resolve(host, port)]
    except (OSError, UnicodeError, ValueError) as exc:  # unresolvable: refused in the same words
        raise ShopAddressRefused() from exc
    if not addresses or not all(is_allowed(a, _allow_private) for a in addresses):
        log.warning("refused a shop address: host=%r port=%s", host[:100], port)
        raise ShopAddressRefused()
    return str(addresses[0])


def shop_session() -> requests.Session:
    """A `requests` session for calls to shops: addresses checked at each new connection, no redirects."""
    session = _NoRedirects()
    session.trust_env = False
    adapter = _CheckedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _literal(host: str) -> Address | None:
    bare = host.strip("[]")
    try:
        return ip_address(bare.split("%")[0])
    except ValueError:
        pass
    try:  # 0x7f000001, 2130706433, 127.1, 0177.0.0.1: what inet_aton (and so the connection) would accept
        return IPv4Address(socket.inet_aton(bare))
    except (OSError, UnicodeError, ValueError):
        return None


def _embedded_ipv4(address: Address) -> IPv4Address | None:
    if not isinstance(address, IPv6Address):
        return None
    if address in NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)


class _CheckedConnect:
    """urllib3 connects to `_dns_host` and verifies TLS against `host`: the first becomes the checked address
    while the socket opens, so SNI and the certificate still name the shop."""

    def request(self, *args, **kwargs):
        _Deadline.watch(self, self.sock)  # a connection kept alive from an earlier call (a new one has no socket yet)
        return super().request(*args, **kwargs)

    def _new_conn(self):
        hostname = self._dns_host
        self._dns_host = checked_address(hostname, self.port)
        try:
            sock = super()._new_conn()
        finally:
            self._dns_host = hostname
        _Deadline.watch(self, sock)  # before TLS's handshake, which is read under the deadline too
        return sock


class _CheckedHTTPConnection(_CheckedConnect, HTTPConnection):
    pass


class _CheckedHTTPSConnection(_CheckedConnect, HTTPSConnection):
    pass


class _CheckedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _CheckedHTTPConnection


class _CheckedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _CheckedHTTPSConnection


class _CheckedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _CheckedHTTPPool, "https": _CheckedHTTPSPool}

    def send(self, request, stream=False, **kwargs):
        """The answer read here, within ANSWER_DEADLINE_SECONDS, its body in chunks up to MAX_ANSWER_BYTES (`requests`
        would read it all, for as long as it took)."""
        with _Deadline() as deadline:
            try:
                response = super().send(request, stream=True, **kwargs)
                body = self._read(response)
            except requests.RequestException:
                if deadline.passed:
                    raise ShopTooSlow(request) from None
                raise
        if deadline.passed:  # a cut read can also look like an answer that ended (headers or body cut short)
            response.close()
            raise ShopTooSlow(request)
        response._content, response._content_consumed = body, True
        return response

    @staticmethod
    def _read(response) -> bytes:
        body = bytearray()
        for chunk in response.iter_content(64 * 1024):
            body += chunk
            if len(body) > MAX_ANSWER_BYTES:
                response.close()  # the connection too: the rest is never read
                raise ShopAnswerTooLarge()
        return bytes(body)


class _Deadline:
    """Cuts the sockets one call uses (shuts them down, which ends a read or a TLS handshake blocked in them) if the
    call is still running when its deadline comes; a socket the call opens after that is cut at once. Connections
    register their socket as it opens and as each request on it starts (`_CheckedConnect`)."""

    _current = threading.local()

    def __init__(self) -> None:
        self._watched: dict[int, socket.socket] = {}  # id(connection) → a duplicate of its socket, to cut it by
        self.passed = self.finished = False
        self._lock = threading.Lock()
        self._timer = threading.Timer(ANSWER_DEADLINE_SECONDS, self._cut)
        self._timer.daemon = True

    @classmethod
    def watch(cls, connection, sock: socket.socket | None) -> None:
        deadline = getattr(cls._current, "deadline", None)
        if deadline is not None and sock is not None:
            deadline._watch(connection, sock)

    def _watch(self, connection, sock: socket.socket) -> None:
        with self._lock:
            if self.finished or id(connection) in self._watched:
                return
            # a duplicate descriptor: TLS takes the original's over, and a shutdown through either ends both
            duplicate = self._watched[id(connection)] = socket.socket(fileno=os.dup(sock.fileno()))
            if self.passed:
                _shut(duplicate)

    def __enter__(self) -> _Deadline:
        self._current.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._timer.cancel()
        with self._lock:  # a cut under way ends before the call returns, and none comes after
            self.finished = True
            self._current.deadline = None
            for duplicate in self._watched.values():
                duplicate.close()

    def _cut(self) -> None:
        with self._lock:
            if self.finished:
                return
            self.passed = True
            for duplicate in self._watched.values():
                _shut(duplicate)


def _shut(sock: socket.socket) -> None:
    with suppress(OSError):  # closed by the other side meanwhile: nothing left to cut
        sock.shutdown(socket.SHUT_RDWR)


class _NoRedirects(requests.Session):
    def get_redirect_target(self, resp):
        return None  # a shop's redirect could point anywhere, with the keys: the 3xx itself is the answer
