"""What an order's state means for the wallet. Every rule is idempotent by a business key, so the same
order state delivered five times, or deliveries arriving out of order, move money once.

The shop sends the state of an order now (WooCommerce collapses quick changes), so each rule asks
"given this state, what is still to do?" and records what it did on the ShopOrder row, which is
row-locked for the whole decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from bridge import orders
from bridge.accounts import SystemAccount, points_account, system_account, wallet_account
from bridge.cashback import cashback_kept, credit_cashback, give_back_cashback, take_back_cashback
from bridge.currencies import ensure_accepted_currency
from bridge.db import ChangesOfPosting, assign_changed, total
from bridge.decisions import (
    Recount,
    all_given_back,
    cashback_for,
    changed_after_payment,
    earns_cashback_now,
    fully_refunded,
    is_stale,
    money_as_points,
    moved_money,
    net_cost,
    paid_by_other_means,
    paid_in_shop,
    partial_total_changed,
    payment_undecided,
    points_base,
    points_for,
    points_money,
    points_to_claw_back,
    promotional_expiry,
    recount_refund,
    refund_share,
    refund_sort_key,
    refunded_in_full,
    same_second_retry,
    split_refund,
    total_edited,
    undoes_payment,
    wallet_due,
    wallet_held,
    wallet_overcharge,
    wallet_part_cut,
)
from bridge.errors import InvalidState
from bridge.ledger import (
    SYSTEM,
    Actor,
    Along,
    Leg,
    capture_hold,
    find_transaction,
    post_transaction,
    release_expired_holds,
    void_hold,
)
from bridge.lots import LotPolicy
from bridge.models import (
    CreditLot,
    Customer,
    Entry,
    LedgerTransaction,
    LotMovement,
    OrderRefund,
    OutboxMessage,
    Shop,
    ShopOrder,
    utcnow,
)
from bridge.money import POINTS, format_amount, percent_of, pro_rata
from bridge.order_records import lock_order_record
from bridge.orders import OrderSnapshot, TrashedOrder
from bridge.outbox import MessageOfPosting, enqueue
from bridge.points import (
    claw_back_points,
    convert_points_automatically,
    credit_points,
    earn_points,
    settle_converted,
)
from bridge.promotions import lots_left, take_back
from bridge.refund_requests import match_request
from bridge.reservations import lock_order_funds, release_order_reservations
from bridge.settings_schema import ShopSettings
from bridge.states import OutboxStatus, PaymentOutcome
from bridge.store_credit import native_key
from bridge.topups import (
    credit_paid_topup,
    give_back_deleted_topup_refunds,
    requested_topup,
    take_back_card_refunds,
)


@dataclass
class OrderContext:
    session: Session
    shop: Shop
    settings: ShopSettings
    order: OrderSnapshot
    record: ShopOrder
    customer: Customer | None
    actor: Actor
    new_record: bool = False  # this delivery created the order's record: none of its refunds is recorded yet

    def key(self, suffix: str) -> str:
        return _order_key(self.order.external_id, suffix)

    def attempt_key(self, suffix: str) -> str:
        """A key of this payment attempt: the first keeps the plain key, later ones are numbered."""
        attempt = self.record.payment_attempt or 1
        return self.key(suffix if attempt == 1 else f"{suffix}:{attempt}")


def _order_key(order_external_id: str, suffix: str) -> str:
    return f"order:{order_external_id}:{suffix}"


def apply_order(session: Session, shop: Shop, order: OrderSnapshot, actor: Actor) -> ShopOrder:
    """Bring the wallet in line with the order's current state."""
    ensure_accepted_currency(shop, order.currency)
    locked = lock_order_record(session, shop.id, order)
    customer = _payer(session, locked.record, locked.customer)
    settings = ShopSettings.load(shop.settings)
    ctx = _without_refunds_deleted_since(
        OrderContext(session, shop, settings, order, locked.record, customer, actor, locked.created)
    )
    order, record = ctx.order, ctx.record
    if requested_topup(order.meta) is not None:
        return _apply_topup_order(ctx)
    _check_refunds_fit(ctx)
    paid_whole_otherwise = _record_card_payment(ctx)
    _recount_refunds_made_before_payment(ctx)
    if paid_whole_otherwise:  # the wallet's part goes back (once refunds made before count against the card)
        _return_held(ctx, "was paid in full by another method", "paid-otherwise")
    stale = is_stale(record, order)
    if not stale and order.phase == orders.AWAITING_PAYMENT and _may_charge(ctx):
        _collect_wallet_payment(ctx)
    elif same_second_retry(record, order) and _pays_by_wallet(ctx):
        _read_back(ctx, "attempt")
    # what checkout reserved and no payment will take: a cancelled or failed order's, or one refunded before the
    # wallet paid any of it (an order with refunds is never charged)
    if order.phase in (orders.CANCELLED, orders.FAILED) or (order.refunds and not record.wallet_paid):
        release_order_reservations(session, shop.id, order.external_id)
    if not stale and undoes_payment(order, record):
        if record.payment_outcome is None:  # an older pending state arriving later must not charge
            record.payment_outcome = PaymentOutcome.CANCELLED
        _reverse_order(ctx)
    if not stale and order.phase == orders.PAID and record.payment_outcome == PaymentOutcome.REVERSED:
        if _pays_by_wallet(ctx) or order.wallet_part_fees != 0:  # else another method paid the whole total
            _flag_paid_after_reversal(ctx)
    # an edit met while the order's payment is still being written is settled at a later delivery: the total seen
    # is not recorded as settled until then
    edit_waits, refunded_before = False, 0 if stale else _refunded_before(ctx)
    if not stale and total_edited(record, order, refunded_before):
        edit_waits = _payment_push_pending(ctx, "order.mark_paid")
        if not edit_waits:
            _settle_edited_total(ctx, refunded_before)
    if not stale and wallet_part_cut(record, order):
        _return_cut_wallet_part(ctx)
    if not stale and partial_total_changed(record, order) and not _payment_push_pending(ctx):
        # what is left to pay changed: the customer reads the new amount (the same note as the push's is not
        # written twice: notes are written once per text)
        note = partial_payment_note(wallet_held(record), order.total, order.currency, record.payment_attempt)
        _tell_shop(ctx, "order.note", note, f":left:{order.total}")
    if order.phase == orders.PAID and customer is not None:
        if order.spent_from_store_credit and not record.wallet_paid:
            _post_checkout_spend(session, shop.id, record, customer, order.spent_from_store_credit, actor)
        elif order.store_credit_spend_unknown and not record.wallet_paid:
            _ask_shop_for_checkout_spend(ctx)
        _earn_order_points(ctx)
        _credit_order_cashback(ctx)
    refunds_deleted = False
    if not stale and order.refunds_complete:
        refunds_deleted = _take_back_deleted_refunds(ctx)
        _hold_again_what_a_full_refund_returned(ctx)
    for refund in sorted(order.refunds, key=refund_sort_key):
        _apply_refund(ctx, refund)
    owes_points = record.points_clawed_back or refunds_deleted or undoes_payment(order, record)
    if record.points_earned and customer is not None and owes_points:
        _settle_converted_points(ctx)
    if fully_refunded(record, order):  # the shop cannot refund the wallet part of a partly paid order: it comes back
        # keyed by the refund completing it: the order may hold the wallet part again in between (a refund made
        # before the rest was paid counted as card money once it was, or the full refund deleted)
        last = max(order.refunds, key=refund_sort_key).external_id if order.refunds else ""
        _return_held(ctx, "was refunded in full", f"refunded-in-full:{last}")
    if not stale:
        modified_at = order.modified_at or record.last_modified_at
        shown_total = record.total if edit_waits else order.total
        assign_changed(record, status=order.status, total=shown_total, last_modified_at=modified_at)
    return record


def _apply_topup_order(ctx: OrderContext) -> ShopOrder:
    """A top-up order is never paid by wallet and earns no points: paid, it credits the wallet; refunded
    to the card by the merchant, it takes the money back from what is left of that top-up."""
    order, record = ctx.order, ctx.record
    if order.phase == orders.AWAITING_PAYMENT and _pays_by_wallet(ctx) and not record.payment_outcome:
        return _refuse_wallet_paid_topup(ctx)
    if ctx.customer is not None and order.phase in (orders.PAID, orders.REFUNDED) and not record.payment_outcome:
        credited = credit_paid_topup(ctx.session, ctx.shop, ctx.settings, ctx.customer, order, ctx.actor)
        record.payment_outcome = PaymentOutcome.TOPUP
        if credited:
            wallet = wallet_account(ctx.session, ctx.customer, order.currency)
            note = (
                f"{format_amount(credited, order.currency)} added to your wallet. "
                f"Wallet balance: {format_amount(wallet.balance, order.currency)}"
            )
            _tell_shop_once(ctx, ctx.key("topup-note"), note)
    _take_back_refunded_topup(ctx)
    if not is_stale(record, order):  # the newest state seen: a late one of its second is told apart by it
        assign_changed(record, status=order.status, last_modified_at=order.modified_at or record.last_modified_at)
    return record


def _refuse_wallet_paid_topup(ctx: OrderContext) -> ShopOrder:
    """Money cannot top up the wallet it comes from: the customer is asked for another method, the merchant
    is told why the order stays unpaid."""
    ctx.record.payment_outcome, ctx.record.status = PaymentOutcome.UNPAID, ctx.order.status
    _tell_shop(
        ctx,
        "order.mark_unpaid",
        "A wallet top-up cannot be paid from the wallet: please pay it with another payment method.",
        status=ctx.settings.unpaid_order_status,
    )
    _tell_merchant(
        ctx,
        ctx.key("topup-by-wallet"),
        "Wallet Bridge: this top-up order was placed with the wallet "
        "payment method, which cannot pay for a top-up. Nothing was credited or debited.",
    )
    return ctx.record


def _take_back_refunded_topup(ctx: OrderContext) -> None:
    """The top-up's refunds are recorded as card refunds; what the card got back then leaves the wallet."""
    for refund in ctx.order.refunds:
        if not _refund_applied(ctx, refund):
            ctx.session.add(
                OrderRefund(
                    shop_id=ctx.shop.id,
                    shop_order_id=ctx.record.id,
                    external_id=refund.external_id,
                    amount=refund.amount,
                    destination="card",
                    wallet_credit=0,
                    bonus=0,
                )
            )
    deleted = _deleted_topup_refunds(ctx)
    if ctx.customer is not None and (ctx.order.refunds or deleted):
        wallet = wallet_account(ctx.session, ctx.customer, ctx.order.currency)
        if deleted:
            give_back_deleted_topup_refunds(ctx.session, ctx.shop.id, wallet, ctx.actor, ctx.order.external_id)
        take_back_card_refunds(ctx.session, ctx.shop.id, wallet, ctx.actor, ctx.order.external_id)


def _deleted_topup_refunds(ctx: OrderContext) -> bool:
    """Whether the shop deleted refunds of the top-up since the last delivery (marked so)."""
    return ctx.order.refunds_complete and not is_stale(ctx.record, ctx.order) and bool(_mark_deleted_refunds(ctx))


def _without_refunds_deleted_since(ctx: OrderContext) -> OrderContext:
    """A state older than the newest seen that lists refunds the bridge never recorded: the newest seen listed every
    refund then standing (the shop's lists are complete), so they were deleted since — a refund made and deleted
    between two deliveries, its state delivered late. The state is applied without them. (In the same second either
    state may be the newer: such refunds are applied, as a refund new in that second is.)"""
    order, newest = ctx.order, ctx.record.last_modified_at
    if ctx.new_record or not order.refunds_complete or not order.refunds:
        return ctx
    if order.modified_at is None or newest is None or order.modified_at >= newest:
        return ctx
    recorded = {row.external_id for row in _applied_refunds(ctx)}
    kept = tuple(refund for refund in order.refunds if refund.external_id in recorded)
    if len(kept) == len(order.refunds):
        return ctx
    return replace(ctx, order=replace(order, refunds=kept))


def _mark_deleted_refunds(ctx: OrderContext) -> list[OrderRefund]:
    """The order's refunds applied that the shop (whose refund lists are complete) no longer lists, marked deleted.
    A delivered state of the same second as the newest seen may be the older one, delivered late (the shop dates
    changes to the second): only the order read back from the shop then says whether they were deleted."""
    if ctx.new_record:
        return []
    listed = {refund.external_id for refund in ctx.order.refunds}
    deleted = [row for row in _active_refunds(ctx) if row.external_id not in listed]
    if deleted and _same_second_as_the_newest(ctx):
        _read_back(ctx, "refunds-" + ",".join(sorted(row.external_id for row in deleted)))
        return []
    for row in deleted:
        row.deleted_at = utcnow()
    return deleted


def _refund_applied(ctx: OrderContext, refund: orders.RefundSnapshot) -> bool:
    return (
        ctx.session.execute(
            select(OrderRefund.id).where(
                OrderRefund.shop_id == ctx.shop.id, OrderRefund.external_id == refund.external_id
            )
        ).first()
        is not None
    )


def _payer(session: Session, record: ShopOrder, customer: Customer | None) -> Customer | None:
    """Whose wallet and points the order moves: the customer it had when it first moved money or points,
    even if the merchant reassigns it afterwards (a cancellation returns the money to who paid) — until all of
    it went back: its next payment attempt is then the customer's it has now."""
    if record.customer_id is None or (customer is not None and customer.id == record.customer_id):
        if customer is not None and record.customer_id != customer.id:  # set only when new: an object set is
            record.customer_id = customer.id  # flushed before the next query, even to the same value
        return customer
    if _moved_anything(session, record):
        return session.get(Customer, record.customer_id)
    record.customer_id = customer.id if customer is not None else None
    return customer


def _moved_anything(session: Session, record: ShopOrder) -> bool:
    """Whether the order still binds its first customer: it moved their money or points, and not all of it
    went back (refunds and cashback kept count as moved)."""
    if _has_recorded_refunds(session, record):
        return True
    if all_given_back(record):
        payer = session.get(Customer, record.customer_id)
        return cashback_kept(session, record.shop_id, payer, record.external_id, record.currency) > 0
    return moved_money(record)


def _has_recorded_refunds(session: Session, record: ShopOrder) -> bool:
    return (
        session.execute(select(OrderRefund.id).where(OrderRefund.shop_order_id == record.id).limit(1)).first()
        is not None
    )


def _may_charge(ctx: OrderContext) -> bool:
    """Charge a wallet order never decided before; or, in a newer state awaiting payment again, one refused
    before (the customer topped up), cancelled before it paid, or whose payment went back (failed or
    cancelled, then set pending again: a new attempt). Never one with refunds (it was paid)."""
    has_refunds = ctx.order.refunds or (not ctx.new_record and _has_recorded_refunds(ctx.session, ctx.record))
    return bool(payment_undecided(ctx.record, ctx.order) and not has_refunds and _pays_by_wallet(ctx))


def _same_second_as_the_newest(ctx: OrderContext) -> bool:
    """A delivered state dated the second of the newest seen: either may be the newer."""
    at = ctx.order.modified_at
    return not ctx.order.read_back and at is not None and at == ctx.record.last_modified_at


def _read_back(ctx: OrderContext, about: str) -> None:
    """Ask the shop for the order as it is now: the state it sends back settles which of two states of one second is
    the newer (whether this one is a new attempt; whether refunds it leaves out were deleted)."""
    enqueue(
        ctx.session,
        shop_id=ctx.shop.id,
        kind="order.read_back",
        payload={"order_id": ctx.order.external_id},
        dedupe_key=ctx.attempt_key(f"read-back:{about}:{ctx.order.modified_at.isoformat()}"),
    )


def _flag_paid_after_reversal(ctx: OrderContext) -> None:
    """The merchant set an order paid again after its wallet payment went back to the wallet: the bridge
    does not take the money a second time on its own; the merchant is told, once, privately."""
    returned = format_amount(ctx.record.wallet_refunded, ctx.record.currency)
    note = (
        f"Wallet Bridge: this order is {ctx.order.status} again, but its wallet payment ({returned}) was "
        f"returned to the customer's wallet when it was cancelled. Collect it another way, or cancel the order."
    )
    _tell_merchant(ctx, ctx.attempt_key("paid-after-reversal"), note)


def _refunded_before(ctx: OrderContext) -> int:
    """The order's refunds the bridge has already settled (they are off what the wallet holds for it)."""
    if not ctx.order.refunds:
        return 0
    settled = _recorded_refund_ids(ctx)
    return sum(refund.amount for refund in ctx.order.refunds if refund.external_id in settled)


def _settle_edited_total(ctx: OrderContext, refunded_before: int) -> None:
    """Lowered: the difference goes back to the wallet. Raised: the wallet pays the difference when it can;
    otherwise what it paid becomes the wallet part of a partial payment and the shop asks for the rest. The
    difference is between what the order now costs, less the refunds already settled, and what the wallet holds."""
    record, order = ctx.record, ctx.order
    held, currency = wallet_held(record), order.currency
    difference = net_cost(order, refunded_before) - held
    edit = f"edit@{order.modified_at.isoformat() if order.modified_at else ''}:{order.total}"
    changed = f"The order's total changed to {format_amount(order.total, currency)}"
    if difference < 0:
        if _return_held_part(ctx, -difference, ctx.attempt_key(edit)):
            _tell_shop(
                ctx,
                "order.note",
                f"{changed}: {format_amount(-difference, currency)} returned to your wallet.",
                f":{edit}",
            )
            _earnings_follow_the_total(ctx, ctx.attempt_key(edit))
        return
    wallet = wallet_account(ctx.session, ctx.customer, currency, lock=True)
    release_expired_holds(ctx.session, wallet)
    if wallet.available >= difference and not wallet.locked:
        _post_payment(ctx, wallet, difference, ctx.attempt_key(edit))
        record.wallet_paid += difference
        _earnings_follow_the_total(ctx, ctx.attempt_key(edit))
        note = f"{changed}: {format_amount(difference, currency)} more paid from your wallet."
        return _tell_shop(ctx, "order.note", note, f":{edit}")
    record.payment_outcome, record.paid_in_part = PaymentOutcome.PARTIAL, True
    record.reopened_at = order.modified_at
    _tell_shop(
        ctx,
        "order.add_wallet_fee",
        "",
        f":{edit}",
        transaction_id=f"{record.payment_attempt}-{edit}",
        amount=held,
        reopen=True,
        attempt=record.payment_attempt,
    )


def _earnings_follow_the_total(ctx: OrderContext, key: str) -> None:
    """Points and cashback the order already earned follow its edited total, settled by the wallet: what a lower
    total does not earn goes back (points already spent stay spent, as on a refund), a higher one earns the rest.
    Nothing is earned here that was not earned before: cashback not yet credited is credited later, on what was
    paid then."""
    record, settings, session, customer = ctx.record, ctx.settings, ctx.session, ctx.customer
    base = points_base(settings, ctx.order, wallet_held(record) + _paid_by_other_means(ctx))
    points, due = record.points_earned - record.points_clawed_back, points_for(settings, base, record.currency)
    if points > due:
        claw_back_points(session, ctx.shop, customer, points - due, f"{key}:points", ctx.order.external_id)
        record.points_clawed_back += points - due
    elif record.points_earned:
        more = earn_points(session, ctx.shop, settings, customer, base, ctx.order, f"{key}:points", already=points)
        record.points_earned += more
    kept, due = _cashback_kept(ctx), cashback_for(settings, base)
    if kept > due:
        take_back_cashback(
            session,
            ctx.shop,
            customer,
            ctx.order.external_id,
            record.currency,
            kept - due,
            f"{key}:cashback",
            ctx.actor,
        )
    elif kept > 0:
        credit_cashback(
            session, ctx.shop, settings, customer, ctx.order, base, f"{key}:cashback", ctx.actor, already=kept
        )


def _return_cut_wallet_part(ctx: OrderContext) -> None:
    """A partly paid order edited below the wallet's part: the wallet pays all of it, the rest goes back, and
    the order, with nothing left to pay, is paid. Not while the wallet's fee is still being written: the push
    settles what the shop cut then (`return_overcharge`)."""
    record, order, currency = ctx.record, ctx.order, ctx.order.currency
    if _payment_push_pending(ctx):
        return
    cut, held = wallet_part_cut(record, order), wallet_held(record)
    edit = f"fee-cut:{held}:{order.wallet_part_fees}"
    if not _return_held_part(ctx, cut, ctx.attempt_key(edit), "was changed"):
        return
    note = (
        f"The order's total changed to {format_amount(order.wallet_part_fees, currency)}, all paid from your wallet: "
        f"{format_amount(cut, currency)} returned to your wallet."
    )
    if order.phase == orders.PAID:
        return _tell_shop(ctx, "order.note", note, f":{edit}")
    payload = {"transaction_id": None, "discount": 0, "amount": 0, "attempt": record.payment_attempt}
    _tell_shop(ctx, "order.mark_paid", note, f":{edit}", **payload)


def _record_card_payment(ctx: OrderContext) -> bool:
    """Record what another method paid: the shop's total when it first says the order paid, for a partly paid
    order (a total raised later, the wallet's fee line taken off by hand, was never charged) and for one another
    method paid whole (relabelled with the wallet's method afterwards, its refunds are still of that money). True
    when a partly paid order was paid with its wallet fee line gone: another method paid the whole total."""
    record, order = ctx.record, ctx.order
    if record.card_paid is not None or not paid_in_shop(record, order) or is_stale(record, order):
        return False
    if record.paid_in_part:
        if _payment_push_pending(ctx):  # the shop's total is not yet the one the wallet's fee line makes
            return False
        paid_whole = order.phase == orders.PAID and order.wallet_part_fees == 0
        if paid_whole and changed_after_payment(order):  # the fee line may have left after it: the card paid the rest
            record.card_paid = order.total - wallet_held(record)
            return False
        record.card_paid = order.total
        return paid_whole
    if record.payment_outcome is None and not _pays_by_wallet(ctx):
        record.card_paid = order.total
    return False


def _payment_push_pending(ctx: OrderContext, kind: str = "order.add_wallet_fee") -> bool:
    """The order's payment (`kind`: its wallet fee, or its being marked paid with the discount's fee) is still
    to be written, or being written, on the shop: the states its writes send are the push's, not the merchant's
    edits (the shop rounds the fee's tax and the push corrects it in a few writes)."""
    return (
        ctx.session.execute(
            select(OutboxMessage.id)
            .where(
                OutboxMessage.shop_id == ctx.shop.id,
                OutboxMessage.kind == kind,
                OutboxMessage.dedupe_key.startswith(ctx.key(kind), autoescape=True),
                OutboxMessage.status.in_((OutboxStatus.PENDING, OutboxStatus.SENDING)),
            )
            .limit(1)
        ).first()
        is not None
    )


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
        external_id=order_external_id,
        customer_external_id=customer.external_id,
        email=None,
        customer_name=None,
        currency=record.currency,
        status=record.status,
        phase=orders.OTHER,
        total=record.total,
        payment_method="",
        refunds=(*known, refund),
    )
    ctx = OrderContext(session, shop, ShopSettings.load(shop.settings), snapshot, record, customer, actor)
    _check_refunds_fit(ctx)
    _apply_refund(ctx, refund)
    return record


def release_trashed_order(session: Session, shop: Shop, trashed: TrashedOrder, actor: Actor) -> None:
    """An order moved to the trash (WooCommerce's `order.deleted`) gives its wallet money back at once."""
    reverse_recorded_order(session, shop, trashed.external_id, "moved to the trash", actor)


def reverse_recorded_order(
    session: Session, shop: Shop, order_external_id: str, why: str, actor: Actor
) -> ShopOrder | None:
    """Undo an order as its cancellation would (wallet part and points back, once) when the shop will send
    none: trashed, or failed and left unpaid (bridge/order_release.py). `why` ends "Order #N was …". Locks
    the order's row; None for an order the bridge does not know."""
    record = _locked_order(session, shop.id, order_external_id)
    if record is None:
        return None
    if record.payment_outcome is None:  # never decided: a later state must not charge it
        record.payment_outcome = PaymentOutcome.CANCELLED
    snapshot = OrderSnapshot(
        external_id=order_external_id,
        customer_external_id=None,
        email=None,
        customer_name=None,
        currency=record.currency,
        status=why,
        phase=orders.CANCELLED,
        total=record.total,
        payment_method="",
    )
    customer = session.get(Customer, record.customer_id) if record.customer_id else None
    _reverse_order(OrderContext(session, shop, ShopSettings.load(shop.settings), snapshot, record, customer, actor))
    return record


def _locked_order(session: Session, shop_id: int, order_external_id: str) -> ShopOrder | None:
    return session.execute(
        select(ShopOrder)
        .where(ShopOrder.shop_id == shop_id, ShopOrder.external_id == order_external_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def _pays_by_wallet(ctx: OrderContext) -> bool:
    return ctx.order.payment_method in ctx.settings.wallet_payment_methods


def _collect_wallet_payment(ctx: OrderContext) -> None:
    order, record = ctx.order, ctx.record
    if record.payment_outcome == PaymentOutcome.REVERSED:  # its money went back: a new attempt, with keys of its own
        record.payment_attempt += 1
    if ctx.customer is None:  # a logged-in customer may have reserved, paying a guest's order on its order-pay page
        release_order_reservations(ctx.session, ctx.shop.id, order.external_id)
        return _refuse_payment(ctx, "guests have no wallet: please log in or choose another payment method")
    # Locked while deciding: a concurrent debit would otherwise make the decided amount fail to post.
    reservations, wallet = lock_order_funds(ctx.session, ctx.shop.id, order.external_id, ctx.customer, order.currency)
    reservation = _checkout_reservation(ctx, reservations)
    if wallet.held:  # read under the lock just now: no amount held, no open hold to release
        release_expired_holds(ctx.session, wallet)  # what they reserved is the customer's to pay with
    if reservation is not None and (reservation.account_id != wallet.id or reservation.expires_at <= utcnow()):
        reservation = _void(ctx, reservation)  # not this wallet's to capture (the merchant changed the customer)
    if wallet.locked:
        _void(ctx, reservation)
        return _refuse_payment(ctx, "your wallet is locked: please contact the shop")
    # Fee lines of an earlier attempt whose money went back still lower the shop's total: this attempt pays
    # the order's whole total, and its push takes them off the order (`replace_fees`).
    stale_fees = order.wallet_fees or 0
    total = order.total + stale_fees
    due = wallet_due(ctx.settings, total)
    discount = total - due
    available = wallet.available + (reservation.amount if reservation else 0)
    replace = {"replace_fees": True} if stale_fees else {}
    if available >= due:
        paid = {"wallet_paid": record.wallet_paid + due, "payment_outcome": PaymentOutcome.PAID}
        paid |= {"wallet_discount": discount, "paid_in_part": False}
        if due == 0:  # nothing to pay, nothing to say: the order just proceeds
            _void(ctx, reservation)
            for name, value in paid.items():
                setattr(record, name, value)
            return _tell_shop(ctx, "order.mark_paid", "", transaction_id=None, discount=discount, amount=0, **replace)
        balance = wallet.balance - due  # the wallet is locked: what it has once paid
        note = payment_note(due, balance, order.currency, record.payment_attempt)
        payload = {
            "discount": discount,
            "amount": due,
            **replace,
            "attempt": record.payment_attempt,
            "balance": balance,
        }
        message = _message(ctx, "order.mark_paid", note, **payload)
        return _take_payment(ctx, wallet, due, reservation, ChangesOfPosting(record, paid), message)
    if ctx.settings.partial_payments and available > 0:
        paid = {"wallet_paid": record.wallet_paid + available, "payment_outcome": PaymentOutcome.PARTIAL}
        paid |= {"wallet_discount": 0, "paid_in_part": True}
        # the note is written by the push: only the shop knows what is left to pay once it has taxed the fee
        message = _message(ctx, "order.add_wallet_fee", "", amount=available, attempt=record.payment_attempt, **replace)
        return _take_payment(ctx, wallet, available, reservation, ChangesOfPosting(record, paid), message)
    _void(ctx, reservation)
    left = format_amount(max(wallet.available, 0), order.currency)
    return _refuse_payment(ctx, f"insufficient wallet balance ({left} available)")


def _checkout_reservation(ctx: OrderContext, reservations: list):
    """The order's open reservation made at the shop's checkout (the plugin's gateway), if any; a second one
    (two first checkouts racing) is voided."""
    for extra in reservations[1:]:
        _void(ctx, extra)
    return reservations[0] if reservations else None


def _void(ctx: OrderContext, reservation) -> None:
    if reservation is not None:
        void_hold(ctx.session, shop_id=ctx.shop.id, hold_id=reservation.id)


def _take_payment(ctx: OrderContext, wallet, amount: int, reservation, *along: Along) -> None:
    """The wallet payment and what follows it (the order's record, the message to the shop): captured from the
    checkout's reservation when it covers it (the rest released), else posted from the wallet (the reservation
    released first, so its money counts) in one round trip with what follows."""
    if reservation is None or amount > reservation.amount:
        _void(ctx, reservation)
        _post_payment(ctx, wallet, amount, along=along)
        return
    posted = capture_hold(ctx.session, shop_id=ctx.shop.id, hold_id=reservation.id, amount=amount, actor=ctx.actor)
    for write in along:
        write.write(ctx.session, posted.transaction.id)


def _again(record: ShopOrder) -> str:
    """Said of a later payment attempt, so that its note is not taken for the first one's (notes are written
    once per text) and the customer reads that the order was paid again."""
    return f" (payment attempt {record.payment_attempt})" if record.payment_attempt > 1 else ""


def payment_note(paid: int, balance: int, currency: str, attempt: int = 1) -> str:
    """The customer's note for an order paid from the wallet (the push writes it anew when the shop's rounding
    of a discount made the order cost a cent less than decided, that cent back in the wallet)."""
    again = f" (payment attempt {attempt})" if attempt > 1 else ""
    return (
        f"Paid {format_amount(paid, currency)} from your wallet{again}. "
        f"Wallet balance: {format_amount(balance, currency)}"
    )


def partial_payment_note(paid: int, left: int, currency: str, attempt: int = 1) -> str:
    """The customer's note for a partial payment, with what the shop really asks for once the fee is in."""
    again = f" (payment attempt {attempt})" if attempt > 1 else ""
    return (
        f"Paid {format_amount(paid, currency)} from your wallet{again}; "
        f"{format_amount(left, currency)} is left to pay by another method."
    )


def _post_payment(ctx: OrderContext, wallet, amount: int, key: str | None = None, along: Sequence[Along] = ()):
    return post_transaction(
        ctx.session,
        shop_id=ctx.shop.id,
        kind="payment",
        reason=f"Payment for order #{ctx.order.external_id}",
        legs=[
            Leg(wallet, -amount),
            Leg(system_account(ctx.session, ctx.shop.id, SystemAccount.WALLET_PAYMENTS, wallet.currency), amount),
        ],
        idempotency_key=key or ctx.attempt_key("payment"),
        actor=ctx.actor,
        order_ref=ctx.order.external_id,
        along=along,
    )


def _refuse_payment(ctx: OrderContext, why: str) -> None:
    refused_before = ctx.record.payment_outcome == PaymentOutcome.UNPAID
    ctx.record.payment_outcome = PaymentOutcome.UNPAID
    status = ctx.settings.unpaid_order_status
    # a refusal of a later attempt is news of its own (the status to set again, the note)
    again = f"@{ctx.order.modified_at.isoformat()}" if refused_before and ctx.order.modified_at else ""
    _tell_shop(ctx, "order.mark_unpaid", f"Wallet payment failed: {why}.", again, status=status)


def _tell_shop(ctx: OrderContext, kind: str, note: str, key_suffix: str = "", **payload) -> None:
    message = _message(ctx, kind, note, key_suffix, **payload)
    enqueue(ctx.session, shop_id=message.shop_id, kind=kind, payload=message.payload, dedupe_key=message.dedupe_key)


def _message(ctx: OrderContext, kind: str, note: str, key_suffix: str = "", **payload) -> MessageOfPosting:
    """A message about the order; the customer a note names (the payer, whose wallet it moves) is known here."""
    payload["note_customer"] = ctx.customer.external_id if ctx.customer else None
    payload = {"order_id": ctx.order.external_id, "note": note, **payload}
    return MessageOfPosting(ctx.shop.id, kind, payload, ctx.attempt_key(kind + key_suffix))


def _ask_shop_for_checkout_spend(ctx: OrderContext) -> None:
    """The body names the store credit gateway but not what it took (Shopify's order webhooks carry no
    transactions): the outbox worker reads the order's transactions and calls `record_checkout_spend`."""
    enqueue(
        ctx.session,
        shop_id=ctx.shop.id,
        kind="order.fetch_transactions",
        payload={"order_id": ctx.order.external_id, "currency": ctx.order.currency},
        dedupe_key=ctx.key("fetch-transactions"),
    )


def record_checkout_spend(session: Session, shop: Shop, order_external_id: str, spent: int, actor: Actor) -> None:
    """Store credit spent at checkout on an order already applied, learnt afterwards from the shop: recorded
    as its paid delivery would have recorded it, whatever the order's state now (a cancellation gives none
    back, only a refund does), and once, whether this or a delivery that carried the spend comes first."""
    record = _locked_order(session, shop.id, order_external_id)
    if record is None or record.customer_id is None or record.wallet_paid or spent <= 0:
        return
    _post_checkout_spend(session, shop.id, record, session.get(Customer, record.customer_id), spent, actor)


def _post_checkout_spend(
    session: Session, shop_id: int, record: ShopOrder, customer: Customer, spent: int, actor: Actor
) -> None:
    """The customer spent store credit at the shop's own checkout (Shopify): the wallet follows, under a
    native key, so the movement is not sent back to the shop. A wallet that cannot cover it fails the
    delivery (or the outbox message) visibly: the two have drifted, and `wallet-bridge sync` reconciles them."""
    wallet = wallet_account(session, customer, record.currency)
    post_transaction(
        session,
        shop_id=shop_id,
        kind="payment",
        reason=f"Store credit spent at checkout on order #{record.external_id}",
        legs=[
            Leg(wallet, -spent),
            Leg(system_account(session, shop_id, SystemAccount.WALLET_PAYMENTS, record.currency), spent),
        ],
        idempotency_key=native_key(_order_key(record.external_id, "checkout-spend")),
        actor=actor,
        order_ref=record.external_id,
    )
    record.wallet_paid, record.payment_outcome = spent, PaymentOutcome.STORE_CREDIT


def _reverse_order(ctx: OrderContext) -> None:
    """A cancelled or failed order gives back what the wallet paid (less what refunds returned), once."""
    record = ctx.record
    record.card_paid = None  # a payment made after it (the order re-opened) is recorded anew
    # Shopify gives store credit spent at its checkout back only through a refund (applied natively when
    # it arrives), never by the cancellation itself.
    if record.payment_outcome != PaymentOutcome.STORE_CREDIT and _return_held(ctx, f"was {ctx.order.status}"):
        if record.paid_in_part or record.wallet_discount:  # its fee lines would still lower what the shop asks
            paid_whole = not record.paid_in_part  # its fee line is the discount, the date paid the wallet's own
            _tell_shop(ctx, "order.remove_wallet_fees", "", attempt=record.payment_attempt, paid_whole=paid_whole)
        record.payment_outcome = PaymentOutcome.REVERSED
    if ctx.customer is not None:
        remaining = record.points_earned - record.points_clawed_back
        if remaining > 0:
            record.points_clawed_back += claw_back_points(
                ctx.session, ctx.shop, ctx.customer, remaining, ctx.key("points-reversal"), ctx.order.external_id
            ).taken
        if kept := _cashback_kept(ctx):
            take_back_cashback(
                ctx.session,
                ctx.shop,
                ctx.customer,
                ctx.order.external_id,
                record.currency,
                kept,
                ctx.key("cashback-reversal"),
                ctx.actor,
            )


def _return_held(ctx: OrderContext, what_happened: str, key: str = "reversal") -> int:
    """Give the wallet money the order still holds back to the wallet, once per attempt and `key` (what it holds
    bounds it: a key of its own never returns money twice); returns how much."""
    returned = _return_held_part(ctx, wallet_held(ctx.record), ctx.attempt_key(key), what_happened)
    if returned:
        amount = format_amount(returned, ctx.record.currency)
        _tell_shop(ctx, "order.note", f"{amount} returned to your wallet{_again(ctx.record)}.", f":{key}")
    return returned


def _return_held_part(ctx: OrderContext, amount: int, key: str, what_happened: str = "changed") -> int:
    if amount <= 0 or ctx.customer is None:
        return 0
    reason = f"Order #{ctx.order.external_id} {what_happened}: wallet payment returned"
    if not _post_return(ctx.session, ctx.shop.id, ctx.record, ctx.customer, amount, key, reason, ctx.actor):
        return 0
    ctx.record.wallet_refunded += amount
    return amount


def _post_return(
    session: Session,
    shop_id: int,
    record: ShopOrder,
    customer: Customer,
    amount: int,
    key: str,
    reason: str,
    actor: Actor,
) -> bool:
    """Post wallet money the order held back to the wallet, once per key; False for a replay."""
    wallet = wallet_account(session, customer, record.currency)
    posted = post_transaction(
        session,
        shop_id=shop_id,
        kind="payment_reversal",
        reason=reason,
        legs=[
            Leg(wallet, amount),
            Leg(system_account(session, shop_id, SystemAccount.WALLET_PAYMENTS, record.currency), -amount),
        ],
        idempotency_key=key,
        actor=actor,
        order_ref=record.external_id,
    )
    if not posted.replayed:
        take_back_card_refunds(session, shop_id, wallet, actor)  # it may return into such a top-up
    return not posted.replayed


def _earn_order_points(ctx: OrderContext) -> None:
    record = ctx.record
    if record.points_earned or record.payment_outcome in (PaymentOutcome.REVERSED, PaymentOutcome.CANCELLED):
        return
    # on what was paid (an order marked paid that nobody paid earns none), the goods' part of it
    paid = points_base(ctx.settings, ctx.order, wallet_held(record) + _paid_by_other_means(ctx))
    earned = earn_points(ctx.session, ctx.shop, ctx.settings, ctx.customer, paid, ctx.order, ctx.key("points"))
    record.points_earned = earned
    if earned:
        convert_points_automatically(ctx.session, ctx.shop, ctx.settings, ctx.customer)


def _credit_order_cashback(ctx: OrderContext) -> None:
    """Cashback on what was paid for the goods (the points' base), once the order is where the shop says: the share
    of it the refunds applied before left paid (a refund in this state takes its share back when it is applied)."""
    undone = ctx.record.payment_outcome in (PaymentOutcome.REVERSED, PaymentOutcome.CANCELLED)
    if undone or not earns_cashback_now(ctx.settings, ctx.order):
        return
    refunded, wallet_part = _standing_refunds(ctx)
    paid = wallet_held(ctx.record) + wallet_part + _paid_by_other_means(ctx)  # before the refunds
    kept = pro_rata(max(paid - refunded, 0), paid, points_base(ctx.settings, ctx.order, paid))
    if credit_cashback(
        ctx.session, ctx.shop, ctx.settings, ctx.customer, ctx.order, kept, ctx.key("cashback"), ctx.actor
    ):
        _tell_shop(
            ctx,
            "order.note",
            f"{format_amount(_cashback_kept(ctx), ctx.record.currency)} cashback added to your wallet.",
            ":cashback",
        )


def _standing_refunds(ctx: OrderContext) -> tuple[int, int]:
    """What the order's refunds the shop still lists gave back, and of it the wallet's money (already off what the
    order holds)."""
    standing = (OrderRefund.shop_order_id == ctx.record.id, OrderRefund.deleted_at.is_(None))
    sums = select(total(OrderRefund.amount), total(OrderRefund.wallet_part)).where(*standing)
    return tuple(ctx.session.execute(sums).one())


def _cashback_kept(ctx: OrderContext) -> int:
    return cashback_kept(ctx.session, ctx.shop.id, ctx.customer, ctx.order.external_id, ctx.record.currency)


def _paid_by_other_means(ctx: OrderContext) -> int:
    return paid_by_other_means(ctx.record, ctx.order, _pays_by_wallet(ctx))


def _check_refunds_fit(ctx: OrderContext) -> None:
    """The shop never refunds more than an order's total; a body that does is refused whole, before anything
    moves, and the delivery stays failed for the merchant to look at. Checked when a refund is new: one
    applied before was checked then, and a total edited below it afterwards (the shop allows it) must not
    stop the order's later states (a cancellation) from moving what they must."""
    if not ctx.order.refunds:
        return
    applied = _recorded_refund_ids(ctx)
    if all(refund.external_id in applied for refund in ctx.order.refunds):
        return
    refunded = sum(refund.amount for refund in ctx.order.refunds)
    if refunded > ctx.order.total:
        raise InvalidState(
            f"order #{ctx.order.external_id}: refunds of {format_amount(refunded, ctx.order.currency)} exceed its "
            f"total of {format_amount(ctx.order.total, ctx.order.currency)}; nothing was credited",
            code="refunds_exceed_order",
        )


def _recount_refunds_made_before_payment(ctx: OrderContext) -> None:
    """Refunds of a partly paid order made before the rest was paid took wallet money (no more than the wallet
    had paid); once the rest is paid they count against it instead. The wallet part is held again: it comes back
    whole when the order is refunded in full, or cancelled, or at once when the order, cancelled in between, is
    paid whole another way (else the first refunds would count twice, against both); and a refund to the wallet
    credits what it now refunds of the card's money, with its bonus."""
    record = ctx.record
    undecided = record.payment_outcome not in (PaymentOutcome.PARTIAL, PaymentOutcome.REVERSED)
    if ctx.new_record or undecided or not record.paid_in_part or not ctx.order.refunds:
        return
    paid_otherwise = _paid_by_other_means(ctx)
    if paid_otherwise <= 0:
        return
    listed = {refund.external_id: refund for refund in ctx.order.refunds if not refund.to_store_credit}
    for row in _active_refunds(ctx):
        refund = listed.get(row.external_id)
        if refund is not None:
            _recount(ctx, refund, row, recount_refund(ctx.order, refund, row.wallet_part, paid_otherwise))


def _recount(ctx: OrderContext, refund: orders.RefundSnapshot, row: OrderRefund, recount: Recount) -> None:
    credited_as_card = row.wallet_credit - row.wallet_part
    extra = bonus = 0
    if row.destination == "wallet":
        extra = max(recount.card_part - credited_as_card - recount.moved, 0)
        bonus_bp = ctx.settings.refund_wallet_bonus_bp
        bonus = max(percent_of(recount.card_part, bonus_bp) - percent_of(credited_as_card, bonus_bp), 0)
    if not (recount.moved or extra or bonus):
        return
    key = f"refund:{row.external_id}:recounted:{row.wallet_part}:{row.wallet_credit}"  # once per state of the row
    _post_recount(ctx, row, recount.moved, key)
    if extra or bonus:
        _credit_refund(ctx, refund, 0, extra, bonus, key=f"{key}:credit")
    row.wallet_part -= recount.moved
    row.wallet_credit += extra
    row.bonus += bonus
    ctx.record.wallet_refunded -= recount.moved


def _post_recount(ctx: OrderContext, row: OrderRefund, moved: int, key: str) -> None:
    """The refund's money already in the wallet came from the shop's refunds rather than the order's wallet
    payment: between the shop's two accounts only, the wallet does not move."""
    if not moved:
        return
    currency, shop_id = ctx.record.currency, ctx.shop.id
    post_transaction(
        ctx.session,
        shop_id=shop_id,
        kind="refund_to_wallet",
        reason=f"Refund #{row.external_id} of order #{ctx.order.external_id} counted against the rest paid after it",
        legs=[
            Leg(system_account(ctx.session, shop_id, SystemAccount.WALLET_PAYMENTS, currency), moved),
            Leg(system_account(ctx.session, shop_id, SystemAccount.REFUNDS_ISSUED, currency), -moved),
        ],
        idempotency_key=key,
        actor=ctx.actor,
        order_ref=ctx.order.external_id,
        refund_ref=row.external_id,
    )


def _recorded_refund_ids(ctx: OrderContext) -> set[str]:
    if ctx.new_record:
        return set()
    return set(ctx.session.scalars(select(OrderRefund.external_id).where(OrderRefund.shop_order_id == ctx.record.id)))


def _apply_refund(ctx: OrderContext, refund: orders.RefundSnapshot) -> None:
    session, record = ctx.session, ctx.record
    if _refund_applied(ctx, refund):
        return
    split = split_refund(ctx.order, refund, wallet_held(record), _paid_by_other_means(ctx))
    request = match_request(session, record, refund)
    destination = request.destination if request else ctx.settings.refund_destination
    if request:
        request.status, request.refund_external_id = "applied", refund.external_id
    redirectable = ctx.customer is not None and not refund.settled_by_shop
    to_wallet = destination in ("wallet", "customer_choice") and redirectable
    to_points = destination == "points" and redirectable
    card_credit = split.card_part if to_wallet else 0
    bonus = percent_of(card_credit, ctx.settings.refund_wallet_bonus_bp) if to_wallet else 0
    applied = OrderRefund(
        shop_id=ctx.shop.id,
        shop_order_id=record.id,
        external_id=refund.external_id,
        amount=refund.amount,
        destination="wallet" if to_wallet else "points" if to_points else "original",
        wallet_credit=split.wallet_part + card_credit,
        wallet_part=split.wallet_part,
        bonus=bonus,
    )
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
            take_back_card_refunds(
                session, ctx.shop.id, wallet_account(session, ctx.customer, record.currency), ctx.actor
            )
        total = format_amount(applied.wallet_credit + bonus, record.currency)
        # each refund's note names it: two refunds of the same amount are two notes (notes are written once per text)
        note = f"Refund #{refund.external_id} of {total} credited to your wallet."
        _tell_shop_once(ctx, f"refund:{refund.external_id}", note)
    if ctx.customer is not None:
        _claw_back_refund_points(ctx, refund, applied)
        _claw_back_refund_cashback(ctx, refund)
    session.add(applied)


def _take_back_deleted_refunds(ctx: OrderContext) -> bool:
    """A refund the merchant deleted in the shop after it was credited: the credit leaves the wallet again, or,
    when the wallet no longer holds it, the merchant is told (privately) to settle it; never kept silently. Returns
    whether the shop deleted any since the last delivery."""
    deleted = _mark_deleted_refunds(ctx)
    # a cancelled order (or one failed once paid) owes the customer all it took from the wallet: a deleted refund's
    # wallet part stays returned, with the rest of that payment
    undone = ctx.record.payment_outcome == PaymentOutcome.REVERSED or undoes_payment(ctx.order, ctx.record)
    for row in deleted:
        _undo_deleted_refund_rewards(ctx, row, undone)
        if ctx.customer is None:
            continue
        wallet = wallet_account(ctx.session, ctx.customer, ctx.record.currency, lock=True)
        wallet_part = 0 if undone else row.wallet_part
        parts = {
            SystemAccount.WALLET_PAYMENTS: wallet_part,
            SystemAccount.REFUNDS_ISSUED: row.wallet_credit - row.wallet_part,  # card money the refund credited
            SystemAccount.PROMOTIONS: _bonus_due(ctx, row, wallet),
        }
        credited = sum(parts.values())
        if credited <= 0:
            continue
        amount = format_amount(credited, ctx.record.currency)
        if wallet.available < credited:
            note = (
                f"Wallet Bridge: refund #{row.external_id} was deleted in the shop after {amount} was credited "
                f"to the customer's wallet, which no longer holds it. Nothing was taken back: settle it with "
                f"the customer."
            )
            _tell_merchant(ctx, f"refund:{row.external_id}:deleted", note)
            continue
        _post_refund_withdrawal(ctx, row, wallet, parts)
        ctx.record.wallet_refunded -= wallet_part
        _tell_shop_once(
            ctx,
            f"refund:{row.external_id}:deleted",
            f"The refund of {amount} was cancelled by the shop: {amount} taken back from your wallet.",
        )
    return bool(deleted)


def _undo_deleted_refund_rewards(ctx: OrderContext, row: OrderRefund, undone: bool) -> None:
    """A deleted refund's cashback and points: what it took back is the order's again (unless the order was undone,
    which takes all), and points it gave as the refund's money leave again (their money, when converted)."""
    if ctx.customer is None:
        return
    refund, order_ref = row.external_id, ctx.order.external_id
    if not undone:
        taken, key = f"refund:{refund}:cashback", f"refund:{refund}:deleted:cashback"
        give_back_cashback(
            ctx.session,
            ctx.shop,
            ctx.settings,
            ctx.customer,
            order_ref,
            ctx.record.currency,
            taken_under=taken,
            key=key,
            actor=ctx.actor,
        )
        ctx.record.points_clawed_back -= row.points_clawed_back + row.points_shortfall
        if row.points_clawed_back:
            reason = f"Points for order #{order_ref} again: refund #{refund} was deleted by the shop"
            credit_points(
                ctx.session,
                ctx.shop,
                ctx.customer,
                row.points_clawed_back,
                f"refund:{refund}:deleted:points",
                order_ref,
                reason,
            )
    given = find_transaction(ctx.session, ctx.shop.id, f"refund:{refund}:points-credit")
    if given is not None:
        points = ctx.session.scalar(select(func.max(Entry.amount)).where(Entry.transaction_id == given.id))
        reason = f"Points taken back: refund #{refund} of order #{order_ref} was deleted by the shop"
        key = f"refund:{refund}:deleted:points-credit"
        converted = claw_back_points(ctx.session, ctx.shop, ctx.customer, points, key, order_ref, reason).shortfall
        _take_back_converted_refund_points(ctx, refund, converted)


def _take_back_converted_refund_points(ctx: OrderContext, refund: str, points: int) -> None:
    """Points a deleted refund paid that the customer converted: their money, from what is left of the conversions."""
    if points <= 0:
        return
    wallet = wallet_account(ctx.session, ctx.customer, ctx.shop.currency, lock=True)
    take_back(
        ctx.session,
        wallet,
        lots_left(ctx.session, wallet, "points_conversion"),
        min(points_money(ctx.settings, points), wallet.available),
        kind="refund_reversal",
        reason=f"Refund #{refund} of order #{ctx.order.external_id} was deleted by the shop: the money of its points",
        counterpart=SystemAccount.POINTS_CONVERSION,
        key=f"refund:{refund}:deleted:points-converted",
        order_ref=ctx.order.external_id,
        actor=ctx.actor,
    )


def _settle_converted_points(ctx: OrderContext) -> None:
    """The points the order owes back that the customer no longer holds (converted), to `settle_converted`: what its
    earnings and clawbacks left with the customer, less what it may keep (nothing once cancelled)."""
    record = ctx.record
    owed = record.points_earned if undoes_payment(ctx.order, record) else record.points_clawed_back
    held = ctx.session.scalar(
        select(total(Entry.amount))
        .join(LedgerTransaction, LedgerTransaction.id == Entry.transaction_id)
        .where(
            Entry.account_id == points_account(ctx.session, ctx.customer).id,
            LedgerTransaction.shop_id == ctx.shop.id,
            LedgerTransaction.order_ref == ctx.order.external_id,
            LedgerTransaction.kind.in_(("points_earned", "points_clawback")),
        )
    )
    shortfall = held - (record.points_earned - owed)
    settle_converted(ctx.session, ctx.shop, ctx.settings, ctx.customer, ctx.order.external_id, shortfall)


def _applied_refunds(ctx: OrderContext) -> list[OrderRefund]:
    """The order's refunds applied, those the shop deleted since included."""
    return list(ctx.session.scalars(select(OrderRefund).where(OrderRefund.shop_order_id == ctx.record.id)))


def _active_refunds(ctx: OrderContext) -> list[OrderRefund]:
    """The order's refunds applied and not deleted since."""
    return [row for row in _applied_refunds(ctx) if row.deleted_at is None]


def _hold_again_what_a_full_refund_returned(ctx: OrderContext) -> None:
    """A partly paid order refunded in full gave its wallet part back; its refunds deleted, the shop applies the
    wallet's fee again and counts that money as paid: the order takes it from the wallet again (or, spent, the
    merchant is told), so that a later full refund gives it back once more."""
    record, order = ctx.record, ctx.order
    if (
        record.payment_outcome != PaymentOutcome.PARTIAL  # a reversed payment holds nothing again
        or order.phase != orders.PAID
        or (order.wallet_part_fees or 0) <= wallet_held(record)
        or refunded_in_full(order)
        or ctx.customer is None
    ):
        return
    rows = _applied_refunds(ctx)
    times = sum(1 for row in rows if row.deleted_at is not None)  # the deletions so far: each its own key
    if not times:
        return
    refunded_wallet_parts = sum(row.wallet_part for row in rows if row.deleted_at is None)
    missing = min(order.wallet_part_fees - wallet_held(record), record.wallet_refunded) - refunded_wallet_parts
    if missing <= 0:
        return
    wallet = wallet_account(ctx.session, ctx.customer, record.currency, lock=True)
    amount = format_amount(missing, record.currency)
    if wallet.available < missing:
        note = (
            f"Wallet Bridge: the order's refunds were deleted in the shop, which applies the wallet's {amount} "
            f"again, but the customer's wallet no longer holds it. Nothing was taken: settle it with the customer."
        )
        return _tell_merchant(ctx, ctx.attempt_key(f"held-again:{times}"), note)
    _post_payment(ctx, wallet, missing, ctx.attempt_key(f"held-again:{times}"))
    record.wallet_refunded -= missing
    note = f"The order's refund was cancelled by the shop: {amount} paid from your wallet for it again."
    _tell_shop_once(ctx, ctx.attempt_key(f"held-again:{times}"), note)


def _post_refund_withdrawal(ctx: OrderContext, row: OrderRefund, wallet, parts: dict[SystemAccount, int]) -> None:
    """The deleted refund's credit taken back from the wallet, each part to the account it came from: the card's
    money and the bonus from the lots the refund made first (not from credit about to expire), the rest, and the
    wallet's own part (which went back into the lots its payment took), in the wallet's spending order."""
    reason = f"Refund #{row.external_id} of order #{ctx.order.external_id} was deleted by the shop"
    common = {
        "kind": "refund_reversal",
        "reason": reason,
        "order_ref": ctx.order.external_id,
        "refund_ref": row.external_id,
    }
    for account, part in parts.items():
        key = f"refund:{row.external_id}:deleted:{account}"
        own = [] if account == SystemAccount.WALLET_PAYMENTS else _refund_lots(ctx, row, wallet, _LOT_KINDS[account])
        taken = take_back(ctx.session, wallet, own, part, counterpart=account, key=key, actor=ctx.actor, **common)
        if part > taken:
            post_transaction(
                ctx.session,
                shop_id=ctx.shop.id,
                legs=[
                    Leg(wallet, taken - part),
                    Leg(system_account(ctx.session, ctx.shop.id, account, ctx.record.currency), part - taken),
                ],
                idempotency_key=f"{key}:rest",
                actor=ctx.actor,
                **common,
            )


_LOT_KINDS = {SystemAccount.REFUNDS_ISSUED: "cash", SystemAccount.PROMOTIONS: "promotional"}


def _bonus_due(ctx: OrderContext, row: OrderRefund, wallet) -> int:
    """The deleted refund's bonus to take back: all of it but what expired (the expiry took that from the wallet
    already, or will); a bonus spent is taken like the refund's spent cash."""
    if not row.bonus:
        return 0
    lots = select(CreditLot.id).where(*_made_by(row, wallet, "promotional"))
    expired = (
        select(total(LotMovement.amount))
        .join(LedgerTransaction, LedgerTransaction.id == LotMovement.transaction_id)
        .where(LotMovement.lot_id.in_(lots), LedgerTransaction.kind == "expiry")
    )
    expiring = select(total(CreditLot.remaining)).where(CreditLot.id.in_(lots), CreditLot.expires_at <= utcnow())
    return max(row.bonus - ctx.session.scalar(expired) - ctx.session.scalar(expiring), 0)


def _refund_lots(ctx: OrderContext, row: OrderRefund, wallet, kind: str) -> list[CreditLot]:
    """The lots of `kind` the refund's credit made that still hold some of it and have not expired, newest first."""
    query = select(CreditLot).where(
        *_made_by(row, wallet, kind),
        CreditLot.remaining > 0,
        or_(CreditLot.expires_at.is_(None), CreditLot.expires_at > utcnow()),
    )
    return list(ctx.session.scalars(query.order_by(CreditLot.id.desc()).execution_options(populate_existing=True)))


def _made_by(row: OrderRefund, wallet, kind: str) -> tuple:
    """The wallet's lots of `kind` the refund's credit made."""
    return (CreditLot.transaction_id == row.transaction_id, CreditLot.account_id == wallet.id, CreditLot.kind == kind)


def _refund_as_points(ctx: OrderContext, refund: orders.RefundSnapshot, amount: int) -> None:
    """The customer chose loyalty points: the money becomes points at the shop's conversion rate."""
    session = ctx.session
    points = money_as_points(ctx.settings, amount)
    if points <= 0:
        return
    post_transaction(
        session,
        shop_id=ctx.shop.id,
        kind="refund_to_points",
        reason=f"Refund #{refund.external_id} of order #{ctx.order.external_id} as {points} points",
        legs=[
            Leg(points_account(session, ctx.customer), points),
            Leg(system_account(session, ctx.shop.id, SystemAccount.POINTS_ISSUED, POINTS), -points),
        ],
        idempotency_key=f"refund:{refund.external_id}:points-credit",
        actor=ctx.actor,
        order_ref=ctx.order.external_id,
        refund_ref=refund.external_id,
    )
    _tell_shop_once(
        ctx, f"refund:{refund.external_id}:points", f"Refund #{refund.external_id} credited as {points} loyalty points."
    )


def _tell_shop_once(ctx: OrderContext, key: str, note: str) -> None:
    enqueue(
        ctx.session,
        shop_id=ctx.shop.id,
        kind="order.note",
        payload={"order_id": ctx.order.external_id, "note": note},
        dedupe_key=key,
    )


def _tell_merchant(ctx: OrderContext, key: str, note: str) -> None:
    """A private order note: the merchant reads it, the customer is not e-mailed."""
    enqueue(
        ctx.session,
        shop_id=ctx.shop.id,
        kind="order.note",
        payload={"order_id": ctx.order.external_id, "note": note, "customer_note": False},
        dedupe_key=key,
    )


def _credit_refund(
    ctx: OrderContext, refund, wallet_part: int, card_credit: int, bonus: int, native=False, key: str | None = None
) -> int:
    """Credit a refund to the wallet, once per key (by default the refund's own)."""
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
        session,
        shop_id=ctx.shop.id,
        kind="refund_to_wallet",
        reason=reason,
        legs=legs,
        idempotency_key=key
        or (native_key(f"refund:{refund.external_id}") if native else f"refund:{refund.external_id}"),
        actor=ctx.actor,
        order_ref=ctx.order.external_id,
        refund_ref=refund.external_id,
        lots=LotPolicy(promo_expires_at=promotional_expiry(ctx.settings)),
    ).transaction.id


def _claw_back_refund_points(ctx: OrderContext, refund, applied: OrderRefund) -> None:
    record = ctx.record
    if not record.points_earned:
        return
    due = points_to_claw_back(record, ctx.order, refund)
    if due <= 0:
        return
    result = claw_back_points(
        ctx.session, ctx.shop, ctx.customer, due, f"refund:{refund.external_id}:points", ctx.order.external_id
    )
    applied.points_clawed_back, applied.points_shortfall = result.taken, due - result.taken
    record.points_clawed_back += due  # the shortfall is recorded, never collected later (its money: below)


def _claw_back_refund_cashback(ctx: OrderContext, refund) -> None:
    """The refund's share of the order's cashback still in the wallet's books, as for points."""
    kept = _cashback_kept(ctx)
    if kept <= 0:
        return
    due = refund_share(ctx.order, refund, kept)
    take_back_cashback(
        ctx.session,
        ctx.shop,
        ctx.customer,
        ctx.order.external_id,
        ctx.record.currency,
        due,
        f"refund:{refund.external_id}:cashback",
        ctx.actor,
    )


def wallet_fees_stale(session: Session, shop: Shop, order_external_id: str, attempt: int) -> bool:
    """Whether the attempt's fee lines are still to leave the order: its money went back and no later attempt
    (whose push replaces them) has been decided."""
    record = find_order(session, shop.id, order_external_id)
    return (
        record is not None and record.payment_outcome == PaymentOutcome.REVERSED and record.payment_attempt == attempt
    )


def wallet_payment_stands(session: Session, shop: Shop, order_external_id: str) -> bool:
    """Whether the order's wallet payment is still taken: a message announcing it to the shop is stale once
    the order was cancelled (or failed after payment) and the payment returned."""
    record = find_order(session, shop.id, order_external_id)
    return record is not None and record.payment_outcome in (PaymentOutcome.PAID, PaymentOutcome.PARTIAL)


def return_paid_otherwise(session: Session, shop: Shop, order_external_id: str) -> int:
    """The order was paid in full another way before the wallet's part reached the shop: all the wallet money
    it holds goes back, and the customer is told on the order. Returns how much."""
    returned = return_overcharge(session, shop, order_external_id, None, 0, "paid-otherwise")
    if returned:
        record = find_order(session, shop.id, order_external_id)
        note = (
            f"{format_amount(returned, record.currency)} returned to your wallet: the order was paid in full "
            "another way."
        )
        enqueue(
            session,
            shop_id=shop.id,
            kind="order.note",
            payload={"order_id": order_external_id, "note": note},
            dedupe_key=f"order:{order_external_id}:paid-otherwise",
        )
    return returned


def return_overcharge(
    session: Session, shop: Shop, order_external_id: str, charged: int | None, credited_by_shop: int, marker: str
) -> int:
    """The shop may lower an order by less than the wallet paid (it cuts a negative fee at a total of 0.00,
    or rounds its tax): give the difference back to the wallet, once per push (`marker`). Returns it.
    `charged` None: all the wallet money the order holds (the shop took none of it)."""
    record = _locked_order(session, shop.id, order_external_id)
    if record is None or record.customer_id is None:
        return 0
    held = wallet_held(record)
    overcharge = wallet_overcharge(held, charged, credited_by_shop)
    if overcharge <= 0:
        return 0
    reason = (
        f"Order #{order_external_id}: the shop applied {format_amount(credited_by_shop, record.currency)} of "
        "the wallet payment; the rest is returned"
    )
    key = f"order:{order_external_id}:overcharge:{marker}"
    if not _post_return(
        session, shop.id, record, session.get(Customer, record.customer_id), overcharge, key, reason, SYSTEM
    ):
        return 0
    record.wallet_paid -= overcharge  # the payment was smaller than decided
    return overcharge
