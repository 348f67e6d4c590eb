"""Customers: search and list; one customer's wallet, statement, manual credit/debit, lock and unlock."""

from __future__ import annotations

import re
import secrets
from datetime import date

from flask import flash, g, redirect, render_template, request, url_for
from marshmallow import ValidationError

from bridge.errors import IdempotencyConflict, InsufficientFunds, ValidationFailed, WalletLocked
from bridge.ledger import TRANSACTION_KINDS, Actor
from bridge.models import Shop
from bridge.money import format_amount
from bridge.reports import PERIOD_DAY
from bridge.statement_links import NOTE_LINK_LIFETIME_SECONDS
from bridge.surfaces.console import console
from bridge.surfaces.console.access import shop_view, who
from bridge.surfaces.console.filters import when
from bridge.surfaces.console.forms import Form, Invalid, first_message, parse_money, query_number, show_money, typed
from bridge.surfaces.console.queries import SORTS, CustomerFilters, customer_page, statement_page
from bridge.surfaces.platforms import PLATFORMS
from bridge.surfaces.web.api import AdjustmentIn
from bridge.surfaces.web.runtime import reading, services, statement_links
from bridge.usecases import wallets
from bridge.wallets import Doubts, large_debit, require_customer, wallet_summary

TOKEN_RE = re.compile(r"^[0-9a-f]{32}$")
MAX_EXPIRING_DAYS = 3660


@console.get("/shops/<int:shop_id>/customers")
@shop_view
def customers(shop_id: int):
    form, filters = _customer_filters(request.args)
    sort = request.args.get("sort") if request.args.get("sort") in SORTS else "last_movement"
    descending = request.args.get("dir", "desc") != "asc"
    page_number = query_number(request.args.get("page")) or 1
    with reading() as db:
        page = customer_page(db, g.shop, filters, sort=sort, descending=descending, page=page_number)
    status = 422 if form.errors else 404 if page.past_end else 200
    return render_template(
        "customers.html", shop=g.shop, page=page, q=filters.q, sort=sort, descending=descending, filters=form
    ), status


def _customer_filters(args) -> tuple[Form, CustomerFilters]:
    """The list's search and filters; a number of days that is not one is said on the form and not applied."""
    form = Form(
        values={
            "q": (args.get("q") or "").strip()[:200],  # a search: cut, it only finds more, and writes nothing
            "locked": args.get("locked") == "1",
            "balance": args.get("balance") == "1",
            "expiring": (args.get("expiring") or "").strip(),  # whole: cut, 00000000010 days read as 1
        }
    )
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


def _customer_page(
    shop_id: int, external_id: str, *, adjust: Form | None = None, status: int = 200, confirm_lock: bool = False
):
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
    with reading() as db:
        shop = db.get(Shop, shop_id)
        customer = require_customer(db, shop, external_id)
        summary = wallet_summary(db, shop, external_id)
        lines, older = statement_page(db, shop, customer, kind=kind, start=start, end=end, before=before)
    adjust = adjust or Form(values={"direction": "credit", "token": secrets.token_hex(16)})
    return render_template(
        "customer.html",
        shop=shop,
        customer=customer,
        summary=summary,
        lines=lines,
        older=older,
        filters=filters,
        kinds=sorted(TRANSACTION_KINDS),
        adjust=adjust,
        admin=_admin_links(shop),
        statement_link=statement_links().url(shop_id, external_id, NOTE_LINK_LIFETIME_SECONDS),
        statement_link_days=NOTE_LINK_LIFETIME_SECONDS // 86_400,
        confirm_lock=confirm_lock,
        large_debit=large_debit(shop.currency),
    ), status


def _admin_links(shop: Shop) -> dict[str, str]:
    """URL patterns of the shop's own admin for orders and customers ({id} is replaced)."""
    base = shop.url.rstrip("/")
    return {page: base + path for page, path in PLATFORMS[shop.platform].admin_paths.items()}


@console.get("/shops/<int:shop_id>/customers/<external_id>")
@shop_view
def customer(shop_id: int, external_id: str):
    return _customer_page(shop_id, external_id)


def _actor() -> Actor:
    return Actor("merchant", g.user.email[:120])


def _adjustment_form() -> Form:
    """Every field whole: the token's pattern, the amount's parser and the API's rules (AdjustmentIn) refuse what
    is too long; cut, 5.000…001 was recorded as 5.00."""
    form = Form(
        values={name: typed(request.form, name) for name in ("direction", "amount", "reason", "token")}
        | {"confirm": request.form.get("confirm") == "yes"}
    )
    if not TOKEN_RE.match(form.values["token"]):
        form.errors["_form"] = "This form is incomplete. Reload the page and try again."
        form.values["token"] = secrets.token_hex(16)
    return form


def _checked_amount(form: Form, currency: str) -> int | None:
    """The amount in minor units, with every field's error placed at once (an empty amount does not hide an
    empty reason)."""
    values, amount = form.values, None
    try:
        amount = parse_money(values["amount"], currency)
    except Invalid as exc:
        form.errors["amount"] = str(exc)
    try:  # the API's rules for an adjustment, word for word; a placeholder amount when it did not parse
        AdjustmentIn().load(
            {"direction": values["direction"], "amount": 1 if amount is None else amount, "reason": values["reason"]}
        )
    except ValidationError as exc:
        for name, messages in exc.messages.items():
            message = first_message(messages)
            if name == "amount" and message.startswith("Must be"):
                message = f"Enter an amount between {show_money(1, currency)} and {show_money(10**12, currency)}."
            if name == "reason" and values["reason"] == "":
                message = "Say why: the reason is shown on the customer's statement."
            form.errors.setdefault(name, message)
    return amount


def _doubts_text(doubts: Doubts, signed: int, currency: str) -> str:
    said = []
    if doubts.repeats_one_of is not None:
        movement = f"{'credit' if signed > 0 else 'debit'} of {format_amount(abs(signed), currency)}"
        said.append(
            f"The same {movement} was recorded for this customer at {when(doubts.repeats_one_of)}. "
            "Record it a second time?"
        )
    if doubts.large_debit:
        said.append(f"This debit takes {format_amount(-signed, currency)} from the wallet.")
    return " ".join(said)


@console.post("/shops/<int:shop_id>/customers/<external_id>/adjust")
@shop_view
def adjust(shop_id: int, external_id: str):
    """A manual credit or debit. The form carries a one-time token, used as the idempotency key: sending
    the same form twice (a double click, a reload) moves the money once. The same movement sent from a fresh
    form soon after (the Back button, a second tab), and any large debit, is recorded only once confirmed."""
    shop = g.shop
    form = _adjustment_form()
    values = form.values
    amount = _checked_amount(form, shop.currency)
    status = 422
    if form.ok:
        key = f"console:{g.user.id}:{values['token']}"
        try:
            adjusted = wallets.adjust_by_merchant(
                services().sessions,
                shop_id,
                external_id,
                who(),
                _actor(),
                direction=values["direction"],
                amount=amount,
                reason=values["reason"],
                key=key,
                confirmed=bool(values["confirm"]),
            )
            if adjusted.doubts:
                signed = amount if values["direction"] == "credit" else -amount
                form.errors["confirm"] = _doubts_text(adjusted.doubts, signed, shop.currency)
                status = 409
        except InsufficientFunds:
            available = wallets.summary(services().sessions, shop_id, external_id)["available"]
            form.errors["amount"] = (
                f"Refused: this would overdraw the wallet. Available: "
                f"{format_amount(max(available, 0), shop.currency)}."
            )
            status = 409
        except WalletLocked:
            form.errors["_form"] = "This wallet is locked: unlock it before debiting it."
        except IdempotencyConflict:
            form.errors["_form"] = (
                "This form was already used for a different movement. Check the statement "
                "below, then fill in this fresh form if something is still missing."
            )
            values["token"] = secrets.token_hex(16)
        except ValidationFailed as exc:
            form.errors.update(exc.fields or {"_form": exc.message})
    if not form.ok:
        return _customer_page(shop_id, external_id, adjust=form, status=status)
    verb = "Credited" if values["direction"] == "credit" else "Debited"
    balance = adjusted.balance
    if adjusted.posted.replayed:
        flash("This form had already been sent: the movement was recorded once, not twice.", "info")
    else:
        flash(
            f"{verb} {format_amount(amount, shop.currency)}. New balance: {format_amount(balance, shop.currency)}.",
            "success",
        )
    return redirect(url_for("console.customer", shop_id=shop_id, external_id=external_id))


@console.post("/shops/<int:shop_id>/customers/<external_id>/lock")
@shop_view
def lock(shop_id: int, external_id: str):
    """Lock or unlock the wallet: a locked wallet cannot pay, top up or withdraw. Locking is asked about first:
    the customer's next checkout would fail."""
    want = request.form.get("action")
    if want not in ("lock", "unlock"):
        flash("Choose lock or unlock.", "error")
        return redirect(url_for("console.customer", shop_id=shop_id, external_id=external_id))
    if want == "lock" and request.form.get("confirm") != "yes":
        return _customer_page(shop_id, external_id, confirm_lock=True)
    if not wallets.set_locked(services().sessions, shop_id, external_id, want == "lock", who()):
        flash(f"The wallet was already {want}ed.", "info")
    else:
        flash(f"Wallet {want}ed.", "success")
    return redirect(url_for("console.customer", shop_id=shop_id, external_id=external_id))
