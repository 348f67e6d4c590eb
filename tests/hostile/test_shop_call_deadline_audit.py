"""Outside audit of the shop-call deadline (f8cd7b7, sync/shop_http.py): every call through `shop_session()` is to end
ANSWER_DEADLINE_SECONDS after it began. Real servers on 127.0.0.1 (plain TCP, and TLS through `ssl.MemoryBIO` so the
server can drip its own handshake); each ends on its own after SERVER_LIFE seconds, so no test can hang."""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bridge.errors import TemporaryFailure
from sync import shop_http
from sync.shop_http import ShopTooSlow, shop_session
from sync.woocommerce.client import WooShop

pytestmark = pytest.mark.database_free

DEADLINE = 1.0
SERVER_LIFE = 9.0  # every server here stops accepting, and every drip ends, by then
DRIP = 6.0  # how long a dripped answer (or handshake) would last without the deadline
LATE = DEADLINE + 1.5  # a call cut at the deadline has ended by then


@pytest.fixture(autouse=True)
def _short_deadline(monkeypatch):
    monkeypatch.setattr("sync.shop_http.ANSWER_DEADLINE_SECONDS", DEADLINE)


# --- servers -------------------------------------------------------------------------------------------------------


@contextmanager
def serving(handle: Callable[[socket.socket], None]) -> Iterator[tuple[int, list]]:
    """`handle(connection)` for each connection, each in its own thread; yields (port, connections accepted)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    accepted: list = []
    stop = threading.Event()
    ends = time.monotonic() + SERVER_LIFE

    def one(conn: socket.socket) -> None:
        conn.settimeout(SERVER_LIFE)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn, suppress(OSError, ssl.SSLError):
            handle(conn)

    def accept() -> None:
        while not stop.is_set() and time.monotonic() < ends:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            accepted.append(conn)
            threading.Thread(target=one, args=(conn,), daemon=True).start()
        listener.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], accepted
    finally:
        stop.set()
        thread.join(2)


def drip_answer(send: Callable[[bytes], None], seconds: float) -> None:
    """A header a byte every 50 ms (well within any read timeout) for `seconds`, then the answer `[]`."""
    send(b"HTTP/1.1 200 OK\r\nX-Drip: ")
    until = time.monotonic() + min(seconds, SERVER_LIFE)
    while time.monotonic() < until:
        send(b"a")
        time.sleep(0.05)
    send(b"\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n[]")


def read_head(conn: socket.socket, buffered: bytes = b"") -> tuple[bytes | None, bytes]:
    while b"\r\n\r\n" not in buffered:
        data = conn.recv(65536)
        if not data:
            return None, b""
        buffered += data
    head, _, rest = buffered.partition(b"\r\n\r\n")
    return head, rest


def keep_alive_shop(conn: socket.socket) -> None:
    """HTTP/1.1, connections kept open: `/drip` drips its answer; anything else answers {"path": ...} at once."""
    buffered = b""
    while True:
        head, buffered = read_head(conn, buffered)
        if head is None:
            return
        path = head.split(b"\r\n")[0].split(b" ")[1].decode()
        if path.startswith("/drip"):
            return drip_answer(conn.sendall, DRIP)
        body = json.dumps({"path": path}).encode()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
        conn.sendall(body)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1: the client trusts it (verify=<its file>), so TLS is verified."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_file), str(key_file)


def tls_shop(certificate: tuple[str, str], handshake_seconds: float, answer_seconds: float):
    """A TLS server whose handshake flight is sent in pieces over `handshake_seconds` (each piece well within any
    read timeout), then whose answer drips for `answer_seconds`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)

    def handle(conn: socket.socket) -> None:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(incoming, outgoing, server_side=True)

        def flush(spread: float = 0.0) -> None:
            data = outgoing.read()
            pieces = 60 if spread else 1
            size = max(1, -(-len(data) // pieces))
            for start in range(0, len(data), size):
                conn.sendall(data[start : start + size])
                if spread:
                    time.sleep(spread / pieces)

        def receive() -> bool:
            data = conn.recv(65536)
            incoming.write(data)
            return bool(data)

        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                flush(handshake_seconds)
                if not receive():
                    return
        flush()
        request = b""
        while b"\r\n\r\n" not in request:
            try:
                request += tls.read(65536)
            except ssl.SSLWantReadError:
                flush()
                if not receive():
                    return
        drip_answer(lambda data: (tls.write(data), flush()), answer_seconds)

    return handle


def woo(port: int, certificate: tuple[str, str]) -> WooShop:
    api = WooShop(f"https://127.0.0.1:{port}", "ck_audit", "cs_audit", timeout=5.0)
    api._api.verify_ssl = certificate[0]  # trust the test's own certificate; verification stays on
    return api


def timed(call: Callable[[], object]) -> tuple[object, float]:
    started = time.monotonic()
    try:
        outcome = call()
    except Exception as exc:  # noqa: BLE001 (the outcome is the exception)
        outcome = exc
    return outcome, time.monotonic() - started


# --- what the audit found (each failed before its fix) -------------------------------------------------------------


def test_a_tls_handshake_sent_slowly_is_cut_at_the_deadline(certificate):
    """Every real shop is https (Shopify always). urllib3 does the TLS handshake in `conn.connect()`, before
    `conn.request()`, where the connection used to register with the deadline: a server sending its handshake slowly
    held the call for the whole connect timeout (5 s here for a 1 s deadline; up to 30 + 30 s in `sync`). The socket
    is now watched as it opens, through a duplicate descriptor (TLS takes the original's over)."""
    with serving(tls_shop(certificate, handshake_seconds=DRIP, answer_seconds=0)) as (port, _):
        outcome, took = timed(lambda: woo(port, certificate).get("orders"))

    assert isinstance(outcome, ShopTooSlow), outcome
    assert took < LATE, f"the call took {took:.1f} s with a {DEADLINE} s deadline"


def test_an_answer_dripped_after_a_slow_name_lookup_is_still_cut(monkeypatch):
    """When the deadline came before the call had a socket to cut (a slow name lookup: a shop's name and its DNS
    server are the merchant's), `_cut` found nothing and never ran again, and the connection opened afterwards read
    a dripped answer for as long as the server liked. A socket opened after the deadline is now cut at once."""

    def slow_lookup(host: str, port: int) -> list[str]:
        time.sleep(DEADLINE + 0.5)
        return ["127.0.0.1"]

    monkeypatch.setattr(shop_http, "resolve", slow_lookup)
    with serving(keep_alive_shop) as (port, _):
        outcome, took = timed(lambda: shop_session().get(f"http://slow-shop.example:{port}/drip", timeout=5))

    assert isinstance(outcome, ShopTooSlow), outcome
    assert took < DEADLINE + 0.5 + LATE, f"the call took {took:.1f} s with a {DEADLINE} s deadline"


# --- behaviour pinned -----------------------------------------------------------------------------------------------


def test_an_https_answer_dripped_after_the_handshake_is_cut_once_and_not_retried(certificate):
    """shutdown(SHUT_RDWR) does end an SSL read blocked in the socket; the cut is ShopTooSlow (a TemporaryFailure),
    which WooShop's tenacity retry (requests.ConnectionError only) does not try again: one connection, one deadline."""
    with serving(tls_shop(certificate, handshake_seconds=0, answer_seconds=DRIP)) as (port, accepted):
        outcome, took = timed(lambda: woo(port, certificate).get("orders"))

    assert isinstance(outcome, ShopTooSlow) and isinstance(outcome, TemporaryFailure), outcome
    assert outcome.code == "answer_too_slow"
    assert took < LATE
    assert len(accepted) == 1


def test_a_request_body_the_server_reads_slowly_is_cut_at_the_deadline():
    """The upload phase: a POST of 32 MB to a server reading 20 kB/s (each send well within the read timeout) ends
    at the deadline as ShopTooSlow (the connection registered before the body was sent)."""

    def slow_reader(conn: socket.socket) -> None:
        read_head(conn)
        until = time.monotonic() + DRIP
        while time.monotonic() < until and conn.recv(1024):
            time.sleep(0.05)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n[]")

    with serving(slow_reader) as (port, _):
        outcome, took = timed(
            lambda: shop_session().post(f"http://127.0.0.1:{port}/", data=b"x" * (32 * 2**20), timeout=5)
        )

    assert isinstance(outcome, ShopTooSlow), outcome
    assert took < LATE


def test_after_a_cut_the_next_call_on_the_same_session_gets_a_whole_answer(monkeypatch):
    """Keep-alive: neither a connection cut mid-answer nor one cut after it went back to the pool (the answer read
    in full, the timer firing before the call returned) is handed to the next call as if alive."""
    session = shop_session()
    read = shop_http._CheckedAdapter._read
    slow_after_reading = threading.Event()

    def read_then_linger(response):
        body = read(response)
        if slow_after_reading.is_set():
            time.sleep(DEADLINE + 0.3)  # the connection is back in the pool when the timer fires
        return body

    monkeypatch.setattr(shop_http._CheckedAdapter, "_read", staticmethod(read_then_linger))
    with serving(keep_alive_shop) as (port, accepted):
        base = f"http://127.0.0.1:{port}"
        assert session.get(f"{base}/first", timeout=5).json() == {"path": "/first"}
        with pytest.raises(ShopTooSlow):
            session.get(f"{base}/drip", timeout=5)
        assert session.get(f"{base}/after-cut", timeout=5).json() == {"path": "/after-cut"}

        slow_after_reading.set()
        with pytest.raises(ShopTooSlow):  # a whole answer, but past the deadline: never used
            session.get(f"{base}/lingered", timeout=5)
        slow_after_reading.clear()
        answer = session.get(f"{base}/after-pooled-cut", timeout=5)
        assert answer.status_code == 200 and answer.json() == {"path": "/after-pooled-cut"}
        assert len(accepted) == 3  # the cut connections were replaced, the healthy one reused


def test_concurrent_calls_keep_their_own_deadlines_and_leave_no_timer_behind():
    """Threads each with their own session (as WooShop has): calls dripped to cut at the deadline while other
    threads keep making quick calls on the same server; the thread-local deadline never cuts another thread's call,
    and every timer thread is gone after."""
    outcomes: dict[str, list] = {"slow": [], "quick": []}
    ends = time.monotonic() + DEADLINE + 1.0

    def slow(base: str) -> None:
        outcomes["slow"].append(timed(lambda: shop_session().get(f"{base}/drip", timeout=5))[0])

    def quick(base: str) -> None:
        session = shop_session()
        while time.monotonic() < ends:
            outcomes["quick"].append(timed(lambda: session.get(f"{base}/quick", timeout=5).json())[0])

    with serving(keep_alive_shop) as (port, _):
        base = f"http://127.0.0.1:{port}"
        threads = [threading.Thread(target=f, args=(base,)) for f in (slow, quick) * 3]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(SERVER_LIFE)

    assert len(outcomes["slow"]) == 3 and all(isinstance(o, ShopTooSlow) for o in outcomes["slow"])
    assert outcomes["quick"] and all(o == {"path": "/quick"} for o in outcomes["quick"]), {
        repr(o) for o in outcomes["quick"] if o != {"path": "/quick"}
    }
    time.sleep(0.3)
    assert not [t for t in threading.enumerate() if isinstance(t, threading.Timer)]
