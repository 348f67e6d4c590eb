"""Alembic environment: SQLite needs batch mode for ALTER TABLE; PostgreSQL does not mind it."""

from alembic import context
from sqlalchemy import create_engine, pool

from bridge import models  # noqa: F401  (registers the tables)
from bridge.db import Base

config = context.config


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
