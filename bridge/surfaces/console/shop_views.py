"""A shop's overview, its audit trail, its team, and its operations (failed deliveries, dead letters)."""

from __future__ import annotations

from datetime import timedelta

from flask import abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select

from bridge import audit, usecases
from bridge.errors import ValidationFailed
from bridge.models import InboxDelivery, OutboxMessage
from bridge.money import POINTS, exponent, format_amount
from bridge.reports import SOURCE_KINDS, Report, build_report, local_today, shop_timezone, stored_customer_total
from bridge.states import InboxStatus
from bridge.surfaces.console import console
from bridge.surfaces.console.access import shop_view, who
from bridge.surfaces.console.charts import NARROW, Series, line_chart
from bridge.surfaces.console.forms import Form, email_address, query_number, typed
from bridge.surfaces.console.queries import customer_count, dead_letters, failure_counts, inbox_failures, webhook_health
from bridge.surfaces.console.settings_views import FIELD_LABELS
from bridge.surfaces.platforms import TOPICS
from bridge.surfaces.web.runtime import reading, services
from bridge.usecases import merchants
from bridge.usecases.deliveries import reapply
from bridge.usecases.pushes import retry_dead
from bridge.users import shop_members

# The report's "Wallet payments" and "Refunds and reversals", split by what each movement undoes: a cancelled or
# failed order's wallet payment going back undoes its payment, so "Wallet payments" is what stayed paid (as the
# share of orders paid by wallet beside it, which leaves such orders out) and a reversed refund undoes a refund.
PAYMENT_RETURNS = ("payment_reversal",)
STAYED_PAID = SOURCE_KINDS["payments"] + PAYMENT_RETURNS
REFUNDS = tuple(kind for kind in SOURCE_KINDS["refunds"] if kind not in PAYMENT_RETURNS)


def _net(report: Report, kinds: tuple[str, ...]) -> int:
    """Credited to wallets less debited from them, over the report's period."""
    return sum(bucket.net("money", kinds) for bucket in report.buckets)


@console.get("/shops/<int:shop_id>/")
@shop_view
def overview(shop_id: int):
    shop = g.shop
    tz = shop_timezone(shop.settings)
    today = local_today(tz)  # the shop's last 30 days, in its own time zone
    with usecases.snapshot(services().sessions) as db:
        report = build_report(db, shop.id, shop.currency, today - timedelta(days=29), today, "day", tz=tz)
        owed = stored_customer_total(db, shop.id, shop.currency)
        points = stored_customer_total(db, shop.id, POINTS)
    with reading() as db:
        counts = failure_counts(db, shop.id)
        customers = customer_count(db, shop.id)
        health, last_check = webhook_health(db, shop.id)
        recent = audit.recent(db, shop.id, limit=8)
    chart = customers and line_chart(  # a shop without customers gets a sentence, not a flat line at 0
        [b.bucket.end.strftime("%d %b") for b in report.buckets],
        [Series("Owed to customers", [b.liability for b in report.buckets])],
        title="Owed to customers, last 30 days",
        fmt=lambda v: format_amount(int(v), shop.currency),
        width=NARROW,
        unit=10 ** exponent(shop.currency),
        empty_when_zero=False,
    )
    totals = {
        "deposits": sum(b.deposits.amount for b in report.buckets),
        "payments": -_net(report, STAYED_PAID),
        "returned": _net(report, PAYMENT_RETURNS),
        "refunds": _net(report, REFUNDS),
        "usage": (report.total_wallet_orders / report.total_orders) if report.total_orders else None,
    }
    newest = max((h.last_received_at for h in health if h.last_received_at), default=None)
    return render_template(
        "overview.html",
        shop=shop,
        owed=owed,
        points=points,
        counts=counts,
        customers=customers,
        health=health,
        newest_delivery=newest,
        last_check=last_check,
        recent=recent,
        chart=chart,
        totals=totals,
        labels=FIELD_LABELS,
        connected=shop.consumer_key_enc is not None,
    )


@console.get("/shops/<int:shop_id>/audit")
@shop_view
def audit_trail(shop_id: int):
    with reading() as db:
        events = audit.recent(db, shop_id, limit=51, before_id=query_number(request.args.get("before")))
    older = events[49].id if len(events) > 50 else None
    return render_template("audit.html", shop=g.shop, events=events[:50], older=older, labels=FIELD_LABELS)


# Team -----------------------------------------------------------------------------------------------------


@console.route("/shops/<int:shop_id>/team", methods=["GET", "POST"])
@shop_view
def team(shop_id: int):
    """Who may manage this shop; add someone (a new user, or an existing user of another shop)."""
    form = Form()
    if request.method == "POST":
        email, name = email_address(request.form), typed(request.form, "name")  # checked whole
        password = request.form.get("password") or ""
        form.values.update(email=email, name=name)
        try:
            merchants.add_team_member(services().sessions, shop_id, who(), email=email, name=name, password=password)
        except ValidationFailed as exc:
            form.errors.update(exc.fields or {"_form": exc.message})
        else:
            flash(f"{email} can now manage {g.shop.name}.", "success")
            return redirect(url_for("console.team", shop_id=shop_id))
    with reading() as db:
        members = shop_members(db, shop_id)
    return render_template("team.html", shop=g.shop, members=members, form=form), (422 if form.errors else 200)


@console.post("/shops/<int:shop_id>/team/<int:user_id>/remove")
@shop_view
def remove_member(shop_id: int, user_id: int):
    """Someone leaves the team (an employee who left): they lose access at their next request."""
    try:
        user = merchants.remove_team_member(services().sessions, shop_id, user_id, who())
    except ValidationFailed as exc:
        flash(f"Not removed: {exc.message}.", "error")
        return redirect(url_for("console.team", shop_id=shop_id))
    if user is None:
        abort(404)
    if user_id == g.user.id:
        flash(f"You no longer manage {g.shop.name}.", "success")
        return redirect(url_for("console.home"))
    flash(f"{user.email} can no longer manage {g.shop.name}.", "success")
    return redirect(url_for("console.team", shop_id=shop_id))


# Operations -----------------------------------------------------------------------------------------------


@console.get("/shops/<int:shop_id>/operations")
@shop_view
def operations(shop_id: int):
    with reading() as db:
        failures = inbox_failures(db, shop_id)
        dead = dead_letters(db, shop_id)
        counts = failure_counts(db, shop_id)
    return render_template("operations.html", shop=g.shop, failures=failures, dead=dead, counts=counts)


@console.post("/shops/<int:shop_id>/operations/outbox/<int:message_id>/retry")
@shop_view
def retry_message(shop_id: int, message_id: int):
    with reading() as db:
        message = db.execute(
            select(OutboxMessage).where(OutboxMessage.id == message_id, OutboxMessage.shop_id == shop_id)
        ).scalar_one_or_none()
    if message is None:
        abort(404)
    queued = retry_dead(services().sessions, shop_id, message_id)
    _audit_retry(shop_id, "operations.outbox_retry", f"message {message_id}", queued)
    flash(
        "Message queued again: the worker sends it shortly."
        if queued
        else "This message is not dead-lettered any more (it was already queued again).",
        "success" if queued else "info",
    )
    return redirect(url_for("console.operations", shop_id=shop_id))


@console.post("/shops/<int:shop_id>/operations/outbox/retry-all")
@shop_view
def retry_all(shop_id: int):
    queued = retry_dead(services().sessions, shop_id)
    _audit_retry(shop_id, "operations.outbox_retry", "all dead letters", queued)
    flash(f"{queued} message{'s' if queued != 1 else ''} queued again.", "success" if queued else "info")
    return redirect(url_for("console.operations", shop_id=shop_id))


def _audit_retry(shop_id: int, action: str, target: str, count: int) -> None:
    if count:
        merchants.record(services().sessions, who(), action, shop_id=shop_id, target=target, new=f"{count} queued")


@console.post("/shops/<int:shop_id>/operations/inbox/<int:delivery_id>/retry")
@shop_view
def retry_delivery(shop_id: int, delivery_id: int):
    """Apply a failed delivery again, with the same handler as when it arrived (once the cause is fixed)."""
    with reading() as db:
        delivery = db.execute(
            select(InboxDelivery).where(InboxDelivery.id == delivery_id, InboxDelivery.shop_id == shop_id)
        ).scalar_one_or_none()
    if delivery is None:
        abort(404)
    if delivery.status != InboxStatus.FAILED:
        flash(f"Delivery {delivery_id} is {delivery.status}: nothing to retry.", "info")
        return redirect(url_for("console.operations", shop_id=shop_id))
    outcome = reapply(services().sessions, TOPICS, delivery_id)
    if outcome.status == InboxStatus.FAILED:
        flash(f"Delivery {delivery_id} still fails: {outcome.error}", "error")
    else:
        flash(f"Delivery {delivery_id} {outcome.status}.", "success")
    merchants.record(
        services().sessions,
        who(),
        "operations.inbox_retry",
        shop_id=shop_id,
        target=f"delivery {delivery_id} ({delivery.topic})",
        new=outcome.status,
    )
    return redirect(url_for("console.operations", shop_id=shop_id))
