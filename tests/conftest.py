"""Fixtures: the suite runs on SQLite by default and on PostgreSQL when TEST_DATABASE_URL names one.

Each pytest session migrates one fresh database (proving the migrations from empty); each test then
starts from empty tables: a copied SQLite file, or TRUNCATE on PostgreSQL.

Durability the tests never look at is not paid for: the SQLite files live in RAM (/dev/shm, where there is one:
no fsync per commit) and the PostgreSQL test database commits without waiting for its WAL to reach the disk
(synchronous_commit=off: what a transaction sees and when it commits are unchanged; only a crash of the server
itself could lose the last commits). What each saves: README ("How long `make test` takes").
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import uuid
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bridge.config import Settings
from bridge.db import Base, unit_of_work
from bridge.migrate import upgrade
from bridge.shops import create_shop
from sync import shop_http
from tests.chromium import chromium  # noqa: F401 - one browser per session, for every folder that asks

FERNET_KEY = Fernet.generate_key().decode()


def pytest_configure(config):
    config.addinivalue_line("markers", "postgres_only: needs PostgreSQL (runs in the PostgreSQL pass)")
    config.addinivalue_line("markers", "bank: the bank test with real processes and faults (`make bank`)")
    config.addinivalue_line(
        "markers", "real_store: against a real WooCommerce store (../shared/realstore; runs in the PostgreSQL pass)"
    )
    config.addinivalue_line(
        "markers",
        "database_free: touches no database (all of tests/unit, and modules that say so): the same on either "
        "backend, so `make test` runs it in the SQLite pass only",
    )


UNIT = Path(__file__).resolve().parent / "unit"


def pytest_collection_modifyitems(config, items):
    """tests/unit is database-free by definition (README); a database-free test that asks for a database is a
    mistake that would hide it from the PostgreSQL pass, so it stops the run."""
    for item in items:
        if UNIT in item.path.parents:
            item.add_marker(pytest.mark.database_free)
        if item.get_closest_marker("database_free") and "database_url" in getattr(item, "fixturenames", ()):
            raise pytest.UsageError(f"{item.nodeid} is marked database_free but uses a database (database_url)")


def pytest_report_header(config):
    return f"database: {_backend()}"


def _backend() -> str:
    return "postgresql" if os.environ.get("TEST_DATABASE_URL") else "sqlite"


@pytest.fixture(autouse=True)
def shop_addresses(monkeypatch):
    """The tests' shops are simulators on 127.0.0.1 and `responses` mocks, so loopback is allowed (as with
    ALLOW_PRIVATE_SHOP_URLS=true), and no name is ever looked up in real DNS: a test that needs a name to
    resolve says to what (tests/hostile/test_security_ssrf.py)."""
    monkeypatch.setattr(shop_http, "resolve", _no_dns)
    with shop_http.private_addresses_allowed():
        yield


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashes():
    """argon2 at its cheapest in this process: the production parameters (bridge/users.py: 64 MiB, 3 passes, 4
    lanes) cost about a second per hash or check on a busy 2-CPU machine, and the console's tests sign in by the
    hundred. Hashes are still argon2id and checked the same way; processes the tests start (the CLI, gunicorn)
    keep the production parameters."""
    from bridge import users

    production = users._hasher
    users._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    users._dummy_hash.cache_clear()
    yield
    users._hasher = production
    users._dummy_hash.cache_clear()


def _no_dns(host: str, port: int) -> list[str]:
    if host == "localhost":
        return ["127.0.0.1"]
    raise socket.gaierror(socket.EAI_NONAME, f"tests look up no names ({host})")


RAM = Path("/dev/shm")


@pytest.fixture(scope="session")
def sqlite_directory(tmp_path_factory):
    """Where the SQLite test databases go: a fresh directory in RAM when the machine has /dev/shm, removed at the
    end of the session; else pytest's temporary directory."""
    if not (RAM.is_dir() and os.access(RAM, os.W_OK)):
        yield tmp_path_factory.mktemp("db")
        return
    directory = Path(tempfile.mkdtemp(prefix="wallet-bridge-tests-", dir=RAM))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def migrated_database(request):
    """A database migrated from empty: a template SQLite file, or a new PostgreSQL database."""
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        template = request.getfixturevalue("sqlite_directory") / "template.db"
        upgrade(f"sqlite:///{template}")
        yield {"kind": "sqlite", "template": template}
        return
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"wb_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
        connection.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    test_url = make_url(url).set(database=name).render_as_string(hide_password=False)
    upgrade(test_url)
    yield {"kind": "postgresql", "url": test_url}
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def database_url(migrated_database):
    if migrated_database["kind"] == "sqlite":
        path = migrated_database["template"].with_name(f"{uuid.uuid4().hex}.db")
        shutil.copy(migrated_database["template"], path)
        yield f"sqlite:///{path}"
        for leftover in path.parent.glob(f"{path.name}*"):  # the file, its -wal and -shm (RAM is not for keeping)
            leftover.unlink(missing_ok=True)
        return
    url = migrated_database["url"]
    engine = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    yield url


@pytest.fixture
def postgres_url(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("needs PostgreSQL: runs in the PostgreSQL pass of `make test`")
    return database_url


@pytest.fixture
def settings(database_url, tmp_path):
    return Settings.from_env(
        {
            "DATABASE_URL": database_url,
            "SECRET_KEY": "test-secret-key",
            "FERNET_KEYS": FERNET_KEY,
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "PUBLIC_URL": "https://bridge.example.test",
            "EMBEDDED_WORKER": "false",
            "OUTBOX_BASE_DELAY_SECONDS": "0",
            "ALLOW_PRIVATE_SHOP_URLS": "true",
        }
    )


@pytest.fixture
def app(settings):
    from bridge.surfaces.cli import create_cli_app  # here: the unit tests (no app) need not import it

    app = create_cli_app(settings)
    app.config["TESTING"] = True
    yield app
    app.extensions["wallet_bridge"].engine.dispose()


@pytest.fixture
def services(app):
    return app.extensions["wallet_bridge"]


@pytest.fixture
def client(app):
    return app.test_client()


def make_shop(services, name="Alpha Shop", currency="EUR", platform="woocommerce", url="https://alpha.example"):
    with unit_of_work(services.sessions) as session:
        return create_shop(
            session, services.secrets, platforms=(platform,), name=name, platform=platform, url=url, currency=currency
        )


@pytest.fixture
def shop(services):
    return make_shop(services)


@pytest.fixture
def other_shop(services):
    return make_shop(services, name="Beta Shop", url="https://beta.example")


@pytest.fixture
def session(services):
    with unit_of_work(services.sessions) as session:
        yield session
