"""One real WooCommerce store and one running bridge for this directory (package-scoped: they are gone before
the rest of the suite runs); each test makes its own customer and orders, so tests need no cleaning between them.

They run where the kit is (`../shared/realstore` beside the project root; CI has it) and PostgreSQL is
(TEST_DATABASE_URL, the PostgreSQL pass of `make test`); elsewhere they skip with one line. Ports are free
ones unless REALSTORE_PORT / REALSTORE_BRIDGE_PORT name them.
"""

from __future__ import annotations

import os
import secrets

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from bridge.migrate import upgrade
from tests.e2e.real_store.harness import KIT, WALLET_METHOD, Bridge, RealStore, free_port
from tests.e2e.real_store.storefront import install_plugin, save_settings

# The shop's rules for every test; a test changes what it needs with `settings(...)`.
BASE_SETTINGS = {
    "wallet_payment_methods": [WALLET_METHOD],
    "partial_payments": True,
    "refund_destination": "wallet",
    "points_per_currency_unit": 0,
    "topup_minimum": 500,
    "topup_maximum": 50_000,
}


def why_not_here() -> str | None:
    if not (KIT / "up").exists():
        return f"real-store tests skipped: no kit at {KIT} (CI has ../shared/realstore beside the project)"
    if not os.environ.get("TEST_DATABASE_URL"):
        return "real-store tests skipped: they run on PostgreSQL (the PostgreSQL pass of `make test`)"
    return None


def pytest_runtest_setup(item):
    """Skipped here rather than in a fixture, so that the summary folds every test into one line."""
    reason = why_not_here()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="package")
def ports():
    return int(os.environ.get("REALSTORE_PORT") or free_port()), int(
        os.environ.get("REALSTORE_BRIDGE_PORT") or free_port()
    )


@pytest.fixture(scope="package")
def store_launch(ports, tmp_path_factory):
    """The kit's `up`, started first: it runs while the bridge's database is migrated and its processes start."""
    directory = tmp_path_factory.mktemp("realstore") / "store"
    launched = RealStore.launch(directory, *ports, f"wb_store_{secrets.token_hex(4)}")
    yield launched
    launched.communicate()
    RealStore.down(directory)


@pytest.fixture(scope="package")
def store(store_launch):
    return RealStore.started(store_launch)


@pytest.fixture(scope="package")
def bridge_database(store_launch):
    """A scratch database beside TEST_DATABASE_URL, migrated, committing without waiting for the disk (as the
    suite's own test database); dropped at the end."""
    url = os.environ["TEST_DATABASE_URL"]
    admin = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    name = f"wb_realstore_{secrets.token_hex(5)}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
        connection.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))  # as tests/conftest.py
    scratch = make_url(url).set(database=name).render_as_string(hide_password=False)
    upgrade(scratch)
    yield scratch
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="package")
def bridge_process(bridge_database, ports, store_launch, tmp_path_factory, request):
    """gunicorn and a worker on the scratch database, with a WooCommerce shop made by `shop create`."""
    bridge = Bridge(bridge_database, ports[1], tmp_path_factory.mktemp("bridge"))
    try:
        bridge.start()
        url = request.getfixturevalue("store").url  # the store is needed from here on
        bridge.shop = bridge.cli_json(
            "shop", "create", "--name", "Real Store", "--platform", "woocommerce", "--url", url, "--currency", "EUR"
        )
        bridge.set_settings(BASE_SETTINGS)
        yield bridge
    finally:
        bridge.stop_all()


@pytest.fixture(scope="package")
def first_connect(bridge_process, store):
    """`shop connect`, once for the directory (test_connect runs it a second time)."""
    return bridge_process.connect(store)


@pytest.fixture
def bridge(bridge_process, first_connect, store):
    """The connected bridge, the shop's rules reset, synchronous webhooks and no taxes, worker running."""
    bridge_process.set_settings(BASE_SETTINGS)
    yield bridge_process
    if "worker" not in bridge_process.processes:
        bridge_process.start_worker()
    store.reset_switches()
    bridge_process.settle()


@pytest.fixture
def settings(bridge):
    """Change some of the shop's rules for this test: `settings(partial_payments=False)`."""
    return lambda **changes: bridge.set_settings({**BASE_SETTINGS, **changes})


@pytest.fixture
def customer(bridge, store):
    """A new customer of the store; its customer.created delivery makes the bridge know it."""
    return store.new_customer("kim")


@pytest.fixture(scope="package")
def mug(store):
    return store.new_product("19.99", "Mug")


@pytest.fixture(scope="package")
def vase(store):
    return store.new_product("9.99", "Vase")


@pytest.fixture(scope="package")
def plugin(bridge_process, first_connect, store):
    """The companion plugin installed, activated and connected to the bridge through its settings tab, once;
    the merchant's logged-in visitor. (Only `wallet` orders reach it: the other tests pay with `cheque`.)"""
    admin = install_plugin(store)
    assert save_settings(admin, bridge_process.url, bridge_process.shop["api_key"]).status_code == 200
    return admin
