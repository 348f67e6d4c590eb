"""The command line as a person meets it: refusals in one line (exit 1, no traceback), `shop list` as a table,
`--help` about the bridge, and a password reset by the operator."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from bridge.db import unit_of_work
from bridge.models import Shop
from bridge.surfaces.cli import BridgeGroup
from bridge.usecases.merchants import sign_in
from tests.console_support import PASSWORD, make_user

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def cli(app):
    def run(*args, env=None):
        with app.app_context():
            return app.test_cli_runner().invoke(args=list(args), env=env)

    return run


def shop_count(services) -> int:
    with unit_of_work(services.sessions) as session:
        return session.scalar(select(func.count()).select_from(Shop))


def assert_refused(result, message: str) -> None:
    assert result.exit_code == 1
    assert result.output == f"Error: {message}\n"  # one line: no traceback
    assert isinstance(result.exception, SystemExit)


def test_syncing_an_unknown_shop_is_one_line(cli):
    assert_refused(cli("sync", "99"), "shop not found")


@pytest.mark.parametrize(
    "name, currency, message",
    [
        ("Corner Shop", "EURO", "unknown currency 'EURO'"),
        ("", "EUR", "a shop needs a name"),
        ("   ", "EUR", "a shop needs a name"),
    ],
)
def test_a_shop_with_a_bad_value_is_refused_in_one_line_and_nothing_is_written(cli, services, name, currency, message):
    result = cli(
        "shop",
        "create",
        "--name",
        name,
        "--platform",
        "woocommerce",
        "--url",
        "https://corner.example",
        "--currency",
        currency,
    )
    assert_refused(result, message)
    assert shop_count(services) == 0


def test_an_unmigrated_database_says_what_to_run(tmp_path):
    from bridge.config import Settings
    from bridge.surfaces.cli import create_cli_app

    app = create_cli_app(
        Settings.from_env(
            {"DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}", "SECRET_KEY": "k", "INSTANCE_PATH": str(tmp_path)}
        )
    )
    with app.app_context():
        result = app.test_cli_runner().invoke(args=["shop", "list"])
    app.extensions["wallet_bridge"].engine.dispose()
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "`wallet-bridge db upgrade`" in result.output


def test_shop_list_is_a_table_with_headers(cli, shop, other_shop):
    lines = cli("shop", "list").output.splitlines()
    assert lines[0].split() == ["ID", "PLATFORM", "CURRENCY", "CONNECTED", "LAST", "SYNC", "NAME", "URL"]
    assert lines[1].split() == [
        str(shop.shop.id),
        "woocommerce",
        "EUR",
        "no",
        "never",
        "Alpha",
        "Shop",
        "https://alpha.example",
    ]
    assert lines[1].index("https://") == lines[2].index("https://") == lines[0].index("URL")  # aligned columns
    listed = json.loads(cli("shop", "list", "--json").output)
    assert [(row["id"], row["name"], row["connected"]) for row in listed] == [
        (shop.shop.id, "Alpha Shop", False),
        (other_shop.shop.id, "Beta Shop", False),
    ]


def test_shop_list_without_shops_says_how_to_add_one(cli):
    assert "wallet-bridge shop create" in cli("shop", "list").output


def test_help_shows_the_bridge_not_flask(app):
    result = CliRunner().invoke(BridgeGroup(lambda: app), ["--help"], prog_name="wallet-bridge")
    assert result.exit_code == 0
    assert "Wallet Bridge" in result.output
    for command in ("serve", "shop", "sync", "user", "worker"):
        assert f"\n  {command} " in result.output
    for flask_option in ("--app", "--env-file", "--debug", "FLASK"):
        assert flask_option not in result.output


def test_set_password_replaces_the_password_and_forgets_failed_sign_ins(cli, services, shop):
    make_user(services, shop.shop.id)
    for _ in range(5):  # locked out
        assert sign_in(services.sessions, "ann@example.com", "wrong password", "198.51.100.7").user is None
    result = cli("user", "set-password", "--email", "Ann@Example.com", env={"WB_USER_PASSWORD": NEW_PASSWORD})
    assert result.exit_code == 0, result.output
    assert result.output == "password set for ann@example.com\n"
    assert sign_in(services.sessions, "ann@example.com", PASSWORD, "198.51.100.8").user is None
    assert sign_in(services.sessions, "ann@example.com", NEW_PASSWORD, "198.51.100.8").user is not None


def test_set_password_prompts_twice_and_refuses_a_short_one_or_an_unknown_user(cli, services, shop):
    make_user(services, shop.shop.id)
    prompted = cli("user", "set-password", "--email", "ann@example.com")
    assert prompted.exit_code == 1 and "Password:" in prompted.output  # no input: nothing set
    assert_refused(
        cli("user", "set-password", "--email", "ann@example.com", env={"WB_USER_PASSWORD": "short"}),
        "password: At least 10 characters.",
    )
    assert_refused(
        cli("user", "set-password", "--email", "nobody@example.com", env={"WB_USER_PASSWORD": NEW_PASSWORD}),
        "there is no user nobody@example.com",
    )
    assert sign_in(services.sessions, "ann@example.com", PASSWORD, "198.51.100.8").user is not None
