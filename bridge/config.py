"""Settings from the environment, read once in the application factory (documented in .env.example)."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet


@dataclass(frozen=True)
class Settings:
    database_url: str
    secret_key: str
    fernet_keys: tuple[str, ...]
    public_url: str
    instance_path: Path
    embedded_worker: bool
    outbox_max_attempts: int = 8
    outbox_base_delay_seconds: float = 2.0
    shop_timeout_seconds: float = 10.0
    sync_timeout_seconds: float = 30.0  # `sync` reads pages of 100 orders: a busy shop serves them slowly
    session_cookie_secure: bool = False
    hsts_max_age_seconds: int = 0
    allow_private_shop_urls: bool = False
    defer_deliveries: bool = False  # answer a delivery once stored; a worker applies it (woken at once on PostgreSQL)
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides) -> Settings:
        env = dict(os.environ if env is None else env)
        instance = Path(env.get("INSTANCE_PATH") or Path.cwd() / "instance").resolve()
        generated = _dev_secrets(instance) if not (env.get("SECRET_KEY") and env.get("FERNET_KEYS")) else {}
        database_url = env.get("DATABASE_URL") or f"sqlite:///{instance / 'wallet-bridge.db'}"
        public_url = (env.get("PUBLIC_URL") or "http://127.0.0.1:8000").rstrip("/")
        https = public_url.startswith("https://")  # served over TLS: cookies and HSTS follow by default
        values = dict(
            database_url=database_url,
            secret_key=env.get("SECRET_KEY") or generated["secret_key"],
            fernet_keys=tuple(k.strip() for k in (env.get("FERNET_KEYS") or generated["fernet_key"]).split(",")),
            public_url=public_url,
            instance_path=instance,
            embedded_worker=_flag(env.get("EMBEDDED_WORKER"), default=database_url.startswith("sqlite")),
            outbox_max_attempts=int(env.get("OUTBOX_MAX_ATTEMPTS", "8")),
            outbox_base_delay_seconds=float(env.get("OUTBOX_BASE_DELAY_SECONDS", "2")),
            shop_timeout_seconds=float(env.get("SHOP_TIMEOUT_SECONDS", "10")),
            sync_timeout_seconds=float(env.get("SYNC_TIMEOUT_SECONDS", "30")),
            session_cookie_secure=_flag(env.get("SESSION_COOKIE_SECURE"), default=https),
            hsts_max_age_seconds=int(env.get("HSTS_MAX_AGE_SECONDS") or (31_536_000 if https else 0)),
            allow_private_shop_urls=_flag(env.get("ALLOW_PRIVATE_SHOP_URLS"), default=False),
            defer_deliveries=_flag(env.get("DEFER_DELIVERIES"), default=False),
        )
        values.update(overrides)
        return cls(**values)


def _flag(value: str | None, *, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def _dev_secrets(instance: Path) -> dict:
    """A newcomer's `make run` needs no configuration: keys are generated once into the instance
    folder. Production sets SECRET_KEY and FERNET_KEYS in the environment instead."""
    path = instance / "dev-secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    instance.mkdir(parents=True, exist_ok=True)
    values = {"secret_key": secrets.token_urlsafe(32), "fernet_key": Fernet.generate_key().decode()}
    path.write_text(json.dumps(values))
    path.chmod(0o600)
    return values
