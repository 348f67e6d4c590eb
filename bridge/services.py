"""The process's wiring in one place: settings, database, secret box. Built once by the app factory."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bridge.config import Settings
from bridge.db import make_engine, make_session_factory
from bridge.security import SecretBox


@dataclass
class Services:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    secrets: SecretBox

    @classmethod
    def build(cls, settings: Settings) -> Services:
        engine = make_engine(settings.database_url)
        return cls(settings, engine, make_session_factory(engine), SecretBox(settings.fernet_keys))
