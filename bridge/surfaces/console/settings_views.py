"""Settings per shop: connection (keys, test, webhooks), gateway, funding, refunds, tips. Each section is
its own form; every change is written to the audit trail and listed on the page."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TypeVar

import requests
from flask import abort, flash, redirect, render_template, request, url_for

from bridge import audit
from bridge.errors import DomainError, PermanentFailure, TemporaryFailure, ValidationFailed
from bridge.models import Shop
from bridge.settings_schema import load_settings, timezone_names
from bridge.surfaces.console import console
from bridge.surfaces.console.access import shop_view, who
from bridge.surfaces.console.forms import (
    SECTIONS,
    Form,
    mask_secret,
    parse_settings,
    settings_form,
    show_money,
    show_percent,
)
from bridge.surfaces.console.queries import webhook_health
from bridge.surfaces.platforms import PLATFORMS
from bridge.surfaces.web.runtime import reading, services
from bridge.usecases import merchants
from sync.shopify.connect import DELIVERY_TOPICS, ShopifyConnection, connect_shopify
from sync.woocommerce.client import WooShop
from sync.woocommerce.connect import (
    WEBHOOK_TOPICS,
    _check_input,
    check_credentials,
    connect_shop,
    delivery_url_for,
    list_all,
)

T = TypeVar("T")

FIELD_LABELS = {spec.name: spec.label for section in SECTIONS.values() for spec in section.fields} | {
    "url": "Shop URL",
    "consumer_key": "REST consumer key",
    "consumer_secret": "REST consumer secret",
    "access_token": "Admin API access token",
    "webhook_secret": "Webhook secret",
}


def display_setting(name: str, value, settings: dict, currency: str) -> str:
    """A setting as the page shows it, for the audit trail (which then reads the same forever)."""
    spec = next((s for section in SECTIONS.values() for s in section.fields if s.name == name), None)
    unit = spec.unit if spec else "text"
    if unit == "discount":
        unit = {"fixed": "money", "percent": "percent"}.get(settings.get(spec.kind_field), "text")
    if value is None:
        return "—"
    if unit == "money":
        return f"{show_money(value, currency)} {currency}"
    if unit == "percent":
        return f"{show_percent(value)} %"
    if unit == "percent_list":
        return ", ".join(f"{show_percent(v)} %" for v in value)
    if unit == "list":
        return ", ".join(value) or "—"
    if unit == "bool":
        return "on" if value else "off"
    if unit == "tiers":
        return (
            "; ".join(
                f"{w['tier']}: from {show_money(w['min_lifetime_spend'], currency)} {currency}, {w['days']} days"
                for w in value
            )
            or "none"
        )
    if unit == "choice" and spec is not None:
        return dict(spec.choices).get(value, str(value))
    return str(value)


def _connection_form(shop: Shop) -> Form:
    box = services().secrets
    return Form(
        values={
            "url": shop.url,
            "consumer_key_mask": mask_secret(box.open(shop.consumer_key_enc)),
            "has_secret": shop.consumer_secret_enc is not None,
        }
    )


def _page(
    shop_id: int, *, forms: dict[str, Form] | None = None, connection: Form | None = None, check=None, status: int = 200
):
    with reading() as db:
        shop = db.get(Shop, shop_id)
        settings = load_settings(shop.settings)
        health, last_check = webhook_health(db, shop_id)
        changes = [
            e
            for e in audit.recent(db, shop_id, limit=200)
            if e.action.startswith(("settings.", "connection.")) and e.action != "connection.check"
        ]
    all_forms = {key: settings_form(section, settings, shop.currency) for key, section in SECTIONS.items()}
    all_forms.update(forms or {})
    connection = connection or _connection_form(shop)
    connection.values.setdefault("consumer_key_mask", mask_secret(services().secrets.open(shop.consumer_key_enc)))
    connection.values.setdefault("has_secret", shop.consumer_secret_enc is not None)
    return render_template(
        "settings.html",
        shop=shop,
        sections=SECTIONS,
        forms=all_forms,
        connection=connection,
        health=health,
        last_check=last_check,
        last_check_data=_check_data(last_check),
        changes=changes[:30],
        labels=FIELD_LABELS,
        delivery_url=_delivery_url(shop),
        check=check,
        platform=PLATFORMS[shop.platform],
        warnings=_delivery_warnings(shop),
        timezones=sorted(timezone_names()),
    ), status


def _delivery_url(shop: Shop) -> str:
    return PLATFORMS[shop.platform].delivery_url(services().settings.public_url, shop.id)


def _delivery_warnings(shop: Shop) -> list[str]:
    return PLATFORMS[shop.platform].delivery_warnings(_delivery_url(shop))


def _check_data(event) -> dict:
    try:
        return json.loads(event.new_value) if event and event.new_value else {}
    except ValueError:
        return {}


@console.get("/shops/<int:shop_id>/settings")
@shop_view
def settings(shop_id: int):
    return _page(shop_id)


@console.post("/shops/<int:shop_id>/settings/<section_key>")
@shop_view
def save_settings(shop_id: int, section_key: str):
    section = SECTIONS.get(section_key)
    if section is None:
        abort(404)
    forms = {}

    def change(stored: dict, currency: str) -> tuple[dict | None, dict]:
        forms[section.key], new_settings = parse_settings(section, request.form, stored, currency)
        if new_settings is None:
            return None, {}
        diff = audit.changes({k: stored.get(k) for k in new_settings}, new_settings)
        return new_settings, {
            name: (display_setting(name, old, stored, currency), display_setting(name, new, new_settings, currency))
            for name, (old, new) in diff.items()
        }

    new_settings, diff = merchants.change_settings(
        services().sessions, shop_id, who(), f"settings.{section.key}", change
    )
    if new_settings is None:
        return _page(shop_id, forms=forms, status=422)
    if diff:
        flash(f"{section.title}: {len(diff)} change{'s' if len(diff) > 1 else ''} saved.", "success")
    else:
        flash(f"{section.title}: nothing changed.", "info")
    return redirect(url_for("console.settings", shop_id=shop_id) + f"#{section.key}")


# Connection ---------------------------------------------------------------------------------------------


def _credentials(shop: Shop) -> tuple[Form, str, str, str]:
    """The posted url and keys; a blank key or secret means "the one stored", but only for the URL it was
    stored with: stored keys are never sent to an address typed into the form."""
    url = (request.form.get("url") or "").strip()
    form = Form(values={"url": url})
    keys = {}
    for name, stored in (("consumer_key", shop.consumer_key_enc), ("consumer_secret", shop.consumer_secret_enc)):
        keys[name] = (request.form.get(name) or "").strip()
        if not keys[name] and stored is not None:
            if url.rstrip("/") == shop.url:
                keys[name] = services().secrets.open(stored)
            else:
                form.errors[name] = f"Enter it again for a new URL: the stored one is only sent to {shop.url}."
    if not form.ok:
        form.errors["_form"] = "Nothing was sent: correct the fields marked below."
    return form, url, keys["consumer_key"], keys["consumer_secret"]


def _webhook_states(api: WooShop, shop_id: int) -> dict[str, str]:
    delivery_url = delivery_url_for(services().settings.public_url, shop_id).rstrip("/")
    ours = [
        w
        for w in list_all(api, "webhooks")
        if isinstance(w, dict) and str(w.get("delivery_url") or "").strip().rstrip("/") == delivery_url
    ]
    states = {}
    for topic in WEBHOOK_TOPICS:
        found = [str(w.get("status")) for w in ours if w.get("topic") == topic]
        states[topic] = "active" if "active" in found else (found[0] if found else "missing")
    return states


def _wrong_form(shop_id: int, platform: str):
    """A form posted for a shop of another platform (by hand: the page shows each shop its own)."""
    flash(f"Only {platform} shops can be connected with this form.", "error")
    return redirect(url_for("console.settings", shop_id=shop_id))


def _load_shop(shop_id: int) -> Shop:
    with reading() as db:
        return db.get(Shop, shop_id)


@console.post("/shops/<int:shop_id>/settings/connection/test")
@shop_view
def test_connection(shop_id: int):
    """Check the keys against the shop and read our webhooks' states; stores nothing but the audit line."""
    shop = _load_shop(shop_id)
    if shop.platform != "woocommerce":
        return _wrong_form(shop_id, "WooCommerce")
    form, url, key, secret = _credentials(shop)
    if not form.ok:
        return _page(shop_id, connection=form, status=422)
    try:
        _check_input(url, key, secret)
        api = WooShop(url, key, secret, services().settings.shop_timeout_seconds)
        check_credentials(api, url)
        states = _webhook_states(api, shop_id)
    except ValidationFailed as exc:
        form.errors.update(exc.fields or {})
        form.errors["_form"] = exc.message
    except (TemporaryFailure, PermanentFailure) as exc:
        form.errors["_form"] = f"The keys work, but the webhooks could not be listed: {exc}"
    except requests.RequestException as exc:
        form.errors["url"] = "Unreachable."
        form.errors["_form"] = f"Could not reach {url} ({exc.__class__.__name__})."
    outcome = {"ok": form.ok, "url": url, "error": form.errors.get("_form")}
    if form.ok:
        outcome["webhooks"] = states
    merchants.record(services().sessions, who(), "connection.check", shop_id=shop_id, new=outcome)
    if not form.ok:
        return _page(shop_id, connection=form, status=422)
    active = sum(1 for state in states.values() if state == "active")
    check = {
        "ok": True,
        "message": f"The shop accepted the keys. Webhooks active: {active} of {len(states)}.",
        "states": states,
    }
    return _page(shop_id, connection=form, check=check)


@console.post("/shops/<int:shop_id>/settings/connection/install")
@shop_view
def install_webhooks(shop_id: int):
    """`wallet-bridge shop connect` from the page: check the keys, register the webhooks, store the keys."""
    shop = _load_shop(shop_id)
    if shop.platform != "woocommerce":
        return _wrong_form(shop_id, "WooCommerce")
    box = services().secrets
    old = {
        "url": shop.url,
        "consumer_key": box.open(shop.consumer_key_enc),
        "secret": box.open(shop.consumer_secret_enc),
    }
    form, url, key, secret = _credentials(shop)
    if not form.ok:
        return _page(shop_id, connection=form, status=422)
    svc = services()
    result = _connect(
        shop_id,
        form,
        url,
        lambda: connect_shop(
            svc.sessions,
            svc.secrets,
            shop_id,
            url,
            key,
            secret,
            svc.settings.public_url,
            svc.settings.shop_timeout_seconds,
        ),
    )
    if result is None:
        return _page(shop_id, connection=form, status=422)
    hooks = result.webhooks
    changed = []
    if old["url"] != result.url:
        changed.append(dict(field="url", old=old["url"], new=result.url))
    if old["consumer_key"] != key:
        changed.append(dict(field="consumer_key", old=mask_secret(old["consumer_key"]) or "—", new=mask_secret(key)))
    if old["secret"] != secret:
        changed.append(dict(field="consumer_secret", old="(stored)" if old["secret"] else "—", new="(replaced)"))
    _audit_connection(shop_id, changed, hooks.as_dict(), result.url, WEBHOOK_TOPICS)
    parts = [
        f"{label}: {len(ids)}"
        for label, ids in (
            ("created", hooks.created),
            ("re-activated", hooks.reactivated),
            ("already active", hooks.unchanged),
        )
        if ids
    ]
    flash(f"Connected to {result.url}. Webhooks {', '.join(parts) or 'in place'}.", "success")
    for warning in result.warnings:
        flash(f"Warning: {warning}.", "warning")
    return redirect(url_for("console.settings", shop_id=shop_id) + "#connection")


# Shopify connection -------------------------------------------------------------------------------------

SHOPIFY_URL = re.compile(r"https://[a-z0-9][a-z0-9-]*\.myshopify\.com/?", re.IGNORECASE)


def _shopify_input(shop: Shop) -> tuple[Form, str, str, str | None]:
    """The posted URL, token and webhook secret. A blank secret keeps the stored one, but only once the shop
    is connected: before that the stored secret is the bridge's own, which Shopify does not sign with."""
    url = (request.form.get("url") or "").strip()
    token = (request.form.get("access_token") or "").strip()
    secret = (request.form.get("webhook_secret") or "").strip() or None
    form = Form(values={"url": url})  # never the token or the secret: they are not shown again
    if not SHOPIFY_URL.fullmatch(url):
        form.errors["url"] = "Enter the shop's address as https://<name>.myshopify.com"
    if not token:
        form.errors["access_token"] = "Required."  # noqa: S105 (a message)
    elif not re.fullmatch(r"[\x21-\x7e]+", token):  # sent as a header: printable ASCII only
        form.errors["access_token"] = "Paste the token exactly as Shopify shows it."  # noqa: S105 (a message)
    if secret is None and shop.consumer_secret_enc is None:
        form.errors["webhook_secret"] = "Required for the first connection: the app's client secret."  # noqa: S105 (a message)
    if not form.ok:
        form.errors["_form"] = "Nothing was connected: correct the fields marked below."
    return form, url.rstrip("/").lower(), token, secret


def _connect(shop_id: int, form: Form, url: str, connect: Callable[[], T]) -> T | None:
    """Run a platform's connect (it stores nothing when it fails); a failure becomes the form's errors and an
    audited failed check, and None."""
    try:
        return connect()
    except ValidationFailed as exc:
        form.errors.update(exc.fields or {})
        form.errors["_form"] = exc.message
    except (TemporaryFailure, PermanentFailure, DomainError) as exc:
        form.errors["_form"] = str(exc)
    except requests.RequestException as exc:
        form.errors["url"] = "Unreachable."
        form.errors["_form"] = f"Could not reach {url} ({exc.__class__.__name__})."
    merchants.record(
        services().sessions,
        who(),
        "connection.check",
        shop_id=shop_id,
        new={"ok": False, "url": url, "error": form.errors["_form"]},
    )
    return None


def _audit_shopify(old: Shop, result: ShopifyConnection, url: str, token: str, secret: str | None) -> None:
    """What changed, saying only whether a token or secret was replaced: never any part of one."""
    box = services().secrets
    changed = []
    if old.url != url:
        changed.append(dict(field="url", old=old.url, new=url))
    if box.open(old.consumer_secret_enc) != token:
        changed.append(dict(field="access_token", old="(stored)" if old.consumer_secret_enc else "—", new="(replaced)"))
    if secret is not None and box.open(old.webhook_secret_enc) != secret:
        changed.append(
            dict(field="webhook_secret", old="(stored)" if old.webhook_secret_enc else "—", new="(replaced)")
        )
    _audit_connection(old.id, changed, result.as_dict(), url, DELIVERY_TOPICS)


def _audit_connection(shop_id: int, changed: list[dict], installed: dict, url: str, topics) -> None:
    """A connection made: what changed (never any part of a secret), what was installed, and its check."""
    lines = [("connection.update", dict(shop_id=shop_id, **change)) for change in changed]
    lines.append(("connection.install", dict(shop_id=shop_id, new=installed)))
    lines.append(
        (
            "connection.check",
            dict(shop_id=shop_id, new={"ok": True, "url": url, "webhooks": dict.fromkeys(topics, "active")}),
        )
    )
    merchants.record_all(services().sessions, who(), lines)


@console.post("/shops/<int:shop_id>/settings/connection/shopify")
@shop_view
def connect_shopify_shop(shop_id: int):
    """`wallet-bridge shop connect-shopify` from the page: check the token, subscribe the webhooks, store."""
    shop = _load_shop(shop_id)
    if shop.platform != "shopify":
        return _wrong_form(shop_id, "Shopify")
    form, url, token, secret = _shopify_input(shop)
    if not form.ok:
        return _page(shop_id, connection=form, status=422)
    svc = services()
    result = _connect(
        shop_id,
        form,
        url,
        lambda: connect_shopify(
            svc.sessions,
            svc.secrets,
            shop_id,
            url=url,
            access_token=token,
            webhook_secret=secret,
            public_url=svc.settings.public_url,
            timeout=svc.settings.shop_timeout_seconds,
        ),
    )
    if result is None:
        return _page(shop_id, connection=form, status=422)
    _audit_shopify(shop, result, url, token, secret)
    parts = [
        f"{label}: {len(topics)}"
        for label, topics in (("created", result.created), ("already subscribed", result.unchanged))
        if topics
    ]
    flash(f"Connected to {result.domain}. Webhooks {', '.join(parts) or 'in place'}.", "success")
    return redirect(url_for("console.settings", shop_id=shop_id) + "#connection")
