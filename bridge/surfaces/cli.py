"""`wallet-bridge`: a Flask CLI group. Every command that prints data takes --json; a refusal (an unknown shop, a
bad value, a shop that cannot be reached) is one line on stderr and exit status 1, never a traceback."""

from __future__ import annotations

import functools
import json
import signal
import threading
from contextlib import ExitStack
from datetime import timedelta

import click
from flask import Flask
from flask.cli import FlaskGroup
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from bridge import usecases
from bridge.audit import CLI
from bridge.config import Settings
from bridge.errors import DomainError, PermanentFailure, TemporaryFailure
from bridge.ledger import verify
from bridge.migrate import upgrade
from bridge.models import OutboxMessage, Shop
from bridge.shops import get_shop
from bridge.states import OutboxStatus
from bridge.surfaces.app import create_app
from bridge.surfaces.platforms import PLATFORMS, TOPICS, pushers_for, retry_policy
from bridge.surfaces.serving import BridgeServer
from bridge.surfaces.web.runtime import services
from bridge.surfaces.workers import run_worker
from bridge.usecases import merchants
from bridge.usecases.deliveries import apply_received, recover_stalled
from bridge.usecases.expiry import expire_credit, remind_before_expiry
from bridge.usecases.order_release import release_abandoned_failed_orders
from bridge.usecases.pushes import retry_dead
from bridge.usecases.retention import MINIMUM_AGE, prune
from bridge.usecases.wallets import release_stale_holds
from sync.shopify.connect import connect_shopify
from sync.woocommerce.connect import connect_shop
from sync.worker import drain


def print_table(headers: list[str], rows: list[list]) -> None:
    """Columns as wide as their widest value, for people (scripts take --json)."""
    cells = [headers, *[[str(value) for value in row] for row in rows]]
    widths = [max(len(row[column]) for row in cells) for column in range(len(headers))]
    for row in cells:
        click.echo("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip())


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
@click.option("--platform", type=click.Choice(list(PLATFORMS)), required=True)
@click.option("--url", required=True)
@click.option("--currency", required=True)
@click.option("--json", "as_json", is_flag=True)
def shop_create(name, platform, url, currency, as_json):
    created = merchants.new_shop(
        services().sessions, services().secrets, PLATFORMS, name=name, platform=platform, url=url, currency=currency
    )
    data = {
        "id": created.shop.id,
        "name": created.shop.name,
        "platform": platform,
        "currency": created.shop.currency,
        "api_key": created.api_key,
        "webhook_secret": created.webhook_secret,
        "webhook_url": PLATFORMS[platform].delivery_url(services().settings.public_url, created.shop.id),
    }
    emit(data, as_json)


@shop_group.command("list", help="Every shop: id, platform, currency, connected or not, last sync, name and URL.")
@click.option("--json", "as_json", is_flag=True)
def shop_list(as_json):
    with usecases.reading(services().sessions) as session:
        shops = [
            {
                "id": shop.id,
                "platform": shop.platform,
                "currency": shop.currency,
                "connected": shop.consumer_secret_enc is not None,
                "last_synced_at": shop.last_synced_at,
                "name": shop.name,
                "url": shop.url,
            }
            for shop in session.scalars(select(Shop).order_by(Shop.id))
        ]
    if as_json:
        click.echo(json.dumps(shops, default=str, indent=2))
        return
    if not shops:
        click.echo("no shops yet: add one with `wallet-bridge shop create` (or on the console's first-run page)")
        return
    print_table(
        ["ID", "PLATFORM", "CURRENCY", "CONNECTED", "LAST SYNC", "NAME", "URL"],
        [
            [
                shop["id"],
                shop["platform"],
                shop["currency"],
                "yes" if shop["connected"] else "no",
                f"{shop['last_synced_at']:%Y-%m-%d %H:%M}" if shop["last_synced_at"] else "never",
                shop["name"],
                shop["url"],
            ]
            for shop in shops
        ],
    )


@shop_group.command("connect", help="Check a WooCommerce shop's REST keys, store them encrypted, register webhooks.")
@click.argument("shop_id", type=int)
@click.option("--url", required=True, help="The shop's site URL (https in production).")
@click.option("--consumer-key", required=True, envvar="WB_CONSUMER_KEY", show_envvar=True)
@click.option(
    "--consumer-secret",
    required=True,
    envvar="WB_CONSUMER_SECRET",
    show_envvar=True,
    prompt=True,
    hide_input=True,
    help="Prompted for (hidden) when neither given nor in the environment.",
)
@click.option("--json", "as_json", is_flag=True)
def shop_connect(shop_id, url, consumer_key, consumer_secret, as_json):
    svc = services()
    result = connect_shop(
        svc.sessions,
        svc.secrets,
        shop_id,
        url,
        consumer_key,
        consumer_secret,
        svc.settings.public_url,
        svc.settings.shop_timeout_seconds,
    )
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    hooks = result.webhooks
    click.echo(f"shop {result.shop_id} connected to {result.url}")
    click.echo(f"webhooks to {result.delivery_url}:")
    for label, ids in (("created", hooks.created), ("reactivated", hooks.reactivated), ("unchanged", hooks.unchanged)):
        click.echo(f"  {label}: {', '.join(map(str, ids)) or '-'}")
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)


@click.command(
    "sync", help="Pull customers and orders changed since the last sync and re-activate webhooks (run from cron)."
)
@click.argument("shop_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (no progress bar).")
def sync_command(shop_id, as_json):
    svc = services()
    with usecases.reading(svc.sessions) as session:
        platform = PLATFORMS[get_shop(session, shop_id).platform]
    with ExitStack() as stack:
        bar, label = None, f"shop {shop_id}: orders"

        def progress(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:  # opened on the first order, so an early error is not printed after a bar
                bar = stack.enter_context(click.progressbar(length=1, label=label, show_pos=True))
            bar.length = max(total, done, 1)
            bar.update(done - bar.pos)

        result = platform.catch_up(svc.sessions, svc.secrets, shop_id, svc.settings, None if as_json else progress)
    click.echo(json.dumps(result.as_dict(), indent=2) if as_json else "\n".join(result.report()))
    if result.error:
        click.echo(f"error: {result.error}", err=True)
        raise SystemExit(1)


@shop_group.command(
    "connect-shopify",
    help="Check a Shopify Admin API token, store it and the webhook secret encrypted, subscribe the webhooks.",
)
@click.argument("shop_id", type=int)
@click.option("--url", required=True, help="https://<shop>.myshopify.com")
@click.option(
    "--access-token", required=True, envvar="WB_SHOPIFY_TOKEN", show_envvar=True, prompt=True, hide_input=True
)
@click.option(
    "--webhook-secret",
    envvar="WB_SHOPIFY_WEBHOOK_SECRET",
    show_envvar=True,
    help="The app's client secret; a new one rotates (the old stays valid meanwhile).",
)
@click.option("--json", "as_json", is_flag=True)
def shop_connect_shopify(shop_id, url, access_token, webhook_secret, as_json):
    svc = services()
    result = connect_shopify(
        svc.sessions,
        svc.secrets,
        shop_id,
        url=url,
        access_token=access_token,
        webhook_secret=webhook_secret,
        public_url=svc.settings.public_url,
        timeout=svc.settings.shop_timeout_seconds,
    )
    emit(result.as_dict(), as_json)


@click.group("user", help="Merchant users of the console.")
def user_group():
    pass


def _password_option(help_text: str):
    return click.option(
        "--password",
        envvar="WB_USER_PASSWORD",
        show_envvar=True,
        prompt=True,
        hide_input=True,
        confirmation_prompt=True,
        help=help_text,
    )


@user_group.command("create", help="Create a console user who manages the given shop(s); the password is prompted.")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--shop", "shop_ids", type=int, multiple=True, required=True, help="A shop id; repeat for several.")
@_password_option("Prompted for (hidden, twice) when neither given nor in the environment.")
@click.option("--json", "as_json", is_flag=True)
def user_create(email, name, shop_ids, password, as_json):
    try:
        user = merchants.create_user_for_shops(
            services().sessions, CLI, email=email, name=name, password=password, shop_ids=shop_ids
        )
        data = {"id": user.id, "email": user.email, "name": user.name, "shops": list(shop_ids)}
    except DomainError as exc:
        problems = "; ".join(f"{field}: {problem}" for field, problem in (exc.fields or {}).items())
        raise click.ClickException(problems or exc.message) from exc
    emit(data, as_json)


@user_group.command(
    "set-password",
    help="Give a console user a new password (they forgot theirs): every session "
    "of theirs ends and their failed sign-ins are forgotten.",
)
@click.option("--email", required=True)
@_password_option("The new password, prompted for (hidden, twice) when neither given nor in the environment.")
def user_set_password(email, password):
    user = merchants.reset_password(services().sessions, email, password, CLI)
    click.echo(f"password set for {user.email}")


@click.group("ledger", help="The ledger.")
def ledger_group():
    pass


@ledger_group.command("verify", help="Recompute every balance from the entries; exit 1 on any mismatch.")
@click.option("--json", "as_json", is_flag=True)
def ledger_verify(as_json):
    with usecases.reading(services().sessions) as session:
        problems = verify(session)
    emit({"ok": not problems, "mismatches": [p.__dict__ for p in problems]}, as_json)
    if problems:
        raise SystemExit(1)


@click.command("serve", help="Migrate, then serve the bridge through gunicorn (and, on SQLite, its outbox worker).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, type=click.IntRange(1, 65535), show_default=True)
@click.option("--threads", default=8, type=click.IntRange(min=1), show_default=True, help="Requests served at once.")
def serve(host, port, threads):
    settings = services().settings
    upgrade(settings.database_url)
    if settings.embedded_worker:
        click.echo("outbox worker: running in this process")
    click.echo(f"Wallet Bridge on {settings.database_url.split('://')[0]} — open http://{host}:{port}/")
    click.echo(f"API document: http://{host}:{port}/api/v1/openapi.json   health: http://{host}:{port}/healthz")
    BridgeServer(settings, bind=f"{host}:{port}", threads=threads).run()


@click.command(
    "worker",
    help="Deliver outbox messages to the shops (and apply deferred deliveries) until stopped "
    "(run several if you like).",
)
@click.option("--once", is_flag=True, help="Apply and deliver what is due now, then exit.")
def worker(once):
    svc = services()
    if once:
        while apply_received(svc.sessions, TOPICS):
            pass
        drain(svc.sessions, pushers_for(svc), retry_policy(svc))
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        run_worker(svc, stop)
    except KeyboardInterrupt:
        stop.set()


@click.group("outbox", help="Messages to shops.")
def outbox_group():
    pass


@outbox_group.command("list", help="Dead-lettered (or --status) messages with their last error.")
@click.option("--status", default=OutboxStatus.DEAD.value, type=click.Choice([status.value for status in OutboxStatus]))
@click.option("--shop", "shop_id", type=int)
@click.option("--json", "as_json", is_flag=True)
def outbox_list(status, shop_id, as_json):
    with usecases.reading(services().sessions) as session:
        query = select(OutboxMessage).where(OutboxMessage.status == status).order_by(OutboxMessage.id)
        if shop_id is not None:
            query = query.where(OutboxMessage.shop_id == shop_id)
        rows = [
            {
                "id": m.id,
                "shop_id": m.shop_id,
                "kind": m.kind,
                "attempts": m.attempts,
                "error": m.last_error,
                "payload": m.payload,
            }
            for m in session.execute(query.limit(500)).scalars()
        ]
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    for row in rows:
        click.echo(f"#{row['id']} shop {row['shop_id']} {row['kind']} attempts={row['attempts']}: {row['error']}")
    click.echo(f"{len(rows)} {status} message(s)")


@outbox_group.command("retry", help="Queue dead-lettered messages again (all, one shop's, or one).")
@click.option("--shop", "shop_id", type=int)
@click.option("--id", "message_id", type=int)
def outbox_retry(shop_id, message_id):
    click.echo(f"{retry_dead(services().sessions, shop_id, message_id)} message(s) queued again")


@click.group("inbox", help="Stored webhook deliveries.")
def inbox_group():
    pass


@inbox_group.command("recover", help="Apply deliveries left `received` (a process died before applying them).")
@click.option("--older-than", type=click.IntRange(min=0), default=60, show_default=True, help="Seconds.")
def inbox_recover(older_than):
    applied = recover_stalled(services().sessions, TOPICS, timedelta(seconds=older_than))
    click.echo(f"deliveries applied: {applied}")


@click.command(
    "prune",
    help="Delete webhook deliveries applied and outbox messages delivered before the last "
    "--days days (failed, dead or unfinished ones are kept; the ledger is never pruned), and empty the "
    "bodies of deliveries applied before each shop's webhook_body_retention_days.",
)
@click.option("--days", type=click.IntRange(min=MINIMUM_AGE.days), default=90, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def prune_command(days, as_json):
    pruned = prune(services().sessions, timedelta(days=days))
    emit(
        {
            "deliveries_deleted": pruned.deliveries,
            "messages_deleted": pruned.messages,
            "bodies_emptied": pruned.bodies_dropped,
        },
        as_json,
    )


@click.command(
    "expire",
    help="Expire promotional credit past its date, release stale holds and give back the wallet "
    "part of failed orders left unpaid for the shop's failed_order_release_days (one transaction per lot "
    "or order; safe to repeat).",
)
@click.option(
    "--remind-days",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Also note credit expiring within this many days (once per lot); 0 for none.",
)
@click.option("--json", "as_json", is_flag=True)
def expire_command(remind_days, as_json):
    svc = services()
    reminded = remind_before_expiry(svc.sessions, remind_days) if remind_days else 0
    emit(
        {
            "lots_expired": expire_credit(svc.sessions),
            "holds_released": release_stale_holds(svc.sessions),
            "reminders": reminded,
            "failed_orders_released": release_abandoned_failed_orders(svc.sessions),
        },
        as_json,
    )


@click.command(
    "demo", help="Play a short story against a simulated WooCommerce or Shopify shop (127.0.0.1 only) and print it."
)
@click.option("--database-url", help="Use this database (migrated first) instead of the configured one.")
@click.option(
    "--platform",
    type=click.Choice(list(PLATFORMS)),
    default="woocommerce",
    show_default=True,
    help="The simulated shop (Shopify: the wallet mirrored to its native store credit).",
)
def demo_command(database_url, platform):
    from flask import current_app

    try:  # the simulators are dev-only: in a source checkout (`make run`), not in the installed package
        from simulator.demo import DemoFailed, run_demo
    except ImportError as exc:
        raise click.ClickException("the demo runs from a source checkout: run `make run` there first") from exc

    try:
        ok = run_demo(current_app._get_current_object(), database_url=database_url, echo=click.echo, platform=platform)
    except (DemoFailed, DomainError, TemporaryFailure, PermanentFailure) as exc:
        raise click.ClickException(f"the demo failed: {exc}") from exc
    if not ok:
        raise SystemExit(1)


@click.group("secrets", help="Shop secrets encrypted at rest with FERNET_KEYS.")
def secrets_group():
    pass


@secrets_group.command(
    "rotate",
    help="Re-encrypt every shop secret with the newest (first) key in FERNET_KEYS, then "
    "check that it alone decrypts them all (safe to repeat; see deploy/README.md).",
)
@click.option("--json", "as_json", is_flag=True)
def secrets_rotate(as_json):
    from bridge.security import SecretBox
    from bridge.usecases.secret_rotation import RotationFailed, rotate_shop_secrets, shops_not_on

    svc = services()
    try:
        rotated = rotate_shop_secrets(svc.sessions, svc.secrets)
    except RotationFailed as exc:
        raise click.ClickException(str(exc)) from exc
    stale = shops_not_on(svc.sessions, SecretBox(svc.settings.fernet_keys[:1]))
    emit(
        {"shops_rotated": rotated, "keys_configured": len(svc.settings.fernet_keys), "shops_not_on_newest_key": stale},
        as_json,
    )
    if stale:
        click.echo(
            "error: some shops hold values the newest key cannot decrypt (written by a process still on the "
            "old FERNET_KEYS?): restart every process, run this again, keep the old key",
            err=True,
        )
        raise SystemExit(1)


COMMANDS = (
    db_group,
    shop_group,
    user_group,
    ledger_group,
    serve,
    worker,
    outbox_group,
    inbox_group,
    sync_command,
    expire_command,
    prune_command,
    secrets_group,
    demo_command,
)


def refusals_as_errors(callback):
    """A refusal (unknown shop, bad value, a shop or database out of reach) ends the command with one line on
    stderr and exit status 1; a traceback is for bugs."""

    @functools.wraps(callback)
    def run(*args, **kwargs):
        try:
            return callback(*args, **kwargs)
        except (DomainError, TemporaryFailure, PermanentFailure) as exc:
            raise click.ClickException(str(exc)) from exc
        except OperationalError as exc:
            raise click.ClickException(
                f"the database cannot be used ({exc.orig}): is it running, and migrated (`wallet-bridge db upgrade`)?"
            ) from exc

    return run


def _wrap_every_command(command: click.Command) -> None:
    if isinstance(command, click.Group):
        for subcommand in command.commands.values():
            _wrap_every_command(subcommand)
    elif command.callback is not None:
        command.callback = refusals_as_errors(command.callback)


for _command in COMMANDS:  # once, at import: the commands are shared by every app the process creates
    _wrap_every_command(_command)


def create_cli_app(settings: Settings | None = None) -> Flask:
    """The app with the bridge's commands on its `cli` (the web app itself has none)."""
    app = create_app(settings)
    for command in COMMANDS:
        app.cli.add_command(command)
    return app


class BridgeGroup(FlaskGroup):
    """Flask's group (it builds the app and runs each command in its context) without Flask's own options (--app,
    --env-file, --debug: the bridge has one app and reads its settings from the environment)."""

    def __init__(self, create_app):
        super().__init__(
            create_app=create_app,
            add_default_commands=False,
            add_version_option=False,
            help="Wallet Bridge: a store-credit wallet beside WooCommerce and Shopify shops. `serve` runs "
            "it; `shop create` adds a shop; `COMMAND --help` tells more.",
        )
        self.params = [param for param in self.params if param.name not in ("env_file", "app", "debug")]


def main() -> None:
    BridgeGroup(create_cli_app)(prog_name="wallet-bridge")
