"""What an order's state means for the wallet. Every rule is idempotent by a business key, so the same
order state delivered five times, or deliveries arriving out of order, move money once.

The shop sends the state of an order now (WooCommerce collapses quick changes), so each rule asks
"given this state, what is still to do?" and records what it did on the ShopOrder row, which is
row-locked for the whole decision.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge import orders
from bridge.accounts import SystemAccount, ensure_customer, points_account, system_account, wallet_account
from bridge.currencies import ensure_accepted_currency
from bridge.db import insert_ignoring_conflict
from bridge.ledger import SYSTEM, Actor, Leg, post_transaction, release_expired_holds
from bridge.lots import LotPolicy, promotional_expiry
from bridge.models import Customer, OrderRefund, Shop, ShopOrder, utcnow
from bridge.money import POINTS, format_amount, percent_of
from bridge.orders import OrderSnapshot
from bridge.outbox import enqueue
from bridge.points import claw_back_points, convert_points_automatically, earn_points, points_base
from bridge.refund_requests import match_request
from bridge.settings_schema import load_settings
from bridge.store_credit import native_key
from bridge.topups import credit_paid_topup, requested_topup, take_back_card_refunds


@dataclass
class OrderContext:
    session: Session
    shop: Shop
    settings: dict
    order: OrderSnapshot
    record: ShopOrder
    customer: Customer | None
    actor: Actor

    def key(self, suffix: str) -> str:
        return _order_key(self.order.external_id, suffix)


def _order_key(order_external_id: str, suffix: str) -> str:
    return f"order:{order_external_id}:{suffix}"


def apply_order(session: Session, shop: Shop, order: OrderSnapshot, actor: Actor) -> ShopOrder:
    """Bring the wallet in line with the order's current state."""
    ensure_accepted_currency(shop, order.currency)
    customer = None
    if order.customer_external_id:
        customer = ensure_customer(
            session, shop.id, order.customer_external_id, email=order.email, name=order.customer_name
        )
    record = _lock_order_record(session, shop, order, customer)
    customer = _payer(session, record, customer)
    ctx = OrderContext(session, shop, load_settings(shop.settings), order, record, customer, actor)
    if requested_topup(order.meta) is not None:
        return _apply_topup_order(ctx)
    stale = _is_stale(record, order)
    if not stale and order.phase == orders.AWAITING_PAYMENT and _may_charge(ctx):
        _collect_wallet_payment(ctx)
    if not stale and _undoes_payment(order, record):
        if record.payment_outcome is None:  # an older pending state arriving later must not charge
            record.payment_outcome = "cancelled"
        _reverse_order(ctx)
    if not stale and order.phase == orders.PAID and record.payment_outcome == "reversed":
        _flag_paid_after_reversal(ctx)
    if order.phase == orders.PAID and customer is not None:
        if order.spent_from_store_credit and not record.wallet_paid:
            _post_checkout_spend(session, shop.id, record, customer, order.spent_from_store_credit, actor)
        elif order.store_credit_spend_unknown and not record.wallet_paid:
            _ask_shop_for_checkout_spend(ctx)
        _earn_order_points(ctx)
    for refund in sorted(order.refunds, key=_refund_order):
        _apply_refund(ctx, refund)
    if not stale:
        record.status, record.total = order.status, order.total
        record.last_modified_at = order.modified_at or record.last_modified_at
    return record


def _apply_topup_order(ctx: OrderContext) -> ShopOrder:
    """A top-up order is never paid by wallet and earns no points: paid, it credits the wallet; refunded
    to the card by the merchant, it takes the money back from what is left of that top-up."""
    order, record = ctx.order, ctx.record
    if ctx.customer is not None and order.phase in (orders.PAID, orders.REFUNDED) and not record.payment_outcome:
        credited = credit_paid_topup(ctx.session, ctx.shop, ctx.settings, ctx.customer, order, ctx.actor)
        record.payment_outcome = "topup"
        if credited:
            wallet = wallet_account(ctx.session, ctx.customer, order.currency)
            note = (f"{format_amount(credited, order.currency)} added to your wallet. "
                    f"Wallet balance: {format_amount(wallet.balance, order.currency)}")  # fmt: skip
            _tell_shop_once(ctx, ctx.key("topup-note"), note)
    _take_back_refunded_topup(ctx)
    record.status = order.status
    return record


def _take_back_refunded_topup(ctx: OrderContext) -> None:
    """The top-up's refunds are recorded as card refunds; what the card got back then leaves the wallet."""
    for refund in ctx.order.refunds:
        if not _refund_applied(ctx, refund):
            ctx.session.add(OrderRefund(shop_id=ctx.shop.id, shop_order_id=ctx.record.id,
                                        external_id=refund.external_id, amount=refund.amount, destination="card",
                                        wallet_credit=0, bonus=0))  # fmt: skip
    if ctx.customer is not None and ctx.order.refunds:
        wallet = wallet_account(ctx.session, ctx.customer, ctx.order.currency)
        take_back_card_refunds(ctx.session, ctx.shop.id, wallet, ctx.actor, ctx.order.external_id)


def _refund_applied(ctx: OrderContext, refund: orders.RefundSnapshot) -> bool:
    return ctx.session.execute(
        select(OrderRefund.id).where(OrderRefund.shop_id == ctx.shop.id, OrderRefund.external_id == refund.external_id)
    ).first() is not None


def _payer(session: Session, record: ShopOrder, customer: Customer | None) -> Customer | None:
    """Whose wallet and points the order moves: the customer it had when it first moved money or points,
    even if the merchant reassigns it afterwards (a cancellation returns the money to who paid)."""
    if record.customer_id is None or (customer is not None and customer.id == record.customer_id):
        if customer is not None:
            record.customer_id = customer.id
        return customer
    if _moved_anything(session, record):
        return session.get(Customer, record.customer_id)
    record.customer_id = customer.id if customer is not None else None
    return customer


def _moved_anything(session: Session, record: ShopOrder) -> bool:
    return bool(record.payment_outcome not in (None, "cancelled", "unpaid") or record.points_earned or session.execute(
        select(OrderRefund.id).where(OrderRefund.shop_order_id == record.id).limit(1)
    ).first())  # fmt: skip


def _is_stale(record: ShopOrder, order: OrderSnapshot) -> bool:
    """Deliveries arrive in any order: a state older than one already seen decides no payment."""
    return bool(order.modified_at and record.last_modified_at and order.modified_at < record.last_modified_at)


def _undoes_payment(order: OrderSnapshot, record: ShopOrder) -> bool:
    """A cancellation undoes the order. A failed payment undoes only a payment already settled (set failed
    by hand): the wallet part of a partial payment stays while the customer may still pay the rest (or
    cancel, which returns it), and an order that moved nothing stays open to a later payment."""
    if order.phase == orders.CANCELLED:
        return True
    return order.phase == orders.FAILED and (record.payment_outcome in ("paid", "store_credit")
                                             or record.points_earned > 0)  # fmt: skip


def _may_charge(ctx: OrderContext) -> bool:
    """Charge a wallet order never decided before, or refused before and awaiting payment again in a newer
    state (the customer topped up and paid the failed order again); never one with refunds (it was paid)."""
    record, order = ctx.record, ctx.order
    undecided = record.payment_outcome is None or (
        record.payment_outcome == "unpaid" and order.modified_at is not None and record.last_modified_at is not None
        and order.modified_at > record.last_modified_at
    )  # fmt: skip
    has_refunds = order.refunds or ctx.session.execute(
        select(OrderRefund.id).where(OrderRefund.shop_order_id == record.id).limit(1)
    ).first()
    return undecided and not has_refunds and _pays_by_wallet(ctx)


def _flag_paid_after_reversal(ctx: OrderContext) -> None:
    """The merchant set an order paid again after its wallet payment went back to the wallet: the bridge
    does not take the money a second time on its own; the merchant is told, once, privately."""
    returned = format_amount(ctx.record.wallet_refunded, ctx.record.currency)
    note = (f"Wallet Bridge: this order is {ctx.order.status} again, but its wallet payment ({returned}) was "
            f"returned to the customer's wallet when it was cancelled. Collect it another way, or cancel the order.")
    enqueue(ctx.session, shop_id=ctx.shop.id, kind="order.note",
            payload={"order_id": ctx.order.external_id, "note": note, "customer_note": False},
            dedupe_key=ctx.key("paid-after-reversal"))  # fmt: skip


def find_order(session: Session, shop_id: int, order_external_id: str) -> ShopOrder | None:
    """What the bridge recorded of the order (read, not locked), if it knows the order."""
    return session.execute(
        select(ShopOrder).where(ShopOrder.shop_id == shop_id, ShopOrder.external_id == order_external_id)
    ).scalar_one_or_none()


def apply_refund_event(
    session: Session, shop: Shop, order_external_id: str, refund: orders.RefundSnapshot, actor: Actor
) -> ShopOrder | None:
    """A refund delivered on its own (Shopify's refunds/create), applied like one in the order's list.
    Unknown order: nothing yet — the order's own delivery carries its refunds and applies them."""
    record = _locked_order(session, shop.id, order_external_id)
    if record is None or record.customer_id is None:
        return None
    customer = session.get(Customer, record.customer_id)
    earlier = session.execute(
        select(OrderRefund).where(OrderRefund.shop_order_id == record.id, OrderRefund.external_id != refund.external_id)
    ).scalars()
    known = tuple(orders.RefundSnapshot(r.external_id, r.amount, "") for r in earlier)
    snapshot = OrderSnapshot(
        external_id=order_external_id, customer_external_id=customer.external_id, email=None, customer_name=None,
        currency=record.currency, status=record.status, phase=orders.OTHER, total=record.total, payment_method="",
        refunds=(*known, refund),
    )  # fmt: skip
    _apply_refund(OrderContext(session, shop, load_settings(shop.settings), snapshot, record, customer, actor), refund)
    return record


def reverse_recorded_order(session: Session, shop: Shop, order_external_id: str, why: str,
                           actor: Actor) -> ShopOrder | None:  # fmt: skip
    """Undo an order as its cancellation would (wallet part and points back, once) when the shop will send
    none: trashed, or failed and left unpaid (bridge/order_release.py). `why` ends "Order #N was …". Locks
    the order's row; None for an order the bridge does not know."""
    record = _locked_order(session, shop.id, order_external_id)
    if record is None:
        return None
    if record.payment_outcome is None:  # never decided: a later state must not charge it
        record.payment_outcome = "cancelled"
    snapshot = OrderSnapshot(
        external_id=order_external_id, customer_external_id=None, email=None, customer_name=None,
        currency=record.currency, status=why, phase=orders.CANCELLED, total=record.total, payment_method="",
    )  # fmt: skip
    customer = session.get(Customer, record.customer_id) if record.customer_id else None
    _reverse_order(OrderContext(session, shop, load_settings(shop.settings), snapshot, record, customer, actor))
    return record


def _lock_order_record(session: Session, shop: Shop, order: OrderSnapshot, customer: Customer | None) -> ShopOrder:
    insert_ignoring_conflict(
        session,
        ShopOrder,
        {
            "shop_id": shop.id, "external_id": order.external_id, "customer_id": customer.id if customer else None,
            "currency": order.currency, "status": order.status, "total": order.total, "wallet_paid": 0,
            "wallet_refunded": 0, "points_earned": 0, "points_clawed_back": 0, "created_at": utcnow(),
            "updated_at": utcnow(),
        },
        ["shop_id", "external_id"],
    )  # fmt: skip
    return _locked_order(session, shop.id, order.external_id)


def _locked_order(session: Session, shop_id: int, order_external_id: str) -> ShopOrder | None:
    return session.execute(
        select(ShopOrder)
        .where(ShopOrder.shop_id == shop_id, ShopOrder.external_id == order_external_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def _pays_by_wallet(ctx: OrderContext) -> bool:
    return ctx.order.payment_method in ctx.settings["wallet_payment_methods"]


def wallet_discount(settings: dict, total: int) -> int:
    """The discount for paying the whole order by wallet (percent in basis points, or fixed minor units)."""
    if settings["wallet_discount_kind"] == "percent":
        return percent_of(total, settings["wallet_discount_value"])
    if settings["wallet_discount_kind"] == "fixed":
        return min(total, settings["wallet_discount_value"])
    return 0


def _collect_wallet_payment(ctx: OrderContext) -> None:
    order, record = ctx.order, ctx.record
    if ctx.customer is None:
        return _refuse_payment(ctx, "guests have no wallet: please log in or choose another payment method")
    # Locked while deciding: a concurrent debit would otherwise make the decided amount fail to post.
    wallet = wallet_account(ctx.session, ctx.customer, order.currency, lock=True)
    release_expired_holds(ctx.session, wallet)  # what they reserved is the customer's to pay with
    if wallet.locked:
        return _refuse_payment(ctx, "your wallet is locked: please contact the shop")
    discount = wallet_discount(ctx.settings, order.total)
    due = order.total - discount
    if wallet.available >= due:
        posted = _post_payment(ctx, wallet, due) if due > 0 else None
        record.wallet_paid, record.payment_outcome = due, "paid"
        note = f"Paid {format_amount(due, order.currency)} from your wallet. Wallet balance: " + format_amount(
            wallet.balance, order.currency
        )
        payload = {"transaction_id": posted.transaction.id if posted else None, "discount": discount, "amount": due}
        return _tell_shop(ctx, "order.mark_paid", note, **payload)
    if ctx.settings["partial_payments"] and wallet.available > 0:
        paid = wallet.available
        posted = _post_payment(ctx, wallet, paid)
        record.wallet_paid, record.payment_outcome = paid, "partial"
        note = (
            f"Paid {format_amount(paid, order.currency)} from your wallet; "
            f"{format_amount(order.total - paid, order.currency)} is left to pay by another method."
        )
        return _tell_shop(ctx, "order.add_wallet_fee", note, transaction_id=posted.transaction.id, amount=paid)
    available = format_amount(max(wallet.available, 0), order.currency)
    return _refuse_payment(ctx, f"insufficient wallet balance ({available} available)")


def _post_payment(ctx: OrderContext, wallet, amount: int):
    return post_transaction(
        ctx.session,
        shop_id=ctx.shop.id,
        kind="payment",
        reason=f"Payment for order #{ctx.order.external_id}",
        legs=[
            Leg(wallet, -amount),
            Leg(system_account(ctx.session, ctx.shop.id, SystemAccount.WALLET_PAYMENTS, wallet.currency), amount),
        ],
        idempotency_key=ctx.key("payment"),
        actor=ctx.actor,
        order_ref=ctx.order.external_id,
    )


def _refuse_payment(ctx: OrderContext, why: str) -> None:
    refused_before = ctx.record.payment_outcome == "unpaid"
    ctx.record.payment_outcome = "unpaid"
    status = ctx.settings["unpaid_order_status"]
    # a refusal of a later attempt is news of its own (the status to set again, the note)
    again = f"@{ctx.order.modified_at.isoformat()}" if refused_before and ctx.order.modified_at else ""
    _tell_shop(ctx, "order.mark_unpaid", f"Wallet payment failed: {why}.", again, status=status)


def _tell_shop(ctx: OrderContext, kind: str, note: str, key_suffix: str = "", **payload) -> None:
    enqueue(
        ctx.session,
        shop_id=ctx.shop.id,
        kind=kind,
        payload={"order_id": ctx.order.external_id, "note": note, **payload},
        dedupe_key=ctx.key(kind + key_suffix),
    )


def _ask_shop_for_checkout_spend(ctx: OrderContext) -> None:
    """The body names the store credit gateway but not what it took (Shopify's order webhooks carry no
    transactions): the outbox worker reads the order's transactions and calls `record_checkout_spend`."""
    enqueue(ctx.session, shop_id=ctx.shop.id, kind="order.fetch_transactions",
            payload={"order_id": ctx.order.external_id, "currency": ctx.order.currency},
            dedupe_key=ctx.key("fetch-transactions"))  # fmt: skip


def record_checkout_spend(session: Session, shop: Shop, order_external_id: str, spent: int, actor: Actor) -> None:
    """Store credit spent at checkout on an order already applied, learnt afterwards from the shop: recorded
    as its paid delivery would have recorded it, whatever the order's state now (a cancellation gives none
    back, only a refund does), and once, whether this or a delivery that carried the spend comes first."""
    record = _locked_order(session, shop.id, order_external_id)
    if record is None or record.customer_id is None or record.wallet_paid or spent <= 0:
        return
    _post_checkout_spend(session, shop.id, record, session.get(Customer, record.customer_id), spent, actor)


def _post_checkout_spend(session: Session, shop_id: int, record: ShopOrder, customer: Customer, spent: int,
                         actor: Actor) -> None:  # fmt: skip
    """The customer spent store credit at the shop's own checkout (Shopify): the wallet follows, under a
    native key, so the movement is not sent back to the shop. A wallet that cannot cover it fails the
    delivery (or the outbox message) visibly: the two have drifted, and `wallet-bridge sync` reconciles them."""
    wallet = wallet_account(session, customer, record.currency)
    post_transaction(
        session, shop_id=shop_id, kind="payment",
        reason=f"Store credit spent at checkout on order #{record.external_id}",
        legs=[Leg(wallet, -spent),
              Leg(system_account(session, shop_id, SystemAccount.WALLET_PAYMENTS, record.currency), spent)],
        idempotency_key=native_key(_order_key(record.external_id, "checkout-spend")), actor=actor,
        order_ref=record.external_id,
    )  # fmt: skip
    record.wallet_paid, record.payment_outcome = spent, "store_credit"


def _reverse_order(ctx: OrderContext) -> None:
    """A cancelled or failed order gives back what the wallet paid (less what refunds returned), once."""
    record = ctx.record
    # Shopify gives store credit spent at its checkout back only through a refund (applied natively when
    # it arrives), never by the cancellation itself.
    outstanding = 0 if record.payment_outcome == "store_credit" else record.wallet_paid - record.wallet_refunded
    if outstanding > 0 and ctx.customer is not None:
        wallet = wallet_account(ctx.session, ctx.customer, record.currency)
        posted = post_transaction(
            ctx.session,
            shop_id=ctx.shop.id,
            kind="payment_reversal",
            reason=f"Order #{ctx.order.external_id} was {ctx.order.status}: wallet payment returned",
            legs=[
                Leg(wallet, outstanding),
                Leg(system_account(ctx.session, ctx.shop.id, SystemAccount.WALLET_PAYMENTS, record.currency),
                    -outstanding),
            ],
            idempotency_key=ctx.key("reversal"),
            actor=ctx.actor,
            order_ref=ctx.order.external_id,
        )  # fmt: skip
        if not posted.replayed:
            record.wallet_refunded += outstanding
            record.payment_outcome = "reversed"
            note = f"{format_amount(outstanding, record.currency)} returned to your wallet."
            _tell_shop(ctx, "order.note", note)
            take_back_card_refunds(ctx.session, ctx.shop.id, wallet, ctx.actor)  # it may return into such a top-up
    if ctx.customer is not None:
        remaining = record.points_earned - record.points_clawed_back
        if remaining > 0:
            record.points_clawed_back += claw_back_points(
                ctx.session, ctx.shop, ctx.customer, remaining, ctx.key("points-reversal"), ctx.order.external_id
            ).taken


def _earn_order_points(ctx: OrderContext) -> None:
    record = ctx.record
    if record.points_earned or record.payment_outcome in ("reversed", "cancelled"):
        return
    paid = points_base(ctx.settings, ctx.order,
                       ctx.order.total + (record.wallet_paid if record.payment_outcome == "partial" else 0))
    earned = earn_points(ctx.session, ctx.shop, ctx.settings, ctx.customer, paid, ctx.order, ctx.key("points"))
    record.points_earned = earned
    if earned:
        convert_points_automatically(ctx.session, ctx.shop, ctx.settings, ctx.customer)


def _apply_refund(ctx: OrderContext, refund: orders.RefundSnapshot) -> None:
    session, record = ctx.session, ctx.record
    if _refund_applied(ctx, refund):
        return
    split = split_refund(ctx.order, record, refund)
    request = match_request(session, record, refund.external_id, refund.amount)
    destination = request.destination if request else ctx.settings["refund_destination"]
    if request:
        request.status, request.refund_external_id = "applied", refund.external_id
    redirectable = ctx.customer is not None and not refund.settled_by_shop
    to_wallet = destination in ("wallet", "customer_choice") and redirectable
    to_points = destination == "points" and redirectable
    card_credit = split.card_part if to_wallet else 0
    bonus = percent_of(card_credit, ctx.settings["refund_wallet_bonus_bp"]) if to_wallet else 0
    applied = OrderRefund(
        shop_id=ctx.shop.id, shop_order_id=record.id, external_id=refund.external_id, amount=refund.amount,
        destination="wallet" if to_wallet else "points" if to_points else "original",
        wallet_credit=split.wallet_part + card_credit, bonus=bonus,
    )  # fmt: skip
    if to_points:
        _refund_as_points(ctx, refund, split.card_part)
    applied.wallet_credit += split.native_extra
    if applied.wallet_credit + bonus > 0 and ctx.customer is not None:
        if split.native:  # the shop returned this part to its own store credit already
            applied.transaction_id = _credit_refund(ctx, refund, split.wallet_part, split.native_extra, 0, native=True)
            if card_credit + bonus:
                applied.transaction_id = _credit_refund(ctx, refund, 0, card_credit, bonus)
        else:
            applied.transaction_id = _credit_refund(ctx, refund, split.wallet_part, card_credit, bonus)
        record.wallet_refunded += split.wallet_part
        if split.wallet_part:  # wallet money returns into the lots it came from: maybe a top-up refunded to the card
            take_back_card_refunds(session, ctx.shop.id, wallet_account(session, ctx.customer, record.currency),
                                   ctx.actor)  # fmt: skip
        total = format_amount(applied.wallet_credit + bonus, record.currency)
        _tell_shop_once(ctx, f"refund:{refund.external_id}", f"Refund of {total} credited to your wallet.")
    if ctx.customer is not None:
        _claw_back_refund_points(ctx, refund, applied)
    session.add(applied)


def _refund_as_points(ctx: OrderContext, refund: orders.RefundSnapshot, amount: int) -> None:
    """The customer chose loyalty points: the money becomes points at the shop's conversion rate."""
    settings, session = ctx.settings, ctx.session
    points = amount * settings["points_conversion_points"] // max(settings["points_conversion_value"], 1)
    if points <= 0:
        return
    post_transaction(
        session, shop_id=ctx.shop.id, kind="refund_to_points",
        reason=f"Refund #{refund.external_id} of order #{ctx.order.external_id} as {points} points",
        legs=[Leg(points_account(session, ctx.customer), points),
              Leg(system_account(session, ctx.shop.id, SystemAccount.POINTS_ISSUED, POINTS), -points)],
        idempotency_key=f"refund:{refund.external_id}:points-credit", actor=ctx.actor,
        order_ref=ctx.order.external_id, refund_ref=refund.external_id,
    )  # fmt: skip
    _tell_shop_once(ctx, f"refund:{refund.external_id}:points", f"Refund credited as {points} loyalty points.")


def _tell_shop_once(ctx: OrderContext, key: str, note: str) -> None:
    enqueue(ctx.session, shop_id=ctx.shop.id, kind="order.note",
            payload={"order_id": ctx.order.external_id, "note": note}, dedupe_key=key)  # fmt: skip


@dataclass(frozen=True)
class RefundSplit:
    wallet_part: int  # money that came from the wallet: always goes back to it
    card_part: int  # money paid by other means: goes where the shop's policy says
    native: bool = False  # the shop itself returned this much to its own store credit:
    native_extra: int = 0  # ... the wallet part, and this much more (card money it chose to give as credit)


def split_refund(order: OrderSnapshot, record: ShopOrder, refund: orders.RefundSnapshot) -> RefundSplit:
    """Pro rata by cumulative refunded amount (refunds sorted by id), so shares never drift by a cent
    whatever order the refunds are applied in.

    Whole-wallet orders: the shop's total is wallet money, so every refund is wallet money. Partly
    paid orders: the shop's total is what the other method paid (the wallet part is a negative fee),
    so a refund of a fraction of it also returns that fraction of the wallet part."""
    if refund.to_store_credit:  # the shop says where the money went (Shopify refund transactions)
        wallet_part = min(refund.to_store_credit, max(record.wallet_paid - record.wallet_refunded, 0))
        return RefundSplit(wallet_part, refund.amount - refund.to_store_credit, native=True,
                           native_extra=refund.to_store_credit - wallet_part)  # fmt: skip
    before = sum(r.amount for r in order.refunds if _refund_order(r) < _refund_order(refund))
    after = before + refund.amount
    if record.payment_outcome == "paid":
        return RefundSplit(wallet_part=_share(after, order.total, record.wallet_paid)
                           - _share(before, order.total, record.wallet_paid), card_part=0)  # fmt: skip
    wallet_part = 0
    if record.payment_outcome == "partial":
        wallet_part = _share(after, order.total, record.wallet_paid) - _share(before, order.total, record.wallet_paid)
    return RefundSplit(wallet_part=wallet_part, card_part=refund.amount)


def _refund_order(refund: orders.RefundSnapshot) -> tuple[int, str]:
    return (int(refund.external_id) if refund.external_id.isdigit() else 0, refund.external_id)


def _share(refunded: int, total: int, part: int) -> int:
    if total <= 0:
        return part if refunded > 0 else 0
    return min(part, part * min(refunded, total) // total)


def _credit_refund(ctx: OrderContext, refund, wallet_part: int, card_credit: int, bonus: int, native=False) -> int:
    session, currency = ctx.session, ctx.record.currency
    wallet = wallet_account(session, ctx.customer, currency)
    legs = [Leg(wallet, wallet_part + card_credit + bonus)]
    if wallet_part:
        legs.append(Leg(system_account(session, ctx.shop.id, SystemAccount.WALLET_PAYMENTS, currency), -wallet_part))
    if card_credit:
        legs.append(Leg(system_account(session, ctx.shop.id, SystemAccount.REFUNDS_ISSUED, currency), -card_credit))
    if bonus:
        legs.append(Leg(system_account(session, ctx.shop.id, SystemAccount.PROMOTIONS, currency), -bonus))
    reason = f"Refund #{refund.external_id} of order #{ctx.order.external_id}"
    if refund.reason:
        reason += f": {refund.reason}"
    return post_transaction(
        session, shop_id=ctx.shop.id, kind="refund_to_wallet", reason=reason, legs=legs,
        idempotency_key=native_key(f"refund:{refund.external_id}") if native else f"refund:{refund.external_id}",
        actor=ctx.actor, order_ref=ctx.order.external_id,
        refund_ref=refund.external_id, lots=LotPolicy(promo_expires_at=promotional_expiry(ctx.settings)),
    ).transaction.id  # fmt: skip


def _claw_back_refund_points(ctx: OrderContext, refund, applied: OrderRefund) -> None:
    record = ctx.record
    if not record.points_earned:
        return
    before = sum(r.amount for r in ctx.order.refunds if _refund_order(r) < _refund_order(refund))
    due = _share(before + refund.amount, ctx.order.total, record.points_earned) - _share(
        before, ctx.order.total, record.points_earned
    )
    due = min(due, record.points_earned - record.points_clawed_back)
    if due <= 0:
        return
    result = claw_back_points(
        ctx.session, ctx.shop, ctx.customer, due, f"refund:{refund.external_id}:points", ctx.order.external_id
    )
    applied.points_clawed_back, applied.points_shortfall = result.taken, due - result.taken
    record.points_clawed_back += due  # the shortfall is recorded, never collected later


def wallet_payment_stands(session: Session, shop: Shop, order_external_id: str) -> bool:
    """Whether the order's wallet payment is still taken: a message announcing it to the shop is stale once
    the order was cancelled (or failed after payment) and the payment returned."""
    record = find_order(session, shop.id, order_external_id)
    return record is not None and record.payment_outcome in ("paid", "partial")


def return_overcharge(session: Session, shop: Shop, order_external_id: str, credited_by_shop: int) -> int:
    """The shop may lower an order by less than the wallet paid (it cuts a negative fee at a total of
    0.00, or rounds): give the difference back to the wallet, once. Returns the amount returned."""
    record = _locked_order(session, shop.id, order_external_id)
    if record is None or record.customer_id is None:
        return 0
    overcharge = record.wallet_paid - max(credited_by_shop, 0)
    if overcharge <= 0:
        return 0
    customer = session.get(Customer, record.customer_id)
    posted = post_transaction(
        session,
        shop_id=shop.id,
        kind="payment_reversal",
        reason=f"Order #{order_external_id}: the shop applied {format_amount(credited_by_shop, record.currency)}"
        f" of the wallet payment; the rest is returned",
        legs=[
            Leg(wallet_account(session, customer, record.currency), overcharge),
            Leg(system_account(session, shop.id, SystemAccount.WALLET_PAYMENTS, record.currency), -overcharge),
        ],
        idempotency_key=f"order:{order_external_id}:overcharge",
        order_ref=order_external_id,
    )
    if posted.replayed:
        return 0
    record.wallet_paid -= overcharge
    take_back_card_refunds(session, shop.id, wallet_account(session, customer, record.currency), SYSTEM)
    return overcharge
