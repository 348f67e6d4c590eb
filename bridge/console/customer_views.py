"""Customers: search and list; one customer's wallet, statement, manual credit/debit, lock and unlock."""

from __future__ import annotations

import re
import secrets
from datetime import date

from flask import flash, g, redirect, render_template, request, url_for
from marshmallow import ValidationError

from bridge import audit
from bridge.accounts import wallet_account
from bridge.console import console
from bridge.console.access import shop_view, who
from bridge.console.forms import Form, Invalid, first_message, parse_money, query_number, show_money, text
from bridge.console.queries import SORTS, CustomerFilters, customer_page, statement_page
from bridge.errors import IdempotencyConflict, InsufficientFunds, ValidationFailed, WalletLocked
from bridge.ledger import TRANSACTION_KINDS, Actor
from bridge.models import Shop
from bridge.money import format_amount
from bridge.reports import PERIOD_DAY
from bridge.wallets import adjust_wallet, require_customer, wallet_summary
from bridge.web.api import AdjustmentIn
from bridge.web.runtime import transaction

TOKEN_RE = re.compile(r"^[0-9a-f]{32}$")
MAX_EXPIRING_DAYS = 3660


@console.get("/shops/<int:shop_id>/customers")
@shop_view
def customers(shop_id: int):
    form, filters = _customer_filters(request.args)
    sort = request.args.get("sort") if request.args.get("sort") in SORTS else "last_movement"
    descending = request.args.get("dir", "desc") != "asc"
    page_number = query_number(request.args.get("page")) or 1
    with transaction() as db:
        page = customer_page(db, g.shop, filters, sort=sort, descending=descending, page=page_number)
    status = 422 if form.errors else 404 if page.past_end else 200
    return render_template("customers.html", shop=g.shop, page=page, q=filters.q, sort=sort, descending=descending,
                           filters=form), status  # fmt: skip


def _customer_filters(args) -> tuple[Form, CustomerFilters]:
    """The list's search and filters; a number of days that is not one is said on the form and not applied."""
    form = Form(values={
        "q": (args.get("q") or "").strip()[:200], "locked": args.get("locked") == "1",
        "balance": args.get("balance") == "1", "expiring": (args.get("expiring") or "").strip()[:10],
    })  # fmt: skip
    days = None
    if form.values["expiring"]:
        days = query_number(form.values["expiring"])
        if days is None or not 1 <= days <= MAX_EXPIRING_DAYS:
            form.errors["expiring"] = f"Enter a number of days from 1 to {MAX_EXPIRING_DAYS}."
            days = None
    values = form.values
    return form, CustomerFilters(values["q"], values["locked"], values["balance"], days)


def _date_arg(name: str, form: Form) -> date | None:
    raw = (request.args.get(name) or "").strip()
    form.values[name] = raw
    if not raw:
        return None
    try:
        return PERIOD_DAY(date.fromisoformat(raw))
    except ValueError:
        form.errors[name] = "Enter a date as YYYY-MM-DD."
    except ValidationError as exc:
        form.errors[name] = first_message(exc.messages)
    return None


def _customer_page(shop_id: int, external_id: str, *, adjust: Form | None = None, status: int = 200):
    filters = Form()
    kind = request.args.get("kind") or None
    if kind and kind not in TRANSACTION_KINDS:
        filters.errors["kind"] = "Unknown kind."
        kind = None
    filters.values["kind"] = kind or ""
    start, end = _date_arg("start", filters), _date_arg("end", filters)
    if start and end and start > end:
        filters.errors["end"] = "Must not be before the start."
        end = None
    before = query_number(request.args.get("before"))
    with transaction() as db:
        shop = db.get(Shop, shop_id)
        customer = require_customer(db, shop, external_id)
        summary = wallet_summary(db, shop, external_id)
        lines, older = statement_page(db, shop, customer, kind=kind, start=start, end=end, before=before)
    adjust = adjust or Form(values={"direction": "credit", "token": secrets.token_hex(16)})
    return render_template(
        "customer.html", shop=shop, customer=customer, summary=summary, lines=lines, older=older, filters=filters,
        kinds=sorted(TRANSACTION_KINDS), adjust=adjust, admin=_admin_links(shop),
    ), status  # fmt: skip


def _admin_links(shop: Shop) -> dict[str, str]:
    """URL patterns of the shop's own admin for orders and customers ({id} is replaced)."""
    base = shop.url.rstrip("/")
    if shop.platform == "shopify":
        return {"order": f"{base}/admin/orders/{{id}}", "customer": f"{base}/admin/customers/{{id}}"}
    return {"order": f"{base}/wp-admin/post.php?post={{id}}&action=edit",
            "customer": f"{base}/wp-admin/user-edit.php?user_id={{id}}"}  # fmt: skip


@console.get("/shops/<int:shop_id>/customers/<external_id>")
@shop_view
def customer(shop_id: int, external_id: str):
    return _customer_page(shop_id, external_id)


def _actor() -> Actor:
    return Actor("merchant", g.user.email[:120])


@console.post("/shops/<int:shop_id>/customers/<external_id>/adjust")
@shop_view
def adjust(shop_id: int, external_id: str):
    """A manual credit or debit. The form carries a one-time token, used as the idempotency key: sending
    the same form twice (a double click, a reload, the back button) moves the money once."""
    shop = g.shop
    form = Form(values={
        "direction": text(request.form, "direction", 10), "amount": text(request.form, "amount", 30),
        "reason": text(request.form, "reason", 600), "token": text(request.form, "token", 64),
    })  # fmt: skip
    values = form.values
    if not TOKEN_RE.match(values["token"]):
        form.errors["_form"] = "This form is incomplete. Reload the page and try again."
        values["token"] = secrets.token_hex(16)
    amount = None
    try:
        amount = parse_money(values["amount"], shop.currency)
    except Invalid as exc:
        form.errors["amount"] = str(exc)
    if amount is not None:
        try:  # the API's rules for an adjustment, word for word
            AdjustmentIn().load({"direction": values["direction"], "amount": amount, "reason": values["reason"]})
        except ValidationError as exc:
            for name, messages in exc.messages.items():
                message = first_message(messages)
                if name == "amount" and message.startswith("Must be"):
                    message = f"Enter an amount between {show_money(1, shop.currency)} and " \
                              f"{show_money(10**12, shop.currency)}."  # fmt: skip
                if name == "reason" and values["reason"] == "":
                    message = "Say why: the reason is shown on the customer's statement."
                form.errors[name] = message
    status = 422
    if form.ok:
        posted = None
        try:
            with transaction() as db:
                fresh = db.get(Shop, shop_id)
                require_customer(db, fresh, external_id)
                posted = adjust_wallet(
                    db, fresh, external_id, direction=values["direction"], amount=amount, reason=values["reason"],
                    idempotency_key=f"console:{g.user.id}:{values['token']}", actor=_actor(),
                )  # fmt: skip
                balance = wallet_summary(db, fresh, external_id)["balance"]
                if not posted.replayed:
                    signed = amount if values["direction"] == "credit" else -amount
                    audit.record(db, who(), f"wallet.{values['direction']}", shop_id=shop_id, target=external_id,
                                 field="balance", old=format_amount(balance - signed, shop.currency),
                                 new=format_amount(balance, shop.currency))  # fmt: skip
        except InsufficientFunds:
            with transaction() as db:
                available = wallet_summary(db, db.get(Shop, shop_id), external_id)["available"]
            form.errors["amount"] = (f"Refused: this would overdraw the wallet. Available: "
                                     f"{format_amount(max(available, 0), shop.currency)}.")  # fmt: skip
            status = 409
        except WalletLocked:
            form.errors["_form"] = "This wallet is locked: unlock it before debiting it."
        except IdempotencyConflict:
            form.errors["_form"] = ("This form was already used for a different movement. Check the statement "
                                    "below, then fill in this fresh form if something is still missing.")  # fmt: skip
            values["token"] = secrets.token_hex(16)
        except ValidationFailed as exc:
            form.errors.update(exc.fields or {"_form": exc.message})
    if not form.ok:
        return _customer_page(shop_id, external_id, adjust=form, status=status)
    verb = "Credited" if values["direction"] == "credit" else "Debited"
    if posted.replayed:
        flash("This form had already been sent: the movement was recorded once, not twice.", "info")
    else:
        flash(f"{verb} {format_amount(amount, shop.currency)}. New balance: {format_amount(balance, shop.currency)}.",
              "success")  # fmt: skip
    return redirect(url_for("console.customer", shop_id=shop_id, external_id=external_id))


@console.post("/shops/<int:shop_id>/customers/<external_id>/lock")
@shop_view
def lock(shop_id: int, external_id: str):
    """Lock or unlock the wallet: a locked wallet cannot pay, top up or withdraw."""
    want = request.form.get("action")
    if want not in ("lock", "unlock"):
        flash("Choose lock or unlock.", "error")
        return redirect(url_for("console.customer", shop_id=shop_id, external_id=external_id))
    with transaction() as db:
        shop = db.get(Shop, shop_id)
        customer = require_customer(db, shop, external_id)
        wallet = wallet_account(db, customer, shop.currency)
        before = bool(wallet.locked)
        wallet.locked = want == "lock"
        if before != wallet.locked:
            state = {False: "unlocked", True: "locked"}
            audit.record(db, who(), f"wallet.{want}", shop_id=shop_id, target=external_id, field="locked",
                         old=state[before], new=state[wallet.locked])  # fmt: skip
    if before == (want == "lock"):
        flash(f"The wallet was already {want}ed.", "info")
    else:
        flash(f"Wallet {want}ed.", "success")
    return redirect(url_for("console.customer", shop_id=shop_id, external_id=external_id))
