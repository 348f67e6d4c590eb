"""The shop's data in memory and the rules WooCommerce applies to it: ids, totals, taxes, fee lines,
refunds, statuses, notes.

Money is integer minor units in here; strings only at the edges (parsing below, views.py for output).
Nothing here knows about HTTP or webhooks: the caller (ShopSimulator) decides what each change delivers.
Not thread-safe on its own: the simulator calls it under its lock.
"""

from __future__ import annotations

import copy
import itertools
import random
import re
import string
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from simulator.errors import ORDER_NOT_FOUND, REFUND_ERROR, WooError, invalid_param, not_found
from simulator.wire import rounded_share, to_minor

STATUS_LABELS = {
    "pending": "Pending payment",
    "processing": "Processing",
    "on-hold": "On hold",
    "completed": "Completed",
    "cancelled": "Cancelled",
    "refunded": "Refunded",
    "failed": "Failed",
    "checkout-draft": "Draft",
}
PAID_STATUSES = frozenset({"processing", "completed"})
PAYABLE_STATUSES = frozenset({"on-hold", "pending", "failed", "cancelled"})  # what payment_complete() accepts
NEEDS_PAYMENT_STATUSES = frozenset({"pending", "failed"})
EDITABLE_STATUSES = frozenset({"pending", "on-hold", "auto-draft", "checkout-draft"})

# Installed gateways: id → supports automatic (API) refunds. BACS, cheque and cash on delivery are installed
# but cannot refund; "wallet" is no WooCommerce gateway at all, so `api_refund: true` fails for it.
DEFAULT_GATEWAYS = {"bacs": False, "cheque": False, "cod": False, "stripe": True}

BILLING_FIELDS = (
    "first_name",
    "last_name",
    "company",
    "address_1",
    "address_2",
    "city",
    "state",
    "postcode",
    "country",
    "email",
    "phone",
)
SHIPPING_FIELDS = tuple(name for name in BILLING_FIELDS if name != "email")
TAX_RATE_ID = 1


@dataclass
class Meta:
    id: int
    key: str
    value: object


@dataclass
class LineItem:
    id: int
    name: str
    quantity: int
    subtotal: int
    total: int
    product_id: int = 0
    variation_id: int = 0
    sku: str = ""
    tax: int = 0


@dataclass
class ShippingLine:
    id: int
    method_title: str
    method_id: str
    total: int
    tax: int = 0


@dataclass
class FeeLine:
    id: int
    name: str
    total: int
    tax_status: str = "taxable"
    tax_class: str = ""
    amount: str = ""
    tax: int = 0


@dataclass
class RefundedItem:
    id: int
    source: LineItem
    quantity: int
    total: int
    meta_id: int


@dataclass
class Refund:
    id: int
    order_id: int
    amount: int
    reason: str
    created: datetime
    refunded_payment: bool
    items: list[RefundedItem] = field(default_factory=list)
    meta: list[Meta] = field(default_factory=list)


@dataclass
class Note:
    id: int
    order_id: int
    note: str
    customer_note: bool
    author: str
    created: datetime


@dataclass
class Order:
    id: int
    order_key: str
    currency: str
    created: datetime
    modified: datetime
    created_via: str
    status: str = "pending"
    customer_id: int = 0
    billing: dict = field(default_factory=lambda: dict.fromkeys(BILLING_FIELDS, ""))
    shipping: dict = field(default_factory=lambda: dict.fromkeys(SHIPPING_FIELDS, ""))
    payment_method: str = ""
    payment_method_title: str = ""
    transaction_id: str = ""
    customer_note: str = ""
    customer_ip_address: str = ""
    customer_user_agent: str = ""
    date_paid: datetime | None = None
    date_completed: datetime | None = None
    line_items: list[LineItem] = field(default_factory=list)
    shipping_lines: list[ShippingLine] = field(default_factory=list)
    fee_lines: list[FeeLine] = field(default_factory=list)
    meta: list[Meta] = field(default_factory=list)
    refunds: list[Refund] = field(default_factory=list)
    tax_line_id: int | None = None
    status_before_trash: str | None = None  # WordPress's _wp_trash_meta_status: what restoring it sets again
    shipping_total: int = 0
    shipping_tax: int = 0
    cart_tax: int = 0
    total: int = 0

    @property
    def refunded(self) -> int:
        return sum(refund.amount for refund in self.refunds)

    @property
    def remaining_refund(self) -> int:
        return self.total - self.refunded

    @property
    def needs_payment(self) -> bool:
        return self.status in NEEDS_PAYMENT_STATUSES and self.total > 0


@dataclass
class Customer:
    id: int
    email: str
    username: str
    first_name: str
    last_name: str
    created: datetime
    modified: datetime
    billing: dict = field(default_factory=lambda: dict.fromkeys(BILLING_FIELDS, ""))
    shipping: dict = field(default_factory=lambda: dict.fromkeys(SHIPPING_FIELDS, ""))
    meta: list[Meta] = field(default_factory=list)
    role: str = "customer"
    is_paying_customer: bool = False


# --- parsing request values the way WordPress's schema validation does ------------------------------------


def _top(path: str) -> str:
    return path.split("[", 1)[0]


def _type_error(path: str, kind: str) -> WooError:
    return invalid_param(_top(path), f"{path} is not of type {kind}.", "rest_invalid_type")


def parse_int(value: object, path: str) -> int:
    """An `integer` parameter: ints and digit strings (query strings are text); bools and floats refused."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+\s*", value):
        return int(value)
    raise _type_error(path, "integer")


def parse_bool(value: object, path: str) -> bool:
    """A `boolean` parameter: true/false, 1/0 and their string forms, as rest_is_boolean accepts them."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, str | int) else None
    if text in ("true", "1"):
        return True
    if text in ("false", "0", ""):
        return False
    raise _type_error(path, "boolean")


def parse_text(value: object, path: str) -> str:
    if isinstance(value, str):
        return value
    raise _type_error(path, "string")


class Store:
    """Customers, orders, refunds and notes with WooCommerce's id sequences and order rules."""

    def __init__(
        self,
        *,
        clock: Callable[[], datetime],
        currency: str = "EUR",
        decimals: int = 2,
        tax_rate_bp: int = 0,
        gateways: Mapping[str, bool] | Iterable[str] | None = None,
        utc_offset: timedelta = timedelta(0),
        first_order_id: int = 100,
        seed: int | None = None,
    ):
        self.currency = currency
        self.decimals = decimals
        self.tax_rate_bp = tax_rate_bp
        if gateways is None:
            gateways = DEFAULT_GATEWAYS
        # A plain set of ids means installed gateways that can all refund.
        self.gateways = dict(gateways) if isinstance(gateways, Mapping) else dict.fromkeys(gateways, True)
        self.utc_offset = utc_offset
        self.orders: dict[int, Order] = {}
        self.refunds: dict[int, Refund] = {}
        self.customers: dict[int, Customer] = {}
        self.notes: dict[int, list[Note]] = {}
        self._clock = clock
        self._random = random.Random(seed)  # noqa: S311 - order keys only need to look random
        # WordPress keeps one id sequence per table: orders and refunds share the posts sequence (a refund
        # takes the next "order" id), users start after the admin (1), order items and meta have their own.
        self._post_ids = itertools.count(first_order_id)
        self._user_ids = itertools.count(2)
        self._item_ids = itertools.count(1)
        self._meta_ids = itertools.count(1)  # order (and order item) meta
        self._user_meta_ids = itertools.count(1)
        self._note_ids = itertools.count(1)

    def now(self) -> datetime:
        return self._clock().replace(microsecond=0)

    def money(self, value: object, path: str) -> int:
        """A money field: WooCommerce's schema says string, so a JSON number is a 400 like on a real store."""
        text = parse_text(value, path)
        try:
            return to_minor(text, self.decimals)
        except ValueError:
            raise invalid_param(_top(path), f"{path} is not a decimal amount.") from None

    # --- customers -----------------------------------------------------------------------------------------

    def customer(self, customer_id: int) -> Customer:
        found = self.customers.get(customer_id)
        if found is None:
            raise not_found("woocommerce_rest_invalid_id", "Invalid resource ID.")
        return found

    def create_customer(self, fields: Mapping) -> Customer:
        """POST /customers. Email required and unique; username derived from the email when not given."""
        email = self._valid_email(fields.get("email"))
        self._check_email_free(email, None)
        username = parse_text(fields["username"], "username") if fields.get("username") else self._username_for(email)
        if any(c.username == username for c in self.customers.values()):
            raise WooError(
                400,
                "registration-error-username-exists",
                "An account is already registered with that username. Please choose another.",
            )
        now = self.now()
        customer = Customer(next(self._user_ids), email, username, "", "", now, now)
        customer.billing["email"] = email
        if not fields.get("password"):  # a generated password makes WordPress nag the user to change it
            customer.meta.append(Meta(next(self._user_meta_ids), "default_password_nag", "1"))
        self._write_customer(customer, fields)
        for name in ("first_name", "last_name"):  # the billing name starts as the account name
            customer.billing[name] = customer.billing[name] or getattr(customer, name)
        self.customers[customer.id] = customer
        return customer

    def update_customer(self, customer_id: int, fields: Mapping) -> Customer:
        """PUT /customers/<id>."""
        customer = copy.deepcopy(self.customer(customer_id))
        if "username" in fields and fields["username"] != customer.username:
            raise WooError(400, "woocommerce_rest_customer_invalid_argument", "Username isn't editable.")
        if "email" in fields:
            email = self._valid_email(fields["email"])
            self._check_email_free(email, customer.id)
            customer.email = email
        self._write_customer(customer, fields)
        customer.modified = self.now()
        self.customers[customer.id] = customer
        return customer

    def _write_customer(self, customer: Customer, fields: Mapping) -> None:
        for name in ("first_name", "last_name"):
            if name in fields:
                setattr(customer, name, parse_text(fields[name], name))
        self._write_address(customer.billing, fields.get("billing"), "billing")
        self._write_address(customer.shipping, fields.get("shipping"), "shipping")
        if "meta_data" in fields:
            self._write_meta(customer.meta, fields["meta_data"], self._user_meta_ids)

    @staticmethod
    def _valid_email(value: object) -> str:
        if not isinstance(value, str) or not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
            raise WooError(400, "registration-error-invalid-email", "Please provide a valid email address.")
        return value

    def _check_email_free(self, email: str, own_id: int | None) -> None:
        if any(c.email.lower() == email.lower() and c.id != own_id for c in self.customers.values()):
            raise WooError(
                400,
                "registration-error-email-exists",
                "An account is already registered with your email address. "
                '<a href="#" class="showlogin">Please log in.</a>',
            )

    def _username_for(self, email: str) -> str:
        base = re.sub(r"[^a-z0-9._-]", "", email.split("@", 1)[0].lower()) or "customer"
        taken = {c.username for c in self.customers.values()}
        candidates = itertools.chain([base], (f"{base}{n}" for n in itertools.count(2)))
        return next(name for name in candidates if name not in taken)

    # --- orders --------------------------------------------------------------------------------------------

    def order(self, order_id: int) -> Order:
        found = self.orders.get(order_id)
        if found is None:
            raise not_found(ORDER_NOT_FOUND)
        return found

    def create_order(self, fields: Mapping, created_via: str = "rest-api") -> Order:
        """POST /orders: write the fields, compute totals, set the status, then `set_paid`."""
        now = self.now()
        order = Order(next(self._post_ids), self._order_key(), self.currency, now, now, created_via)
        self._write_order(order, fields, creating=True)
        self.orders[order.id] = order
        self.notes.setdefault(order.id, [])
        return order

    def update_order(self, order_id: int, fields: Mapping) -> Order:
        """PUT /orders/<id>. Applied to a copy so a request rejected half-way changes nothing."""
        order = copy.deepcopy(self.order(order_id))
        self._write_order(order, fields, creating=False)
        self.orders[order.id] = order
        return order

    def set_status(self, order_id: int, status: str) -> Order:
        """Change the status as the merchant does in wp-admin (with the usual status-change note)."""
        order = self.order(order_id)
        self._check_status(status)
        self._transition(order, status)
        order.modified = self.now()
        return order

    def trash_order(self, order_id: int, force: bool) -> Order:
        """DELETE /orders/<id>: to the trash, or gone for good with `force`."""
        order = self.order(order_id)
        if force:
            del self.orders[order_id]
        else:
            order.status_before_trash, order.status = order.status, "trash"
            order.modified = self.now()
        return order

    def untrash_order(self, order_id: int) -> Order:
        """Restored from the trash in wp-admin: its status before, dated now. WooCommerce fires no update hook for
        it (OrdersTableDataStore::update): `order.restored` is delivered, not `order.updated`."""
        order = self.order(order_id)
        if order.status != "trash":
            raise WooError(400, "woocommerce_rest_cannot_restore", "The order is not in the trash.")
        order.status, order.status_before_trash = order.status_before_trash or "pending", None
        order.modified = self.now()
        return order

    def find_orders(
        self,
        *,
        statuses: frozenset[str] | None,
        customer: int | None = None,
        include: frozenset[int] | None = None,
        after: dict[str, datetime] | None = None,
        before: dict[str, datetime] | None = None,
        orderby: str = "date",
        descending: bool = True,
    ) -> list[Order]:
        """GET /orders filtering. `after`/`before` map "created"/"modified" to strict bounds (WordPress's
        date_query is exclusive), so two changes in one second are not told apart by modified_after."""

        def wanted(order: Order) -> bool:
            if statuses is None:  # "any": every status except the trash and drafts
                if order.status in ("trash", "checkout-draft"):
                    return False
            elif order.status not in statuses:
                return False
            if customer is not None and order.customer_id != customer:
                return False
            if include is not None and order.id not in include:
                return False
            for name, bound in (after or {}).items():
                if not getattr(order, name) > bound:
                    return False
            return all(getattr(order, name) < bound for name, bound in (before or {}).items())

        sort_keys = {"id": lambda o: o.id, "modified": lambda o: (o.modified, o.id)}
        key = sort_keys.get(orderby, lambda o: (o.created, o.id))
        return sorted(filter(wanted, self.orders.values()), key=key, reverse=descending)

    def _order_key(self) -> str:
        alphabet = string.ascii_letters + string.digits
        return "wc_order_" + "".join(self._random.choice(alphabet) for _ in range(13))

    def _check_status(self, status: object) -> str:
        if status not in STATUS_LABELS:
            allowed = ", ".join(STATUS_LABELS)
            raise invalid_param("status", f"status is not one of {allowed}.", "rest_not_in_enum")
        return status

    def _write_order(self, order: Order, fields: Mapping, *, creating: bool) -> None:
        # The order of steps is WooCommerce's save_object(): props, items, totals, status, save, set_paid.
        status = self._check_status(fields["status"]) if fields.get("status") else None
        set_paid = parse_bool(fields["set_paid"], "set_paid") if "set_paid" in fields else False
        self._write_props(order, fields)
        self._write_address(order.billing, fields.get("billing"), "billing")
        self._write_address(order.shipping, fields.get("shipping"), "shipping")
        for kind in ("line_items", "shipping_lines", "fee_lines"):
            if kind in fields:
                self._write_items(order, kind, fields[kind])
        if "meta_data" in fields:
            self._write_meta(order.meta, fields["meta_data"], self._meta_ids)
        self.recalculate(order)
        if status:
            self._transition(order, status)
        order.modified = self.now()
        # Only a new order or one that still needs payment (pending/failed with a total above zero) can be
        # marked paid this way: on an on-hold or zero-total order `set_paid` silently does nothing.
        if set_paid and (creating or order.needs_payment):
            self._payment_complete(order)

    def _write_props(self, order: Order, fields: Mapping) -> None:
        for name in ("payment_method", "payment_method_title", "transaction_id", "customer_note"):
            if name in fields and fields[name] is not None:
                setattr(order, name, parse_text(fields[name], name))
        if fields.get("currency") is not None:
            currency = parse_text(fields["currency"], "currency")
            if not re.fullmatch(r"[A-Z]{3}", currency):
                raise invalid_param(
                    "currency", "currency is not one of the store's currency codes.", "rest_not_in_enum"
                )
            order.currency = currency
        if fields.get("customer_id") is not None:
            customer_id = parse_int(fields["customer_id"], "customer_id")
            if customer_id and customer_id not in self.customers:
                raise WooError(400, "woocommerce_rest_invalid_customer_id", "Customer ID is invalid.")
            order.customer_id = customer_id

    @staticmethod
    def _write_address(address: dict, raw: object, name: str) -> None:
        if raw is None:
            return
        if not isinstance(raw, Mapping):
            raise _type_error(name, "object")
        for key, value in raw.items():
            if key in address and value is not None:  # unknown keys are ignored, as setters are looked up
                address[key] = str(value)

    @staticmethod
    def _write_meta(metas: list[Meta], raw_list: object, ids: Iterator[int]) -> None:
        """meta_data is merged by key (or by id when given): update_meta_data() semantics, where a null
        value deletes the entry and duplicate keys collapse into the first one."""
        if not isinstance(raw_list, list):
            raise _type_error("meta_data", "array")
        for raw in raw_list:
            if not isinstance(raw, Mapping) or raw.get("key") is None:
                continue
            key, value, meta_id = str(raw["key"]), raw.get("value"), raw.get("id")
            if meta_id:
                target = next((m for m in metas if m.id == meta_id), None)
            else:
                matches = [m for m in metas if m.key == key]
                target = matches[0] if matches else None
                for duplicate in matches[1:]:
                    metas.remove(duplicate)
            if target is None:
                metas.append(Meta(next(ids), key, value))
            else:
                target.key, target.value = key, value
        metas[:] = [m for m in metas if m.value is not None]

    # --- order items ---------------------------------------------------------------------------------------

    def _write_items(self, order: Order, kind: str, raw_items: object) -> None:
        """Items with an `id` update that item (or remove it when every other field is null, or for
        `quantity: 0`); items without one are ADDED. So a repeated PUT with fee_lines adds the fee again."""
        if not isinstance(raw_items, list):
            raise _type_error(kind, "array")
        items = getattr(order, kind)
        for index, raw in enumerate(raw_items):
            path = f"{kind}[{index}]"
            if not isinstance(raw, Mapping):
                raise _type_error(path, "object")
            if raw.get("id"):
                existing = next((item for item in items if item.id == raw["id"]), None)
                if existing is None:
                    raise WooError(
                        400, "woocommerce_rest_invalid_item_id", "Order item ID provided is not associated with order."
                    )
                if all(value is None for key, value in raw.items() if key != "id") or raw.get("quantity") == 0:
                    items.remove(existing)
                else:
                    self._fill_item(existing, kind, raw, path)
            elif raw.get("quantity") != 0:
                items.append(self._new_item(kind, raw, path))

    def _new_item(self, kind: str, raw: Mapping, path: str):
        item_id = next(self._item_ids)
        blank = {
            "line_items": lambda: LineItem(item_id, "", 1, 0, 0),
            "shipping_lines": lambda: ShippingLine(item_id, "", "", 0),
            "fee_lines": lambda: FeeLine(item_id, "", 0),
        }[kind]()
        self._fill_item(blank, kind, raw, path)
        return blank

    def _fill_item(self, item, kind: str, raw: Mapping, path: str) -> None:
        if kind == "line_items":
            self._fill_line_item(item, raw, path)
        elif kind == "shipping_lines":
            for name in ("method_title", "method_id"):
                if raw.get(name) is not None:
                    setattr(item, name, parse_text(raw[name], f"{path}[{name}]"))
            if raw.get("total") is not None:
                item.total = self.money(raw["total"], f"{path}[total]")
        else:
            self._fill_fee(item, raw, path)

    def _fill_line_item(self, item: LineItem, raw: Mapping, path: str) -> None:
        for name in ("name", "sku"):
            if raw.get(name) is not None:
                setattr(item, name, parse_text(raw[name], f"{path}[{name}]"))
        for name in ("quantity", "product_id", "variation_id"):
            if raw.get(name) is not None:
                setattr(item, name, parse_int(raw[name], f"{path}[{name}]"))
        if raw.get("total") is not None:
            item.total = self.money(raw["total"], f"{path}[total]")
        elif raw.get("price") is not None:
            # Convenience for tests and demos: a real store takes prices from product_id and ignores
            # `price` (read-only in its schema); the simulator has no catalogue, so it multiplies.
            item.total = to_minor(str(raw["price"]), self.decimals) * item.quantity
        item.subtotal = self.money(raw["subtotal"], f"{path}[subtotal]") if raw.get("subtotal") else item.total

    def _fill_fee(self, fee: FeeLine, raw: Mapping, path: str) -> None:
        for name in ("name", "tax_class", "amount"):
            if raw.get(name) is not None:
                setattr(fee, name, parse_text(raw[name], f"{path}[{name}]"))
        if raw.get("tax_status") is not None:
            if raw["tax_status"] not in ("taxable", "none"):
                raise invalid_param(
                    "fee_lines", f"{path}[tax_status] is not one of taxable and none.", "rest_not_in_enum"
                )
            fee.tax_status = raw["tax_status"]
        if raw.get("total") is not None:
            fee.total = self.money(raw["total"], f"{path}[total]")

    # --- totals --------------------------------------------------------------------------------------------

    def recalculate(self, order: Order) -> None:
        """calculate_totals(): items + shipping + fees + taxes, prices excluding tax.

        A negative fee larger than what is left is cut to exactly what is left, and that cut value is
        what gets stored. (PHP leaves a negative fee alone when nothing at all is left; the simulator cuts
        it to 0.00 too, so a total never goes below zero.)
        """
        cart = sum(item.total for item in order.line_items)
        order.shipping_total = sum(line.total for line in order.shipping_lines)
        fees = 0
        for fee in order.fee_lines:
            left = cart + fees + order.shipping_total
            if fee.total < 0 and fee.total < -left:
                fee.total = -max(left, 0)
            fees += fee.total
        self._calculate_taxes(order)
        order.cart_tax = sum(item.tax for item in order.line_items) + sum(fee.tax for fee in order.fee_lines)
        order.shipping_tax = sum(line.tax for line in order.shipping_lines)
        # Per-line tax rounding can leave a cent either way; WooCommerce's total never goes below zero here.
        order.total = max(0, cart + fees + order.shipping_total + order.cart_tax + order.shipping_tax)

    def _calculate_taxes(self, order: Order) -> None:
        rate = self.tax_rate_bp
        for item in [*order.line_items, *order.shipping_lines]:
            item.tax = rounded_share(item.total, rate, 10_000)
        # A negative fee is a discount: WooCommerce spreads it over the taxable costs and takes their tax
        # off too, whatever the fee's own tax_status says. So "-5.00 from the wallet" at 19 % lowers the
        # total by 5.95, and the fee line carries total_tax "-0.95".
        positive = [*order.line_items, *order.shipping_lines, *(f for f in order.fee_lines if f.total >= 0)]
        taxable = sum(x.total for x in positive if x.total >= 0 and getattr(x, "tax_status", "taxable") == "taxable")
        every = sum(x.total for x in positive if x.total >= 0)
        for fee in order.fee_lines:
            if fee.total >= 0:
                fee.tax = rounded_share(fee.total, rate, 10_000) if fee.tax_status == "taxable" else 0
            else:
                fee.tax = rounded_share(fee.total, taxable * rate, every * 10_000)
        if rate and order.tax_line_id is None and (order.line_items or order.fee_lines or order.shipping_lines):
            order.tax_line_id = next(self._item_ids)

    # --- statuses and payment ------------------------------------------------------------------------------

    def _transition(self, order: Order, status: str) -> None:
        previous = order.status
        if previous == status:
            return
        order.status = status
        now = self.now()
        if status in PAID_STATUSES and order.date_paid is None:
            order.date_paid = now
        if status == "completed":
            order.date_completed = now
        # Every status change leaves a system note, as on a real store (GET /notes shows them).
        self._add_note(
            order.id,
            f"Order status changed from {STATUS_LABELS.get(previous, previous)} to {STATUS_LABELS[status]}.",
            customer_note=False,
            author="system",
        )
        if status == "refunded":
            self._refund_the_rest(order)

    def _refund_the_rest(self, order: Order) -> None:
        """wc_order_fully_refunded(), hooked on the refunded status: an order set refunded by hand gets a refund
        of what is left (no gateway call), whether or not it was ever paid."""
        if order.remaining_refund <= 0:
            return
        refund = Refund(
            next(self._post_ids), order.id, order.remaining_refund, "Order fully refunded.", self.now(), False
        )
        order.refunds.append(refund)
        self.refunds[refund.id] = refund
        self._add_note(
            order.id,
            "Order status set to refunded. To return funds to the customer you will need to issue a refund "
            "through your payment gateway.",
            customer_note=False,
            author="system",
        )

    def _payment_complete(self, order: Order) -> None:
        if order.status not in PAYABLE_STATUSES:
            return
        if order.date_paid is None:
            order.date_paid = self.now()
        # WooCommerce's needs_processing(): an order with nothing to ship or download (no line items, e.g. a
        # top-up's lone fee line) is completed at once.
        self._transition(order, "processing" if order.line_items else "completed")

    # --- notes ---------------------------------------------------------------------------------------------

    def add_note(self, order_id: int, note: object, customer_note: bool = False, by_user: bool = False) -> Note:
        """POST /orders/<id>/notes. Changes nothing on the order itself (and so delivers no webhook)."""
        self.order(order_id)
        if not note:
            raise WooError(500, "woocommerce_rest_invalid_order_note", "Cannot create order note, please try again.")
        return self._add_note(order_id, parse_text(note, "note"), customer_note, "admin" if by_user else "system")

    def _add_note(self, order_id: int, text: str, customer_note: bool, author: str) -> Note:
        note = Note(next(self._note_ids), order_id, text, customer_note, author, self.now())
        self.notes.setdefault(order_id, []).append(note)
        return note

    def notes_of(self, order_id: int) -> list[Note]:
        """Newest first, like GET /orders/<id>/notes."""
        self.order(order_id)
        return sorted(self.notes.get(order_id, []), key=lambda n: (n.created, n.id), reverse=True)

    # --- refunds -------------------------------------------------------------------------------------------

    def create_refund(self, order_id: int, fields: Mapping) -> Refund:
        """POST /orders/<id>/refunds, following wc_create_refund(): amount check, save (which takes an id
        from the shared sequence), then the gateway refund when `api_refund` is true — a refusal there
        deletes the refund but the id stays used. Only then does the REST controller write `meta_data`
        (update_meta_data, like an order's), so a refused refund keeps none."""
        order = self.order(order_id)
        items = self._refund_items(order, fields.get("line_items") or [])
        if fields.get("amount") not in (None, ""):
            amount = self.money(fields["amount"], "amount")
        else:
            amount = sum(item.total for item in items)
        if amount < 0:
            raise WooError(400, "woocommerce_rest_invalid_order_refund", "Refund amount must be greater than zero.")
        if amount > order.remaining_refund:
            raise WooError(500, REFUND_ERROR, "Invalid refund amount.", 500)
        reason = parse_text(fields.get("reason") or "", "reason")
        api_refund = parse_bool(fields["api_refund"], "api_refund") if "api_refund" in fields else True
        refund_id = next(self._post_ids)
        if api_refund:
            self._check_gateway(order)
        refund = Refund(refund_id, order.id, amount, reason, self.now(), api_refund, items)
        self._write_meta(refund.meta, fields.get("meta_data") or [], self._meta_ids)  # refunds are orders too
        order.refunds.append(refund)
        self.refunds[refund.id] = refund
        order.modified = refund.created
        if order.remaining_refund <= 0:
            self._transition(order, "refunded")
        return refund

    def _check_gateway(self, order: Order) -> None:
        supports_refunds = self.gateways.get(order.payment_method)
        if supports_refunds is None:
            raise WooError(500, REFUND_ERROR, "The payment gateway for this order does not exist.", 500)
        if not supports_refunds:
            raise WooError(
                500, REFUND_ERROR, "The payment gateway for this order does not support automatic refunds.", 500
            )

    def _refund_items(self, order: Order, raw_items: object) -> list[RefundedItem]:
        if not isinstance(raw_items, list):
            raise _type_error("line_items", "array")
        refunded = []
        for index, raw in enumerate(raw_items):
            path = f"line_items[{index}]"
            source = next((i for i in order.line_items if isinstance(raw, Mapping) and i.id == raw.get("id")), None)
            if source is None:
                continue  # unknown items are skipped, as wc_create_refund does
            quantity = parse_int(raw.get("quantity", 0), f"{path}[quantity]")
            total = self.money(raw.get("refund_total") or "0", f"{path}[refund_total]")
            refunded.append(
                RefundedItem(next(self._item_ids), copy.copy(source), quantity, total, next(self._meta_ids))
            )
        return refunded

    def refunds_of(self, order_id: int) -> list[Refund]:
        """Newest first, like GET /orders/<id>/refunds."""
        return sorted(self.order(order_id).refunds, key=lambda r: r.id, reverse=True)
