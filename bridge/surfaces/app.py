"""The Flask application factory: settings read once, services built once, one blueprint per surface."""

from __future__ import annotations

import logging

from flask import Flask, Response
from flask_smorest import Api
from werkzeug.routing import IntegerConverter

from bridge.config import Settings
from bridge.services import Services
from bridge.surfaces import platforms
from bridge.surfaces.console import init_console
from bridge.surfaces.web import input_guard
from bridge.surfaces.web.api import api
from bridge.surfaces.web.errors import register_error_handlers
from bridge.surfaces.web.health import health, install_request_metrics
from bridge.surfaces.web.statement import customer_statement
from bridge.surfaces.web.webhooks import webhooks
from sync.shop_http import allow_private_addresses

log = logging.getLogger(__name__)


class DatabaseId(IntegerConverter):
    def __init__(self, url_map, *args, **kwargs):
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(url_map, *args, **kwargs)


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__, instance_path=str(settings.instance_path))
    # Ids in URLs never exceed the database's INTEGER: a larger one is simply not found (404), before any query.
    app.url_map.converters["int"] = DatabaseId
    app.config.update(
        SECRET_KEY=settings.secret_key,
        API_TITLE="Wallet Bridge",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "components": {"securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}}},
            "security": [{"apiKey": []}],
        },
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.session_cookie_secure,
        MAX_CONTENT_LENGTH=2 * 1024 * 1024,
    )
    app.extensions["wallet_bridge"] = Services.build(settings)
    platforms.install()
    rest = Api(app)
    rest.register_blueprint(api)
    app.register_blueprint(health)
    app.register_blueprint(webhooks)
    app.register_blueprint(customer_statement)
    register_error_handlers(app)
    init_console(app)  # the merchant console; CSRF on every form (the API and webhooks are exempt)
    input_guard.install(app)  # after the CSRF check: no NUL character, no JSON nested too deep (web/input_guard.py)
    install_request_metrics(app)
    _install_hsts(app, settings.hsts_max_age_seconds)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    allow_private_addresses(settings.allow_private_shop_urls)
    if settings.allow_private_shop_urls:
        log.warning(
            "ALLOW_PRIVATE_SHOP_URLS is on: shop URLs may point at loopback and private networks "
            "(development only; see docs/security.md)"
        )
    return app


def _install_hsts(app: Flask, max_age: int) -> None:
    """Browsers that once reached the bridge over https never try plain http again (PUBLIC_URL on https)."""
    if max_age <= 0:
        return

    @app.after_request
    def _strict_transport(response: Response) -> Response:
        response.headers.setdefault("Strict-Transport-Security", f"max-age={max_age}")
        return response
