"""Messages to shops, written in the same database transaction as the ledger change that causes them.

Kinds are platform-neutral; `sync/<platform>/` turns each into that shop's API calls:
- order.mark_paid      {order_id, transaction_id, discount, note}       the wallet paid the whole order
- order.add_wallet_fee {order_id, transaction_id, amount, note}         the wallet paid part of it
- order.mark_unpaid    {order_id, status, note}                         the wallet could not pay
- order.remove_wallet_fees {order_id, attempt, paid_whole}   the attempt's wallet money went back: its fee lines
                       (a wallet part, or the discount of an order the wallet paid whole) leave the order
- order.note           {order_id, note}                                 tell the customer what moved
- order.refund         {order_id, amount, reason, api_refund, transaction_id}   refund an order (withdrawals)
- order.create_refund  {order_id, amount, reason, api_refund, request_id}       a refund the customer asked for
- store_credit.credit / store_credit.debit  {customer_id, currency, amount, expires_at, transaction_id}
                       mirror a wallet movement to the shop's native store credit (Shopify)
- order.read_back      {order_id}   read the order back and apply it: a state awaiting payment again, dated the
                       same second as the one before it, is a new attempt only if the shop still says so
- order.fetch_transactions {order_id, currency}   read what the order's checkout spent from the shop's
                       store credit, and record it (Shopify's order webhooks do not say)

A message that tells the customer something (its note) also names them (`note_customer`, their id at the shop;
absent for a guest; given by the caller when it knows them), so that the push can add a fresh link to their
statement without reading the database.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import JSON, BindParameter, ColumnElement, Executable, cast, func, select, type_coerce
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from bridge.db import write_once
from bridge.models import Customer, OutboxMessage, ShopOrder, utcnow
from bridge.states import OutboxStatus

CUSTOMER_NOTE_KINDS = frozenset({"order.mark_paid", "order.add_wallet_fee", "order.mark_unpaid", "order.note"})
KINDS = frozenset(
    {
        "order.mark_paid",
        "order.add_wallet_fee",
        "order.mark_unpaid",
        "order.remove_wallet_fees",
        "order.note",
        "order.refund",
        "order.create_refund",
        "store_credit.credit",
        "store_credit.debit",
        "order.fetch_transactions",
        "order.read_back",
    }
)


def enqueue(session: Session, *, shop_id: int, kind: str, payload: dict, dedupe_key: str) -> None:
    """Queue a message once per (shop, dedupe_key): a replayed business event queues nothing new."""
    _check_kind(kind)
    if kind in CUSTOMER_NOTE_KINDS and payload.get("customer_note", True) and "note_customer" not in payload:
        payload = {**payload, "note_customer": order_customer(session, shop_id, payload["order_id"])}
    write_once(session, OutboxMessage, _row(shop_id, kind, payload, dedupe_key), _DEDUPED_BY)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown outbox message kind {kind!r}")


def _row(shop_id: int, kind: str, payload: dict, dedupe_key: str) -> dict:
    now = utcnow()
    return dict(zip(_ROW_COLUMNS, (shop_id, kind, payload, dedupe_key, OutboxStatus.PENDING, 0, now, now), strict=True))


_DEDUPED_BY = ("shop_id", "dedupe_key")
_ROW_COLUMNS = ("shop_id", "kind", "payload", "dedupe_key", "status", "attempts", "next_attempt_at", "created_at")


@dataclass(frozen=True)
class MessageOfPosting:
    """A message naming the ledger transaction that causes it (`payload["transaction_id"]`), queued along with the
    posting (`bridge.ledger.Along`); its payload names the customer already."""

    shop_id: int
    kind: str
    payload: dict
    dedupe_key: str

    def __post_init__(self) -> None:
        _check_kind(self.kind)

    shape = "outbox message"

    def beside(self, transaction_id: ColumnElement, parameter: Callable[[str], BindParameter]) -> Executable:
        """PostgreSQL: INSERT … SELECT, the transaction's id put into the payload there."""
        table = OutboxMessage.__table__
        values = [type_coerce(parameter(name), table.c[name].type) for name in _ROW_COLUMNS]
        payload = cast(type_coerce(parameter("payload"), JSONB), JSONB)
        payload = payload.op("||")(func.jsonb_build_object("transaction_id", transaction_id))
        values[_ROW_COLUMNS.index("payload")] = cast(payload, JSON)
        chosen = select(*values).where(transaction_id.is_not(None))
        return (
            postgresql.insert(table)
            .from_select(_ROW_COLUMNS, chosen)
            .on_conflict_do_nothing(index_elements=list(_DEDUPED_BY))
        )

    def parameters(self) -> dict:
        return _row(self.shop_id, self.kind, self.payload, self.dedupe_key)

    def written(self, session: Session) -> None:
        pass  # nothing of it is loaded in the session

    def write(self, session: Session, transaction_id: int) -> None:
        payload = {**self.payload, "transaction_id": transaction_id}
        write_once(session, OutboxMessage, _row(self.shop_id, self.kind, payload, self.dedupe_key), _DEDUPED_BY)


def note_to_customer(session: Session, *, shop_id: int, customer_id: int, note: str, dedupe_key: str) -> bool:
    """Tell the customer about a movement that belongs to no order (an expiry, a merchant credit): the
    shop emails customer notes only on orders, so the note goes on their latest one. False if none."""
    latest = session.execute(
        select(ShopOrder.external_id)
        .where(ShopOrder.shop_id == shop_id, ShopOrder.customer_id == customer_id)
        .order_by(ShopOrder.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if latest is None:
        return False
    enqueue(
        session, shop_id=shop_id, kind="order.note", payload={"order_id": latest, "note": note}, dedupe_key=dedupe_key
    )
    return True


def order_customer(session: Session, shop_id: int, order_external_id: str) -> str | None:
    """Whose order it is (their id at the shop), to link a note on it to their wallet; None for a guest."""
    return session.execute(
        select(Customer.external_id)
        .join(ShopOrder, ShopOrder.customer_id == Customer.id)
        .where(ShopOrder.shop_id == shop_id, ShopOrder.external_id == order_external_id)
    ).scalar_one_or_none()
