"""Signing in and out, the first-run set-up, the start page, and a user's own password."""

from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for

from bridge.errors import ValidationFailed
from bridge.money import is_currency
from bridge.surfaces.console import console, render_error
from bridge.surfaces.console.access import (
    client_ip,
    from_this_host,
    load_user,
    login_required,
    safe_next,
    sign_in_session,
    sign_out,
)
from bridge.surfaces.console.forms import Form, check_url, email_address, typed
from bridge.surfaces.platforms import PLATFORMS
from bridge.surfaces.web.runtime import reading, services
from bridge.usecases import merchants
from bridge.users import (
    TooManyAttempts,
    any_user_exists,
    check_new_user,
    shops_without_members,
    user_shops,
)

CURRENCIES = ("EUR", "USD", "GBP", "CHF", "CAD", "AUD", "SEK", "DKK", "NOK", "PLN", "CZK", "JPY")


def _no_user_yet() -> bool:
    with reading() as db:
        return not any_user_exists(db)


@console.get("/")
def home():
    if _no_user_yet():
        return redirect(url_for("console.setup"))
    if load_user() is None:
        return redirect(url_for("console.login"))
    with reading() as db:
        shops = user_shops(db, g.user.id)
    if len(shops) == 1:
        return redirect(url_for("console.overview", shop_id=shops[0].id))
    return redirect(url_for("console.shops"))


@console.route("/login", methods=["GET", "POST"])
def login():
    if _no_user_yet():
        return redirect(url_for("console.setup"))
    next_url = safe_next(request.values.get("next"))
    if request.method != "POST":  # GET, and HEAD as GET
        if load_user() is not None:
            return redirect(next_url or url_for("console.home"))
        return render_template("login.html", form=Form(), next=next_url)
    email, password = email_address(request.form), request.form.get("password") or ""
    form = Form(values={"email": email})
    try:
        outcome = merchants.sign_in(services().sessions, email, password, client_ip())
    except TooManyAttempts as exc:
        form.errors["_form"] = exc.message
        retry_after = str(int(exc.retry_after.total_seconds()) + 1)
        return render_template("login.html", form=form, next=next_url), 429, {"Retry-After": retry_after}
    if outcome.user is None:
        form.errors["_form"] = "Wrong e-mail address or password."
        return render_template("login.html", form=form, next=next_url), 401
    sign_in_session(outcome.user)
    return redirect(next_url or url_for("console.home"))


@console.post("/logout")
def logout():
    sign_out()
    flash("You are signed out, here and on any other device.", "info")
    return redirect(url_for("console.login"))


_PLATFORM_CHOICES = [(name, platform.title) for name, platform in PLATFORMS.items()]


def _shop_form(data) -> tuple[Form, dict]:
    """The name and address are bounded by their columns only; the platform and currency by their checks below."""
    form = Form()
    form.read(data, "shop_name", 200)
    form.read(data, "url", 500)
    values = form.values
    values["platform"] = typed(data, "platform") or "woocommerce"
    values["currency"] = typed(data, "currency").upper()
    if not values["shop_name"]:
        form.errors["shop_name"] = "Enter the shop's name."
    if values["platform"] not in PLATFORMS:
        form.errors["platform"] = "Choose a platform."
    if problem := check_url(values["url"]):
        form.errors["url"] = problem
    if not (len(values["currency"]) == 3 and is_currency(values["currency"])):
        form.errors["currency"] = "Enter a three-letter currency code such as EUR."
    return form, values


def _new_shop(values: dict) -> dict:
    return {
        "name": values["shop_name"],
        "platform": values["platform"],
        "url": values["url"],
        "currency": values["currency"],
    }


def _form_errors(exc: ValidationFailed) -> dict:
    return exc.fields or {"_form": exc.message}


def _shop_created(created, title: str):
    platform = PLATFORMS[created.shop.platform]
    webhook_url = platform.delivery_url(services().settings.public_url, created.shop.id)
    return render_template(
        "shop_created.html",
        created=created,
        webhook_url=webhook_url,
        title=title,
        next_steps=platform.next_steps_template,
    )


@console.route("/setup", methods=["GET", "POST"])
def setup():
    """First run: only while no user exists. Creates the first user and signs them in, with the first shop; or,
    when shops were made before (`wallet-bridge shop create`, the demo), with those they choose to manage."""
    if not _no_user_yet():
        return redirect(url_for("console.home"))
    with reading() as db:
        existing = shops_without_members(db)
    if existing and not from_this_host():
        # Shops made with `wallet-bridge shop create` (production's way) wait here for their first user, and anyone
        # who reached this page first would own them, their customers and their money: only the operator may take
        # them over, from the bridge's own host or with the CLI. Not even their names are shown to others.
        return render_error(
            403,
            "Set up from the bridge's host",
            "Shops made with the command line are waiting for their first account. Open this page on the bridge's "
            "own host (for example through `ssh -L 8000:127.0.0.1:8000`), or give them a user there with "
            "`wallet-bridge user create --email … --name … --shop <id>`.",
        )
    if request.method != "POST":  # GET, and HEAD as GET
        return _setup_page(
            Form(values={"platform": "woocommerce", "currency": "EUR", "take_over": {shop.id for shop in existing}}),
            existing,
        )
    if existing:
        form, values = Form(), {}
        form.values["take_over"] = _chosen_shops(request.form, existing)
        if not form.values["take_over"]:
            form.errors["take_over"] = "Choose at least one shop. You can add a new one once signed in."
    else:
        form, values = _shop_form(request.form)
    user_values = {"email": email_address(request.form), "name": typed(request.form, "name")}  # checked whole
    form.values.update(user_values)
    password = request.form.get("password") or ""
    form.errors.update(check_new_user(user_values["email"], user_values["name"], password))
    if password != (request.form.get("password_confirm") or ""):
        form.errors.setdefault("password_confirm", "The two passwords differ.")
    if form.ok:
        try:
            user, created = merchants.first_run(
                services().sessions,
                services().secrets,
                PLATFORMS,
                **user_values,
                password=password,
                new_shop=None if existing else _new_shop(values),
                take_over=form.values.get("take_over", []),
            )
        except ValidationFailed as exc:
            form.errors.update(_form_errors(exc))
        else:
            if user is None:  # someone finished set-up a moment ago
                return redirect(url_for("console.login"))
    if not form.ok:
        return _setup_page(form, existing), 422
    sign_in_session(user)
    g.user = user
    if created is None:
        count = len(form.values["take_over"])
        flash(f"Welcome! You manage {count} shop{'s' if count > 1 else ''}.", "success")
        return redirect(url_for("console.home"))
    return _shop_created(created, "Your shop is ready")


def _setup_page(form: Form, existing: list):
    return render_template(
        "setup.html", form=form, existing=existing, currencies=CURRENCIES, platforms=_PLATFORM_CHOICES
    )


def _chosen_shops(data, existing: list) -> list[int]:
    """The ids ticked, among the shops on offer (anything else sent is ignored)."""
    offered = {str(shop.id): shop.id for shop in existing}  # compared as text: "²" is a digit int() cannot read
    return sorted({offered[value] for value in data.getlist("take_over") if value in offered})


@console.get("/shops")
@login_required
def shops():
    with reading() as db:
        g.shops = user_shops(db, g.user.id)
    return render_template("shops.html", shops=g.shops)


@console.route("/shops/new", methods=["GET", "POST"])
@login_required
def new_shop():
    with reading() as db:
        g.shops = user_shops(db, g.user.id)
    if request.method != "POST":  # GET, and HEAD as GET
        form = Form(values={"platform": "woocommerce", "currency": "EUR"})
        return render_template("shop_new.html", form=form, currencies=CURRENCIES, platforms=_PLATFORM_CHOICES)
    form, values = _shop_form(request.form)
    if form.ok:
        try:
            created = merchants.add_shop(services().sessions, services().secrets, PLATFORMS, g.user, _new_shop(values))
        except ValidationFailed as exc:
            form.errors.update(_form_errors(exc))
    if not form.ok:
        return render_template("shop_new.html", form=form, currencies=CURRENCIES, platforms=_PLATFORM_CHOICES), 422
    return _shop_created(created, "Shop added")


@console.route("/account", methods=["GET", "POST"])
@login_required
def account():
    with reading() as db:
        g.shops = user_shops(db, g.user.id)
    form = Form()
    if request.method == "POST":
        new = request.form.get("new_password") or ""
        if new != (request.form.get("new_password_confirm") or ""):
            form.errors["new_password_confirm"] = "The two passwords differ."  # noqa: S105 (a message)
        else:
            try:
                user = merchants.new_password(
                    services().sessions, g.user, request.form.get("current_password") or "", new, client_ip()
                )
            except TooManyAttempts as exc:
                form.errors["_form"] = exc.message
                retry_after = str(int(exc.retry_after.total_seconds()) + 1)
                return render_template("account.html", form=form), 429, {"Retry-After": retry_after}
            except ValidationFailed as exc:
                form.errors.update(exc.fields or {"_form": exc.message})
            else:
                sign_in_session(user)  # this session stays valid; every other one is signed out
                flash("Password changed. Other sessions were signed out.", "success")
                return redirect(url_for("console.account"))
    return render_template("account.html", form=form), (422 if form.errors else 200)
