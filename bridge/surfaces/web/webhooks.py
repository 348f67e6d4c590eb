"""POST /webhooks/<platform>/<shop_id>: one endpoint for every platform in the table. The request is read
here and handed to webhooks/receive.py (verify → parse → handle); its answer is always JSON."""

from __future__ import annotations

from flask import Blueprint, request

from bridge.surfaces.platforms import PLATFORMS
from bridge.surfaces.web.errors import error_response
from bridge.surfaces.web.runtime import services
from webhooks.receive import Request, receive

webhooks = Blueprint("webhooks", __name__)


@webhooks.post("/webhooks/<platform>/<int:shop_id>")
def deliver(platform: str, shop_id: int):
    if platform not in PLATFORMS:
        return error_response(404, "not_found", "no such webhook endpoint")
    svc = services()
    incoming = Request(
        shop_id, request.headers, request.content_type, request.get_data(cache=False), request.remote_addr
    )
    answer = receive(
        svc.sessions, svc.secrets, PLATFORMS[platform].inbound, incoming, defer=svc.settings.defer_deliveries
    )
    return answer.body, answer.status
