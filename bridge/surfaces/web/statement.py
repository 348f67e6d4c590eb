"""The customer's own view: balance, available, points, expiring credit and every movement, through a
signed expiring link; the same as JSON for the storefront; converting points to money from there."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from itsdangerous import BadSignature, URLSafeSerializer

from bridge.errors import DomainError, NotFound
from bridge.money import format_amount
from bridge.points import convertible_from
from bridge.settings_schema import ShopSettings
from bridge.shops import get_shop
from bridge.statement_links import (
    LINK_LIFETIME_SECONDS,
    NOTE_LINK_LIFETIME_SECONDS,
    StatementAccess,
    read_statement_token,
)
from bridge.surfaces.web.errors import error_response
from bridge.surfaces.web.runtime import reading, services
from bridge.usecases import wallets
from bridge.wallets import statement, wallet_summary

customer_statement = Blueprint("customer_statement", __name__)
FORM_TOKEN = re.compile(r"[0-9a-f]{32}")


@customer_statement.after_request
def _private(response):
    """The page is the customer's money and its URL their credential: stored by no cache, and never sent on as a
    Referer to a link or image it holds."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@customer_statement.errorhandler(NotFound)
def _link_expired(exc: NotFound):
    """A link too old, cut short or tampered with (they look alike on purpose): a person gets a page saying how to
    get a fresh one, the storefront's script its JSON error."""
    if request.path.endswith(".json"):
        return error_response(404, exc.code, exc.message)
    return render_template(
        "customer/link_expired.html",
        lifetime=_in_words(LINK_LIFETIME_SECONDS),
        note_lifetime=_in_words(NOTE_LINK_LIFETIME_SECONDS),
    ), 404


def _in_words(seconds: int) -> str:
    days, rest_of_day = divmod(seconds, 86_400)
    if days and not rest_of_day:
        return "a day" if days == 1 else f"{days} days"
    hours, rest = divmod(seconds, 3600)
    if rest:
        return f"{seconds // 60} minutes"
    return "an hour" if hours == 1 else f"{hours} hours"


def _access(token: str):
    return read_statement_token(current_app.config["SECRET_KEY"], token)


def _view(token: str) -> dict:
    """The page's content; movements 200 at a time, older ones behind `cursor`."""
    access = _access(token)
    with reading() as session:
        shop = get_shop(session, access.shop_id)
        summary = wallet_summary(session, shop, access.customer_external_id)
        page = statement(
            session, shop, access.customer_external_id, cursor=request.args.get("cursor") or None, limit=200
        )
        settings = ShopSettings.load(shop.settings)
    return {
        "shop": shop.name,
        "currency": shop.currency,
        "wallet": summary,
        "lines": page.lines,
        "next_cursor": page.next_cursor,
        "zone": settings.timezone,
        "points_convertible_from": convertible_from(settings),
        "points_step": settings.points_conversion_points,
        "points_step_value": format_amount(settings.points_conversion_value, shop.currency),
    }


@customer_statement.get("/statement/<token>")
def statement_page(token: str):
    return render_template(
        "customer/statement.html",
        token=token,
        message=_opened(request.args.get("message")),
        form_token=secrets.token_hex(16),
        **_view(token),
    )


@customer_statement.get("/statement/<token>.json")
def statement_json(token: str):
    view = _view(token)
    return {"shop": view["shop"], "wallet": view["wallet"], "lines": view["lines"], "next_cursor": view["next_cursor"]}


@customer_statement.post("/statement/<token>/convert")
def convert(token: str):
    """Convert all convertible points."""

    def act(access: StatementAccess, form_token: str) -> str:
        wallets.convert_from_statement(services().sessions, access.shop_id, access.customer_external_id, form_token)
        return "Your points were converted to wallet money."

    return _customer_form(token, act, refused="{}")


@customer_statement.post("/statement/<token>/withdraw")
def withdraw(token: str):
    """Ask to withdraw deposited money (a decimal comma is fine); held for the shop's approval when it says so."""

    def act(access: StatementAccess, form_token: str) -> str:
        made = wallets.withdraw_from_statement(
            services().sessions, access.shop_id, access.customer_external_id, request.form.get("amount", ""), form_token
        )
        shown = format_amount(made.amount, made.currency)
        if made.status == "pending":
            return f"Your request to withdraw {shown} waits for the shop's approval; the amount is held in your wallet."
        return f"{shown} is on its way back to the card that paid your top-up."

    return _customer_form(token, act, refused="Nothing was withdrawn: {}.")


def _customer_form(token: str, act: Callable[[StatementAccess, str], str], refused: str):
    """A form of the customer's page. Each page carries a one-time form token, used in the key: the same form
    sent twice (a double click, a reload) acts once; a freshly loaded page acts again. What happened, or why
    nothing did, is said on the page."""
    access = _access(token)
    form_token = request.form.get("form_token", "")
    if not FORM_TOKEN.fullmatch(form_token):
        return _redirect_with(token, "This form is incomplete. Reload the page and try again.")
    try:
        message = act(access, form_token)
    except DomainError as exc:
        message = refused.format(exc.message)
    return _redirect_with(token, message)


def _redirect_with(token: str, message: str):
    return redirect(url_for("customer_statement.statement_page", token=token, message=_sealed(message)), code=303)


def _messages() -> URLSafeSerializer:
    """What a form did is said on the page it returns to, signed: a link cannot make the page say anything else."""
    return URLSafeSerializer(current_app.secret_key, salt="statement-message")


def _sealed(message: str) -> str:
    return _messages().dumps(message)


def _opened(sealed: str | None) -> str | None:
    try:
        return _messages().loads(sealed) if sealed else None
    except BadSignature:
        return None
