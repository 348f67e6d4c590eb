"""API authentication: a per-shop key as `Authorization: Bearer …`, looked up by its hash."""

from __future__ import annotations

from functools import wraps

from flask import g, request

from bridge.shops import shop_for_api_key
from bridge.surfaces.web.errors import error_response
from bridge.surfaces.web.runtime import reading


def require_api_key(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return error_response(401, "unauthorized", "an API key is required (Authorization: Bearer …)")
        with reading() as session:
            shop = shop_for_api_key(session, key.strip())
        if shop is None:
            return error_response(401, "unauthorized", "unknown API key")
        g.shop_id = shop.id
        return view(*args, **kwargs)

    return wrapper
