"""Exports: CSV files streamed row by row as the database gives them (a customer's statement, a period's
movements, its journal, the balances at a date), and the liability at a date."""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator

from flask import Response, g, render_template, request, stream_with_context
from marshmallow import Schema, ValidationError

from bridge import exports, usecases
from bridge.ledger import TRANSACTION_KINDS
from bridge.models import Shop
from bridge.reports import FIRST_DAY, local_today, shop_timezone
from bridge.surfaces.console import console, render_error
from bridge.surfaces.console.access import shop_view
from bridge.surfaces.console.forms import Form, first_message
from bridge.surfaces.console.spreadsheet import Writer
from bridge.surfaces.web.runtime import reading, services
from bridge.wallets import require_customer

CHUNK = 64 * 1024


def _dates(schema: Schema, names: tuple[str, ...], defaults: dict[str, str]) -> tuple[Form, dict | None]:
    raw = {name: (request.args.get(name) or defaults[name]).strip() for name in names}  # whole: the schema checks it
    form = Form(values=dict(raw))
    try:
        return form, schema.load(raw)
    except ValidationError as exc:
        for name, messages in exc.messages.items():
            message = first_message(messages)
            form.errors[name] = "Enter a date as YYYY-MM-DD." if message == "Not a valid date." else message
        return form, None


def _period(tz: str) -> tuple[Form, dict | None]:
    """The period asked for; by default the whole history until today."""
    today = local_today(tz).isoformat()
    return _dates(exports.PeriodSchema(), ("start", "end"), {"start": FIRST_DAY.isoformat(), "end": today})


def _day(tz: str) -> tuple[Form, dict | None]:
    return _dates(exports.DaySchema(), ("date",), {"date": local_today(tz).isoformat()})


def _invalid(form: Form):
    return render_error(422, "Invalid filter", "; ".join(f"{name}: {message}" for name, message in form.errors.items()))


def _csv_lines(header: list[str], rows: Iterable[list]) -> Iterator[str]:
    """The CSV text in chunks of about CHUNK characters (one write per row would be a million small writes); no cell
    a spreadsheet would run as a formula (spreadsheet.py: names and reasons are typed by others)."""
    buffer = io.StringIO()
    writer = Writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow(row)
        if buffer.tell() >= CHUNK:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _streamed_csv(filename: str, header: list[str], rows_of) -> Response:
    """A CSV response whose rows are read while it is sent, from one snapshot of the database: `rows_of(session)`
    yields them."""

    def generate() -> Iterator[str]:
        with usecases.snapshot(services().sessions) as db:
            yield from _csv_lines(header, rows_of(db))

    return Response(
        stream_with_context(generate()),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _slug(shop: Shop) -> str:
    return re.sub(r"[^a-z0-9]+", "-", shop.name.lower()).strip("-") or f"shop-{shop.id}"


@console.get("/shops/<int:shop_id>/exports")
@shop_view
def exports_page(shop_id: int):
    tz = shop_timezone(g.shop.settings)
    period_form, _ = _period(tz)
    day_form, day = _day(tz)
    liability = None
    if day is not None:
        with usecases.snapshot(services().sessions) as db:
            liability = exports.liability_at(db, g.shop, day["date"], tz)
    page = render_template("exports.html", shop=g.shop, period=period_form, day=day_form, liability=liability, tz=tz)
    return page, (200 if day is not None else 422)


@console.get("/shops/<int:shop_id>/customers/<external_id>/statement.csv")
@shop_view
def statement_csv(shop_id: int, external_id: str):
    tz = shop_timezone(g.shop.settings)
    form, period = _period(tz)
    if period is None:
        return _invalid(form)
    kind = request.args.get("kind") or None
    if kind is not None and kind not in TRANSACTION_KINDS:
        form.errors["kind"] = "Unknown kind."
        return _invalid(form)
    with reading() as db:
        customer = require_customer(db, g.shop, external_id)
    customer_part = re.sub(r"[^A-Za-z0-9]+", "-", external_id)
    name = f"{_slug(g.shop)}-customer-{customer_part}-{kind + '-' if kind else ''}{period['start']}-{period['end']}.csv"
    return _streamed_csv(
        name,
        exports.STATEMENT_HEADER,
        lambda db: exports.statement_rows(db, g.shop, customer, period["start"], period["end"], tz, kind),
    )


@console.get("/shops/<int:shop_id>/exports/<name>.csv")
@shop_view
def export_csv(shop_id: int, name: str):
    tz = shop_timezone(g.shop.settings)
    if name in ("transactions", "journal"):
        form, period = _period(tz)
        if period is None:
            return _invalid(form)
        header, rows = {
            "transactions": (exports.TRANSACTIONS_HEADER, exports.transaction_rows),
            "journal": (exports.JOURNAL_HEADER, exports.journal_rows),
        }[name]
        filename = f"{_slug(g.shop)}-{name}-{period['start']}-{period['end']}.csv"
        return _streamed_csv(filename, header, lambda db: rows(db, shop_id, period["start"], period["end"], tz))
    if name in ("balances", "liability"):
        form, day = _day(tz)
        if day is None:
            return _invalid(form)
        filename = f"{_slug(g.shop)}-{name}-{day['date']}.csv"
        if name == "balances":
            return _streamed_csv(
                filename, exports.BALANCES_HEADER, lambda db: exports.balance_rows(db, shop_id, day["date"], tz)
            )
        return _streamed_csv(
            filename, exports.LIABILITY_HEADER, lambda db: exports.liability_rows(db, g.shop, day["date"], tz)
        )
    return render_error(404, "Page not found", "There is no such export.")
