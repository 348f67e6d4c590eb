"""Access to the process's services from inside a request or CLI command."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import current_app
from sqlalchemy.orm import Session

from bridge import usecases
from bridge.services import Services
from bridge.statement_links import StatementLinks


def services() -> Services:
    return current_app.extensions["wallet_bridge"]


def statement_links() -> StatementLinks:
    settings = services().settings
    return StatementLinks(settings.secret_key, settings.public_url)


@contextmanager
def reading() -> Iterator[Session]:
    """A page's queries in one transaction (bridge/usecases: commands go through the use-case layer)."""
    with usecases.reading(services().sessions) as session:
        yield session
