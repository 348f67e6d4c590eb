"""Liveness with a database round trip, and Prometheus metrics.

With PROMETHEUS_MULTIPROC_DIR set (it must be, before the first import of prometheus_client, in every gunicorn
worker and every `wallet-bridge worker`: deploy/README.md), each process writes its counters to files there and
/metrics adds up all of them, so one scrape sees the whole service whichever worker answers it."""

from __future__ import annotations

import os
import time

from flask import Blueprint, Flask, g, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
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
    return generate_latest(_registry()), 200, {"Content-Type": CONTENT_TYPE_LATEST}


def _registry() -> CollectorRegistry:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY  # one process: its own counters
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return registry


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
