"""Server-side request forgery through the shop URL (docs/security.md): with ALLOW_PRIVATE_SHOP_URLS off, no
shop call reaches loopback, private, link-local, multicast, reserved or unspecified addresses, however written,
checked at every new connection (DNS can change); no redirect is followed; stored keys go only to their URL.

Names resolve through `dns` (a dict the test fills), never real DNS. `sockets` records every connection urllib3
opens and lets only 127.0.0.1 through, so a guard that failed could not send anything off this machine either.
"""

from __future__ import annotations

import base64
import http.server
import logging
import socket
import ssl
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address

import pytest
import requests
import responses
import urllib3.util.connection
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from bridge.db import unit_of_work
from bridge.errors import PermanentFailure
from bridge.models import AuditEvent, Shop
from bridge.surfaces.app import create_app
from simulator import create_simulator
from sync import shop_http
from sync.shop_http import REFUSED, ShopAddressRefused, is_allowed
from sync.shopify.client import API_VERSION, ShopifyAdmin
from sync.woocommerce.client import WooShop
from tests.conftest import make_shop
from tests.console_support import form_post, text_of

pytest_plugins = ("tests.console_fixtures",)  # fixtures: console (signed in as the `shop`'s merchant)

KEY, SECRET = "ck_ssrf0123456789abcdef0123456789", "cs_ssrf0123456789abcdef0123456789"
PUBLIC = "93.184.215.14"  # never connected to: `sockets` refuses everything but 127.0.0.1

REFUSED_URLS = [
    "http://127.0.0.1:5432",
    "http://localhost:6379",
    "http://10.1.2.3/",
    "http://172.16.0.1",
    "http://192.168.1.1:8080",
    "http://100.64.0.1",
    "http://169.254.169.254/latest/meta-data/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://[::1]:8000",
    "http://[::ffff:127.0.0.1]",
    "http://[::ffff:a9fe:a9fe]",  # 169.254.169.254, IPv4-mapped
    "http://[64:ff9b::a00:1]",  # 10.0.0.1 through NAT64
    "http://[2002:c0a8:101::1]",  # 192.168.1.1 through 6to4
    "http://[fe80::1]",
    "http://[fc00::1]",
    "http://0x7f000001",
    "http://2130706433",
    "http://0177.0.0.1",
    "http://127.1",
    "http://0.0.0.0:8000",
    "http://[::]",
    "http://224.0.0.1",
    "http://240.0.0.1",
    "http://255.255.255.255",
    "https://rebinding.example",  # one public answer and one private
    "https://nowhere.example",  # does not resolve: refused in the same words
]


@pytest.fixture
def settings(settings):
    return replace(settings, allow_private_shop_urls=False)


@pytest.fixture
def dns(monkeypatch) -> dict[str, list[str]]:
    names = {
        "localhost": ["127.0.0.1", "::1"],
        "metadata.google.internal": ["169.254.169.254"],
        "rebinding.example": [PUBLIC, "10.0.0.1"],
    }

    def resolve(host: str, port: int) -> list[str]:
        if host not in names:
            raise socket.gaierror(socket.EAI_NONAME, host)
        return names[host]

    monkeypatch.setattr(shop_http, "resolve", resolve)
    return names


@pytest.fixture
def sockets(monkeypatch) -> list[tuple]:
    opened: list[tuple] = []
    real = urllib3.util.connection.create_connection

    def create_connection(address, *args, **kwargs):
        opened.append(address)
        if address[0] != "127.0.0.1":
            raise ConnectionRefusedError(f"tests connect to 127.0.0.1 only, not {address[0]}")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", create_connection)
    return opened


def cli(app, args: list[str]):
    with app.app_context():
        return app.test_cli_runner().invoke(args=args)


def test_the_address_rules():
    for address in ("93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "8.8.8.8"):
        assert is_allowed(ip_address(address))
    for address in ("127.0.0.1", "10.0.0.1", "192.168.0.1", "fc00::1", "::1", "::ffff:10.0.0.1"):
        assert not is_allowed(ip_address(address))
        assert is_allowed(ip_address(address), allow_private=True)
    unspecified = "0.0.0.0"  # noqa: S104 (an address refused, not one bound to)
    for address in (
        "169.254.169.254",
        "fe80::1",
        "224.0.0.1",
        "ff02::1",
        unspecified,
        "::",
        "240.0.0.1",
        "::ffff:169.254.169.254",
    ):
        assert not is_allowed(ip_address(address), allow_private=True)


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_test_connection_refuses_every_internal_address_in_the_same_words(console, shop, dns, sockets, url):
    answer = form_post(
        console,
        f"/shops/{shop.shop.id}/settings/connection/test",
        {"url": url, "consumer_key": KEY, "consumer_secret": SECRET},
    )

    assert answer.status_code == 422
    page = text_of(answer)
    assert REFUSED in page
    assert "could not reach" not in page and "HTTP" not in page.split(REFUSED)[1][:200]
    assert sockets == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:5432", "http://169.254.169.254", "http://[::1]:22"])
def test_the_connect_form_and_the_cli_refuse_them_too(console, app, services, shop, dns, sockets, url):
    answer = form_post(
        console,
        f"/shops/{shop.shop.id}/settings/connection/install",
        {"url": url, "consumer_key": KEY, "consumer_secret": SECRET},
    )
    assert answer.status_code == 422 and REFUSED in text_of(answer)

    result = cli(
        app, ["shop", "connect", str(shop.shop.id), "--url", url, "--consumer-key", KEY, "--consumer-secret", SECRET]
    )
    assert result.exit_code != 0 and REFUSED in result.output

    shopify = make_shop(services, name="Shopify", platform="shopify", url="https://x.myshopify.com")
    result = cli(
        app,
        [
            "shop",
            "connect-shopify",
            str(shopify.shop.id),
            "--url",
            url,
            "--access-token",
            "shpat_x",
            "--webhook-secret",
            "s",
        ],
    )
    assert result.exit_code != 0 and REFUSED in result.output

    assert sockets == []
    with unit_of_work(services.sessions) as session:
        assert session.get(Shop, shop.shop.id).consumer_key_enc is None  # nothing stored


def test_the_address_is_checked_again_at_every_call(app, services, shop, dns, sockets, monkeypatch):
    """Connected while the name pointed at an allowed address; then it points at the metadata service: the next
    call (a sync, a push) is refused before any socket opens. ALLOW_PRIVATE_SHOP_URLS lets the simulator on
    127.0.0.1 stand for a public shop; 169.254.169.254 is refused even so."""
    shop_http.allow_private_addresses(True)
    simulator = create_simulator(consumer_key=KEY, consumer_secret=SECRET)
    port = int(simulator.serve().rsplit(":", 1)[1])
    try:
        dns["shop.test"] = ["127.0.0.1"]
        url = f"http://shop.test:{port}"
        connected = cli(
            app,
            ["shop", "connect", str(shop.shop.id), "--url", url, "--consumer-key", KEY, "--consumer-secret", SECRET],
        )
        assert connected.exit_code == 0, connected.output
        shop_calls = [address for address in sockets if address[1] == port]  # (the simulator pings the bridge)
        assert shop_calls and set(shop_calls) == {("127.0.0.1", port)}  # the checked address, not the name

        dns["shop.test"] = ["169.254.169.254"]
        opened = len(shop_calls)
        synced = cli(app, ["sync", str(shop.shop.id)])
        assert synced.exit_code != 0 and REFUSED in synced.output
        with unit_of_work(services.sessions) as session:
            api = WooShop.for_shop(session.get(Shop, shop.shop.id), services.secrets)
        with pytest.raises(ShopAddressRefused):
            api.get("orders")
        assert len([address for address in sockets if address[1] == port]) == opened
    finally:
        simulator.shutdown()


@responses.activate
def test_no_redirect_is_followed(console, shop, dns):
    """The shop answers with a redirect to the metadata service: the bridge takes the 3xx as the answer."""
    responses.add(
        responses.GET,
        "https://alpha.example/wp-json/wc/v3/orders",
        status=302,
        headers={"Location": "http://169.254.169.254/latest/meta-data/"},
    )
    responses.add(responses.GET, "http://169.254.169.254/latest/meta-data/", body="secret")
    responses.add(
        responses.POST,
        f"https://x.myshopify.com/admin/api/{API_VERSION}/graphql.json",
        status=307,
        headers={"Location": "http://169.254.169.254/latest/meta-data/"},
    )

    answer = form_post(
        console,
        f"/shops/{shop.shop.id}/settings/connection/test",
        {"url": "https://alpha.example", "consumer_key": KEY, "consumer_secret": SECRET},
    )
    assert answer.status_code == 422 and "redirect" in text_of(answer)
    with pytest.raises(PermanentFailure, match="redirect"):
        WooShop("https://alpha.example", KEY, SECRET).get("orders")
    with pytest.raises(PermanentFailure):
        ShopifyAdmin("https://x.myshopify.com", "shpat_x").graphql("query { shop { name } }")

    assert [call.request.url for call in responses.calls if "169.254" in call.request.url] == []


@responses.activate
def test_stored_keys_go_only_to_the_url_they_were_saved_with(console, services, shop):
    with unit_of_work(services.sessions) as session:
        stored = session.get(Shop, shop.shop.id)
        stored.consumer_key_enc = services.secrets.seal(KEY)
        stored.consumer_secret_enc = services.secrets.seal(SECRET)
    responses.add(responses.GET, "https://alpha.example/wp-json/wc/v3/orders", json=[])
    responses.add(responses.GET, "https://alpha.example/wp-json/wc/v3/webhooks", json=[])
    test = f"/shops/{shop.shop.id}/settings/connection/test"

    blank = {"consumer_key": "", "consumer_secret": ""}
    elsewhere = form_post(console, test, {"url": "https://collector.example", **blank})
    install = form_post(
        console,
        f"/shops/{shop.shop.id}/settings/connection/install",
        {"url": "https://collector.example", "consumer_key": KEY, "consumer_secret": ""},
    )
    assert elsewhere.status_code == install.status_code == 422
    assert "the stored one is only sent to https://alpha.example" in text_of(elsewhere)
    assert len(responses.calls) == 0  # nothing was sent anywhere

    same = form_post(console, test, {"url": "https://alpha.example", **blank})
    assert same.status_code == 200
    sent = responses.calls[0].request.headers["Authorization"]
    assert sent == "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()


def test_the_setting_admits_loopback_and_is_logged_at_start(settings, caplog, dns, sockets):
    with caplog.at_level(logging.WARNING):
        app = create_app(replace(settings, allow_private_shop_urls=True))
    assert any("ALLOW_PRIVATE_SHOP_URLS is on" in record.getMessage() for record in caplog.records)
    assert shop_http.checked_address("localhost", 80) == "127.0.0.1"
    with pytest.raises(ShopAddressRefused):
        shop_http.checked_address("169.254.169.254", 80)
    app.extensions["wallet_bridge"].engine.dispose()

    app = create_app(settings)  # off: the default
    with pytest.raises(ShopAddressRefused):
        shop_http.checked_address("localhost", 80)
    app.extensions["wallet_bridge"].engine.dispose()


def test_a_refused_check_is_audited_with_the_neutral_text(console, services, shop, dns, sockets):
    form_post(
        console,
        f"/shops/{shop.shop.id}/settings/connection/test",
        {"url": "http://10.0.0.1:22", "consumer_key": KEY, "consumer_secret": SECRET},
    )
    with unit_of_work(services.sessions) as session:
        check = session.execute(select(AuditEvent.new_value).where(AuditEvent.action == "connection.check")).scalar()
    assert REFUSED in check


def test_the_demo_opts_in_for_its_own_run_only(app, tmp_path, sockets):
    """ALLOW_PRIVATE_SHOP_URLS is off; `wallet-bridge demo` still reaches its simulated shop on 127.0.0.1 (on the
    configured database and on another, whose app factory runs again), and the rule is back when it ends."""
    on_another = cli(app, ["demo", "--platform", "shopify", "--database-url", f"sqlite:///{tmp_path / 'demo.db'}"])
    on_configured = cli(app, ["demo"])

    for result in (on_another, on_configured):
        assert result.exit_code == 0, result.output
        assert "ledger verify: ok" in result.output
    assert sockets and {host for host, _port in sockets} == {"127.0.0.1"}
    with pytest.raises(ShopAddressRefused):
        shop_http.checked_address("127.0.0.1", 80)


@pytest.fixture
def tls_shop(tmp_path):
    """An https server on 127.0.0.1 with a certificate for shop.test only; yields (port, certificate file, the SNI
    names it was asked for)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shop.test")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("shop.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    asked: list[str] = []

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(self.headers["Host"].encode())

        def log_message(self, *args):
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    context.sni_callback = lambda _socket, server_name, _context: asked.append(server_name)
    server = http.server.HTTPServer(("127.0.0.1", 0), Answer)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], str(cert_file), asked
    server.shutdown()
    thread.join(5)


def test_over_https_the_checked_address_is_connected_and_the_certificate_still_names_the_shop(dns, sockets, tls_shop):
    port, certificate, asked = tls_shop
    shop_http.allow_private_addresses(True)  # 127.0.0.1 stands for the shop's public address
    dns["shop.test"] = dns["impostor.test"] = ["127.0.0.1"]

    answer = shop_http.shop_session().get(f"https://shop.test:{port}/", verify=certificate, timeout=5)
    assert (answer.status_code, answer.text) == (200, f"shop.test:{port}")
    assert asked == ["shop.test"] and sockets == [("127.0.0.1", port)]

    with pytest.raises(requests.exceptions.SSLError):  # the certificate is checked against the name, not the IP
        shop_http.shop_session().get(f"https://impostor.test:{port}/", verify=certificate, timeout=5)
