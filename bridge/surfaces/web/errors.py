"""Every error leaves as JSON {"error": {"code", "message", "fields"?}}; domain codes map to statuses here."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from bridge.errors import DomainError

log = logging.getLogger(__name__)

STATUS_BY_CODE = {
    "not_found": 404,
    "validation_failed": 422,
    "unbalanced_transaction": 422,
    "insufficient_funds": 409,
    "wallet_locked": 409,
    "idempotency_conflict": 409,
    "request_in_progress": 409,
    "invalid_state": 409,
    "shop_not_connected": 409,
}


def error_response(status: int, code: str, message: str, fields: dict | None = None):
    body = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return jsonify(error=body), status


def _flatten_fields(messages: dict) -> dict:
    """webargs nests errors by location ({"json": {"amount": [...]}}); callers want the field names."""
    flat: dict = {}
    for location, errors in messages.items():
        if not isinstance(errors, dict):
            flat[location] = errors
            continue
        for name, problem in errors.items():
            flat[name] = problem[0] if isinstance(problem, list) and len(problem) == 1 else problem
    return flat


def _on_domain_error(exc: DomainError):
    return error_response(STATUS_BY_CODE.get(exc.code, 400), exc.code, exc.message, exc.fields)


def _on_http_error(exc: HTTPException):
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages")
    if exc.code == 422 and messages:
        fields = _flatten_fields(messages)
        return error_response(422, "validation_failed", f"invalid input: {', '.join(map(str, fields))}", fields)
    code = (exc.name or "error").lower().replace(" ", "_")
    return error_response(exc.code or 500, code, data.get("message") or exc.description or exc.name)


def _on_database_unavailable(exc: OperationalError):
    """A dropped connection, a failover or a deadlock: the transaction was rolled back, nothing was written,
    and the same request (with its Idempotency-Key) can simply be sent again."""
    log.warning("database unavailable: %s", exc.__class__.__name__, exc_info=True)
    response, status = error_response(503, "database_unavailable", "the database is unavailable: try again")
    response.headers["Retry-After"] = "1"
    return response, status


def _on_unexpected(exc: Exception):
    log.exception("unhandled error")
    return error_response(500, "internal_error", "internal error")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(DomainError, _on_domain_error)
    app.register_error_handler(HTTPException, _on_http_error)
    app.register_error_handler(OperationalError, _on_database_unavailable)
    app.register_error_handler(Exception, _on_unexpected)
