"""Engine and unit of work. SQLite (embedded default) and PostgreSQL (production) behave alike here."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from select import POLLIN, poll
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    BindParameter,
    ColumnElement,
    Connection,
    Engine,
    Executable,
    cast,
    create_engine,
    event,
    func,
    inspect,
    literal_column,
    select,
    type_coerce,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value


class Base(DeclarativeBase):
    pass


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    # hide_parameters: a database error, logged, says its statement but not the customers' names and e-mails or the
    # shops' encrypted keys bound to it
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True)
        _make_sqlite_transactional(engine)
        return engine
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, hide_parameters=True)
    _ping_when_the_server_spoke(engine)
    return engine


def _ping_when_the_server_spoke(engine: Engine) -> None:
    """Check a pooled connection before use only when its socket has something to read while it idled: a server
    that ended the session (restart, pg_terminate_backend, idle timeout) says so, or closes the socket, and either
    makes it readable. The pool's own pre-ping would cost a round trip on every checkout, one more than a webhook's
    answer needs. A connection found dead is replaced (the pool retries a DisconnectionError with a new one)."""

    @event.listens_for(engine, "checkout")
    def _check(dbapi_connection, _record, _proxy):
        try:  # fileno() raises on a connection psycopg already knows closed
            watch = poll()
            watch.register(dbapi_connection.fileno(), POLLIN)
            if watch.poll(0):
                engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise DisconnectionError(str(error)) from error


def _make_sqlite_transactional(engine: Engine) -> None:
    """pysqlite defers BEGIN; take the write lock up front (BEGIN IMMEDIATE) so that two
    writers queue on the database instead of failing to upgrade a shared lock."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()
        dbapi_connection.create_function("local_date", 2, _local_date, deterministic=True)
        dbapi_connection.create_function("unicode_lower", 1, _unicode_lower, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _local_date(utc_text: str | None, zone: str | None) -> str | None:
    """SQLite's `local_date(created_at, 'Europe/Paris')`: the day ('YYYY-MM-DD') that a stored UTC timestamp
    ('YYYY-MM-DD HH:MM:SS[.ffffff]', see UTCDateTime) falls on in an IANA time zone; PostgreSQL's
    `CAST(timezone(zone, created_at) AS DATE)`. Deterministic: the zone's rules come from the tz database."""
    if utc_text is None or zone is None:
        return None
    moment = datetime.fromisoformat(str(utc_text))
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return moment.astimezone(ZoneInfo(zone)).date().isoformat()


def _unicode_lower(value: str | None) -> str | None:
    """SQLite's `unicode_lower(text)`: lower() for every alphabet, as PostgreSQL's in a UTF-8 locale (SQLite's
    own lower() leaves "MÜLLER" as "mÜller")."""
    return value.lower() if isinstance(value, str) else value


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One database transaction: committed when the block ends cleanly, rolled back otherwise."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def single_write(factory: sessionmaker[Session], *, atomic: bool = False) -> Iterator[Connection]:
    """A connection for reads and at most one write that is atomic by itself (one INSERT): on PostgreSQL it
    autocommits, sparing the BEGIN and COMMIT round trips of a transaction; on SQLite it is a transaction, whose
    BEGIN IMMEDIATE the engine's connections rely on (`_make_sqlite_transactional`). `atomic`: a transaction on
    both, for reads whose locks must hold until the write."""
    engine = factory.kw["bind"]
    if engine.dialect.name == "postgresql" and not atomic:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            yield connection
    else:
        with engine.begin() as connection:
            yield connection


def lowered(session: Session, column):
    """lower() for every alphabet: SQLite's own knows ASCII only, so its connections get Python's as
    `unicode_lower` (`_make_sqlite_transactional`); PostgreSQL's follows the database's locale."""
    return (func.unicode_lower if session.get_bind().dialect.name == "sqlite" else func.lower)(column)


def total(column):
    """SUM as an integer on both databases (PostgreSQL sums BIGINT into NUMERIC, i.e. Decimal), 0 when empty."""
    return cast(func.coalesce(func.sum(column), 0), BigInteger)


def assign_changed(row: Base, **values) -> None:
    """Set the attributes whose value differs. Assigning an equal value still marks the row dirty, and the commit
    then runs a flush that finds nothing to write: on the hot path, a twentieth of a wallet order's apply."""
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)


def insert_ignoring_conflict(session: Session, model: type[Base], values: dict, conflict_columns: list[str]):
    """INSERT … ON CONFLICT DO NOTHING RETURNING *, on either database, in one statement: the new row as
    an ORM object, or None when the key exists. On PostgreSQL a concurrent insert of the same key waits
    for the other transaction to end."""
    stmt = _insert_ignoring(session, model, tuple(conflict_columns), returning=True)
    return session.scalars(stmt, values).one_or_none()


def write_once(session: Session, model: type[Base], values: dict, conflict_columns: tuple[str, ...]) -> None:
    """INSERT … ON CONFLICT DO NOTHING of a row nobody reads back in this transaction (an outbox message), sent on
    the session's connection without flushing the session (the row refers to nothing pending there, so pending
    changes go out together at the next flush)."""
    session.connection().execute(_insert_ignoring(session, model, conflict_columns, returning=False), values)


@dataclass
class ChangesOfPosting:
    """Column values a loaded row takes once a posting is made (the order it pays), written along with the posting
    (`bridge.ledger.Along`)."""

    row: Base
    values: dict

    def __post_init__(self) -> None:
        # what a flush would stamp (`updated_at`): a statement nested in another gets no Python-side defaults
        stamped = (column for column in self.row.__table__.c if column.onupdate is not None)
        self.values = {column.key: column.onupdate.arg(None) for column in stamped} | self.values

    @property
    def shape(self) -> tuple:
        return type(self.row), tuple(self.values)

    def beside(self, transaction_id: ColumnElement, parameter: Callable[[str], BindParameter]) -> Executable:
        """PostgreSQL: an UPDATE of the row by its primary key."""
        table = self.row.__table__
        where = [column == parameter(f"key_{column.key}") for column in table.primary_key.columns]
        values = {name: type_coerce(parameter(name), table.c[name].type) for name in self.values}
        return update(table).where(*where, transaction_id.is_not(None)).values(values)

    def parameters(self) -> dict:
        key = inspect(self.row).identity
        columns = self.row.__table__.primary_key.columns
        return self.values | {f"key_{column.key}": value for column, value in zip(columns, key, strict=True)}

    def written(self, session: Session) -> None:
        for name, value in self.values.items():
            set_committed_value(self.row, name, value)  # as if loaded so: nothing left to flush

    def write(self, session: Session, transaction_id: int) -> None:
        for name, value in self.values.items():
            setattr(self.row, name, value)


def insert_or_lock(session: Session, model: type[Base], values: dict, conflict_columns: tuple[str, ...]):
    """The row with this key, inserted, or the existing one locked for this transaction; and whether this call
    inserted it. One statement on PostgreSQL: a no-op ON CONFLICT DO UPDATE locks the existing row and returns it
    (xmax is 0 only on a row just inserted). On SQLite, whose writers BEGIN IMMEDIATE serializes, the INSERT …
    ON CONFLICT DO NOTHING is followed by a SELECT when the key exists."""
    if session.get_bind().dialect.name == "postgresql":
        found = session.execute(
            _upserts_locking(model, conflict_columns), values, execution_options={"populate_existing": True}
        ).one()
        return found[0], found.created
    inserted = insert_ignoring_conflict(session, model, values, list(conflict_columns))
    if inserted is not None:
        return inserted, True
    key = select(model).filter_by(**{column: values[column] for column in conflict_columns})
    return session.execute(key, execution_options={"populate_existing": True}).scalar_one(), False


def _upserts_locking(model: type[Base], conflict_columns: tuple[str, ...]):
    key = (model, conflict_columns)
    stmt = _inserts_locking.get(key)
    if stmt is None:
        upsert = postgresql.insert(model)
        first = conflict_columns[0]
        created = literal_column("xmax = 0").label("created")
        upsert = upsert.on_conflict_do_update(
            index_elements=list(conflict_columns), set_={first: upsert.excluded[first]}
        )
        stmt = _inserts_locking[key] = select(model, created).from_statement(upsert.returning(model, created))
    return stmt


_inserts_locking: dict = {}


def _insert_ignoring(session: Session, model: type[Base], conflict_columns: tuple[str, ...], *, returning: bool):
    """The statement, built once per table, conflict key and database: the values are its parameters (building
    and compiling it anew for each row cost more than running it)."""
    name = session.get_bind().dialect.name
    key = (model, conflict_columns, name, returning)
    stmt = _inserts_ignoring.get(key)
    if stmt is None:
        dialect = sqlite if name == "sqlite" else postgresql
        stmt = dialect.insert(model if returning else model.__table__).on_conflict_do_nothing(
            index_elements=list(conflict_columns)
        )
        # returning: the row loaded as an entity, as a SELECT loads it (cheaper than the ORM's bulk INSERT path)
        stmt = _inserts_ignoring[key] = select(model).from_statement(stmt.returning(model)) if returning else stmt
    return stmt


_inserts_ignoring: dict = {}


class Listener:
    """Waits for a NOTIFY on `channel` (PostgreSQL) with a connection of its own; on SQLite, a short sleep stands
    in (a poll). Used by workers between rounds: a wake-up is a hint to look now, never the only way to find work."""

    POLL_SECONDS = 0.05

    def __init__(self, engine: Engine, channel: str):
        self.engine, self.channel, self.connection = engine, channel, None

    def wait(self, timeout: float) -> None:
        if self.engine.dialect.name != "postgresql":
            time.sleep(min(timeout, self.POLL_SECONDS))
            return
        try:
            connection = self._listening()
            for _ in connection.notifies(timeout=timeout, stop_after=1):
                break
        except Exception:  # the connection dropped: a new one next time, and the round looks for work anyway
            self.close()
            time.sleep(min(timeout, 1.0))

    def _listening(self):
        if self.connection is None:
            raw = self.engine.raw_connection()
            connection = raw.driver_connection
            connection.autocommit = True
            connection.execute(f'LISTEN "{self.channel}"')  # the channel is a constant of the code, not input
            self.raw, self.connection = raw, connection
        return self.connection

    def close(self) -> None:
        if self.connection is not None:
            try:
                self.raw.invalidate()
            finally:
                self.connection = None
