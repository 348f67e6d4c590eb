"""`wallet-bridge`: a Flask CLI group. Every command that prints data takes --json."""

from __future__ import annotations

import json

import click
from flask import Flask
from flask.cli import FlaskGroup

from bridge.db import unit_of_work
from bridge.ledger import verify
from bridge.migrate import upgrade
from bridge.shops import create_shop
from bridge.web.runtime import services


def emit(data: dict, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(data, default=str, indent=2))
    else:
        for key, value in data.items():
            click.echo(f"{key}: {value}")


@click.group("db", help="Database schema.")
def db_group():
    pass


@db_group.command("upgrade", help="Apply every migration (safe to repeat).")
def db_upgrade():
    upgrade(services().settings.database_url)
    click.echo("database is up to date")


@click.group("shop", help="Shops (tenants).")
def shop_group():
    pass


@shop_group.command("create", help="Create a shop; prints its id, API key and webhook secret once.")
@click.option("--name", required=True)
@click.option("--platform", type=click.Choice(["woocommerce", "shopify"]), required=True)
@click.option("--url", required=True)
@click.option("--currency", required=True)
@click.option("--json", "as_json", is_flag=True)
def shop_create(name, platform, url, currency, as_json):
    with unit_of_work(services().sessions) as session:
        created = create_shop(session, services().secrets, name=name, platform=platform, url=url, currency=currency)
        data = {
            "id": created.shop.id,
            "name": created.shop.name,
            "platform": platform,
            "currency": created.shop.currency,
            "api_key": created.api_key,
            "webhook_secret": created.webhook_secret,
            "webhook_url": f"{services().settings.public_url}/webhooks/{platform}/{created.shop.id}",
        }
    emit(data, as_json)


@click.group("ledger", help="The ledger.")
def ledger_group():
    pass


@ledger_group.command("verify", help="Recompute every balance from the entries; exit 1 on any mismatch.")
@click.option("--json", "as_json", is_flag=True)
def ledger_verify(as_json):
    with unit_of_work(services().sessions) as session:
        problems = verify(session)
    emit({"ok": not problems, "mismatches": [p.__dict__ for p in problems]}, as_json)
    if problems:
        raise SystemExit(1)


@click.command("serve", help="Migrate, then serve the bridge (and, on SQLite, its outbox worker).")
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=8000, type=int)
def serve(host, port):
    from flask import current_app
    from werkzeug.serving import run_simple

    settings = services().settings
    upgrade(settings.database_url)
    click.echo(f"Wallet Bridge on {settings.database_url.split('://')[0]} — open http://{host}:{port}/")
    click.echo(f"API document: http://{host}:{port}/api/v1/openapi.json   health: http://{host}:{port}/healthz")
    run_simple(host, port, current_app._get_current_object(), threaded=True, use_reloader=False)


def register_cli(app: Flask) -> None:
    for command in (db_group, shop_group, ledger_group, serve):
        app.cli.add_command(command)


def main() -> None:
    from bridge.app import create_app

    FlaskGroup(create_app=create_app, add_default_commands=False, add_version_option=False)(prog_name="wallet-bridge")
