"""Every field of a real-shaped body replaced by every odd value (or dropped), one at a time: the parsers answer
PayloadInvalid naming the field, or a snapshot — never a TypeError or KeyError (a 500). Exhaustive, hence slow:
the unit tests keep the examples (tests/unit/test_*_payloads.py)."""

import copy
import json

import pytest

from bridge import orders
from tests.unit.test_shopify_payloads import CUSTOMER_BODY, _order_with_everything, refund_sample
from tests.unit.test_woocommerce_payloads import DROP, _with, body_of
from webhooks.shopify.payloads import PayloadInvalid, ShopifyRefund, parse_refund
from webhooks.shopify.payloads import parse_customer as parse_shopify_customer
from webhooks.shopify.payloads import parse_order as parse_shopify_order
from webhooks.woocommerce.payloads import parse_customer, parse_order

# No database here: the SQLite pass of `make test` runs these, the PostgreSQL pass need not run them again.
pytestmark = pytest.mark.database_free


def _paths(node, prefix=""):
    """Every dotted path inside a JSON document."""
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        path = f"{prefix}.{key}" if prefix else str(key)
        yield path
        yield from _paths(child, path)


SHOPIFY_ODD_VALUES = [DROP, None, True, -1, 2**64, 1.5, "", "x", "-1.00", [], {}, [{}], {"id": 1}]
WOOCOMMERCE_ODD_VALUES = [DROP, None, True, -1, 1.5, "", "x", [], {}, [{}], {"id": 1}]


@pytest.mark.parametrize(
    ("parse", "base"),
    [
        (parse_shopify_order, _order_with_everything()),  # the orders/create sample plus refunds, transactions, notes
        (parse_refund, refund_sample()),
        (parse_shopify_customer, CUSTOMER_BODY),
    ],
    ids=["order", "refund-sample", "customer"],
)
def test_any_wrong_type_anywhere_in_a_shopify_body_gives_payload_invalid_or_a_snapshot(parse, base):
    # the only acceptable failure is PayloadInvalid with string messages; a TypeError/KeyError would be a 500
    raw = json.dumps(base)
    for path in _paths(base):
        for value in SHOPIFY_ODD_VALUES:
            data = json.loads(raw)  # a fresh copy, faster than deepcopy on the big samples
            *parents, last = path.split(".")
            node = data
            for part in parents:
                node = node[int(part)] if isinstance(node, list) else node[part]
            key = int(last) if isinstance(node, list) else last
            if value is DROP:
                del node[key]
            else:
                node[key] = copy.deepcopy(value)
            try:
                result = parse(data)
            except PayloadInvalid as exc:
                assert exc.fields and all(isinstance(k, str) and isinstance(v, str) for k, v in exc.fields.items())
            else:
                assert isinstance(result, orders.OrderSnapshot | orders.CustomerSnapshot | ShopifyRefund)


@pytest.mark.parametrize(("parse", "number"), [(parse_order, "0009"), (parse_customer, "0004")])
def test_any_wrong_type_anywhere_in_a_woocommerce_body_gives_payload_invalid_or_a_snapshot(parse, number):
    # the only acceptable failure is PayloadInvalid with string messages; a TypeError/KeyError would be a 500
    base = body_of(number)
    for path in _paths(base):
        for value in WOOCOMMERCE_ODD_VALUES:
            try:
                parse(_with(base, path, value))
            except PayloadInvalid as exc:
                assert exc.fields and all(isinstance(k, str) and isinstance(v, str) for k, v in exc.fields.items())
