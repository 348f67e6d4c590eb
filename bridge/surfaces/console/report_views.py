"""Reports: a period and a granularity; each table with its chart and its CSV file."""

from __future__ import annotations

import io
import re
from datetime import date, timedelta

from flask import Response, g, render_template, request
from marshmallow import ValidationError

from bridge import usecases
from bridge.money import POINTS, exponent, format_amount, to_decimal_string
from bridge.reports import (
    TABLES,
    ReconciliationLine,
    Report,
    ReportPeriodSchema,
    build_report,
    local_today,
    report_table,
    shop_timezone,
)
from bridge.surfaces.console import console, render_error
from bridge.surfaces.console.access import shop_view
from bridge.surfaces.console.charts import NARROW, Series, bar_chart, line_chart
from bridge.surfaces.console.filters import amount as show_amount
from bridge.surfaces.console.forms import Form, first_message
from bridge.surfaces.console.spreadsheet import Writer
from bridge.surfaces.web.runtime import services


def presets(today: date) -> list[tuple[str, dict]]:
    first_of_month = today.replace(day=1)
    last_month_end = first_of_month - timedelta(days=1)
    return [
        ("Last 7 days", {"start": today - timedelta(days=6), "end": today, "granularity": "day"}),
        ("Last 30 days", {"start": today - timedelta(days=29), "end": today, "granularity": "day"}),
        ("This month", {"start": first_of_month, "end": today, "granularity": "day"}),
        ("Last month", {"start": last_month_end.replace(day=1), "end": last_month_end, "granularity": "day"}),
        ("Last 13 weeks", {"start": today - timedelta(days=7 * 13 - 1), "end": today, "granularity": "week"}),
        ("Last 12 months", {"start": _months_before(first_of_month, 11), "end": today, "granularity": "month"}),
    ]


def _months_before(first_of_month: date, months: int) -> date:
    """The first of the month `months` before: this month and the 11 before make 12 bars, whatever the date."""
    index = first_of_month.year * 12 + first_of_month.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


def _period(args, tz: str) -> tuple[Form, dict | None]:
    """The period asked for, in days of the shop's time zone (the default: its last 30 days)."""
    today = local_today(tz)
    raw = {
        "start": (args.get("start") or (today - timedelta(days=29)).isoformat()).strip(),
        "end": (args.get("end") or today.isoformat()).strip(),
        "granularity": (args.get("granularity") or "day").strip(),
    }
    form = Form(values=dict(raw))
    try:
        return form, ReportPeriodSchema(tz=tz).load(raw)
    except ValidationError as exc:
        for name, messages in exc.messages.items():
            message = first_message(messages)
            form.errors[name] = "Enter a date as YYYY-MM-DD." if message == "Not a valid date." else message
        return form, None


def _report(period: dict, tz: str) -> Report:
    with usecases.snapshot(services().sessions) as db:
        return build_report(
            db, g.shop.id, g.shop.currency, period["start"], period["end"], period["granularity"], tz=tz
        )


def _label(day: date, granularity: str) -> str:
    return day.strftime("%b %Y") if granularity == "month" else day.strftime("%d %b")


def chart_series(report: Report) -> dict[str, tuple[list[str], list[Series]]]:
    """Each chart's labels and series. The wallet, points and reconciliation charts add up to the reconciliation:
    every kind of movement counts, expiries included."""
    wallet, points, usage, liability = (
        report_table(report, name) for name in ("wallet", "points", "usage", "liability")
    )
    starts = [_label(b.bucket.start, report.granularity) for b in report.buckets]
    ends = [_label(b.bucket.end, report.granularity) for b in report.buckets]

    def column(table, index):
        return [row[index] for row in table.rows]

    expiries = [ReconciliationLine("expiry", 0, report.money.expiries)] if report.money.expiries else []
    sources = [*report.money.lines, *expiries]
    return {
        "wallet": (starts, [Series("Credited", column(wallet, 1)), Series("Debited", column(wallet, 3))]),
        "points": (starts, [Series("Credited", column(points, 1)), Series("Debited", column(points, 2))]),
        "usage": (starts, [Series("Usage rate", column(usage, 3))]),
        "liability": (ends, [Series("Owed to customers", column(liability, 1))]),
        "reconciliation": (
            [line.kind.replace("_", " ") for line in sources],
            [
                Series("Credits", [line.credits for line in sources]),
                Series("Debits", [line.debits for line in sources]),
            ],
        ),
    }


def _charts(report: Report) -> dict:
    currency = report.currency

    def money(value: float) -> str:
        return format_amount(int(value), currency)

    def count(value: float) -> str:
        return f"{int(value):,}"

    series = chart_series(report)
    return {
        "wallet": bar_chart(*series["wallet"], title="Wallet money credited and debited by period", fmt=money),
        "points": bar_chart(*series["points"], title="Points credited and debited by period", fmt=count, width=NARROW),
        "usage": bar_chart(
            *series["usage"],
            title="Share of orders paid by wallet",
            fmt=lambda v: f"{v * 100:.0f} %",
            integer=False,
            width=NARROW,
        ),
        "liability": line_chart(
            *series["liability"], title="Outstanding liability", fmt=money, unit=10 ** exponent(currency)
        ),
        "reconciliation": bar_chart(*series["reconciliation"], title="Money credited and debited by source", fmt=money),
    }


@console.get("/shops/<int:shop_id>/reports")
@shop_view
def reports(shop_id: int):
    tz = shop_timezone(g.shop.settings)
    form, period = _period(request.args, tz)
    if period is None:
        page = render_template("reports.html", shop=g.shop, form=form, report=None, presets=presets(local_today(tz)))
        return page, 422
    report = _report(period, tz)
    tables = {name: report_table(report, name) for name in TABLES}
    return render_template(
        "reports.html",
        shop=g.shop,
        form=form,
        report=report,
        tables=tables,
        charts=_charts(report),
        presets=presets(local_today(tz)),
        period=period,
    )


def csv_value(value, kind: str, unit: str) -> str:
    if value is None:
        return ""
    if kind == "date":
        return value.isoformat()
    if kind == "rate":
        return f"{value:.4f}"
    if kind == "money" or (kind == "amount" and unit != POINTS):
        return to_decimal_string(int(value), unit)
    return str(value)


def table_csv(report: Report, name: str) -> str:
    table = report_table(report, name)
    out = io.StringIO()
    writer = Writer(out)
    writer.writerow([column.name for column in table.columns])
    for row in table.rows:
        unit = row[0] if name == "reconciliation" else report.currency
        writer.writerow([csv_value(v, c.kind, unit) for v, c in zip(row, table.columns, strict=True)])
    return out.getvalue()


@console.get("/shops/<int:shop_id>/reports/<name>.csv")
@shop_view
def report_csv(shop_id: int, name: str):
    if name not in TABLES:
        return render_error(404, "Page not found", "There is no such report table.")
    tz = shop_timezone(g.shop.settings)
    form, period = _period(request.args, tz)
    if period is None:
        problems = "; ".join(f"{k}: {v}" for k, v in form.errors.items())
        return render_error(422, "Invalid period", problems)
    report = _report(period, tz)
    slug = re.sub(r"[^a-z0-9]+", "-", g.shop.name.lower()).strip("-") or f"shop-{shop_id}"
    filename = f"{slug}-{name}-{report.start}-{report.end}-{report.granularity}.csv"
    return Response(
        table_csv(report, name),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def cell(value, kind: str, unit: str) -> str:
    """A table cell on the page."""
    if value is None:
        return "—" if kind == "rate" else ""
    if kind == "date":
        return value.isoformat()
    if kind == "rate":
        return f"{value * 100:.1f} %"
    if kind == "money":
        return format_amount(int(value), unit)
    if kind == "points":
        return format_amount(int(value), POINTS)
    if kind == "amount":
        return show_amount(int(value), unit)
    return f"{value:,}" if isinstance(value, int) else str(value)


@console.app_template_global()
def report_cell(value, kind: str, unit: str) -> str:
    return cell(value, kind, unit)
