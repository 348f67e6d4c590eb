"""Withdrawal requests: the queue of customers' requests waiting for the merchant, approved or declined here;
each decision is written to the audit trail."""

from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for

from bridge.errors import DomainError
from bridge.money import format_amount
from bridge.settings_schema import ShopSettings
from bridge.surfaces.console import console
from bridge.surfaces.console.access import shop_view, who
from bridge.surfaces.console.forms import query_number, typed
from bridge.surfaces.web.runtime import reading, services
from bridge.usecases import wallets
from bridge.withdrawals import waiting_requests, withdrawal_requests

DECLINE_REASON_LENGTH = 300  # as the form's maxlength; the customer is told the reason whole, never cut
RECENT = 20  # decided requests listed under the queue
QUEUE_PAGE = 100  # waiting requests listed at a time, oldest first


@console.get("/shops/<int:shop_id>/withdrawals")
@shop_view
def withdrawals(shop_id: int):
    after = query_number(request.args.get("after")) or 0
    with reading() as db:
        waiting = waiting_requests(db, g.shop)
        pending = withdrawal_requests(db, g.shop, "pending", QUEUE_PAGE + 1, after)
        decided = withdrawal_requests(db, g.shop, "approved", RECENT) + withdrawal_requests(
            db, g.shop, "declined", RECENT
        )
    decided.sort(key=lambda row: row[0].decided_at, reverse=True)
    return render_template(
        "withdrawals.html",
        shop=g.shop,
        waiting=waiting,
        pending=pending[:QUEUE_PAGE],
        later=pending[QUEUE_PAGE - 1][0].id if len(pending) > QUEUE_PAGE else None,
        decided=decided[:RECENT],
        settings=ShopSettings.load(g.shop.settings),
    )


@console.post("/shops/<int:shop_id>/withdrawals/<int:request_id>/approve")
@shop_view
def approve_withdrawal_request(shop_id: int, request_id: int):
    return _decide(
        shop_id, request_id, "Approved: {amount} is refunded to the card that paid the top-up.", approve=True
    )


@console.post("/shops/<int:shop_id>/withdrawals/<int:request_id>/decline")
@shop_view
def decline_withdrawal_request(shop_id: int, request_id: int):
    reason = typed(request.form, "reason")
    if not reason or len(reason) > DECLINE_REASON_LENGTH:
        flash(f"Say why you decline, in at most {DECLINE_REASON_LENGTH} characters: the customer is told.", "error")
        return redirect(url_for("console.withdrawals", shop_id=shop_id))
    reason = reason if reason.endswith((".", "!", "?")) else f"{reason}."
    return _decide(
        shop_id,
        request_id,
        "Declined: {amount} is free again in the customer's wallet, and they are told why.",
        approve=False,
        reason=reason,
    )


def _decide(shop_id: int, request_id: int, done: str, **decision):
    """Apply the decision (audited once, not when it was already made), and say what happened."""
    try:
        made = wallets.decide_withdrawal(services().sessions, shop_id, request_id, who(), **decision)
        asked = made.request
    except DomainError as exc:
        flash(f"Nothing was done: {exc.message}.", "error")
    else:
        amount = format_amount(asked.amount, asked.currency)
        flash(
            f"This request was already {asked.status}." if made.replayed else done.format(amount=amount),
            "info" if made.replayed else "success",
        )
    return redirect(url_for("console.withdrawals", shop_id=shop_id))
