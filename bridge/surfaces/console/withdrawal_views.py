"""Withdrawal requests: the queue of customers' requests waiting for the merchant, approved or declined here;
each decision is written to the audit trail."""

from __future__ import annotations

from collections.abc import Callable

from flask import flash, g, redirect, render_template, request, url_for
from sqlalchemy.orm import Session

from bridge import audit
from bridge.errors import DomainError
from bridge.ledger import Actor
from bridge.models import Customer
from bridge.money import format_amount
from bridge.settings_schema import load_settings
from bridge.surfaces.console import console
from bridge.surfaces.console.access import shop_view, who
from bridge.surfaces.console.forms import text
from bridge.surfaces.web.runtime import transaction
from bridge.withdrawals import Withdrawal, approve_withdrawal, decline_withdrawal, withdrawal_requests

RECENT = 20  # decided requests listed under the queue


@console.get("/shops/<int:shop_id>/withdrawals")
@shop_view
def withdrawals(shop_id: int):
    with transaction() as db:
        pending = withdrawal_requests(db, g.shop, "pending")
        decided = withdrawal_requests(db, g.shop, "approved", RECENT) + withdrawal_requests(db, g.shop, "declined",
                                                                                              RECENT)  # fmt: skip
    decided.sort(key=lambda row: row[0].decided_at, reverse=True)
    return render_template("withdrawals.html", shop=g.shop, pending=pending, decided=decided[:RECENT],
                           settings=load_settings(g.shop.settings))  # fmt: skip


@console.post("/shops/<int:shop_id>/withdrawals/<int:request_id>/approve")
@shop_view
def approve_withdrawal_request(shop_id: int, request_id: int):
    return _decide(shop_id, "approve", lambda db, actor: approve_withdrawal(db, g.shop, request_id, actor),
                   "Approved: {amount} is refunded to the card that paid the top-up.")  # fmt: skip


@console.post("/shops/<int:shop_id>/withdrawals/<int:request_id>/decline")
@shop_view
def decline_withdrawal_request(shop_id: int, request_id: int):
    reason = text(request.form, "reason", 300)
    if not reason:
        flash("Say why you decline the request: the customer is told.", "error")
        return redirect(url_for("console.withdrawals", shop_id=shop_id))
    reason = reason if reason.endswith((".", "!", "?")) else f"{reason}."
    return _decide(shop_id, "decline", lambda db, actor: decline_withdrawal(db, g.shop, request_id, reason, actor),
                   "Declined: {amount} is free again in the customer's wallet, and they are told why.")  # fmt: skip


def _decide(shop_id: int, verb: str, decide: Callable[[Session, Actor], Withdrawal], done: str):
    """Apply the decision, audit it once (not when it was already made), and say what happened."""
    try:
        with transaction() as db:
            made = decide(db, Actor("merchant", g.user.email[:120]))
            asked = made.request
            if not made.replayed:
                customer = db.get(Customer, asked.customer_id)
                audit.record(db, who(), f"withdrawal.{verb}", shop_id=shop_id, target=customer.external_id,
                             field=f"request #{asked.id}", old="pending",
                             new=f"{asked.status}: {format_amount(asked.amount, asked.currency)}"
                                 + (f" ({asked.decline_reason})" if asked.decline_reason else ""))  # fmt: skip
    except DomainError as exc:
        flash(f"Nothing was done: {exc.message}.", "error")
    else:
        amount = format_amount(asked.amount, asked.currency)
        flash(f"This request was already {asked.status}." if made.replayed else done.format(amount=amount),
              "info" if made.replayed else "success")  # fmt: skip
    return redirect(url_for("console.withdrawals", shop_id=shop_id))
