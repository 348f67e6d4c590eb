"""The migration chain builds exactly the schema the models describe, on the database under test; a
migration of data does what it says."""

import json

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from bridge.db import Base
from bridge.migrate import upgrade
from bridge.settings_schema import load_settings


def test_models_and_migrations_agree(database_url):
    engine = create_engine(database_url)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata)
    engine.dispose()
    assert diff == []


def test_settings_saved_beyond_the_limits_are_lowered_to_them(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0008")
    engine = create_engine(url)
    old = (
        '{"signup_bonus": 100000000000000000000000000, "promotional_expiry_days": 999999999999, '
        '"topup_minimum": 500, "return_windows": [{"tier": "gold", "min_lifetime_spend": 0, "days": 30}]}'
    )
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO shops (id, name, platform, url, currency, api_key_hash, "
                "webhook_secret_enc, settings, created_at) VALUES (1, 'Old', 'woocommerce', "
                "'https://old.example', 'EUR', 'h', x'00', :settings, '2026-01-01 00:00:00')"
            ),
            {"settings": old},
        )
    upgrade(url, "head")
    with engine.connect() as connection:
        stored = connection.scalar(text("SELECT settings FROM shops WHERE id = 1"))
    engine.dispose()
    settings = load_settings(json.loads(stored))  # loads again: no ValidationError
    assert (settings["signup_bonus"], settings["promotional_expiry_days"]) == (10**10, 3650)
    assert settings["topup_minimum"] == 500 and settings["return_windows"][0]["days"] == 30
