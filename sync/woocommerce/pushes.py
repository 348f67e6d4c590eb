"""Outbox messages turned into wc/v3 calls. Each pusher first reads the order and skips what a marker
in its meta_data says was already done, because WooCommerce adds fee lines on every PUT: a repeated
PUT would charge twice."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from bridge.db import unit_of_work
from bridge.models import OutboxMessage, Shop
from bridge.money import format_amount, parse_amount, to_decimal_string
from bridge.order_rules import return_overcharge, wallet_payment_stands
from bridge.refund_requests import record_created
from bridge.security import SecretBox
from bridge.withdrawals import is_restored, restore_refused_withdrawal
from sync.woocommerce.client import WooShop
from sync.worker import PermanentFailure, ShopCallFailed

PAYMENT_MARKER = "_wallet_bridge_payment"
FEE_MARKER = "_wallet_bridge_wallet_fee"
WALLET_FEE_NAME = "Paid from wallet"
PAID_STATUSES = ("processing", "completed")
UNDONE_STATUSES = ("cancelled", "refunded")
DISCOUNT_FEE_NAME = "Wallet discount"


def _meta(order: dict, key: str):
    return next((m.get("value") for m in order.get("meta_data") or [] if m.get("key") == key), None)


def _fee(name: str, amount: int, currency: str) -> dict:
    return {"name": name, "total": to_decimal_string(-amount, currency), "tax_status": "none"}


def _stored_reduction(order: dict, name: str) -> int:
    """What the shop's fee lines of this name actually took off the order (fee plus any tax on it)."""
    currency = order["currency"]
    return -sum(
        parse_amount(fee.get("total") or "0", currency) + parse_amount(fee.get("total_tax") or "0", currency)
        for fee in order.get("fee_lines") or []
        if fee.get("name") == name
    )


def mark_paid(api: WooShop, sessions, shop: Shop, payload: dict) -> None:
    order_id = payload["order_id"]
    if not _payment_stands(sessions, shop, order_id):
        return  # cancelled since, and the payment returned: set_paid would revive the order
    order = api.get(f"orders/{order_id}").body
    marker = str(payload["transaction_id"])
    if _meta(order, PAYMENT_MARKER) != marker and order.get("status") in UNDONE_STATUSES:
        return  # cancelled on the shop meanwhile: its delivery returns the payment
    if _meta(order, PAYMENT_MARKER) != marker:
        body = {
            "set_paid": True,
            "transaction_id": f"wallet-bridge-{payload['transaction_id']}",
            "meta_data": [{"key": PAYMENT_MARKER, "value": marker}],
        }
        if order.get("status") == "on-hold":  # set_paid only moves pending or failed orders
            body["status"] = "processing"
        if payload.get("discount"):
            body["fee_lines"] = [_fee(DISCOUNT_FEE_NAME, payload["discount"], order["currency"])]
        order = api.put(f"orders/{order_id}", body).body
    _settle(sessions, shop, order_id, parse_amount(order["total"], order["currency"]))
    _note_once(api, order_id, payload["note"])


def add_wallet_fee(api: WooShop, sessions, shop: Shop, payload: dict) -> None:
    order_id = payload["order_id"]
    if not _payment_stands(sessions, shop, order_id):
        return
    order = api.get(f"orders/{order_id}").body
    marker = str(payload["transaction_id"])
    if _meta(order, FEE_MARKER) != marker and order.get("status") in PAID_STATUSES:
        return _return_wallet_part(api, sessions, shop, order)  # paid in full another way before the fee came
    if _meta(order, FEE_MARKER) != marker:
        body = {
            "fee_lines": [_fee(WALLET_FEE_NAME, payload["amount"], order["currency"])],
            "meta_data": [{"key": FEE_MARKER, "value": marker}],
        }
        order = api.put(f"orders/{order_id}", body).body
    _settle(sessions, shop, order_id, _stored_reduction(order, WALLET_FEE_NAME))
    _note_once(api, order_id, payload["note"])


def mark_unpaid(api: WooShop, sessions, shop: Shop, payload: dict) -> None:
    order_id = payload["order_id"]
    order = api.get(f"orders/{order_id}").body
    if order.get("status") in ("pending", "on-hold") and order.get("status") != payload["status"]:
        api.put(f"orders/{order_id}", {"status": payload["status"]})
    _note_once(api, order_id, payload["note"])


def add_note(api: WooShop, sessions, shop: Shop, payload: dict) -> None:
    _note_once(api, payload["order_id"], payload["note"], payload.get("customer_note", True))


def _payment_stands(sessions: sessionmaker[Session], shop: Shop, order_id: str) -> bool:
    with unit_of_work(sessions) as session:
        return wallet_payment_stands(session, session.get(Shop, shop.id), order_id)


def _return_wallet_part(api: WooShop, sessions, shop: Shop, order: dict) -> None:
    with unit_of_work(sessions) as session:
        returned = return_overcharge(session, session.get(Shop, shop.id), str(order["id"]), 0)
    if returned:
        amount = format_amount(returned, order["currency"])
        _note_once(api, str(order["id"]), f"{amount} returned to your wallet: the order was paid in full another way.")


def _settle(sessions: sessionmaker[Session], shop: Shop, order_id: str, credited: int) -> None:
    with unit_of_work(sessions) as session:
        return_overcharge(session, session.get(Shop, shop.id), order_id, credited)


def _note_once(api: WooShop, order_id: str, note: str, customer_note: bool = True) -> None:
    """Order notes trigger no webhook and a repeated note would email the customer twice: check first.
    A private note (`customer_note` false) is for the merchant only."""
    notes = api.get(f"orders/{order_id}/notes").body or []
    if any(existing.get("note") == note for existing in notes if isinstance(existing, dict)):
        return
    api.post(f"orders/{order_id}/notes", {"note": note, "customer_note": customer_note})


WITHDRAWAL_MARKER = "_wallet_bridge_withdrawal"
# WooCommerce answers a refund it will not make (gateway missing, amount beyond what is left) with
# HTTP 500 and this code: retrying cannot help, the wallet gets the money back instead.
REFUND_REFUSED = "woocommerce_rest_cannot_create_order_refund"


def refund_order(api: WooShop, sessions, shop: Shop, payload: dict) -> None:
    """Refund a top-up order to the card for a withdrawal; if the shop refuses, restore the wallet."""
    order_id, marker = payload["order_id"], str(payload["transaction_id"])
    with unit_of_work(sessions) as session:
        if is_restored(session, session.get(Shop, shop.id), payload["transaction_id"]):
            return
    refunds = api.get(f"orders/{order_id}/refunds").body or []
    if any(_meta(refund, WITHDRAWAL_MARKER) == marker for refund in refunds if isinstance(refund, dict)):
        return
    try:
        _post_refund(api, payload, WITHDRAWAL_MARKER, marker)
    except ShopCallFailed as exc:
        if not _refused(exc):
            raise
        with unit_of_work(sessions) as session:
            restore_refused_withdrawal(session, session.get(Shop, shop.id), payload["transaction_id"], str(exc)[:200])


REQUEST_MARKER = "_wallet_bridge_refund_request"


def create_refund(api: WooShop, sessions, shop: Shop, payload: dict) -> None:
    """A refund the customer asked for: created once (marker), its id recorded so the shop's delivery of
    it is matched to the destination the customer chose. A refused refund moves no money."""
    order_id, marker = payload["order_id"], str(payload["request_id"])
    refunds = api.get(f"orders/{order_id}/refunds").body or []
    done = [r for r in refunds if isinstance(r, dict) and _meta(r, REQUEST_MARKER) == marker]
    refund_id, refused = (str(done[0]["id"]), None) if done else (None, None)
    if not done:
        try:
            refund_id = str(_post_refund(api, payload, REQUEST_MARKER, marker)["id"])
        except ShopCallFailed as exc:
            if not _refused(exc):
                raise
            refused = str(exc)[:200]
    with unit_of_work(sessions) as session:
        record_created(session, payload["request_id"], refund_id, refused)


def _post_refund(api: WooShop, payload: dict, marker_key: str, marker: str) -> dict:
    """POST a refund carrying the bridge's marker, so a retry can see it was made."""
    order_id = payload["order_id"]
    currency = api.get(f"orders/{order_id}").body["currency"]
    body = {
        "amount": to_decimal_string(payload["amount"], currency),
        "reason": payload["reason"],
        "api_refund": payload["api_refund"],
        "meta_data": [{"key": marker_key, "value": marker}],
    }
    return api.post(f"orders/{order_id}/refunds", body).body


def _refused(exc: ShopCallFailed) -> bool:
    return exc.code == REFUND_REFUSED or isinstance(exc, PermanentFailure)


PUSHERS = {
    "order.mark_paid": mark_paid,
    "order.add_wallet_fee": add_wallet_fee,
    "order.mark_unpaid": mark_unpaid,
    "order.note": add_note,
    "order.refund": refund_order,
    "order.create_refund": create_refund,
}


def make_pusher(secrets: SecretBox, timeout: float):
    """The worker's entry point for WooCommerce shops."""

    def push(sessions: sessionmaker[Session], shop: Shop, message: OutboxMessage) -> None:
        PUSHERS[message.kind](WooShop.for_shop(shop, secrets, timeout), sessions, shop, message.payload)

    return push
