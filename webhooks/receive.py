"""Every platform's delivery, once read off HTTP: verify → parse → handle, and the answer to give.

Only a bad signature (an unknown shop's too, so that answers never tell which shops exist) or a body that
cannot be read gets an error status; everything signed is stored before it is answered, and a payload the
rules cannot read is kept as failed (422). No Flask here: the endpoint (bridge/surfaces/web/webhooks.py)
reads the request and sends the answer."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from bridge.errors import ValidationFailed
from bridge.security import SecretBox
from bridge.states import InboxStatus
from bridge.usecases import deliveries
from webhooks.inbound import Inbound
from webhooks.payload_fields import resource_id
from webhooks.signing import is_valid_signature

security_log = logging.getLogger("wallet_bridge.security")


@dataclass(frozen=True)
class Request:
    shop_id: int
    headers: Mapping  # case-insensitive (werkzeug's Headers)
    content_type: str | None
    body: bytes
    remote_addr: str | None


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict


def refusal(status: int, code: str, message: str, fields: dict | None = None) -> Answer:
    error = {"code": code, "message": message} | ({"fields": fields} if fields else {})
    return Answer(status, {"error": error})


def receive(
    sessions: sessionmaker[Session], box: SecretBox, platform: Inbound, request: Request, *, defer: bool = False
) -> Answer:
    """`defer`: answer once the delivery is stored (one INSERT); a worker applies it (DEFER_DELIVERIES).
    Everything up to the store is on one connection, the INSERT its only write (deliveries.arrival); applying it
    inline is a transaction of its own."""
    pong = platform.unsigned_answer(request.content_type, request.body, request.headers)
    if pong is not None:
        return Answer(200, pong)
    try:
        return _receive(sessions, box, platform, request, defer, remembered=True)
    except deliveries.KeysChanged:  # the keys that accepted it changed meanwhile: checked again, the keys read and the
        return _receive(sessions, box, platform, request, defer, remembered=False)  # store in one transaction


def _receive(
    sessions: sessionmaker[Session], box: SecretBox, platform: Inbound, request: Request, defer: bool, remembered: bool
) -> Answer:
    topic = request.headers.get(platform.topic_header, "")
    with deliveries.arrival(sessions, box, request.shop_id, platform.name, remembered=remembered) as arrival:
        if not arrival.authentic(lambda keys: _authentic(arrival, keys, platform, request)):
            security_log.warning(
                "rejected %s delivery: bad signature shop=%s topic=%r from=%s",
                platform.name,
                request.shop_id,
                topic[:60],
                request.remote_addr,
            )
            return refusal(401, "invalid_signature", "missing or invalid webhook signature")
        delivery_id = request.headers.get(platform.delivery_id_header, "")[:100] or None
        if platform.delivery_ids_unique and delivery_id and arrival.already_applied(delivery_id):
            arrival.confirm()
            return Answer(200, {"status": "duplicate"})
        try:
            data = json.loads(request.body)
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested deeper than Python goes
            arrival.confirm()
            return refusal(400, "invalid_json", "the body is not JSON", {"body": "not JSON"})
        stored = dict(topic=topic, resource_id=resource_id(data), delivery_id=delivery_id, body=request.body)
        handler = platform.topics.get(topic)
        if handler is None:
            arrival.store(**stored, status=InboxStatus.IGNORED)
            return Answer(200, {"status": InboxStatus.IGNORED, "topic": topic})
        try:
            snapshot = handler.parse(data)
        except ValidationFailed as exc:
            arrival.store(**stored, status=InboxStatus.FAILED, error=f"invalid payload: {exc.fields}")
            return refusal(422, "validation_failed", exc.message, exc.fields)
        inbox_id = arrival.store(**stored, wake=defer)
    if defer:
        return Answer(200, {"status": InboxStatus.RECEIVED, "delivery": inbox_id})
    try:
        status = deliveries.apply_delivery(sessions, inbox_id, handler.apply, snapshot)
    except ValidationFailed as exc:
        return refusal(422, "validation_failed", exc.message, exc.fields)
    return Answer(200, {"status": status, "delivery": inbox_id})


def _authentic(arrival: deliveries.Arrival, keys: deliveries.ShopKeys, platform: Inbound, request: Request) -> bool:
    if not is_valid_signature(request.body, request.headers.get(platform.signature_header), keys.secrets):
        return False
    if not platform.names_the_shop(request.headers, keys.url):
        return False
    if platform.one_secret_per_shop:
        others = arrival.shops_sharing_secret()
        if others:
            security_log.warning(
                "refused %s delivery: shop=%s shares its webhook secret with shop(s) %s",
                platform.name,
                request.shop_id,
                others,
            )
            return False
    return True
