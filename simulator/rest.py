"""The wc/v3 REST API over the simulator's state: routing, parameters, errors, pagination headers, the
journal and fault injection. Business rules live in store.py; shapes in views.py."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from flask import Blueprint, Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from simulator import views
from simulator.auth import query_params
from simulator.errors import WooError, invalid_param, not_found
from simulator.store import STATUS_LABELS, parse_bool, parse_int
from simulator.wire import parse_rest_date, wp_json

if TYPE_CHECKING:
    from simulator.woocommerce import ShopSimulator

PREFIX = "/wp-json/wc/v3"
AUTH_PARAMS = (
    "oauth_consumer_key",
    "oauth_timestamp",
    "oauth_nonce",
    "oauth_signature",
    "oauth_signature_method",
    "oauth_version",
    "consumer_key",
    "consumer_secret",
)
ORDERBY = ("date", "id", "include", "title", "slug", "modified")
# WP_User_Query's orders for GET /customers ("include" keeps the id order here)
CUSTOMER_ORDERBY = {
    "id": lambda c: c.id,
    "include": lambda c: c.id,
    "name": lambda c: (c.username, c.id),
    "registered_date": lambda c: (c.created, c.id),
}
PROXY_PAGE = "<html><head><title>{0}</title></head><body><h1>{0}</h1></body></html>"
REASONS = {
    500: "500 Internal Server Error",
    502: "502 Bad Gateway",
    503: "503 Service Unavailable",
    504: "504 Gateway Timeout",
    429: "429 Too Many Requests",
}


@dataclass
class RestCall:
    """One request to the REST API, as the journal `sim.requests` keeps it. `query` leaves out the
    authentication parameters; `json` is the parsed body (None without one). `injected` marks calls
    answered by `fail_rest` (with `after_apply`, the call was processed but the answer lost: `shop_status` is the
    status the shop answered, 2xx when the change was made)."""

    method: str
    path: str
    endpoint: str
    query: dict
    json: object
    status: int | None = None
    injected: bool = False
    shop_status: int | None = None


@dataclass
class Outage:
    """An active `fail_rest()`."""

    status: int
    delay: float | None
    remaining: int | None
    after_apply: bool
    body: object


def json_response(data: object, status: int = 200, headers: Mapping | None = None) -> Response:
    """WordPress encodes REST answers with wp_json_encode too."""
    return Response(
        wp_json(data), status=status, headers=dict(headers or {}), content_type="application/json; charset=UTF-8"
    )


def create_app(sim: ShopSimulator) -> Flask:
    """The Flask app serving /wp-json/wc/v3/ for `sim`."""
    app = Flask("simulator.woocommerce")
    api = Blueprint("wc_v3", __name__, url_prefix=PREFIX)
    _order_routes(api, sim)
    _customer_routes(api, sim)
    _webhook_routes(api, sim)
    app.register_blueprint(api)
    app.before_request(lambda: _before(sim))
    app.after_request(lambda response: _after(sim, response))
    app.register_error_handler(WooError, lambda exc: json_response(exc.body(), exc.status))
    for status in (404, 405):
        app.register_error_handler(
            status,
            lambda exc: json_response(
                {
                    "code": "rest_no_route",
                    "message": "No route was found matching the URL and request method.",
                    "data": {"status": 404},
                },
                404,
            ),
        )
    app.register_error_handler(Exception, lambda exc: _crash(app, exc))
    return app


def _crash(app: Flask, exc: Exception) -> Response | HTTPException:
    if isinstance(exc, HTTPException):
        return exc
    app.logger.exception("simulator error", exc_info=exc)
    return json_response(
        {
            "code": "internal_server_error",
            "message": "<p>There has been a critical error on this website.</p>",
            "data": {"status": 500},
            "additional_errors": [],
        },
        500,
    )


# --- journal, outages, authentication ---------------------------------------------------------------------------


def _before(sim: ShopSimulator) -> Response | None:
    call = _journal(sim)
    outage, wake = sim.take_outage()
    if outage is not None and not outage.after_apply:
        call.injected = True
        return _outage_response(outage, wake)
    g.outage = (outage, wake) if outage is not None else None
    if request.url_rule is None:
        return None  # unknown route: 404 rest_no_route, whatever the credentials
    reason = sim.credentials.check(request)
    if reason is not None:
        raise WooError(401, "woocommerce_rest_cannot_view", reason)
    return None


def _after(sim: ShopSimulator, response: Response) -> Response:
    call = g.get("call")
    pending = g.pop("outage", None)
    if pending is not None:
        call.shop_status = response.status_code
        response = _outage_response(*pending)
        call.injected = True
    if call is not None:
        call.status = response.status_code
    return response


def _journal(sim: ShopSimulator) -> RestCall:
    raw = request.get_data(cache=True, as_text=True)
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = raw
    query = {k: v for k, v in query_params(request).items() if k not in AUTH_PARAMS}
    endpoint = request.path[len(PREFIX) + 1 :] if request.path.startswith(PREFIX + "/") else request.path
    call = RestCall(request.method, request.path, endpoint.rstrip("/"), query, body)
    with sim.lock:
        sim.requests.append(call)
    g.call = call
    return call


def _outage_response(outage: Outage, wake) -> Response:
    if outage.delay:
        wake.wait(outage.delay)  # the client has long given up; restore_rest()/shutdown() end the wait early
    if isinstance(outage.body, Mapping | list):
        return json_response(outage.body, outage.status)
    reason = REASONS.get(outage.status, str(outage.status))
    text = outage.body if isinstance(outage.body, str) else PROXY_PAGE.format(reason)
    return Response(text, status=outage.status, content_type="text/html; charset=UTF-8")


# --- parameters -----------------------------------------------------------------------------------------------


def params() -> dict:
    """Query and body parameters merged, the JSON body winning (WordPress's parameter order)."""
    merged = {k: v for k, v in query_params(request).items() if k not in AUTH_PARAMS}
    if request.form:
        merged.update(request.form.to_dict())
    raw = request.get_data(cache=True)
    if raw and request.is_json:
        try:
            body = json.loads(raw)
        except ValueError:
            raise WooError(
                400,
                "rest_invalid_json",
                "Invalid JSON body passed.",
                {"status": 400, "json_error_code": 4, "json_error_message": "Syntax error"},
            ) from None
        if not isinstance(body, dict):
            raise WooError(400, "rest_invalid_json", "Invalid JSON body passed.")
        merged.update(body)
    return merged


def _bounded_int(values: Mapping, name: str, default: int, maximum: int | None = None) -> int:
    value = parse_int(values[name], name) if name in values else default
    if value < 1 or (maximum is not None and value > maximum):
        bounds = f"between 1 (inclusive) and {maximum} (inclusive)" if maximum else "greater than or equal to 1"
        raise invalid_param(name, f"{name} must be {bounds}", "rest_out_of_bounds")
    return value


def _page_window(values: Mapping) -> tuple[int, int]:
    return _bounded_int(values, "page", 1), _bounded_int(values, "per_page", 10, 100)


def _paginated(sim: ShopSimulator, items: list, page: int, per_page: int, collection: str) -> Response:
    """One page plus X-WP-Total / X-WP-TotalPages and a Link header that, like WordPress's, repeats every
    query parameter of this request (oauth_* included) with `page` changed."""
    pages = math.ceil(len(items) / per_page) if items else 0
    chunk = items[(page - 1) * per_page : page * per_page]
    base_query = {k: v for k, v in query_params(request).items() if k != "page"}
    links = []
    if page > 1:
        links.append(f'<{_page_url(sim, collection, base_query, min(page - 1, max(pages, 1)))}>; rel="prev"')
    if pages > page:
        links.append(f'<{_page_url(sim, collection, base_query, page + 1)}>; rel="next"')
    headers = {"X-WP-Total": str(len(items)), "X-WP-TotalPages": str(pages)}
    if links:
        headers["Link"] = ", ".join(links)
    return json_response(chunk, 200, headers)


def _page_url(sim: ShopSimulator, collection: str, query: dict, page: int) -> str:
    return f"{sim.url}{PREFIX}/{collection}?{urlencode({**query, 'page': page})}"


def _dates(sim: ShopSimulator, values: Mapping) -> tuple[dict, dict]:
    as_gmt = parse_bool(values.get("dates_are_gmt", False), "dates_are_gmt")
    after, before = {}, {}
    for name, field, bucket in (
        ("after", "created", after),
        ("before", "created", before),
        ("modified_after", "modified", after),
        ("modified_before", "modified", before),
    ):
        if values.get(name):
            try:
                bucket[field] = parse_rest_date(str(values[name]), sim.store.utc_offset, as_gmt=as_gmt)
            except ValueError:
                raise invalid_param(name, "Invalid date.", "rest_invalid_date") from None
    return after, before


def _statuses(values: Mapping) -> frozenset[str] | None:
    raw = values.get("status", "any")
    names = raw if isinstance(raw, list) else str(raw).split(",")
    names = [name.strip() for name in names if name.strip()]
    if not names or "any" in names:
        return None
    for name in names:
        if name not in STATUS_LABELS and name != "trash":
            raise invalid_param(
                "status", f"status[0] is not one of any, trash, {', '.join(STATUS_LABELS)}.", "rest_not_in_enum"
            )
    return frozenset(names)


# --- orders, notes, refunds -------------------------------------------------------------------------------------


def _order_routes(api: Blueprint, sim: ShopSimulator) -> None:
    store = sim.store

    @api.get("/orders")
    def list_orders():
        values = params()
        page, per_page = _page_window(values)
        after, before = _dates(sim, values)
        orderby, order = values.get("orderby", "date"), values.get("order", "desc")
        if orderby not in ORDERBY:
            raise invalid_param("orderby", f"orderby is not one of {', '.join(ORDERBY)}.", "rest_not_in_enum")
        if order not in ("asc", "desc"):
            raise invalid_param("order", "order is not one of asc and desc.", "rest_not_in_enum")
        customer = parse_int(values["customer"], "customer") if values.get("customer") not in (None, "") else None
        include = (
            frozenset(parse_int(i, "include") for i in str(values["include"]).split(","))
            if values.get("include")
            else None
        )
        with sim.lock:
            found = store.find_orders(
                statuses=_statuses(values),
                customer=customer,
                include=include,
                after=after,
                before=before,
                orderby=orderby,
                descending=order == "desc",
            )
            items = [views.order_json(o, store, sim.url) for o in found]
        return _paginated(sim, items, page, per_page, "orders")

    @api.post("/orders")
    def create_order():
        values = params()

        def action():
            order = store.create_order(values)
            return sim.order_json(order.id), [("order.created", order.id), ("order.updated", order.id)]

        return json_response(sim.change(action), 201)

    @api.get("/orders/<int:order_id>")
    def get_order(order_id: int):
        return json_response(sim.order(order_id))

    @api.route("/orders/<int:order_id>", methods=["PUT", "POST", "PATCH"])
    def update_order(order_id: int):
        values = params()

        def action():
            store.update_order(order_id, values)
            return sim.order_json(order_id), [("order.updated", order_id)]

        return json_response(sim.change(action))

    @api.delete("/orders/<int:order_id>")
    def delete_order(order_id: int):
        force = parse_bool(params().get("force", False), "force")

        def action():
            before = sim.order_json(order_id)
            order = store.trash_order(order_id, force)
            # order.deleted listens to the trash only: an order deleted for good sends no webhook at all
            return (before, []) if force else (sim.order_json(order.id), [("order.deleted", order_id)])

        return json_response(sim.change(action))

    @api.get("/orders/<int:order_id>/notes")
    def list_notes(order_id: int):
        _require_order(sim, order_id, "woocommerce_rest_order_invalid_id")
        kind = params().get("type", "any")
        notes = [n for n in sim.notes(order_id) if kind == "any" or n["customer_note"] == (kind == "customer")]
        return json_response(notes)

    @api.post("/orders/<int:order_id>/notes")
    def create_note(order_id: int):
        _require_order(sim, order_id, "woocommerce_rest_order_invalid_id")
        values = params()
        customer_note = parse_bool(values.get("customer_note", False), "customer_note")
        by_user = parse_bool(values.get("added_by_user", False), "added_by_user")
        with sim.lock:
            note = store.add_note(order_id, values.get("note"), customer_note, by_user)
            return json_response(views.note_json(note, store, sim.url), 201)

    @api.get("/orders/<int:order_id>/notes/<int:note_id>")
    def get_note(order_id: int, note_id: int):
        _require_order(sim, order_id, "woocommerce_rest_order_invalid_id")
        note = next((n for n in sim.notes(order_id) if n["id"] == note_id), None)
        if note is None:
            raise not_found("woocommerce_rest_invalid_id")
        return json_response(note)

    @api.get("/orders/<int:order_id>/refunds")
    def list_refunds(order_id: int):
        _require_order(sim, order_id, "woocommerce_rest_invalid_order_id")
        page, per_page = _page_window(params())
        return _paginated(sim, sim.refunds(order_id), page, per_page, f"orders/{order_id}/refunds")

    @api.post("/orders/<int:order_id>/refunds")
    def create_refund(order_id: int):
        _require_order(sim, order_id, "woocommerce_rest_invalid_order_id")
        return json_response(sim.create_refund(order_id, params()), 201)

    @api.get("/orders/<int:order_id>/refunds/<int:refund_id>")
    def get_refund(order_id: int, refund_id: int):
        _require_order(sim, order_id, "woocommerce_rest_invalid_order_id")
        refund = next((r for r in sim.refunds(order_id) if r["id"] == refund_id), None)
        if refund is None:
            raise not_found("woocommerce_rest_invalid_id")
        return json_response(refund)


def _require_order(sim: ShopSimulator, order_id: int, code: str) -> None:
    if order_id not in sim.store.orders:
        raise not_found(code, "Invalid order ID.")


# --- customers --------------------------------------------------------------------------------------------------


def _customer_routes(api: Blueprint, sim: ShopSimulator) -> None:
    store = sim.store

    @api.get("/customers")
    def list_customers():
        values = params()
        page, per_page = _page_window(values)
        email = values.get("email")
        orderby, order = values.get("orderby", "name"), values.get("order", "asc")
        if orderby not in CUSTOMER_ORDERBY:
            raise invalid_param("orderby", f"orderby is not one of {', '.join(CUSTOMER_ORDERBY)}.", "rest_not_in_enum")
        if order not in ("asc", "desc"):
            raise invalid_param("order", "order is not one of asc and desc.", "rest_not_in_enum")
        role = values.get("role", "customer")
        with sim.lock:
            found = [
                c
                for c in sorted(store.customers.values(), key=CUSTOMER_ORDERBY[orderby], reverse=order == "desc")
                if (not email or c.email.lower() == str(email).lower()) and role in ("all", c.role)
            ]
            items = [views.customer_json(c, store, sim.url) for c in found]
        return _paginated(sim, items, page, per_page, "customers")

    @api.post("/customers")
    def create_customer():
        values = params()

        def action():
            customer = store.create_customer(values)
            return views.customer_json(customer, store, sim.url), [("customer.created", customer.id)]

        return json_response(sim.change(action), 201)

    @api.get("/customers/<int:customer_id>")
    def get_customer(customer_id: int):
        return json_response(sim.customer(customer_id))

    @api.route("/customers/<int:customer_id>", methods=["PUT", "POST", "PATCH"])
    def update_customer(customer_id: int):
        return json_response(sim.update_customer(customer_id, **params()))


# --- webhooks ---------------------------------------------------------------------------------------------------


def _webhook_routes(api: Blueprint, sim: ShopSimulator) -> None:
    @api.get("/webhooks")
    def list_webhooks():
        values = params()
        page, per_page = _page_window(values)
        status = values.get("status", "all")
        with sim.lock:
            hooks = [
                h
                for h in sorted(sim.webhooks.values(), key=lambda h: h.id, reverse=True)
                if status == "all" or h.status == status
            ]
            items = [views.webhook_json(h, sim.store, sim.url) for h in hooks]
        return _paginated(sim, items, page, per_page, "webhooks")

    @api.post("/webhooks")
    def create_webhook():
        values = params()
        data = sim.create_webhook(
            values.get("topic"),
            values.get("delivery_url"),
            secret=values.get("secret"),
            name=values.get("name"),
            status=values.get("status") or "active",
        )
        return json_response(data, 201)

    @api.get("/webhooks/<int:webhook_id>")
    def get_webhook(webhook_id: int):
        with sim.lock:
            return json_response(views.webhook_json(sim.webhook(webhook_id), sim.store, sim.url))

    @api.route("/webhooks/<int:webhook_id>", methods=["PUT", "POST", "PATCH"])
    def update_webhook(webhook_id: int):
        values = params()
        changes = {k: values[k] for k in ("name", "status", "topic", "delivery_url", "secret") if values.get(k)}
        return json_response(sim.update_webhook(webhook_id, **changes))

    @api.delete("/webhooks/<int:webhook_id>")
    def delete_webhook(webhook_id: int):
        sim.webhook(webhook_id)
        if not parse_bool(params().get("force", False), "force"):
            raise WooError(501, "woocommerce_rest_trash_not_supported", "Webhooks do not support trashing.")
        return json_response(sim.delete_webhook(webhook_id))
