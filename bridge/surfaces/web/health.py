"""Liveness with a database round trip, and Prometheus metrics."""

from __future__ import annotations

import time

from flask import Blueprint, Flask, g, request
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from sqlalchemy import text

from bridge.surfaces.web.errors import error_response
from bridge.surfaces.web.runtime import services

health = Blueprint("health", __name__)

REQUESTS = Counter("wallet_bridge_http_requests_total", "HTTP requests", ["endpoint", "status"])
LATENCY = Histogram("wallet_bridge_http_request_seconds", "HTTP request latency", ["endpoint"])


@health.get("/healthz")
def healthz():
    try:
        with services().engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception:  # any database failure means "not healthy", never a crash
        return error_response(503, "database_unreachable", "the database is not reachable")
    return {"status": "ok", "database": "ok"}


@health.get("/metrics")
def metrics():
    return generate_latest(), 200, {"Content-Type": CONTENT_TYPE_LATEST}


def install_request_metrics(app: Flask) -> None:
    @app.before_request
    def _start_timer():
        g.request_started = time.perf_counter()

    @app.after_request
    def _record(response):
        endpoint = request.endpoint or "unknown"
        REQUESTS.labels(endpoint, response.status_code).inc()
        if "request_started" in g:
            LATENCY.labels(endpoint).observe(time.perf_counter() - g.request_started)
        return response
