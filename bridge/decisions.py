"""The rules' pure decisions: arithmetic and choices on plain values (an order's snapshot, what the bridge
recorded of it, the shop's settings), with no database and no web. The modules that move money gather the
facts, ask here, and post what the answer says; tests/unit/test_decisions.py checks each rule directly.

Amounts are integer minor units; points are whole points.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from bridge import orders
from bridge.errors import ValidationFailed
from bridge.money import exponent, percent_of
from bridge.orders import OrderSnapshot, RefundSnapshot
from bridge.settings_schema import ShopSettings
from bridge.states import PaymentOutcome


class OrderRecord(Protocol):
    """What the bridge recorded of an order: a `ShopOrder` row, or anything with these attributes."""

    total: int
    payment_outcome: str | None
    wallet_paid: int
    wallet_refunded: int
    wallet_discount: int
    paid_in_part: bool
    card_paid: int | None
    reopened_at: datetime | None
    points_earned: int
    points_clawed_back: int
    last_modified_at: datetime | None
    status: str


# A payment refused, cancelled before it paid, or gone back: a newer state awaiting payment is a new attempt.
RETRIABLE = (PaymentOutcome.UNPAID, PaymentOutcome.CANCELLED, PaymentOutcome.REVERSED)


# Staleness ----------------------------------------------------------------------------------------


def is_stale(record: OrderRecord, order: OrderSnapshot) -> bool:
    """Deliveries arrive in any order: a state older than one already seen decides no payment."""
    return bool(order.modified_at and record.last_modified_at and order.modified_at < record.last_modified_at)


def is_newer(record: OrderRecord, order: OrderSnapshot) -> bool:
    """The shop changed the order after the newest state the bridge has seen (both times known). The shop dates
    changes to the second: within one, a state is newer when the bridge read it back from the shop after seeing
    it, and it is still the state the bridge saw last (no other change applied in between)."""
    if order.modified_at is None or record.last_modified_at is None:
        return False
    if order.read_back and order.modified_at == record.last_modified_at:
        return order.status == record.status
    return order.modified_at > record.last_modified_at


def same_second_retry(record: OrderRecord, order: OrderSnapshot) -> bool:
    """A delivered state awaiting payment after the payment went back (or was refused), dated the same second as
    the different state seen before it: only reading the order back can say which of the two is the newer."""
    return (
        not order.read_back
        and order.phase == orders.AWAITING_PAYMENT
        and record.payment_outcome in RETRIABLE
        and order.modified_at is not None
        and order.modified_at == record.last_modified_at
        and order.status != record.status
    )


def release_cutoff(settings: ShopSettings, now: datetime) -> datetime | None:
    """A failed order unchanged since this moment has waited long enough for its wallet part to go back;
    None when the shop releases none by itself (0 days: the merchant does it by hand)."""
    days = settings.failed_order_release_days
    return now - timedelta(days=days) if days else None


def promotional_expiry(settings: ShopSettings, now: datetime | None = None) -> datetime | None:
    """When promotional credit given now expires (None: never)."""
    days = settings.promotional_expiry_days
    return (now or datetime.now(UTC)) + timedelta(days=days) if days > 0 else None


# Wallet payments ----------------------------------------------------------------------------------


def wallet_held(record: OrderRecord) -> int:
    """Wallet money the order holds now: what it took, less what went back."""
    return max(record.wallet_paid - record.wallet_refunded, 0)


def moved_money(record: OrderRecord) -> bool:
    """The order took wallet money (or points were earned on it) at some point, as far as the record says."""
    decided = record.payment_outcome not in (None, PaymentOutcome.CANCELLED, PaymentOutcome.UNPAID)
    return bool(decided or record.points_earned)


def all_given_back(record: OrderRecord) -> bool:
    """The order's wallet payment went back whole and its points with it: it binds no customer any more (a next
    payment attempt is its customer's now, whoever paid the one before)."""
    return (
        record.payment_outcome == PaymentOutcome.REVERSED
        and wallet_held(record) == 0
        and record.points_earned <= record.points_clawed_back
    )


def payment_undecided(record: OrderRecord, order: OrderSnapshot) -> bool:
    """A wallet payment is still to decide: never decided before; or, in a newer state, refused before (the
    customer topped up), cancelled before it paid, or whose payment went back (a new attempt)."""
    return record.payment_outcome is None or (record.payment_outcome in RETRIABLE and is_newer(record, order))


def undoes_payment(order: OrderSnapshot, record: OrderRecord) -> bool:
    """A cancellation undoes the order. A failed payment undoes only a payment already settled (set failed
    by hand): the wallet part of a partial payment stays while the customer may still pay the rest (or
    cancel, which returns it), and an order that moved nothing stays open to a later payment."""
    if order.phase == orders.CANCELLED:
        return True
    settled = record.payment_outcome in (PaymentOutcome.PAID, PaymentOutcome.STORE_CREDIT)
    return order.phase == orders.FAILED and (settled or record.points_earned > 0)


def wallet_discount(settings: ShopSettings, total: int) -> int:
    """The discount for paying the whole order by wallet (percent in basis points, or fixed minor units)."""
    if settings.wallet_discount_kind == "percent":
        return percent_of(total, settings.wallet_discount_value)
    if settings.wallet_discount_kind == "fixed":
        return min(total, settings.wallet_discount_value)
    return 0


def wallet_due(settings: ShopSettings, amount: int) -> int:
    """What the wallet pays for an order of `amount` it pays whole: less the discount for paying by wallet."""
    return amount - wallet_discount(settings, amount)


def total_edited(record: OrderRecord, order: OrderSnapshot, refunded_before: int = 0) -> bool:
    """The merchant changed the total of an order the wallet paid in full: what it now costs, less the refunds
    already settled (`refunded_before`), is neither what the wallet holds for it (with the bridge's discount fee in
    or not yet in), and its total is not one already settled. A refunded order counts when lowered (the edit's own
    delivery may have been lost: the refund's shows both)."""
    settling = (orders.PAID, orders.AWAITING_PAYMENT, orders.REFUNDED)
    if record.payment_outcome != PaymentOutcome.PAID or order.phase not in settling:
        return False
    held, net = wallet_held(record), net_cost(order, refunded_before)
    if order.phase == orders.REFUNDED and net >= held:  # lowered, then refunded in full: never charged more
        return False
    return order.total != record.total and net not in _unedited_costs(record, order)


def _unedited_costs(record: OrderRecord, order: OrderSnapshot) -> tuple[int, ...]:
    """What an order the wallet paid whole costs unedited: what the wallet holds, the discount's line in; and that
    plus the discount while the line is not yet in (the body says which when it lists the fee lines)."""
    held = wallet_held(record)
    if order.wallet_fees is None:
        return (held, held + record.wallet_discount)
    return (held,) if order.discount_fees else (held + record.wallet_discount,)


def net_cost(order: OrderSnapshot, refunded_before: int) -> int:
    """What the customer pays for the order once the refunds already settled are taken off (never below 0: a
    total edited below them owes nothing)."""
    return max(order.total - refunded_before, 0)


def wallet_part_cut(record: OrderRecord, order: OrderSnapshot) -> int:
    """Wallet money of a partly paid order the shop no longer applies: the merchant edited the order below
    the wallet's part, the shop cut the wallet's fee line at a total of 0.00, and the rest was overpaid."""
    if (
        record.payment_outcome != PaymentOutcome.PARTIAL
        or order.wallet_part_fees is None
        or order.total != 0
        or order.refunds
        or order.phase not in (orders.AWAITING_PAYMENT, orders.FAILED, orders.PAID)
    ):
        return 0
    return max(wallet_held(record) - order.wallet_part_fees, 0)  # the shop cuts fees in line order: the discount stays


def partial_total_changed(record: OrderRecord, order: OrderSnapshot) -> bool:
    """A partly paid order still awaiting the rest was edited: the wallet's fee stands whole (the shop applies
    all the wallet paid) and the shop asks another amount than when last seen."""
    return (
        record.payment_outcome == PaymentOutcome.PARTIAL
        and order.phase in (orders.AWAITING_PAYMENT, orders.FAILED)
        and order.wallet_part_fees is not None
        and order.wallet_part_fees == wallet_held(record)
        and 0 < order.total != record.total
    )


def paid_in_shop(record: OrderRecord, order: OrderSnapshot) -> bool:
    """Whether the shop recorded the order paid by another method. WooCommerce dates an order paid once, for good:
    an order the wallet paid whole and the bridge reopened for the rest of a raised total keeps the wallet's date,
    so only a paid state newer than the one reopened says another method paid the rest (recorded then: `card_paid`)."""
    reopened = record.reopened_at
    if record.card_paid is None and reopened is not None and order.paid_at is not None and order.paid_at <= reopened:
        return order.phase == orders.PAID and order.modified_at is not None and order.modified_at > reopened
    return order.recorded_paid()


def paid_by_other_means(record: OrderRecord, order: OrderSnapshot, pays_by_wallet: bool) -> int:
    """What the customer paid the shop another way (its refunds may go back that way): the shop's total of
    an order it recorded as paid (of one the wallet paid part of, or now labelled with the wallet's method, no more
    than when another method paid it: `card_paid`) — unless the wallet was to pay it all, or never paid the wallet
    order the merchant marked paid by hand."""
    if not paid_in_shop(record, order) or record.payment_outcome == PaymentOutcome.PAID:
        return 0
    if record.payment_outcome == PaymentOutcome.STORE_CREDIT:  # Shopify counts store credit in the order's total
        return max(order.total - record.wallet_paid, 0)
    if record.card_paid is not None and (record.paid_in_part or pays_by_wallet):
        # the wallet's fee line taken off after the payment raised the total, but not what was charged; and an
        # order relabelled with the wallet's method afterwards was still paid that way
        return min(order.total, record.card_paid)
    if pays_by_wallet and not record.paid_in_part:
        return 0
    return order.total


# WooCommerce saves a payment (date_paid, the paid status) in one save: its date_modified is within a few seconds.
PAYMENT_SAVE = timedelta(seconds=5)


def changed_after_payment(order: OrderSnapshot) -> bool:
    """The shop says the order was changed well after it recorded the payment (a state seen late, or collapsed
    with later edits): its total now need not be what was paid then."""
    return bool(order.paid_at and order.modified_at and order.modified_at - order.paid_at > PAYMENT_SAVE)


def fully_refunded(record: OrderRecord, order: OrderSnapshot) -> bool:
    """A partly paid order refunded in full (or set refunded): what the wallet paid is still held."""
    return record.paid_in_part and wallet_held(record) > 0 and refunded_in_full(order)


def refunded_in_full(order: OrderSnapshot) -> bool:
    """The shop set the order refunded, or its refunds add up to its total."""
    refunded = sum(refund.amount for refund in order.refunds)
    return order.phase == orders.REFUNDED or (order.total > 0 and refunded >= order.total)


def wallet_overcharge(held: int, charged: int | None, credited_by_shop: int) -> int:
    """Wallet money the shop did not apply to an order (it cut a negative fee at a total of 0.00, or rounded
    its tax), at most what the order holds. `charged` None: the shop took none of what it holds."""
    return min(held if charged is None else charged - max(credited_by_shop, 0), held)


# Refunds ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefundSplit:
    wallet_part: int  # money that came from the wallet: always goes back to it
    card_part: int  # money paid by other means: goes where the shop's policy says
    native: bool = False  # the shop itself returned this much to its own store credit:
    native_extra: int = 0  # ... the wallet part, and this much more (card money it chose to give as credit)


def split_refund(order: OrderSnapshot, refund: RefundSnapshot, wallet_held: int, paid_otherwise: int) -> RefundSplit:
    """Where a refund's money came from. What the shop returns for it plus what the bridge credits for it is
    the refund's amount, and over an order never more than the customer paid.

    Money paid another way is refunded first (refunds sorted by id, so the split never depends on the order
    they are applied in): the shop's total of a partly paid order is that money (the wallet part is a negative
    fee it cannot refund), so its wallet part comes back only when the order is refunded in full. The rest of
    a refund is wallet money, up to what the order still holds: nothing once a cancellation returned it."""
    if refund.to_store_credit:  # the shop says where the money went (Shopify refund transactions)
        wallet_part = min(refund.to_store_credit, wallet_held)
        return RefundSplit(
            wallet_part,
            refund.amount - refund.to_store_credit,
            native=True,
            native_extra=refund.to_store_credit - wallet_part,
        )
    card_part = min(refund.amount, max(paid_otherwise - refunded_before(order, refund), 0))
    return RefundSplit(wallet_part=min(refund.amount - card_part, wallet_held), card_part=card_part)


@dataclass(frozen=True)
class Recount:
    card_part: int  # the refund's part that is money paid another way now
    moved: int  # of its wallet part, what is now money paid another way


def recount_refund(order: OrderSnapshot, refund: RefundSnapshot, wallet_part: int, paid_otherwise: int) -> Recount:
    """A refund made before the customer paid the rest of a partly paid order could only be wallet money then
    (and no more than the wallet had paid); the shop counts it against its total (the money paid another way)
    once that is paid, as it would a refund made after."""
    card_part = min(refund.amount, max(paid_otherwise - refunded_before(order, refund), 0))
    return Recount(card_part, moved=max(wallet_part - (refund.amount - card_part), 0))


def refund_sort_key(refund: RefundSnapshot) -> tuple[int, str]:
    """Refunds in the order the shop made them (numeric ids by value)."""
    return (int(refund.external_id) if refund.external_id.isdigit() else 0, refund.external_id)


def refunded_before(order: OrderSnapshot, refund: RefundSnapshot) -> int:
    """What the order's refunds made before this one refunded."""
    return sum(r.amount for r in order.refunds if refund_sort_key(r) < refund_sort_key(refund))


def share(refunded: int, total: int, part: int) -> int:
    """The part of `part` that `refunded` of `total` stands for, rounded down (all of it once refunded in full)."""
    if total <= 0:
        return part if refunded > 0 else 0
    return min(part, part * min(refunded, total) // total)


def refund_share(order: OrderSnapshot, refund: RefundSnapshot, left: int) -> int:
    """This refund's share of what the order still holds of what it earned (points, cashback): by its part of the
    total not refunded before it, so that the refund completing the order's refunds takes all that is left — even
    what was earned after earlier refunds, or after a lowered total took some back."""
    return share(refund.amount, order.total - refunded_before(order, refund), left)


def points_to_claw_back(record: OrderRecord, order: OrderSnapshot, refund: RefundSnapshot) -> int:
    """The order's points this refund takes back: its share of the points left."""
    return refund_share(order, refund, record.points_earned - record.points_clawed_back)


def money_as_points(settings: ShopSettings, amount: int) -> int:
    """A refund the customer takes as loyalty points: the money at the shop's conversion rate, rounded down."""
    return amount * settings.points_conversion_points // max(settings.points_conversion_value, 1)


def return_window(settings: ShopSettings, spend: int) -> tuple[str, int]:
    """(tier, days): the highest tier whose lifetime-spend threshold the customer reached."""
    tier, days = "Standard", 30
    for window in sorted(settings.return_windows, key=lambda w: w.min_lifetime_spend):
        if spend >= window.min_lifetime_spend:
            tier, days = window.tier, window.days
    return tier, days


# Points, top-ups, tips ----------------------------------------------------------------------------


def points_for(settings: ShopSettings, paid: int, currency: str) -> int:
    """Points per whole currency unit paid, rounded down (9.99 at 1 point per euro earns 9)."""
    return paid * settings.points_per_currency_unit // 10 ** exponent(currency)


def points_base(settings: ShopSettings, order: OrderSnapshot, paid: int) -> int:
    """What earns points: the items without tax, and their shipping if the shop says so, never more than
    was paid (a wallet discount). A snapshot that lists no items (the rules' own) earns on what was paid."""
    if order.items_excluding_tax is None:
        return paid
    shipping = order.shipping_excluding_tax if settings.points_base == "items_and_shipping" else 0
    return max(0, min(order.items_excluding_tax + shipping, paid))


def points_money(settings: ShopSettings, points: int) -> int:
    """What `points` are worth at the shop's conversion rate, pro rata (not in whole steps), rounded down."""
    return max(points, 0) * settings.points_conversion_value // max(settings.points_conversion_points, 1)


def conversion_value(settings: ShopSettings, points: int) -> tuple[int, int]:
    """(points used, money in minor units): whole conversion steps only, so no point is lost to rounding."""
    steps = points // settings.points_conversion_points
    return steps * settings.points_conversion_points, steps * settings.points_conversion_value


def topup_bonus(settings: ShopSettings, credited: int) -> int:
    """The shop's bonus on a top-up of `credited`, from its threshold up."""
    if settings.topup_bonus_bp and credited >= settings.topup_bonus_threshold:
        return percent_of(credited, settings.topup_bonus_bp)
    return 0


def tip_amount(settings: ShopSettings, record: OrderRecord, percent_bp: int | None, amount: int | None) -> int:
    """The tip asked for: an amount, or one of the shop's presets of what the customer paid for the order."""
    if (percent_bp is None) == (amount is None):
        raise ValidationFailed("give a preset percentage or an amount", fields={"percent_bp": "give this or amount"})
    if percent_bp is None:
        return amount
    if percent_bp not in settings.tip_presets_bp:
        presets = ", ".join(f"{p / 100:g} %" for p in settings.tip_presets_bp)
        raise ValidationFailed("not one of the shop's presets", fields={"percent_bp": f"one of {presets}"})
    wallet_part = record.wallet_paid if record.payment_outcome == PaymentOutcome.PARTIAL else 0
    return percent_of(record.total + wallet_part, percent_bp)


def cashback_for(settings: ShopSettings, base: int) -> int:
    """The cashback an order earns on `base` (what was paid for it), in minor units."""
    kind = settings.cashback_kind
    if kind == "none" or base <= 0 or base < settings.cashback_minimum_order:
        return 0
    amount = percent_of(base, settings.cashback_value) if kind == "percent" else min(settings.cashback_value, base)
    return min(amount, settings.cashback_cap) if settings.cashback_cap else amount


def earns_cashback_now(settings: ShopSettings, order: OrderSnapshot) -> bool:
    """Paid, and in the status the merchant picked: any paid status, or only completed (goods delivered)."""
    return order.phase == orders.PAID and (settings.cashback_on == "paid" or order.status == "completed")
