"""The console's words for stored JSON, messages to the shop and webhook deliveries."""

from bridge.surfaces.console.wording import delivery_subject, message_purpose, readable


def test_audit_values_read_as_words():
    assert readable("€5.00") == "€5.00" and readable(None) == "—" and readable("12") == "12"
    assert readable('{"created": [3, 4], "reactivated": [], "unchanged": [5]}') == "created: 3, 4; unchanged: 5"


def test_messages_to_the_shop_say_what_they_were_for():
    refund = {"order_id": "30", "amount": 2000, "transaction_id": 4, "reason": "Wallet withdrawal"}
    assert message_purpose("order.refund", refund, "EUR") == (
        "Refund €20.00 of order #30 to the card (a wallet withdrawal)"
    )
    credit = {"customer_id": "7", "amount": 500, "currency": "USD"}
    assert message_purpose("store_credit.credit", credit, "EUR") == "Add $5.00 to customer #7's store credit"
    assert message_purpose("order.note", {"order_id": "1", "note": "x", "customer_note": False}, "EUR") == (
        "Note on order #1 (private): “x”"
    )
    assert message_purpose("order.remove_wallet_fees", {"order_id": "8", "attempt": 1}, "EUR") == (
        "Take the wallet's fee lines off order #8: their money went back"
    )


def test_deliveries_are_named_by_what_they_are_about():
    assert delivery_subject("orders/updated", "100") == "Order #100 updated"
    assert delivery_subject("customer.deleted", "7") == "Customer #7 deleted"
    assert delivery_subject("refunds/create", None) == "Refund create"
