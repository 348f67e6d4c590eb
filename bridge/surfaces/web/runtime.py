"""Access to the process's services from inside a request or CLI command."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import current_app
from sqlalchemy.orm import Session

from bridge import usecases
from bridge.services import Services


def services() -> Services:
    return current_app.extensions["wallet_bridge"]


@contextmanager
def reading() -> Iterator[Session]:
    """A page's queries in one transaction (bridge/usecases: commands go through the use-case layer)."""
    with usecases.reading(services().sessions) as session:
        yield session
