"""WooCommerce inbound layer without Flask or a database: signatures, ping detection, payload parsing.

Fixtures in tests/fixtures/woocommerce: `captured/NNNN.json` + `.body` are real deliveries from a
WooCommerce 10.0.2 store (method/path/headers, raw signed bytes; secret `realwoo-webhook-secret`);
order.json, order_refund.json and customer.json are the REST v3 docs samples.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from bridge import orders
from bridge.errors import ValidationFailed
from bridge.money import parse_amount
from webhooks.payload_fields import resource_id
from webhooks.signing import is_valid_signature, sign
from webhooks.woocommerce.payloads import (
    TOPICS_HANDLED,
    PayloadInvalid,
    parse_customer,
    parse_order,
)
from webhooks.woocommerce.ping import is_ping

FIXTURES = Path(__file__).parents[1] / "fixtures" / "woocommerce"
SECRET = "realwoo-webhook-secret"
SIGNED = ["0004", "0005", "0009"]
WALLET_REF = 'w/ref "quoted" <tag> & ünïcode'


def captured(number: str) -> tuple[dict, bytes]:
    """(method/path/headers, raw body bytes) of one captured delivery."""
    meta = json.loads((FIXTURES / "captured" / f"{number}.json").read_text())
    return meta, (FIXTURES / "captured" / f"{number}.body").read_bytes()


def header(meta: dict, name: str) -> str | None:
    return next((value for key, value in meta["headers"] if key.lower() == name.lower()), None)


def body_of(number: str) -> dict:
    return json.loads(captured(number)[1])


def docs_sample(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


# --- signatures ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("number", SIGNED)
def test_real_deliveries_verify_on_raw_bytes(number):
    meta, raw = captured(number)
    signature = header(meta, "X-WC-Webhook-Signature")
    assert sign(raw, SECRET) == signature
    assert is_valid_signature(raw, signature, [SECRET])


@pytest.mark.parametrize("number", SIGNED)
def test_reserialised_json_does_not_verify(number):
    # wp_json_encode escapes "/" and non-ASCII; Python's json never reproduces the signed bytes
    meta, raw = captured(number)
    signature = header(meta, "X-WC-Webhook-Signature")
    parsed = json.loads(raw)
    for reserialised in (json.dumps(parsed), json.dumps(parsed, separators=(",", ":"), ensure_ascii=False)):
        assert reserialised.encode() != raw
        assert not is_valid_signature(reserialised.encode(), signature, [SECRET])


@pytest.mark.parametrize("number", SIGNED)
def test_tampering_fails(number):
    meta, raw = captured(number)
    signature = header(meta, "X-WC-Webhook-Signature")
    middle = len(raw) // 2
    one_byte_changed = raw[:middle] + bytes([raw[middle] ^ 0x01]) + raw[middle + 1 :]
    assert not is_valid_signature(one_byte_changed, signature, [SECRET])
    assert not is_valid_signature(raw + b" ", signature, [SECRET])
    assert not is_valid_signature(raw, signature, ["wrong-secret"])
    assert not is_valid_signature(raw, signature[:-1], [SECRET])
    assert not is_valid_signature(raw, signature[:20], [SECRET])


def test_rotation_accepts_any_configured_secret():
    meta, raw = captured("0005")
    signature = header(meta, "X-WC-Webhook-Signature")
    assert is_valid_signature(raw, signature, ["new-secret-not-yet-in-the-shop", SECRET])
    assert is_valid_signature(raw, signature, [SECRET, "new-secret-not-yet-in-the-shop"])
    assert not is_valid_signature(raw, signature, ["new-secret-not-yet-in-the-shop", "older"])


@pytest.mark.parametrize(
    "header_value",
    [None, "", "   ", "garbage", "not base64 !!!", "ünïcode-signature", "\udcff", 12345, b"bytes"],
)
def test_bad_headers_are_invalid_without_raising(header_value):
    _, raw = captured("0005")
    assert not is_valid_signature(raw, header_value, [SECRET])


def test_no_usable_secret_never_verifies():
    raw = b'{"id": 1}'
    # an empty secret is public knowledge: a signature made with it must not pass
    assert not is_valid_signature(raw, sign(raw, ""), [""])
    assert not is_valid_signature(raw, sign(raw, SECRET), [])
    assert not is_valid_signature(raw, sign(raw, SECRET), [None, "\udcff"])
    assert not is_valid_signature("not bytes", sign(b"not bytes", SECRET), [SECRET])


# --- ping ---------------------------------------------------------------------------------------------


def test_captured_ping_is_a_ping():
    meta, raw = captured("0001")
    assert raw == b"webhook_id=1"
    assert is_ping(header(meta, "Content-Type"), raw, meta["headers"])
    assert is_ping(header(meta, "Content-Type"), raw, dict(meta["headers"]))
    assert is_ping("application/x-www-form-urlencoded; charset=UTF-8", raw, None)


@pytest.mark.parametrize("number", SIGNED)
def test_deliveries_are_not_pings(number):
    meta, raw = captured(number)
    assert not is_ping(header(meta, "Content-Type"), raw, meta["headers"])


@pytest.mark.parametrize(
    ("content_type", "raw", "headers"),
    [
        ("application/x-www-form-urlencoded", b"webhook_id=1", {"X-WC-Webhook-Topic": "order.created"}),
        ("application/x-www-form-urlencoded", b"webhook_id=1", [("x-wc-webhook-signature", "abc")]),
        ("application/json", b"webhook_id=1", {}),
        (None, b"webhook_id=1", {}),
        ("application/x-www-form-urlencoded", b"webhook_id=1&x=2", {}),
        ("application/x-www-form-urlencoded", b"webhook_id=", {}),
        ("application/x-www-form-urlencoded", "webhook_id=1", {}),
        ("application/x-www-form-urlencoded", b"webhook_id=1", 42),
    ],
)
def test_not_pings(content_type, raw, headers):
    assert not is_ping(content_type, raw, headers)


# --- orders -------------------------------------------------------------------------------------------


def test_pending_wallet_order_0005():
    order = parse_order(body_of("0005"))
    assert order.external_id == "12"
    assert order.customer_external_id == "2"
    assert order.email == "alice@example.test"
    assert order.customer_name == "Alice Tester"
    assert (order.currency, order.total) == ("EUR", 4148)
    assert order.status == "pending"
    assert order.phase == orders.AWAITING_PAYMENT
    assert order.payment_method == "wallet"
    assert order.refunds == ()
    assert order.meta == {"wallet_ref": WALLET_REF}


def test_on_hold_order_with_two_refunds_0009():
    order = parse_order(body_of("0009"))
    assert (order.status, order.phase) == ("on-hold", orders.AWAITING_PAYMENT)
    assert order.total == 4148  # WooCommerce keeps the original total; refunds are listed apart
    assert order.refunds == (
        orders.RefundSnapshot(external_id="13", amount=500, reason="partial refund one"),
        orders.RefundSnapshot(external_id="14", amount=325, reason="partial refund two"),
    )


def test_docs_order_with_old_refund_key():
    order = parse_order(docs_sample("order.json"))
    assert (order.external_id, order.customer_external_id) == ("723", "26")
    assert (order.currency, order.total, order.phase) == ("USD", 3900, orders.PAID)
    assert order.customer_name == "João Silva"
    assert [(r.external_id, r.amount, r.reason) for r in order.refunds] == [("726", 1000, ""), ("724", 900, "")]
    assert order.meta == {"_download_permissions_granted": "yes"}


def test_refund_object_amount_matches_the_order_refund_line():
    refund = docs_sample("order_refund.json")  # GET /orders/723/refunds/724: positive `amount`
    on_order = {r.external_id: r.amount for r in parse_order(docs_sample("order.json")).refunds}
    assert on_order[str(refund["id"])] == parse_amount(refund["amount"], "USD")


def test_guest_order():
    data = body_of("0005") | {"customer_id": 0}
    order = parse_order(data)
    assert order.customer_external_id is None
    assert order.email == "alice@example.test"  # guests still leave a billing email


def test_minimal_order_uses_defaults():
    order = parse_order({"id": 5, "status": "pending", "currency": "JPY", "total": "1500"})
    assert (order.total, order.customer_external_id, order.email, order.customer_name) == (1500, None, None, None)
    assert (order.payment_method, order.refunds, order.meta) == ("", (), {})


def test_the_wallets_part_and_the_discount_are_read_apart_from_the_bridges_fee_lines():
    """The discount's line lowers the total too, but it is no wallet money: a shop that cut the wallet's line or
    dropped it must not have the discount counted as paid from the wallet (real store, session 15)."""
    data = body_of("0005")
    data["fee_lines"] = [
        {"id": 1, "name": "Paid from wallet", "total": "-8.00", "total_tax": "0.00"},
        {"id": 2, "name": "Wallet discount", "total": "-1.68", "total_tax": "-0.31"},
        {"id": 3, "name": "Gift wrap", "total": "2.00", "total_tax": "0.00"},
    ]
    order = parse_order(data)
    assert (order.wallet_fees, order.discount_fees, order.wallet_part_fees) == (999, 199, 800)
    assert parse_order({"id": 5, "status": "pending", "currency": "EUR", "total": "1.00"}).wallet_part_fees is None


def test_refund_reason_prefers_current_key_and_accepts_old_one():
    data = body_of("0009")
    data["refunds"] = [
        {"id": 13, "total": "-1.00", "refund": "old key"},
        {"id": 14, "total": "-1.00", "reason": "new key", "refund": "old key"},
        {"id": 15, "total": "-0.00"},
    ]
    assert [r.reason for r in parse_order(data).refunds] == ["old key", "new key", ""]
    assert parse_order(data).refunds[2].amount == 0


def test_meta_last_key_wins_and_values_are_kept_as_is():
    data = body_of("0005")
    data["meta_data"] = [{"key": "a", "value": 1}, {"key": "b", "value": {"x": [1, None]}}, {"key": "a", "value": "2"}]
    assert parse_order(data).meta == {"a": "2", "b": {"x": [1, None]}}


@pytest.mark.parametrize(
    ("status", "phase"),
    [
        ("pending", orders.AWAITING_PAYMENT),
        ("on-hold", orders.AWAITING_PAYMENT),
        ("processing", orders.PAID),
        ("completed", orders.PAID),
        ("cancelled", orders.CANCELLED),
        ("failed", orders.FAILED),
        ("refunded", orders.REFUNDED),
        ("checkout-draft", orders.OTHER),
        ("trash", orders.OTHER),
        ("awaiting-shipment", orders.OTHER),
    ],
)
def test_phase_mapping(status, phase):
    assert parse_order(body_of("0005") | {"status": status}).phase == phase


def test_three_decimal_currency():
    order = parse_order(
        body_of("0005") | {"currency": "KWD", "total": "1.250", "refunds": [{"id": 9, "total": "-0.005"}]}
    )
    assert (order.total, order.refunds[0].amount) == (1250, 5)


# --- customers ----------------------------------------------------------------------------------------


def test_customer_created_0004():
    customer = parse_customer(body_of("0004"))
    assert customer == orders.CustomerSnapshot(external_id="2", email="alice@example.test", name="Alice Tester")


def test_docs_customer():
    customer = parse_customer(docs_sample("customer.json"))
    assert customer == orders.CustomerSnapshot(external_id="25", email="john.doe@example.com", name="John Doe")


def test_customer_without_names_or_email():
    customer = parse_customer({"id": 7, "email": "", "first_name": "", "last_name": None})
    assert (customer.email, customer.name) == (None, None)


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


ORDER_CASES = [
    ("id", DROP, "id"),
    ("id", "12", "id"),
    ("id", 0, "id"),
    ("id", True, "id"),
    ("id", 12.0, "id"),
    ("id", 2**64, "id"),
    ("status", DROP, "status"),
    ("status", 5, "status"),
    ("status", "", "status"),
    ("currency", DROP, "currency"),
    ("currency", "eur", "currency"),
    ("currency", "EURO", "currency"),
    ("currency", "QQQ", "currency"),
    ("currency", "PTS", "currency"),
    ("currency", None, "currency"),
    ("total", DROP, "total"),
    ("total", 41.48, "total"),
    ("total", 41, "total"),
    ("total", True, "total"),
    ("total", None, "total"),
    ("total", "", "total"),
    ("total", "41.485", "total"),
    ("total", "41,48", "total"),
    ("total", " 41.48", "total"),
    ("total", "4.1e1", "total"),
    ("total", "٤١", "total"),
    ("total", "-1.00", "total"),
    ("total", "1" * 16, "total"),
    ("total", "1." + "0" * 13, "total"),
    ("customer_id", -1, "customer_id"),
    ("customer_id", "2", "customer_id"),
    ("customer_id", 2.0, "customer_id"),
    ("customer_id", None, "customer_id"),
    ("billing", "alice", "billing"),
    ("billing", [], "billing"),
    ("billing.email", 5, "billing.email"),
    ("billing.first_name", ["Alice"], "billing.first_name"),
    ("payment_method", 1, "payment_method"),
    ("refunds", "none", "refunds"),
    ("refunds", {"0": {}}, "refunds"),
    ("refunds", None, "refunds"),
    ("refunds.0", 13, "refunds.0"),
    ("refunds.0", [], "refunds.0"),
    ("refunds.0.id", DROP, "refunds.0.id"),
    ("refunds.0.id", "13", "refunds.0.id"),
    ("refunds.0.id", 14, "refunds.1.id"),  # duplicate
    ("refunds.0.total", DROP, "refunds.0.total"),
    ("refunds.1.total", -3.25, "refunds.1.total"),
    ("refunds.1.total", "5.00", "refunds.1.total"),  # positive: not how WooCommerce writes refunds
    ("refunds.1.total", "-3.255", "refunds.1.total"),
    ("refunds.0.reason", 5, "refunds.0.reason"),
    ("refunds.0.refund", False, "refunds.0.refund"),
    ("meta_data", {"wallet_ref": "x"}, "meta_data"),
    ("meta_data.0", "wallet_ref", "meta_data.0"),
    ("meta_data.0.key", DROP, "meta_data.0.key"),
    ("meta_data.0.key", 7, "meta_data.0.key"),
]


@pytest.mark.parametrize(("path", "value", "expected"), ORDER_CASES, ids=[f"{p}={v!r}"[:40] for p, v, _ in ORDER_CASES])
def test_invalid_order_names_the_field(path, value, expected):
    with pytest.raises(PayloadInvalid) as caught:
        parse_order(_with(body_of("0009"), path, value))
    assert set(caught.value.fields) == {expected}
    assert isinstance(caught.value, ValidationFailed) and caught.value.code == "validation_failed"
    assert expected in caught.value.message


CUSTOMER_CASES = [
    ("id", DROP, "id"),
    ("id", 0, "id"),
    ("id", "2", "id"),
    ("email", 5, "email"),
    ("first_name", {"x": 1}, "first_name"),
    ("last_name", b"Tester", "last_name"),
]


@pytest.mark.parametrize(("path", "value", "expected"), CUSTOMER_CASES)
def test_invalid_customer_names_the_field(path, value, expected):
    with pytest.raises(PayloadInvalid) as caught:
        parse_customer(_with(body_of("0004"), path, value))
    assert set(caught.value.fields) == {expected}


@pytest.mark.parametrize("data", [None, [], "order", 12, b"{}", [{"id": 12}]])
@pytest.mark.parametrize("parse", [parse_order, parse_customer])
def test_non_objects_are_invalid(parse, data):
    with pytest.raises(PayloadInvalid) as caught:
        parse(data)
    assert caught.value.fields == {"_schema": "Expected a JSON object."}


# --- resource ids and topics --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"id": 12}, "12"),
        ({"id": "12"}, "12"),
        ({"id": 0}, None),
        ({"id": True}, None),
        ({"id": 1.5}, None),
        ({"id": "x" * 5}, None),
        ({"id": 10**5000}, None),
        ({"action": "woocommerce_x", "arg": 3}, None),
        ([], None),
        (None, None),
        ("webhook_id=1", None),
    ],
)
def test_resource_id_is_best_effort(data, expected):
    assert resource_id(data) == expected


@pytest.mark.parametrize("number", SIGNED)
def test_resource_id_of_captured_deliveries(number):
    meta, raw = captured(number)
    assert header(meta, "X-WC-Webhook-Topic") in TOPICS_HANDLED
    assert resource_id(json.loads(raw)) == str(json.loads(raw)["id"])
