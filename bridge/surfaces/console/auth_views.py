"""Signing in and out, the first-run set-up, the start page, and a user's own password."""

from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for

from bridge import audit
from bridge.errors import ValidationFailed
from bridge.money import is_currency
from bridge.shops import create_shop
from bridge.surfaces.console import console
from bridge.surfaces.console.access import (
    client_ip,
    load_user,
    login_required,
    safe_next,
    sign_in_session,
    sign_out,
    who,
)
from bridge.surfaces.console.forms import Form, check_url, text
from bridge.surfaces.platforms import PLATFORMS
from bridge.surfaces.web.runtime import services, transaction
from bridge.users import (
    TooManyAttempts,
    add_membership,
    any_user_exists,
    change_password,
    check_new_user,
    create_user,
    lock_first_run,
    shops_without_members,
    sign_in,
    user_shops,
)

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
    if request.method != "POST":  # GET, and HEAD as GET
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


_PLATFORM_CHOICES = [(name, platform.title) for name, platform in PLATFORMS.items()]


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
        return create_shop(db, services().secrets, platforms=PLATFORMS, name=values["shop_name"],
                           platform=values["platform"], url=values["url"], currency=values["currency"])  # fmt: skip
    except ValidationFailed as exc:  # the domain's own rules, should the form's ever differ
        fields = {("shop_name" if name == "name" else name): problem for name, problem in (exc.fields or {}).items()}
        raise ValidationFailed(exc.message, fields=fields) from exc


def _shop_created(created, title: str):
    webhook_url = f"{services().settings.public_url}/webhooks/{created.shop.platform}/{created.shop.id}"
    return render_template("shop_created.html", created=created, webhook_url=webhook_url, title=title)


@console.route("/setup", methods=["GET", "POST"])
def setup():
    """First run: only while no user exists. Creates the first user and signs them in, with the first shop; or,
    when shops were made before (`wallet-bridge shop create`, the demo), with those they choose to manage."""
    if not _no_user_yet():
        return redirect(url_for("console.home"))
    with transaction() as db:
        existing = shops_without_members(db)
    if request.method != "POST":  # GET, and HEAD as GET
        return _setup_page(Form(values={"platform": "woocommerce", "currency": "EUR",
                                        "take_over": {shop.id for shop in existing}}), existing)  # fmt: skip
    if existing:
        form, values = Form(), {}
        form.values["take_over"] = _chosen_shops(request.form, existing)
        if not form.values["take_over"]:
            form.errors["take_over"] = "Choose at least one shop. You can add a new one once signed in."
    else:
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
                user = create_user(db, email=user_values["email"], name=user_values["name"], password=password)
                created = None if existing else _create_shop(db, values)
                if created is not None:
                    add_membership(db, user, created.shop.id)
                    audit.record(db, audit.Who.of(user), "shop.create", shop_id=created.shop.id,
                                 new=f"{created.shop.name} ({created.shop.currency})")  # fmt: skip
                for shop_id in form.values.get("take_over", []):
                    add_membership(db, user, shop_id)
                    audit.record(db, audit.Who.of(user), "team.add", shop_id=shop_id, target=user.email,
                                 new=user.email)  # fmt: skip
        except ValidationFailed as exc:
            form.errors.update(exc.fields or {"_form": exc.message})
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
    return render_template("setup.html", form=form, existing=existing, currencies=CURRENCIES,
                           platforms=_PLATFORM_CHOICES)  # fmt: skip


def _chosen_shops(data, existing: list) -> list[int]:
    """The ids ticked, among the shops on offer (anything else sent is ignored)."""
    offered = {shop.id for shop in existing}
    return sorted({int(value) for value in data.getlist("take_over") if value.isdigit()} & offered)


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
    if request.method != "POST":  # GET, and HEAD as GET
        form = Form(values={"platform": "woocommerce", "currency": "EUR"})
        return render_template("shop_new.html", form=form, currencies=CURRENCIES, platforms=_PLATFORM_CHOICES)
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
        return render_template("shop_new.html", form=form, currencies=CURRENCIES, platforms=_PLATFORM_CHOICES), 422
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
