"""Outbox messages turned into wc/v3 calls. Each pusher first reads the order and skips what a marker
in its meta_data says was already done, because WooCommerce adds fee lines on every PUT: a repeated
PUT would charge twice. A pusher returns what the shop did that the ledger must follow (bridge/usecases/pushes.py);
messages whose payment was returned meanwhile never reach a pusher."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from sqlalchemy.orm import Session, sessionmaker

from bridge import orders
from bridge.errors import PermanentFailure, ShopCallFailed
from bridge.models import OutboxMessage, Shop
from bridge.money import parse_amount, to_decimal_string
from bridge.order_rules import partial_payment_note, payment_note
from bridge.refund_requests import reason_naming_request
from bridge.security import SecretBox
from bridge.statement_links import StatementLinks, without_link
from bridge.usecases.pushes import (
    OrderReadBack,
    Outcome,
    PaidOtherwise,
    RefundCreated,
    WalletTaken,
    WithdrawalRefused,
)
from sync.woocommerce.client import WooShop
from sync.woocommerce.connect import list_all
from webhooks.payload_fields import PayloadInvalid
from webhooks.woocommerce.payloads import BRIDGE_FEE_NAMES, DISCOUNT_FEE_NAME, PHASES, WALLET_FEE_NAME, parse_order

PAYMENT_MARKER = "_wallet_bridge_payment"
ATTEMPT_MARKER = "_wallet_bridge_attempt"  # the payment attempt whose fee lines the order carries
FEE_MARKER = "_wallet_bridge_wallet_fee"
PAID_STATUSES = ("processing", "completed")
UNDONE_STATUSES = ("cancelled", "refunded")


# a note for the customer → the same note with a fresh link to their wallet's statement
CustomerNote = Callable[[str], str]


def _meta(order: dict, key: str):
    return next((m.get("value") for m in order.get("meta_data") or [] if m.get("key") == key), None)


def _fee(name: str, amount: int, currency: str) -> dict:
    return {"name": name, "total": to_decimal_string(-amount, currency), "tax_status": "none"}


def mark_paid(api: WooShop, payload: dict, for_customer: CustomerNote) -> list[Outcome]:
    order_id = payload["order_id"]
    order = api.get(f"orders/{order_id}").body
    # nothing to pay (a 100 % coupon): no transaction, no marker, no note; the order just proceeds
    marker = str(payload["transaction_id"]) if payload["transaction_id"] is not None else "nothing-to-pay"
    if _meta(order, PAYMENT_MARKER) != marker and order.get("status") in UNDONE_STATUSES:
        return []  # cancelled on the shop meanwhile: its delivery returns the payment
    if _meta(order, PAYMENT_MARKER) != marker and order.get("status") not in PAID_STATUSES:
        body: dict = {"set_paid": True, "meta_data": [{"key": PAYMENT_MARKER, "value": marker}, _attempt(payload)]}
        if payload["transaction_id"] is not None:
            body["transaction_id"] = f"wallet-bridge-{payload['transaction_id']}"
        if order.get("status") == "on-hold" or _amount(order, "total") == 0:  # set_paid moves neither
            body["status"] = "processing"
        if payload.get("replace_fees"):  # an earlier attempt's fee lines: their money went back to the wallet
            body["fee_lines"] = _removed_wallet_fees(order)
        if payload.get("discount"):  # at least the discount: the wallet gets back what the shop took off more
            order = _lower_total_by(api, order, DISCOUNT_FEE_NAME, payload["discount"], body, at_least=True)
        else:
            order = api.put(f"orders/{order_id}", body).body
    note, total = payload["note"], _amount(order, "total")
    if note and payload.get("discount") and "balance" in payload and 0 < total < payload["amount"]:
        # the shop took a cent more off than the discount: the wallet pays its total, the cent goes back
        note = payment_note(
            total, payload["balance"] + payload["amount"] - total, order["currency"], payload["attempt"]
        )
    if note:
        _note_once(api, order_id, for_customer(note))
    return [WalletTaken(order_id, payload["amount"], total, marker)] if payload["amount"] else []


def add_wallet_fee(api: WooShop, payload: dict, for_customer: CustomerNote) -> list[Outcome]:
    """The wallet's part of a partial payment as a negative fee, so the shop asks only for the rest. The
    customer's note says what the shop really asks once it has taxed the fee; nothing left → paid."""
    order_id = payload["order_id"]
    order = api.get(f"orders/{order_id}").body
    marker = str(payload["transaction_id"])
    added = _meta(order, FEE_MARKER) == marker
    if not added and order.get("status") in UNDONE_STATUSES:
        return []  # cancelled on the shop meanwhile (reopened, it would ask again): its delivery returns the wallet
    if not added and order.get("status") in PAID_STATUSES and not payload.get("reopen"):
        return [PaidOtherwise(order_id)]  # paid in full another way before the fee came
    if not added:
        body: dict = {"meta_data": [{"key": FEE_MARKER, "value": marker}, _attempt(payload)]}
        # a paid order whose total grew beyond the wallet needs paying again; one on hold (a renamed offline gateway
        # leaves its orders so) cannot be paid at all: WC_Order::needs_payment() takes only pending and failed ones
        if payload.get("reopen") or order.get("status") == "on-hold":
            body["status"] = "pending"
        if payload.get("replace_fees"):  # an earlier attempt's fee lines: their money went back to the wallet
            body["fee_lines"] = _removed_wallet_fees(order)
        order = _lower_total_by(api, order, WALLET_FEE_NAME, payload["amount"], body)
    lowered = min(_lowered_by(order, WALLET_FEE_NAME), payload["amount"])
    left = _amount(order, "total")
    if left == 0 and order.get("status") not in PAID_STATUSES:
        order = api.put(f"orders/{order_id}", {"set_paid": True, "status": "processing"}).body
    note = partial_payment_note(lowered, left, order["currency"], payload.get("attempt", 1))
    _note_once(api, order_id, for_customer(note))
    return [WalletTaken(order_id, payload["amount"], lowered, marker)]


def _lower_total_by(api: WooShop, order: dict, name: str, amount: int, body: dict, at_least: bool = False) -> dict:
    """Add a negative fee that lowers the order's total by `amount`: exactly where the shop's rounding allows,
    else never by more (the wallet's part: the shop must not ask less than the rest) or, `at_least`, never by
    less (a discount: the wallet pays the shop's total, and gets back what it was charged above it).
    WooCommerce taxes a negative fee in proportion to the order's taxable costs whatever its tax_status
    (WC_Order_Item_Fee::calculate_taxes), so the fee itself is what is left once that tax is out; the shop's
    answer is then read and the fee corrected by the cents its rounding moved."""

    def acceptable(order: dict) -> bool:
        lowered = _lowered_by(order, name)
        return lowered >= amount or _amount(order, "total") == 0 if at_least else lowered <= amount

    net = _untaxed_part(order, amount)
    fees = [*body.get("fee_lines", []), _fee(name, net, order["currency"])]
    order = api.put(f"orders/{order['id']}", {**body, "fee_lines": fees}).body
    best = net if acceptable(order) else None  # the fee nearest the amount known to be on the right side of it
    for _ in range(3):
        lowered = _lowered_by(order, name)
        if lowered == amount or (lowered < amount and _amount(order, "total") == 0):
            return order
        net = max(net + (_untaxed_part(order, amount - lowered) or (1 if amount > lowered else -1)), 0)
        order = _set_fee(api, order, name, net)
        if acceptable(order):
            best = net
    if best is not None and not acceptable(order):
        order = _set_fee(api, order, name, best)
    return order


def _attempt(payload: dict) -> dict:
    return {"key": ATTEMPT_MARKER, "value": str(payload.get("attempt", 1))}


def remove_wallet_fees(api: WooShop, payload: dict, for_customer: CustomerNote) -> list[Outcome]:
    """The attempt's wallet money went back to the wallet (cancelled, trashed, failed and released) before the
    rest was paid: its fee lines leave the order, so that the shop asks the whole total again if it is ever
    paid. Lines a later attempt wrote stay."""
    order_id = payload["order_id"]
    try:
        order = api.get(f"orders/{order_id}").body
    except PermanentFailure as exc:
        if exc.status == 404:  # deleted for good: no total left to correct
            return []
        raise
    if int(_meta(order, ATTEMPT_MARKER) or 1) > payload["attempt"]:
        return []
    if payload.get("paid_whole"):
        # the wallet's own payment dated the order paid, for good: only a paid status says another method paid
        # it since, at the price it showed; otherwise the discount for paying by wallet leaves with the payment
        if PHASES.get(order.get("status")) == orders.PAID:
            return []
    elif order.get("date_paid_gmt") or order.get("date_paid"):
        # the rest was paid another way: the order's total is what that payment was, and what the shop lets
        # the merchant refund of it (a fee taken off would let a refund return the wallet's part twice)
        return []
    if removed := _removed_wallet_fees(order):
        api.put(f"orders/{order_id}", {"fee_lines": removed})
    return []


def _removed_wallet_fees(order: dict) -> list[dict]:
    """The order's fee lines written by the bridge, as lines that remove them (a null name removes a line)."""
    return [
        {"id": fee["id"], "name": None} for fee in order.get("fee_lines") or [] if fee.get("name") in BRIDGE_FEE_NAMES
    ]


def _set_fee(api: WooShop, order: dict, name: str, net: int) -> dict:
    """Change this push's fee line (by id: a line without one would be added)."""
    line = {"id": _last_fee(order, name)["id"], "total": to_decimal_string(-net, order["currency"])}
    return api.put(f"orders/{order['id']}", {"fee_lines": [line]}).body


def _untaxed_part(order: dict, gross: int) -> int:
    """The part of `gross` that, with the tax the shop adds to a negative fee, makes `gross`: the order's
    positive costs against their taxes (the shop spreads the fee's tax over them in the same proportion)."""
    currency = order["currency"]
    lines = [
        *(order.get("line_items") or []),
        *(order.get("shipping_lines") or []),
        *(fee for fee in order.get("fee_lines") or [] if parse_amount(fee.get("total") or "0", currency) > 0),
    ]
    costs = sum(parse_amount(line.get("total") or "0", currency) for line in lines)
    taxes = sum(parse_amount(line.get("total_tax") or "0", currency) for line in lines)
    if costs <= 0 or taxes <= 0:
        return gross
    return gross * costs // (costs + taxes)


def _last_fee(order: dict, name: str) -> dict:
    """The newest fee line of that name: this push's, as fee lines are only ever appended."""
    fees = [fee for fee in order.get("fee_lines") or [] if fee.get("name") == name]
    return max(fees, key=lambda fee: fee.get("id") or 0) if fees else {}


def _lowered_by(order: dict, name: str) -> int:
    """What this push's fee line takes off the order: its amount and the tax the shop put on it."""
    fee, currency = _last_fee(order, name), order["currency"]
    return -(parse_amount(fee.get("total") or "0", currency) + parse_amount(fee.get("total_tax") or "0", currency))


def _amount(order: dict, key: str) -> int:
    return parse_amount(order.get(key) or "0", order["currency"])


def mark_unpaid(api: WooShop, payload: dict, for_customer: CustomerNote) -> list[Outcome]:
    order_id = payload["order_id"]
    order = api.get(f"orders/{order_id}").body
    if order.get("status") in ("pending", "on-hold") and order.get("status") != payload["status"]:
        api.put(f"orders/{order_id}", {"status": payload["status"]})
    _note_once(api, order_id, for_customer(payload["note"]))
    return []


def read_back(api: WooShop, payload: dict, for_customer: CustomerNote) -> list[Outcome]:
    """The order as the shop says it is now, for the rules to apply (a body they cannot read is not retried)."""
    try:
        order = parse_order(api.get(f"orders/{payload['order_id']}").body)
    except PayloadInvalid as exc:
        raise PermanentFailure(f"the shop's order #{payload['order_id']} is unreadable: {exc.fields}") from None
    return [OrderReadBack(replace(order, read_back=True))]


def add_note(api: WooShop, payload: dict, for_customer: CustomerNote) -> list[Outcome]:
    order_id, customer_note = payload["order_id"], payload.get("customer_note", True)
    note = for_customer(payload["note"]) if customer_note else payload["note"]
    _note_once(api, order_id, note, customer_note)
    return []


def _note_once(api: WooShop, order_id: str, note: str, customer_note: bool = True) -> None:
    """Order notes trigger no webhook and a repeated note would email the customer twice: check first.
    A private note (`customer_note` false) is for the merchant only. The link a note carries is new on every
    attempt: the note is the same when the text before it is."""
    notes = api.get(f"orders/{order_id}/notes").body or []
    written = without_link(note)
    if any(without_link(existing.get("note") or "") == written for existing in notes if isinstance(existing, dict)):
        return
    api.post(f"orders/{order_id}/notes", {"note": note, "customer_note": customer_note})


WITHDRAWAL_MARKER = "_wallet_bridge_withdrawal"
# WooCommerce answers a refund it will not make (gateway missing, amount beyond what is left) with
# HTTP 500 and this code: retrying cannot help, the wallet gets the money back instead.
REFUND_REFUSED = "woocommerce_rest_cannot_create_order_refund"


def refund_order(api: WooShop, payload: dict, for_customer: CustomerNote) -> list[Outcome]:
    """Refund a top-up order to the card for a withdrawal; if the shop refuses, the wallet gets it back."""
    order_id, marker = payload["order_id"], str(payload["transaction_id"])
    if _marked_refund(api, order_id, WITHDRAWAL_MARKER, marker) is not None:
        return []
    try:
        _post_refund(api, payload, WITHDRAWAL_MARKER, marker)
    except ShopCallFailed as exc:
        if not _refused(exc) or _marked_refund(api, order_id, WITHDRAWAL_MARKER, marker) is not None:
            raise
        return [WithdrawalRefused(payload["transaction_id"], str(exc)[:200])]
    return []


REQUEST_MARKER = "_wallet_bridge_refund_request"


def create_refund(api: WooShop, payload: dict, for_customer: CustomerNote) -> list[Outcome]:
    """A refund the customer asked for: created once (marker), its id recorded so the shop's delivery of
    it is matched to the destination the customer chose. A refused refund moves no money."""
    order_id, marker = payload["order_id"], str(payload["request_id"])
    made = _marked_refund(api, order_id, REQUEST_MARKER, marker)
    if made is None:
        try:
            named = {**payload, "reason": reason_naming_request(payload["reason"], payload["request_id"])}
            made = _post_refund(api, named, REQUEST_MARKER, marker)
        except ShopCallFailed as exc:
            if not _refused(exc) or _marked_refund(api, order_id, REQUEST_MARKER, marker) is not None:
                raise
            return [RefundCreated(payload["request_id"], None, str(exc)[:200])]
    return [RefundCreated(payload["request_id"], str(made["id"]), None)]


def _marked_refund(api: WooShop, order_id: str, marker_key: str, marker: str) -> dict | None:
    """The order's refund carrying the bridge's marker, if an attempt made it. Also asked when the shop refuses
    the refund: an earlier attempt whose answer was lost (its worker killed, the message leased again) may have
    made it meanwhile, and the refusal is then the shop's "already refunded", retried to find it made. Every page:
    the shop lists ten refunds a page, newest first, and a top-up order many withdrawals took from holds more."""
    refunds = list_all(api, f"orders/{order_id}/refunds")
    return next((r for r in refunds if isinstance(r, dict) and _meta(r, marker_key) == marker), None)


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
    "order.remove_wallet_fees": remove_wallet_fees,
    "order.note": add_note,
    "order.refund": refund_order,
    "order.create_refund": create_refund,
    "order.read_back": read_back,
}


def make_pusher(secrets: SecretBox, timeout: float, links: StatementLinks):
    """The worker's entry point for WooCommerce shops."""

    def push(sessions: sessionmaker[Session], shop: Shop, message: OutboxMessage) -> list[Outcome]:
        def for_customer(note: str) -> str:
            """A note the customer reads (and is e-mailed) about their wallet, with a fresh link to it (the message
            names them; one queued before messages did, or a guest's, has none)."""
            return links.note_with_link(note, shop.id, message.payload.get("note_customer"))

        return PUSHERS[message.kind](WooShop.for_shop(shop, secrets, timeout), message.payload, for_customer)

    return push
