"""The merchant console: server-rendered pages (Jinja) for settings, customers' wallets, reports and
operations. Everything here is a thin layer over the domain (`bridge.*`): forms are parsed and checked by
the same schemas the API uses, money moves only through `bridge.wallets`, and every change is audited.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import Blueprint, Flask, current_app, render_template, request
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from bridge.errors import DomainError
from bridge.surfaces.web.errors import STATUS_BY_CODE, error_response

log = logging.getLogger(__name__)
console = Blueprint("console", __name__)
csrf = CSRFProtect()

# Paths that answer JSON (machines), everything else is the console (people).
JSON_PREFIXES = ("/api/", "/webhooks/", "/healthz", "/metrics")

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "style-src 'self'",
        "script-src 'self'",  # static files only (console.js): no inline script, no eval
        "img-src 'self' data:",
        "font-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)


def init_console(app: Flask) -> None:
    """Register the console on the app: CSRF on every form, session cookie settings, security headers,
    HTML error pages for people (JSON stays JSON for the API and webhooks)."""
    from bridge.surfaces.console import filters, views  # noqa: F401  (registers routes and filters)

    app.config.setdefault("WTF_CSRF_TIME_LIMIT", 8 * 3600)
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False  # checked by path below
    app.config.update(
        SESSION_COOKIE_NAME="wallet_bridge_session",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
    )
    csrf.init_app(app)
    app.before_request(_check_csrf)
    app.register_blueprint(console)
    filters.register(app)
    app.after_request(_security_headers)
    app.register_error_handler(NotFound, _not_found_or_not_allowed)
    app.register_error_handler(MethodNotAllowed, _not_found_or_not_allowed)


def wants_json() -> bool:
    return request.path.startswith(JSON_PREFIXES)


def _check_csrf() -> None:
    """Every form needs its CSRF token. The API (keys) and webhooks (signatures) carry no browser session, so
    they are exempt by path: a webhook surface added later for another platform is exempt without a change."""
    config = current_app.config
    if config.get("WTF_CSRF_ENABLED", True) and request.method in config["WTF_CSRF_METHODS"] and not wants_json():
        csrf.protect()


def _security_headers(response):
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    if current_app.config.get("SESSION_COOKIE_SECURE"):
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if request.blueprint == "console" and response.mimetype == "text/html":
        headers.setdefault("Cache-Control", "no-store")  # balances and keys stay out of shared caches
    return response


def render_error(status: int, title: str, message: str):
    return render_template("error.html", status=status, title=title, message=message), status


def _not_found_or_not_allowed(exc: HTTPException):
    if wants_json():
        code = (exc.name or "error").lower().replace(" ", "_")
        return error_response(exc.code, code, (getattr(exc, "data", None) or {}).get("message") or exc.description)
    if isinstance(exc, MethodNotAllowed):
        return render_error(405, "Not allowed", "This page cannot be used that way.")
    return render_error(404, "Page not found", "There is nothing here, or you do not have access to it.")


@console.errorhandler(CSRFError)
def _csrf_failed(exc: CSRFError):
    return render_error(
        400,
        "The form expired",
        "For your safety this form can only be sent from a fresh page. Go back, reload the page and send it again.",
    )


@console.errorhandler(DomainError)
def _domain_error(exc: DomainError):
    if exc.code == "not_found":
        return render_error(404, "Page not found", "There is nothing here, or you do not have access to it.")
    return render_error(STATUS_BY_CODE.get(exc.code, 400), "This cannot be done", exc.message)


@console.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    if exc.code in (404, 405):
        return _not_found_or_not_allowed(exc)
    return render_error(exc.code or 500, exc.name, exc.description or "")


@console.errorhandler(Exception)
def _unexpected(exc: Exception):
    log.exception("console error")
    return render_error(500, "Something went wrong", "The error was logged. Reload the page to see what was saved.")
