"""Fernet key rotation: shops sealed under key A, FERNET_KEYS changed to "B,A", `secrets rotate` → B alone
opens every encrypted column; a second run is harmless; the CLI prints the count."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import func, select

from bridge.config import Settings
from bridge.db import unit_of_work
from bridge.models import AuditEvent, Shop
from bridge.security import SecretBox
from bridge.services import Services
from bridge.surfaces.cli import create_cli_app
from bridge.usecases.secret_rotation import ENCRYPTED_COLUMNS, RotationFailed, rotate_shop_secrets, shops_not_on
from tests.conftest import FERNET_KEY as KEY_A
from tests.conftest import make_shop

KEY_B = Fernet.generate_key().decode()


def env_with(settings: Settings, fernet_keys: str) -> dict[str, str]:
    return {
        "DATABASE_URL": settings.database_url,
        "SECRET_KEY": settings.secret_key,
        "FERNET_KEYS": fernet_keys,
        "INSTANCE_PATH": str(settings.instance_path),
        "PUBLIC_URL": settings.public_url,
        "EMBEDDED_WORKER": "false",
    }


@pytest.fixture
def services_ba(settings):
    """The same database, with the new key B put first and the old key A kept second."""
    built = Services.build(Settings.from_env(env_with(settings, f"{KEY_B},{KEY_A}")))
    yield built
    built.engine.dispose()


@pytest.fixture
def shops_under_a(services):
    """Two shops sealed under key A alone: one with every encrypted column set, one with only its webhook secret."""
    full = make_shop(services)
    bare = make_shop(services, name="Beta Shop", url="https://beta.example")
    plain = {
        "webhook_secret_enc": full.webhook_secret,
        "previous_webhook_secret_enc": "previous-webhook-secret",
        "consumer_key_enc": "ck_0123456789abcdef",
        "consumer_secret_enc": "cs_fedcba9876543210",
    }
    with unit_of_work(services.sessions) as session:
        shop = session.get(Shop, full.shop.id)
        for column in ("previous_webhook_secret_enc", "consumer_key_enc", "consumer_secret_enc"):
            setattr(shop, column, services.secrets.seal(plain[column]))
    return {full.shop.id: plain, bare.shop.id: {"webhook_secret_enc": bare.webhook_secret}}


def stored(services, shop_id: int) -> dict[str, bytes | None]:
    with unit_of_work(services.sessions) as session:
        shop = session.get(Shop, shop_id)
        return {column: getattr(shop, column) for column in ENCRYPTED_COLUMNS}


def opened_with(box: SecretBox, services, shop_id: int) -> dict[str, str]:
    return {column: box.open(token) for column, token in stored(services, shop_id).items() if token is not None}


def invoke(app, *args: str):
    with app.app_context():  # the `wallet-bridge` FlaskGroup pushes one; app.cli alone does not
        return app.test_cli_runner().invoke(args=list(args))


def test_every_encrypted_column_of_a_shop_is_rotated():
    assert set(ENCRYPTED_COLUMNS) == {
        "webhook_secret_enc",
        "previous_webhook_secret_enc",
        "consumer_key_enc",
        "consumer_secret_enc",
    }


def test_rotation_moves_every_secret_to_the_newest_key(services, services_ba, shops_under_a):
    only_a, only_b = SecretBox((KEY_A,)), SecretBox((KEY_B,))
    for shop_id in shops_under_a:
        with pytest.raises(InvalidToken):
            opened_with(only_b, services, shop_id)
    assert shops_not_on(services_ba.sessions, only_b) == sorted(shops_under_a)

    assert rotate_shop_secrets(services_ba.sessions, services_ba.secrets) == 2

    for shop_id, plain in shops_under_a.items():
        assert opened_with(only_b, services, shop_id) == plain
        with pytest.raises(InvalidToken):  # re-encrypted, not merely readable through the old key
            opened_with(only_a, services, shop_id)
    assert shops_not_on(services_ba.sessions, only_b) == []
    # columns that were empty stay empty
    bare_id = max(shops_under_a)
    assert [c for c, token in stored(services, bare_id).items() if token is None] == [
        "previous_webhook_secret_enc",
        "consumer_key_enc",
        "consumer_secret_enc",
    ]


def test_a_second_run_is_harmless(services, services_ba, shops_under_a):
    only_b = SecretBox((KEY_B,))
    assert rotate_shop_secrets(services_ba.sessions, services_ba.secrets) == 2
    assert rotate_shop_secrets(services_ba.sessions, services_ba.secrets) == 2
    for shop_id, plain in shops_under_a.items():
        assert opened_with(only_b, services, shop_id) == plain
    # once the old key is gone, a run with B alone works too
    assert rotate_shop_secrets(services_ba.sessions, only_b) == 2
    for shop_id, plain in shops_under_a.items():
        assert opened_with(only_b, services, shop_id) == plain
    with unit_of_work(services.sessions) as session:
        count = select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "secrets.rotate")
        events = session.scalar(count)
    assert events == 3 * len(shops_under_a)


def test_a_value_no_key_opens_stops_with_the_shop_and_column_named(services, settings, shops_under_a):
    unrelated = SecretBox((Fernet.generate_key().decode(),))
    with pytest.raises(RotationFailed) as failed:
        rotate_shop_secrets(services.sessions, unrelated)
    assert failed.value.shop_id == min(shops_under_a)
    assert failed.value.column in ENCRYPTED_COLUMNS
    # nothing was changed: key A still opens everything
    for shop_id, plain in shops_under_a.items():
        assert opened_with(services.secrets, services, shop_id) == plain


def test_cli_rotates_and_prints_the_count(settings, services, shops_under_a):
    app = create_cli_app(Settings.from_env(env_with(settings, f"{KEY_B},{KEY_A}")))
    try:
        result = invoke(app, "secrets", "rotate", "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.output) == {"shops_rotated": 2, "keys_configured": 2, "shops_not_on_newest_key": []}
        plain = invoke(app, "secrets", "rotate")
        assert plain.exit_code == 0, plain.output
        assert "shops_rotated: 2" in plain.output
    finally:
        app.extensions["wallet_bridge"].engine.dispose()
    for shop_id, values in shops_under_a.items():
        assert opened_with(SecretBox((KEY_B,)), services, shop_id) == values


def test_cli_refuses_when_a_key_is_missing_and_leaks_no_secret(settings, services, shops_under_a):
    app = create_cli_app(Settings.from_env(env_with(settings, KEY_B)))  # key A dropped before rotating
    try:
        result = invoke(app, "secrets", "rotate", "--json")
    finally:
        app.extensions["wallet_bridge"].engine.dispose()
    assert result.exit_code == 1
    assert "not decryptable with any key in FERNET_KEYS" in result.output
    for values in shops_under_a.values():
        for secret in values.values():
            assert secret not in result.output
