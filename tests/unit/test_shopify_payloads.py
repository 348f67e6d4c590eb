"""Shopify payload parsing without Flask or a database.

Fixtures in tests/fixtures/shopify are Shopify's own docs samples (API 2026-07), synthetic on purpose:
the order is cancelled and voided, refund line items disagree with the refund transactions, transaction
`currency` is null and ids exceed 2**53 (see /work/shared/fixtures/SOURCES.md).
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge import orders
from bridge.errors import ValidationFailed
from bridge.orders import CustomerSnapshot, RefundSnapshot
from webhooks import payload_fields
from webhooks.payload_fields import resource_id
from webhooks.shopify.payloads import (
    STORE_CREDIT_GATEWAY,
    TOPICS_HANDLED,
    PayloadInvalid,
    ShopifyRefund,
    parse_customer,
    parse_order,
    parse_refund,
    store_credit_spent,
)
from webhooks.woocommerce import payloads as woocommerce_payloads

FIXTURES = Path(__file__).parents[1] / "fixtures" / "shopify"
ORDER_ID = 820982911946154508
REFUND_ID = 890088186047892319


def sample(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def order_sample() -> dict:
    return sample("orders_create.json")


def refund_sample() -> dict:
    return sample("refunds_create.json")


def paid_order(**changes) -> dict:
    """The docs sample made an ordinary paid order (not cancelled, not voided)."""
    return order_sample() | {"financial_status": "paid", "cancelled_at": None, "cancel_reason": None} | changes


def transaction(amount: str, kind: str = "refund", status: str = "success", gateway: str = "bogus", **extra) -> dict:
    return {"kind": kind, "status": status, "gateway": gateway, "amount": amount, "currency": None, **extra}


CUSTOMER_BODY = {
    "id": 706405506930370084,
    "email": "bob@biller.com",
    "created_at": "2021-12-31T19:00:00-05:00",
    "first_name": "Bob",
    "last_name": "Biller",
    "state": "disabled",
    "currency": "USD",
    "admin_graphql_api_id": "gid://shopify/Customer/706405506930370084",
    "default_address": None,
}


# --- the shared module --------------------------------------------------------------------------------


def test_one_payload_invalid_for_every_platform():
    assert woocommerce_payloads.PayloadInvalid is payload_fields.PayloadInvalid is PayloadInvalid
    assert issubclass(PayloadInvalid, ValidationFailed)


# --- the docs samples ---------------------------------------------------------------------------------


def test_orders_create_sample():
    order = parse_order(order_sample())
    assert order.external_id == str(ORDER_ID)  # > 2**53, exact
    assert order.customer_external_id == "115310627314723954"
    assert order.email == "jon@example.com"
    assert order.customer_name == "John Smith"
    assert (order.currency, order.total) == ("USD", 40495)
    # cancelled_at is set: cancelled whatever financial_status ("voided") says
    assert (order.status, order.phase) == ("cancelled", orders.CANCELLED)
    assert order.payment_method == ""
    assert (order.refunds, order.meta, order.spent_from_store_credit) == ((), {}, 0)
    assert order.modified_at == datetime(2022, 1, 1, 0, 0, tzinfo=UTC)


def test_refunds_create_sample_counts_the_transactions():
    parsed = parse_refund(refund_sample())
    assert parsed == ShopifyRefund(
        order_external_id=str(ORDER_ID),
        refund=RefundSnapshot(
            external_id=str(REFUND_ID), amount=8500, reason="Things were damaged", settled_by_shop=True
        ),
        currency=None,  # every transaction says null
    )


def test_customer_body():
    assert parse_customer(CUSTOMER_BODY) == CustomerSnapshot(
        external_id="706405506930370084", email="bob@biller.com", name="Bob Biller"
    )


def test_customer_without_names_or_email():
    customer = parse_customer({"id": 7, "email": None, "first_name": " ", "last_name": None})
    assert (customer.email, customer.name) == (None, None)


# --- refunds ------------------------------------------------------------------------------------------


def test_a_failed_transaction_is_not_money_refunded():
    data = refund_sample()
    data["transactions"] = [transaction("20.00"), transaction("5.00", status="failure")]
    assert parse_refund(data).refund.amount == 2000


def test_only_refund_transactions_count():
    data = refund_sample()
    data["transactions"] = [
        transaction("20.00"),
        transaction("3.00", kind="suggested_refund"),
        transaction("4.00", kind="sale"),
        transaction("6.00", status="pending"),
    ]
    assert parse_refund(data).refund.amount == 2000


def test_refund_with_no_successful_transaction_is_zero():
    data = refund_sample()
    data["transactions"] = [transaction("5.00", status="error")]
    assert parse_refund(data).refund.amount == 0
    assert parse_refund(data | {"transactions": []}).refund.amount == 0
    del data["transactions"]
    assert parse_refund(data).refund.amount == 0


def test_store_credit_part_of_a_refund():
    data = refund_sample()
    data["transactions"] = [
        transaction("12.50", gateway=STORE_CREDIT_GATEWAY),
        transaction("7.50"),
        transaction("3.00", gateway=STORE_CREDIT_GATEWAY, status="failure"),
    ]
    refund = parse_refund(data).refund
    assert (refund.amount, refund.to_store_credit) == (2000, 1250)


def test_refund_currency_is_the_first_non_null_and_sets_the_decimals():
    data = refund_sample()
    data["transactions"] = [transaction("1500"), transaction("250", currency="JPY")]
    parsed = parse_refund(data)
    assert (parsed.currency, parsed.refund.amount) == ("JPY", 1750)


def test_refund_without_transaction_currency_uses_the_callers_then_the_duties_set():
    data = refund_sample()
    data["transactions"] = [transaction("1.255")]
    assert parse_refund(data, currency="KWD").refund.amount == 1255
    assert parse_refund(data, currency="KWD").currency is None
    with pytest.raises(PayloadInvalid) as caught:
        parse_refund(data)  # read in USD, the duties set's currency: 1.255 has three decimals
    assert set(caught.value.fields) == {"transactions.0.amount"}
    data["total_duties_set"]["shop_money"]["currency_code"] = "KWD"
    assert parse_refund(data).refund.amount == 1255
    data["transactions"] = [transaction("1500")]
    data["total_duties_set"] = {"shop_money": {"currency_code": "JPY"}}
    assert parse_refund(data).refund.amount == 1500
    for odd in (None, "x", {"shop_money": []}, {"shop_money": {"currency_code": "yen"}}):
        data["total_duties_set"] = odd
        assert parse_refund(data).refund.amount == 150000  # no usable hint: two decimals
    assert parse_refund(refund_sample(), currency="not a currency").refund.amount == 8500


def test_refunds_on_the_order():
    data = paid_order(financial_status="partially_refunded")
    data["refunds"] = [
        {"id": 1, "note": "damaged", "transactions": [transaction("10.00"), transaction("1.00", status="failure")]},
        {"id": 2, "note": None, "transactions": [transaction("2.00", gateway=STORE_CREDIT_GATEWAY)]},
    ]
    order = parse_order(data)
    assert order.phase == orders.PAID
    assert order.refunds == (
        RefundSnapshot(external_id="1", amount=1000, reason="damaged", settled_by_shop=True),
        RefundSnapshot(external_id="2", amount=200, reason="", to_store_credit=200, settled_by_shop=True),
    )


# --- orders -------------------------------------------------------------------------------------------


def test_guest_order():
    for guest in (paid_order(customer=None), {k: v for k, v in paid_order().items() if k != "customer"}):
        order = parse_order(guest)
        assert (order.customer_external_id, order.customer_name) == (None, None)
        assert order.email == "jon@example.com"


def test_email_falls_back_to_contact_email_then_the_customers():
    assert parse_order(paid_order(email="")).email == "jon@example.com"  # contact_email
    assert parse_order(paid_order(email=None, contact_email=None)).email == "john@example.com"


def test_cancelled_order():
    order = parse_order(paid_order(cancelled_at="2026-11-23T12:00:00+01:00", financial_status="paid"))
    assert (order.status, order.phase) == ("cancelled", orders.CANCELLED)


def test_order_paid_partly_with_store_credit():
    data = paid_order(total_price="41.48")
    data["transactions"] = [
        transaction("10.00", kind="sale", gateway=STORE_CREDIT_GATEWAY),
        transaction("5.00", kind="capture", gateway=STORE_CREDIT_GATEWAY),
        transaction("2.00", kind="authorization", gateway=STORE_CREDIT_GATEWAY),  # the capture moved it
        transaction("3.00", kind="sale", gateway=STORE_CREDIT_GATEWAY, status="failure"),
        transaction("26.48", kind="sale", gateway="bogus"),
    ]
    order = parse_order(data)
    assert (order.total, order.spent_from_store_credit, order.payment_method) == (4148, 1500, "")
    assert (order.status, order.phase, order.store_credit_spend_unknown) == ("paid", orders.PAID, False)


def test_store_credit_named_by_the_gateways_of_a_body_without_transactions_is_left_to_read():
    data = paid_order(payment_gateway_names=[STORE_CREDIT_GATEWAY, "bogus"])  # Shopify's bodies: no transactions
    order = parse_order(data)
    assert (order.spent_from_store_credit, order.store_credit_spend_unknown) == (0, True)
    assert not parse_order(data | {"transactions": []}).store_credit_spend_unknown  # the body says: none
    assert not parse_order(paid_order()).store_credit_spend_unknown  # "visa", "bogus"
    assert not parse_order(paid_order(payment_gateway_names=None)).store_credit_spend_unknown


def test_store_credit_spent_from_transactions_read_apart_from_the_body():
    transactions = [
        transaction("10.00", kind="sale", gateway=STORE_CREDIT_GATEWAY),
        transaction("5.00", kind="capture", gateway=STORE_CREDIT_GATEWAY, currency="USD"),
        transaction("2.00", kind="authorization", gateway=STORE_CREDIT_GATEWAY),
        transaction("3.00", kind="sale", gateway=STORE_CREDIT_GATEWAY, status="failure"),
        transaction("4.00", gateway=STORE_CREDIT_GATEWAY),  # a refund
        transaction("26.48", kind="sale", gateway="bogus"),
    ]
    assert store_credit_spent(transactions, "USD") == 1500
    assert store_credit_spent([], "JPY") == 0
    too_precise, kindless = transaction("1.001", kind="sale", gateway=STORE_CREDIT_GATEWAY), transaction("5", kind=None)
    for wrong, path in (
        ([too_precise], "transactions.0.amount"),
        ([kindless], "transactions.0.kind"),
        (None, "transactions"),
    ):
        with pytest.raises(PayloadInvalid) as caught:
            store_credit_spent(wrong, "USD")
        assert set(caught.value.fields) == {path}


@pytest.mark.parametrize(
    ("financial_status", "phase"),
    [
        ("pending", orders.AWAITING_PAYMENT),
        ("authorized", orders.AWAITING_PAYMENT),
        ("partially_paid", orders.PAID),
        ("paid", orders.PAID),
        ("partially_refunded", orders.PAID),
        ("refunded", orders.REFUNDED),
        ("voided", orders.CANCELLED),
        ("expired", orders.OTHER),
        (None, orders.OTHER),
    ],
)
def test_phase_mapping(financial_status, phase):
    order = parse_order(paid_order(financial_status=financial_status))
    assert (order.status, order.phase) == (financial_status or "", phase)


def test_note_attributes_become_meta():
    data = paid_order(note_attributes=[{"name": "a", "value": "1"}, {"name": "b", "value": None}, {"name": "a"}])
    assert parse_order(data).meta == {"a": None, "b": None}
    assert parse_order(paid_order(note_attributes=None)).meta == {}


def test_minimal_order():
    order = parse_order({"id": 5, "currency": "JPY", "total_price": "1500"})
    assert (order.total, order.customer_external_id, order.email, order.status, order.phase) == (
        1500,
        None,
        None,
        "",
        orders.OTHER,
    )
    assert (order.refunds, order.meta, order.modified_at, order.spent_from_store_credit) == ((), {}, None, 0)


# --- invalid payloads ---------------------------------------------------------------------------------

DROP = object()  # marks a key to delete


def _with(base: dict, path: str, value) -> dict:
    """A deep copy of `base` with the dotted `path` set to `value` (or removed for DROP)."""
    data = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key = int(last) if isinstance(node, list) else last
    if value is DROP:
        del node[key]
    else:
        node[key] = value
    return data


def _order_with_everything() -> dict:
    data = paid_order()
    data["refunds"] = [
        {"id": 11, "note": "n", "transactions": [transaction("1.00")]},
        {"id": 12, "transactions": [transaction("2.00"), transaction("1.00", status="failure")]},
    ]
    data["transactions"] = [transaction("3.00", kind="sale", gateway=STORE_CREDIT_GATEWAY)]
    data["note_attributes"] = [{"name": "ref", "value": "x"}]
    return data


ORDER_CASES = [
    ("id", DROP, "id"),
    ("id", str(ORDER_ID), "id"),
    ("id", 0, "id"),
    ("id", True, "id"),
    ("id", float(ORDER_ID), "id"),
    ("id", 2**63, "id"),
    ("currency", DROP, "currency"),
    ("currency", "usd", "currency"),
    ("currency", "QQQ", "currency"),
    ("currency", "PTS", "currency"),
    ("currency", None, "currency"),
    ("total_price", DROP, "total_price"),
    ("total_price", 404.95, "total_price"),
    ("total_price", 404, "total_price"),
    ("total_price", None, "total_price"),
    ("total_price", "", "total_price"),
    ("total_price", "404.955", "total_price"),
    ("total_price", "404,95", "total_price"),
    ("total_price", "-1.00", "total_price"),
    ("total_price", "4e2", "total_price"),
    ("financial_status", 5, "financial_status"),
    ("cancelled_at", "yesterday", "cancelled_at"),
    ("cancelled_at", "2021-12-31T19:00:00", "cancelled_at"),  # no offset
    ("cancelled_at", 1640995200, "cancelled_at"),
    ("updated_at", "0001-01-01T00:00:00+05:00", "updated_at"),
    ("updated_at", [], "updated_at"),
    ("email", 5, "email"),
    ("contact_email", ["jon@example.com"], "contact_email"),
    ("customer", "john", "customer"),
    ("customer", [], "customer"),
    ("customer.id", DROP, "customer.id"),
    ("customer.id", "115310627314723954", "customer.id"),
    ("customer.first_name", 5, "customer.first_name"),
    ("refunds", None, "refunds"),
    ("refunds", {}, "refunds"),
    ("refunds.0", 11, "refunds.0"),
    ("refunds.0.id", DROP, "refunds.0.id"),
    ("refunds.0.id", 12, "refunds.1.id"),  # duplicate
    ("refunds.0.note", 5, "refunds.0.note"),
    ("refunds.0.transactions", "none", "refunds.0.transactions"),
    ("refunds.0.transactions.0", "t", "refunds.0.transactions.0"),
    ("refunds.0.transactions.0.amount", 1.0, "refunds.0.transactions.0.amount"),
    ("refunds.0.transactions.0.amount", "1.001", "refunds.0.transactions.0.amount"),
    ("refunds.0.transactions.0.amount", "-1.00", "refunds.0.transactions.0.amount"),
    ("refunds.0.transactions.0.kind", DROP, "refunds.0.transactions.0.kind"),
    ("refunds.0.transactions.0.status", None, "refunds.0.transactions.0.status"),
    ("refunds.0.transactions.0.gateway", 3, "refunds.0.transactions.0.gateway"),
    ("refunds.0.transactions.0.currency", "xx", "refunds.0.transactions.0.currency"),
    ("refunds.1.transactions.1.amount", "lots", "refunds.1.transactions.1.amount"),  # failed, still a shape
    ("transactions", {"0": {}}, "transactions"),
    ("transactions", None, "transactions"),
    ("transactions.0.amount", DROP, "transactions.0.amount"),
    ("transactions.0.amount", "-3.00", "transactions.0.amount"),
    ("payment_gateway_names", STORE_CREDIT_GATEWAY, "payment_gateway_names"),
    ("payment_gateway_names.0", 5, "payment_gateway_names.0"),
    ("note_attributes", "ref=x", "note_attributes"),
    ("note_attributes.0.name", DROP, "note_attributes.0.name"),
]


@pytest.mark.parametrize(("path", "value", "expected"), ORDER_CASES, ids=[f"{p}={v!r}"[:40] for p, v, _ in ORDER_CASES])
def test_invalid_order_names_the_field(path, value, expected):
    with pytest.raises(PayloadInvalid) as caught:
        parse_order(_with(_order_with_everything(), path, value))
    assert set(caught.value.fields) == {expected}
    assert caught.value.code == "validation_failed" and expected in caught.value.message


def _refund_with_everything() -> dict:
    data = refund_sample()
    data["transactions"][1]["currency"] = "USD"
    return data


REFUND_CASES = [
    ("id", DROP, "id"),
    ("id", -1, "id"),
    ("order_id", DROP, "order_id"),
    ("order_id", None, "order_id"),
    ("order_id", str(ORDER_ID), "order_id"),
    ("note", 5, "note"),
    ("transactions", None, "transactions"),
    ("transactions.0", None, "transactions.0"),
    ("transactions.0.amount", 75, "transactions.0.amount"),
    ("transactions.0.amount", "75.001", "transactions.0.amount"),
    ("transactions.0.amount", "-75.00", "transactions.0.amount"),
    ("transactions.1.amount", DROP, "transactions.1.amount"),
    ("transactions.0.kind", None, "transactions.0.kind"),
    ("transactions.0.status", DROP, "transactions.0.status"),
    ("transactions.0.currency", "EUR", "transactions.1.currency"),  # two currencies in one refund
    ("transactions.0.currency", 840, "transactions.0.currency"),
]


@pytest.mark.parametrize(
    ("path", "value", "expected"), REFUND_CASES, ids=[f"{p}={v!r}"[:40] for p, v, _ in REFUND_CASES]
)
def test_invalid_refund_names_the_field(path, value, expected):
    with pytest.raises(PayloadInvalid) as caught:
        parse_refund(_with(_refund_with_everything(), path, value))
    assert set(caught.value.fields) == {expected}


CUSTOMER_CASES = [
    ("id", DROP, "id"),
    ("id", 0, "id"),
    ("id", "706405506930370084", "id"),
    ("email", 5, "email"),
    ("first_name", {"x": 1}, "first_name"),
    ("last_name", b"Biller", "last_name"),
]


@pytest.mark.parametrize(("path", "value", "expected"), CUSTOMER_CASES)
def test_invalid_customer_names_the_field(path, value, expected):
    with pytest.raises(PayloadInvalid) as caught:
        parse_customer(_with(CUSTOMER_BODY, path, value))
    assert set(caught.value.fields) == {expected}


@pytest.mark.parametrize("data", [None, [], "order", 12, b"{}", [{"id": 12}]])
@pytest.mark.parametrize("parse", [parse_order, parse_customer, parse_refund])
def test_non_objects_are_invalid(parse, data):
    with pytest.raises(PayloadInvalid) as caught:
        parse(data)
    assert caught.value.fields == {"_schema": "Expected a JSON object."}


# --- resource ids and topics --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"id": ORDER_ID}, str(ORDER_ID)),
        ({"id": "12"}, "12"),
        ({"id": 0}, None),
        ({"id": True}, None),
        ({"id": 1.5}, None),
        ({"id": 2**63}, None),
        ({"order_id": 5}, None),
        ([], None),
        (None, None),
    ],
)
def test_resource_id_is_best_effort(data, expected):
    assert resource_id(data) == expected


def test_resource_id_of_the_samples():
    assert resource_id(order_sample()) == str(ORDER_ID)
    assert resource_id(refund_sample()) == str(REFUND_ID)


def test_topics_handled():
    assert {"orders/paid", "refunds/create", "customers/create"} <= TOPICS_HANDLED
    assert "orders/create" not in TOPICS_HANDLED  # unpaid yet: orders/paid is the one that counts
