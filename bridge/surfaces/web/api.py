"""/api/v1: wallets, statements, adjustments and holds for the shop that owns the API key."""

from __future__ import annotations

from datetime import timedelta

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from bridge.errors import InvalidState, ShopCallFailed, ValidationFailed
from bridge.ledger import Actor
from bridge.models import Shop
from bridge.refund_requests import DESTINATIONS
from bridge.statement_links import LINK_LIFETIME_SECONDS
from bridge.surfaces.platforms import PLATFORMS
from bridge.surfaces.web.auth import require_api_key
from bridge.surfaces.web.errors import error_response
from bridge.surfaces.web.runtime import services, statement_links
from bridge.usecases import wallets
from bridge.usecases.wallets import CreateTopupOrder

api = Blueprint("api", __name__, url_prefix="/api/v1", description="Wallets of a shop's customers")

PositiveAmount = dict(strict=True, validate=validate.Range(min=1, max=10**12))


class IdempotencyHeader(Schema):
    idempotency_key = fields.String(
        required=True,
        validate=[validate.Length(min=1, max=150), validate.Regexp(r"\s*\S", error="must not be blank")],
        data_key="Idempotency-Key",
    )


class HoldOut(Schema):
    id = fields.Integer()
    amount = fields.Integer()
    reason = fields.String()
    expires_at = fields.DateTime()


class ExpiringOut(Schema):
    amount = fields.Integer()
    amount_formatted = fields.String()
    expires_at = fields.DateTime()


class WalletOut(Schema):
    customer_id = fields.String()
    currency = fields.String()
    balance = fields.Integer(metadata={"description": "minor units"})
    available = fields.Integer(metadata={"description": "balance minus open holds, minor units"})
    balance_formatted = fields.String()
    available_formatted = fields.String()
    points = fields.Integer()
    locked = fields.Boolean()
    withdrawable = fields.Integer(metadata={"description": "unspent top-up money that may be withdrawn"})
    expiring = fields.List(fields.Nested(ExpiringOut), metadata={"description": "promotional credit that expires"})
    open_holds = fields.List(fields.Nested(HoldOut))


class StatementQuery(Schema):
    cursor = fields.String(validate=validate.Length(max=40))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class StatementLine(Schema):
    transaction_id = fields.Integer()
    kind = fields.String()
    reason = fields.String()
    amount = fields.Integer()
    currency = fields.String()
    amount_formatted = fields.String()
    balance_after = fields.Integer(allow_none=True)
    balance_after_formatted = fields.String(allow_none=True)
    unit = fields.String()
    order_id = fields.String(allow_none=True)
    refund_id = fields.String(allow_none=True)
    actor = fields.String()
    created_at = fields.DateTime()


class StatementOut(Schema):
    lines = fields.List(fields.Nested(StatementLine))
    next_cursor = fields.String(allow_none=True)


class AdjustmentIn(Schema):
    direction = fields.String(required=True, validate=validate.OneOf(["credit", "debit"]))
    amount = fields.Integer(required=True, **PositiveAmount)
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))


class TransactionOut(Schema):
    transaction_id = fields.Integer()
    replayed = fields.Boolean()
    balance = fields.Integer()
    available = fields.Integer()


class HoldIn(Schema):
    amount = fields.Integer(required=True, **PositiveAmount)
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))
    expires_in_seconds = fields.Integer(
        strict=True, load_default=7 * 86400, validate=validate.Range(min=60, max=90 * 86400)
    )
    order_id = fields.String(validate=validate.Length(min=1, max=64))


class HoldCreated(Schema):
    hold_id = fields.Integer()
    status = fields.String()
    amount = fields.Integer()
    replayed = fields.Boolean()
    available = fields.Integer()


class CaptureIn(Schema):
    amount = fields.Integer(**PositiveAmount)


class HoldState(Schema):
    hold_id = fields.Integer()
    status = fields.String()
    captured_amount = fields.Integer()
    transaction_id = fields.Integer(allow_none=True)


class ConversionIn(Schema):
    points = fields.Integer(
        strict=True,
        validate=validate.Range(min=1, max=10**12),
        metadata={"description": "points to convert; all convertible points when omitted"},
    )


class ConversionOut(Schema):
    transaction_id = fields.Integer()
    replayed = fields.Boolean()
    points = fields.Integer(metadata={"description": "points left"})
    balance = fields.Integer()


def _customer_path_is_valid(customer_id: str) -> None:
    if not 0 < len(customer_id) <= 64:
        raise ValidationFailed("customer_id is 1 to 64 characters", fields={"customer_id": "invalid"})


def _actor() -> Actor:
    return Actor("api_key", f"shop:{g.shop_id}")


@api.route("/customers/<customer_id>/wallet")
class Wallet(MethodView):
    decorators = [require_api_key]

    @api.response(200, WalletOut)
    def get(self, customer_id):
        """The customer's balance, available balance, points and open holds."""
        _customer_path_is_valid(customer_id)
        return wallets.summary(services().sessions, g.shop_id, customer_id)


class RulesOut(Schema):
    currency = fields.String()
    partial_payments = fields.Boolean(metadata={"description": "a short wallet pays part of an order"})
    wallet_discount_kind = fields.String(metadata={"description": "none, percent or fixed: off an order paid whole"})
    wallet_discount_value = fields.Integer(metadata={"description": "basis points (percent) or minor units (fixed)"})
    topup_minimum = fields.Integer()
    topup_maximum = fields.Integer()
    points_conversion_points = fields.Integer()
    points_conversion_value = fields.Integer(metadata={"description": "minor units per points_conversion_points"})
    points_conversion_minimum = fields.Integer()


class ShopOut(Schema):
    name = fields.String()
    rules = fields.Nested(RulesOut)


class AccountOut(WalletOut):
    movements = fields.List(fields.Nested(lambda: StatementLine()), metadata={"description": "the latest ten"})
    rules = fields.Nested(RulesOut)


@api.route("/shop")
class ShopOfKey(MethodView):
    decorators = [require_api_key]

    @api.response(200, ShopOut)
    def get(self):
        """The shop this key belongs to and the rules its storefront shows (the plugin's "Test connection")."""
        return wallets.shop_rules(services().sessions, g.shop_id)


@api.route("/customers/<customer_id>/account")
class CustomerAccount(MethodView):
    decorators = [require_api_key]

    @api.response(200, AccountOut)
    def get(self, customer_id):
        """Everything the shop's "My Account → Wallet" shows, in one call: the wallet, its latest movements
        and the shop's rules (top-up range, points conversion, partial payments)."""
        _customer_path_is_valid(customer_id)
        return wallets.account(services().sessions, g.shop_id, customer_id)


@api.route("/customers/<customer_id>/transactions")
class Transactions(MethodView):
    decorators = [require_api_key]

    @api.arguments(StatementQuery, location="query")
    @api.response(200, StatementOut)
    def get(self, query, customer_id):
        """The customer's statement, newest first; pass `next_cursor` back as `cursor` for more."""
        _customer_path_is_valid(customer_id)
        return wallets.statement_page(services().sessions, g.shop_id, customer_id, **query)


@api.route("/customers/<customer_id>/adjustments")
class Adjustments(MethodView):
    decorators = [require_api_key]

    @api.arguments(IdempotencyHeader, location="headers")
    @api.arguments(AdjustmentIn)
    @api.response(201, TransactionOut)
    def post(self, headers, body, customer_id):
        """Credit or debit the wallet with a reason. Repeating the same Idempotency-Key moves nothing."""
        _customer_path_is_valid(customer_id)
        return wallets.adjust(
            services().sessions, g.shop_id, customer_id, key=headers["idempotency_key"], actor=_actor(), **body
        )


@api.route("/customers/<customer_id>/holds")
class Holds(MethodView):
    decorators = [require_api_key]

    @api.arguments(IdempotencyHeader, location="headers")
    @api.arguments(HoldIn)
    @api.response(201, HoldCreated)
    def post(self, headers, body, customer_id):
        """Reserve money on the wallet (available = balance − open holds)."""
        _customer_path_is_valid(customer_id)
        return wallets.hold(services().sessions, g.shop_id, customer_id, key=headers["idempotency_key"], **body)


@api.route("/holds/<int:hold_id>/capture")
class Capture(MethodView):
    decorators = [require_api_key]

    @api.arguments(CaptureIn)
    @api.response(200, HoldState)
    def post(self, body, hold_id):
        """Capture all or part of a hold; the rest is released."""
        return wallets.capture(services().sessions, g.shop_id, hold_id, body.get("amount"), _actor())


@api.route("/holds/<int:hold_id>/void")
class Void(MethodView):
    decorators = [require_api_key]

    @api.response(200, HoldState)
    def post(self, hold_id):
        """Release a hold without moving money."""
        return wallets.void(services().sessions, g.shop_id, hold_id)


@api.route("/customers/<customer_id>/points/conversions")
class PointsConversions(MethodView):
    decorators = [require_api_key]

    @api.arguments(IdempotencyHeader, location="headers")
    @api.arguments(ConversionIn)
    @api.response(201, ConversionOut)
    def post(self, headers, body, customer_id):
        """Convert loyalty points to wallet money at the shop's rate (whole conversion steps only)."""
        _customer_path_is_valid(customer_id)
        return wallets.convert(
            services().sessions, g.shop_id, customer_id, body.get("points"), headers["idempotency_key"], _actor()
        )


class TopupIn(Schema):
    amount = fields.Integer(required=True, **PositiveAmount)


class TopupOut(Schema):
    order_id = fields.String()
    payment_url = fields.String()
    amount = fields.Integer()


@api.route("/customers/<customer_id>/topups")
class Topups(MethodView):
    decorators = [require_api_key]

    @api.arguments(IdempotencyHeader, location="headers")
    @api.arguments(TopupIn)
    @api.response(201, TopupOut)
    def post(self, headers, body, customer_id):
        """Top up within the shop's range: the bridge creates a shop order for the amount and returns
        its payment URL; the wallet is credited once with what that order actually paid."""
        _customer_path_is_valid(customer_id)
        try:
            return wallets.top_up(
                services().sessions,
                g.shop_id,
                customer_id,
                body["amount"],
                headers["idempotency_key"],
                _order_creation_lease(),
                _topup_orders,
            )
        except ShopCallFailed as exc:
            return error_response(502, "shop_unreachable", f"the shop did not create the top-up order: {exc}")


def _topup_orders(shop: Shop) -> CreateTopupOrder:
    make = PLATFORMS[shop.platform].topup_orders
    if make is None:
        raise InvalidState(f"{PLATFORMS[shop.platform].title} shops take no top-ups through the bridge")
    return make(services().secrets, services().settings.shop_timeout_seconds)(shop)


def _order_creation_lease() -> timedelta:
    """How long a call may be creating a top-up order before a retry takes over: its two shop calls (look for
    the order, make it), each tried up to three times, at the shop timeout each."""
    return timedelta(seconds=6 * services().settings.shop_timeout_seconds)


class WithdrawalIn(Schema):
    amount = fields.Integer(required=True, **PositiveAmount)


class WithdrawalOut(Schema):
    request_id = fields.Integer()
    status = fields.String(metadata={"description": "approved (paid out) or pending (held until the shop decides)"})
    amount = fields.Integer()
    transaction_ids = fields.List(fields.Integer())
    replayed = fields.Boolean()
    balance = fields.Integer()


@api.route("/customers/<customer_id>/withdrawals")
class Withdrawals(MethodView):
    decorators = [require_api_key]

    @api.arguments(IdempotencyHeader, location="headers")
    @api.arguments(WithdrawalIn)
    @api.response(201, WithdrawalOut)
    def post(self, headers, body, customer_id):
        """Ask to withdraw unspent top-up money (within the shop's minimum and maximum). Paid out at once when
        the shop approves withdrawals automatically (the shop refunds the top-up orders to the card; if it
        refuses, the money comes back to the wallet and the customer is told why); otherwise `pending`, the
        amount held on the wallet until the merchant approves or declines the request in the console."""
        _customer_path_is_valid(customer_id)
        return wallets.withdraw(
            services().sessions, g.shop_id, customer_id, body["amount"], headers["idempotency_key"], _actor()
        )


class RefundRequestIn(Schema):
    amount = fields.Integer(required=True, **PositiveAmount)
    destination = fields.String(required=True, validate=validate.OneOf(DESTINATIONS))
    reason = fields.String(load_default="", validate=validate.Length(max=500))


class RefundRequestOut(Schema):
    request_id = fields.Integer()
    status = fields.String()
    destination = fields.String()
    amount = fields.Integer()


@api.route("/orders/<order_id>/refunds")
class OrderRefunds(MethodView):
    decorators = [require_api_key]

    @api.arguments(IdempotencyHeader, location="headers")
    @api.arguments(RefundRequestIn)
    @api.response(202, RefundRequestOut)
    def post(self, headers, body, order_id):
        """Ask for a refund to the card, the wallet (with the shop's bonus) or points, within the customer's
        return window; the shop makes the refund and the wallet moves when its delivery arrives."""
        _order_path_is_valid(order_id)
        return wallets.ask_refund(services().sessions, g.shop_id, order_id, headers["idempotency_key"], **body)


class TipIn(Schema):
    percent_bp = fields.Integer(
        strict=True,
        validate=validate.Range(min=1, max=10_000),
        metadata={"description": "one of the shop's presets, in basis points"},
    )
    amount = fields.Integer(**PositiveAmount)


class TipOut(Schema):
    transaction_id = fields.Integer()
    replayed = fields.Boolean()
    amount = fields.Integer()


@api.route("/orders/<order_id>/tips")
class OrderTips(MethodView):
    decorators = [require_api_key]

    @api.arguments(IdempotencyHeader, location="headers")
    @api.arguments(TipIn)
    @api.response(201, TipOut)
    def post(self, headers, body, order_id):
        """Tip on a paid order from the customer's wallet: a shop preset percentage or an amount."""
        _order_path_is_valid(order_id)
        return wallets.tip(
            services().sessions,
            g.shop_id,
            order_id,
            percent_bp=body.get("percent_bp"),
            amount=body.get("amount"),
            key=headers["idempotency_key"],
            actor=_actor(),
        )


class ReservationIn(Schema):
    customer_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    amount = fields.Integer(required=True, **PositiveAmount)
    expires_in_seconds = fields.Integer(
        strict=True, load_default=2 * 3600, validate=validate.Range(min=60, max=7 * 86400)
    )


class ReservationOut(HoldCreated):
    amount = fields.Integer(metadata={"description": "what the wallet pays: all asked, or less (partial payments)"})
    left_to_pay = fields.Integer(metadata={"description": "what another payment method pays"})


class ReleasedOut(Schema):
    released = fields.Integer(metadata={"description": "minor units the order no longer reserves"})


@api.route("/orders/<order_id>/reservation")
class OrderReservation(MethodView):
    decorators = [require_api_key]

    @api.arguments(IdempotencyHeader, location="headers")
    @api.arguments(ReservationIn)
    @api.response(201, ReservationOut)
    def post(self, headers, body, order_id):
        """Reserve wallet money for an order at checkout, before it is placed: the amount, or all the wallet
        has when it is short and the shop takes partial payments (else 409 insufficient_funds). The order has
        one open reservation: asking again returns it (whatever the key), another amount replaces it. The
        order's delivery captures it (or voids it: cancelled, failed); unused, it expires."""
        _order_path_is_valid(order_id)
        return wallets.reserve(services().sessions, g.shop_id, order_id, key=headers["idempotency_key"], **body)

    @api.response(200, ReleasedOut)
    def delete(self, order_id):
        """Release what the order reserves (cancelled or failed in the shop; its delivery would do it too,
        later). Releasing again releases nothing; an order never reserved is not found."""
        _order_path_is_valid(order_id)
        return {"released": wallets.release(services().sessions, g.shop_id, order_id)}


def _order_path_is_valid(order_id: str) -> None:
    if not 0 < len(order_id) <= 64:
        raise ValidationFailed("order_id is 1 to 64 characters", fields={"order_id": "invalid"})


class StatementLinkOut(Schema):
    url = fields.String()
    expires_in = fields.Integer(metadata={"description": "seconds"})


@api.route("/customers/<customer_id>/statement-link")
class StatementLink(MethodView):
    decorators = [require_api_key]

    @api.response(201, StatementLinkOut)
    def post(self, customer_id):
        """A signed link to the customer's statement page, valid for an hour: the shop's "My account"
        page asks for it for the logged-in customer and shows it."""
        _customer_path_is_valid(customer_id)
        wallets.known_customer(services().sessions, g.shop_id, customer_id)
        return {"url": statement_links().url(g.shop_id, customer_id), "expires_in": LINK_LIFETIME_SECONDS}
