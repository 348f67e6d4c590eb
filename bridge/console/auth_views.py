"""Signing in and out, the first-run set-up, the start page, and a user's own password."""

from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for

from bridge import audit
from bridge.console import console
from bridge.console.access import client_ip, load_user, login_required, safe_next, sign_in_session, sign_out, who
from bridge.console.forms import Form, check_url, text
from bridge.errors import ValidationFailed
from bridge.money import is_currency
from bridge.shops import PLATFORMS, create_shop
from bridge.users import (
    TooManyAttempts,
    add_membership,
    any_user_exists,
    change_password,
    check_new_user,
    create_user,
    lock_first_run,
    sign_in,
    user_shops,
)
from bridge.web.runtime import services, transaction

CURRENCIES = ("EUR", "USD", "GBP", "CHF", "CAD", "AUD", "SEK", "DKK", "NOK", "PLN", "CZK", "JPY")


def _no_user_yet() -> bool:
    with transaction() as db:
        return not any_user_exists(db)


@console.get("/")
def home():
    if _no_user_yet():
        return redirect(url_for("console.setup"))
    if load_user() is None:
        return redirect(url_for("console.login"))
    with transaction() as db:
        shops = user_shops(db, g.user.id)
    if len(shops) == 1:
        return redirect(url_for("console.overview", shop_id=shops[0].id))
    return redirect(url_for("console.shops"))


@console.route("/login", methods=["GET", "POST"])
def login():
    if _no_user_yet():
        return redirect(url_for("console.setup"))
    next_url = safe_next(request.values.get("next"))
    if request.method == "GET":
        if load_user() is not None:
            return redirect(next_url or url_for("console.home"))
        return render_template("login.html", form=Form(), next=next_url)
    email, password = text(request.form, "email", 320), request.form.get("password") or ""
    form = Form(values={"email": email})
    try:
        outcome = sign_in(services().sessions, email, password, client_ip())
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


def _shop_form(data) -> tuple[Form, dict]:
    form = Form(values={
        "shop_name": text(data, "shop_name", 200), "platform": text(data, "platform", 20) or "woocommerce",
        "url": text(data, "url", 500), "currency": text(data, "currency", 3).upper(),
    })  # fmt: skip
    values = form.values
    if not values["shop_name"]:
        form.errors["shop_name"] = "Enter the shop's name."
    if values["platform"] not in PLATFORMS:
        form.errors["platform"] = "Choose a platform."
    if problem := check_url(values["url"]):
        form.errors["url"] = problem
    if not (len(values["currency"]) == 3 and is_currency(values["currency"])):
        form.errors["currency"] = "Enter a three-letter currency code such as EUR."
    return form, values


def _create_shop(db, values: dict):
    try:
        return create_shop(db, services().secrets, name=values["shop_name"], platform=values["platform"],
                           url=values["url"], currency=values["currency"])  # fmt: skip
    except ValidationFailed as exc:  # the domain's own rules, should the form's ever differ
        fields = {("shop_name" if name == "name" else name): problem for name, problem in (exc.fields or {}).items()}
        raise ValidationFailed(exc.message, fields=fields) from exc


def _shop_created(created, title: str):
    webhook_url = f"{services().settings.public_url}/webhooks/{created.shop.platform}/{created.shop.id}"
    return render_template("shop_created.html", created=created, webhook_url=webhook_url, title=title)


@console.route("/setup", methods=["GET", "POST"])
def setup():
    """First run: only while no user exists. Creates the first shop, its owner, and signs them in."""
    if not _no_user_yet():
        return redirect(url_for("console.home"))
    if request.method == "GET":
        return render_template("setup.html", form=Form(values={"platform": "woocommerce", "currency": "EUR"}),
                               currencies=CURRENCIES, platforms=PLATFORMS)  # fmt: skip
    form, values = _shop_form(request.form)
    user_values = {"email": text(request.form, "email", 320), "name": text(request.form, "name", 200)}
    form.values.update(user_values)
    password = request.form.get("password") or ""
    form.errors.update(check_new_user(user_values["email"], user_values["name"], password))
    if password != (request.form.get("password_confirm") or ""):
        form.errors.setdefault("password_confirm", "The two passwords differ.")
    if form.ok:
        try:
            with transaction() as db:
                lock_first_run(db)
                if any_user_exists(db):  # someone finished set-up a moment ago
                    return redirect(url_for("console.login"))
                created = _create_shop(db, values)
                user = create_user(db, email=user_values["email"], name=user_values["name"], password=password)
                add_membership(db, user, created.shop.id)
                audit.record(db, audit.Who.of(user), "shop.create", shop_id=created.shop.id,
                             new=f"{created.shop.name} ({created.shop.currency})")  # fmt: skip
        except ValidationFailed as exc:
            form.errors.update(exc.fields or {"_form": exc.message})
    if not form.ok:
        return render_template("setup.html", form=form, currencies=CURRENCIES, platforms=PLATFORMS), 422
    sign_in_session(user)
    g.user = user
    return _shop_created(created, "Your shop is ready")


@console.get("/shops")
@login_required
def shops():
    with transaction() as db:
        g.shops = user_shops(db, g.user.id)
    return render_template("shops.html", shops=g.shops)


@console.route("/shops/new", methods=["GET", "POST"])
@login_required
def new_shop():
    with transaction() as db:
        g.shops = user_shops(db, g.user.id)
    if request.method == "GET":
        form = Form(values={"platform": "woocommerce", "currency": "EUR"})
        return render_template("shop_new.html", form=form, currencies=CURRENCIES, platforms=PLATFORMS)
    form, values = _shop_form(request.form)
    if form.ok:
        try:
            with transaction() as db:
                created = _create_shop(db, values)
                add_membership(db, g.user, created.shop.id)
                audit.record(db, who(), "shop.create", shop_id=created.shop.id,
                             new=f"{created.shop.name} ({created.shop.currency})")  # fmt: skip
        except ValidationFailed as exc:
            form.errors.update(exc.fields or {"_form": exc.message})
    if not form.ok:
        return render_template("shop_new.html", form=form, currencies=CURRENCIES, platforms=PLATFORMS), 422
    return _shop_created(created, "Shop added")


@console.route("/account", methods=["GET", "POST"])
@login_required
def account():
    with transaction() as db:
        g.shops = user_shops(db, g.user.id)
    form = Form()
    if request.method == "POST":
        new = request.form.get("new_password") or ""
        if new != (request.form.get("new_password_confirm") or ""):
            form.errors["new_password_confirm"] = "The two passwords differ."  # noqa: S105 (a message)
        else:
            try:
                with transaction() as db:
                    user = db.merge(g.user)
                    change_password(db, user, request.form.get("current_password") or "", new)
                    audit.record(db, who(), "user.password", shop_id=None, target=user.email)
            except ValidationFailed as exc:
                form.errors.update(exc.fields or {"_form": exc.message})
            else:
                sign_in_session(user)  # this session stays valid; every other one is signed out
                flash("Password changed. Other sessions were signed out.", "success")
                return redirect(url_for("console.account"))
    return render_template("account.html", form=form), (422 if form.errors else 200)
