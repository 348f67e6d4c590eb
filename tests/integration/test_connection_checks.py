"""Pooled PostgreSQL connections are checked only when the server has spoken while they idled: a connection the
server ended is replaced before use, a live one is used without a ping (a round trip on every unit of work)."""

import pytest
from sqlalchemy import text

from bridge.db import make_engine

pytestmark = pytest.mark.postgres_only


@pytest.fixture
def engine(postgres_url):
    engine = make_engine(postgres_url, pool_size=1)
    yield engine
    engine.dispose()


@pytest.fixture
def pings(engine, monkeypatch):
    seen = []
    ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda connection: seen.append(connection) or ping(connection))
    return seen


def backend_pid(engine) -> int:
    with engine.connect() as connection:
        return connection.scalar(text("SELECT pg_backend_pid()"))


def test_a_live_connection_is_used_without_a_ping(engine, pings):
    first = backend_pid(engine)
    assert [backend_pid(engine) for _ in range(3)] == [first] * 3
    assert pings == []


def test_a_connection_the_server_ended_is_replaced_before_use(engine, postgres_url, pings):
    ended = backend_pid(engine)
    admin = make_engine(postgres_url, pool_size=1)
    with admin.connect() as other:
        assert other.scalar(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": ended})  # waits until it is gone
    admin.dispose()
    assert backend_pid(engine) != ended
    assert len(pings) == 1
