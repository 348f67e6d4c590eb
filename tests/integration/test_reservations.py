"""Reservations for orders (the WooCommerce plugin's checkout), their capture and release by the order's
delivery, and the storefront's reads: the customer's account overview and the shop of the key."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from bridge import orders
from bridge.db import make_engine, make_session_factory, unit_of_work
from bridge.ledger import verify
from bridge.models import Account, Hold, LedgerTransaction, Shop
from bridge.order_rules import apply_order
from bridge.reservations import reserve_for_order
from tests.integration.test_api import auth, credit, row_counts
from tests.integration.test_order_rules import ACTOR, order

CUSTOMER = "42"


def reserve(client, shop, order_id="7001", amount=4_148, key="checkout-1", customer=CUSTOMER):
    return client.post(
        f"/api/v1/orders/{order_id}/reservation",
        json={"customer_id": customer, "amount": amount},
        headers=auth(shop, key),
    )


def wallet(client, shop, customer=CUSTOMER) -> dict:
    return client.get(f"/api/v1/customers/{customer}/wallet", headers=auth(shop)).get_json()


def deliver(services, shop, **changes):
    """The order's delivery as the webhook would apply it: a wallet order of customer 42."""
    with unit_of_work(services.sessions) as session:
        stored = session.get(Shop, shop.shop.id)
        stored.settings = {**stored.settings, **changes.pop("settings", {})}
        delivered = order(**{"external_id": "7001", "customer_external_id": CUSTOMER, **changes})
        apply_order(session, stored, delivered, ACTOR)


def ledger_kinds(services) -> list[str]:
    with unit_of_work(services.sessions) as session:
        return list(session.scalars(select(LedgerTransaction.kind).order_by(LedgerTransaction.id)))


def holds(services) -> list[tuple[str, int, int]]:
    with unit_of_work(services.sessions) as session:
        return [(h.status, h.amount, h.captured_amount) for h in session.scalars(select(Hold).order_by(Hold.id))]


def test_a_retried_checkout_reserves_once_whatever_its_key(client, shop, services):
    credit(client, shop)
    first = reserve(client, shop)
    again = reserve(client, shop)
    other_key = reserve(client, shop, key="checkout-2")

    assert first.status_code == 201 and not first.get_json()["replayed"]
    assert first.get_json()["available"] == 10_000 - 4_148
    assert again.get_json() == {**first.get_json(), "replayed": True}
    assert other_key.get_json()["hold_id"] == first.get_json()["hold_id"] and other_key.get_json()["replayed"]
    assert wallet(client, shop)["available"] == 10_000 - 4_148
    assert holds(services) == [("open", 4_148, 0)]


def test_a_checkout_for_another_amount_replaces_the_reservation(client, shop, services):
    credit(client, shop)
    reserve(client, shop)
    changed = reserve(client, shop, amount=2_000, key="checkout-2")

    assert changed.status_code == 201 and changed.get_json()["available"] == 8_000
    assert holds(services) == [("voided", 4_148, 0), ("open", 2_000, 0)]


def partial_payments(services, shop, on: bool) -> None:
    with unit_of_work(services.sessions) as session:
        stored = session.get(Shop, shop.shop.id)
        stored.settings = {**stored.settings, "partial_payments": on}


def test_a_short_wallet_without_partial_payments_is_refused_and_nothing_is_reserved(client, shop, services):
    partial_payments(services, shop, False)
    credit(client, shop, amount=1_000)
    response = reserve(client, shop)

    assert response.status_code == 409 and response.get_json()["error"]["code"] == "insufficient_funds"
    assert "€10.00 available" in response.get_json()["error"]["message"]
    assert holds(services) == [] and wallet(client, shop)["available"] == 1_000


def test_a_short_wallet_with_partial_payments_reserves_what_it_has_once(client, shop, services):
    credit(client, shop, amount=1_000)
    first = reserve(client, shop).get_json()
    again = reserve(client, shop, key="checkout-2").get_json()

    assert (first["amount"], first["left_to_pay"], first["available"]) == (1_000, 3_148, 0)
    assert again == {**first, "replayed": True}
    assert holds(services) == [("open", 1_000, 0)]


def test_an_empty_wallet_is_refused_even_with_partial_payments(client, shop, services):
    credit(client, shop, amount=1_000)
    credit(client, shop, amount=1_000, key="spend", direction="debit")
    assert reserve(client, shop).status_code == 409 and holds(services) == []


def test_a_key_reused_for_another_reservation_conflicts(client, shop, services):
    credit(client, shop)
    reserve(client, shop)
    reused = reserve(client, shop, amount=2_000)

    assert reused.status_code == 409 and reused.get_json()["error"]["code"] == "idempotency_conflict"
    assert holds(services) == [("open", 4_148, 0)]  # the refusal rolled the replacement back


def test_an_order_released_and_paid_again_with_the_same_key_is_reserved_again(client, shop, services):
    """The order failed and its reservation was released; the customer pays it again on its order-pay page, and the
    plugin asks with the same key: the 41.48 is held again (the voided hold it would replay holds nothing), and a
    retry of that request replays the new hold (found on the real store, test_checkout_audit_session12.py)."""
    credit(client, shop)
    reserve(client, shop)
    assert client.delete("/api/v1/orders/7001/reservation", headers=auth(shop)).get_json() == {"released": 4_148}

    again = reserve(client, shop)
    retried = reserve(client, shop)

    assert again.status_code == 201 and wallet(client, shop)["available"] == 10_000 - 4_148
    assert retried.get_json()["hold_id"] == again.get_json()["hold_id"]
    assert holds(services) == [("voided", 4_148, 0), ("open", 4_148, 0)]


def test_a_wallet_topped_up_since_the_checkout_reserved_covers_more_with_the_same_key(client, shop, services):
    """Found on the real store (session 14): partial payments on, 10.00 reserved of a 41.48 order when the customer
    picked the wallet; 5.00 topped up meanwhile; placing the order asks again with the same key and amount. It
    was an idempotency conflict (the open hold's key reused for another amount): the checkout could not be placed."""
    credit(client, shop, amount=1_000)
    reserve(client, shop)
    credit(client, shop, amount=500, key="fund-2")
    placed = reserve(client, shop)

    assert placed.status_code == 201 and placed.get_json()["amount"] == 1_500, placed.get_json()
    assert placed.get_json()["left_to_pay"] == 4_148 - 1_500
    assert holds(services) == [("voided", 1_000, 0), ("open", 1_500, 0)]


def test_a_wallet_covering_the_discounted_total_pays_the_whole_order(client, shop, services):
    """Found on the real store (session 14): 1.48 off for paying by wallet, no partial payments, 40.00 in the wallet
    for a 41.48 order. The checkout was refused (41.48 asked of 40.00), though the order's delivery takes 40.00."""
    credit(client, shop, amount=4_000)
    discount = {"wallet_discount_kind": "fixed", "wallet_discount_value": 148, "partial_payments": False}
    deliver(services, shop, settings=discount, status="checkout-draft", phase=orders.OTHER)  # the rules saved
    placed = reserve(client, shop)

    assert placed.status_code == 201, placed.get_json()
    assert (placed.get_json()["amount"], placed.get_json()["left_to_pay"]) == (4_000, 0)
    deliver(services, shop)
    assert holds(services) == [("captured", 4_000, 4_000)] and wallet(client, shop)["balance"] == 0


def test_an_order_whose_wallet_payment_went_back_is_reserved_again(client, shop, services):
    """Found on the real store (session 14): paid by the wallet, then failed in wp-admin (the bridge gave the 41.48
    back), then paid again on its order-pay page: refused as "already paid from the wallet"."""
    at = [datetime(2026, 12, 7, 10, minute, tzinfo=UTC) for minute in range(3)]
    credit(client, shop)
    reserve(client, shop)
    deliver(services, shop, modified_at=at[0])
    deliver(services, shop, status="failed", phase=orders.FAILED, modified_at=at[1])
    assert wallet(client, shop)["balance"] == 10_000

    again = reserve(client, shop)
    assert again.status_code == 201 and again.get_json()["amount"] == 4_148, again.get_json()
    deliver(services, shop, modified_at=at[2])
    assert wallet(client, shop)["balance"] == 10_000 - 4_148


def test_a_guest_order_a_customer_reserved_for_releases_the_reservation(client, shop, services):
    """Found on the real store (session 14): a logged-in customer pays a guest's order on its order-pay page; the
    bridge refuses the order (a guest has no wallet) and the customer's 41.48 stayed reserved for two hours."""
    credit(client, shop)
    reserve(client, shop)
    deliver(services, shop, customer_external_id=None)

    assert holds(services) == [("voided", 4_148, 0)] and wallet(client, shop)["available"] == 10_000


def test_an_order_refunded_before_the_wallet_paid_it_releases_its_reservation(client, shop, services):
    """An order reserved at checkout and refunded in part by the merchant before its delivery is applied is never
    charged (an order with refunds never is): what checkout reserved goes back at once, not at its expiry."""
    credit(client, shop)
    reserve(client, shop)

    deliver(services, shop, refunds=(orders.RefundSnapshot("88", 500, "goodwill"),))

    assert holds(services) == [("voided", 4_148, 0)]
    assert wallet(client, shop)["available"] == 10_000


def test_a_reservation_for_another_order_or_an_unknown_customer(client, shop):
    credit(client, shop)
    reserve(client, shop)
    assert reserve(client, shop, order_id="7002", key="checkout-2").status_code == 201
    assert reserve(client, shop, customer="43", key="checkout-3").status_code == 404


def test_a_locked_wallet_reserves_nothing(client, shop, services):
    credit(client, shop)
    with unit_of_work(services.sessions) as session:
        session.execute(update(Account).where(Account.customer_id.is_not(None)).values(locked=True))
    response = reserve(client, shop)
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "wallet_locked"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount": 100}, "customer_id"),
        ({"customer_id": "42"}, "amount"),
        ({"customer_id": "42", "amount": 0}, "amount"),
        ({"customer_id": "42", "amount": 1.5}, "amount"),
        ({"customer_id": "42", "amount": 100, "expires_in_seconds": 5}, "expires_in_seconds"),
    ],
)
def test_bad_reservations_name_the_field_and_write_nothing(client, shop, services, body, field):
    credit(client, shop)
    before = row_counts(services)
    response = client.post("/api/v1/orders/7001/reservation", json=body, headers=auth(shop, "k"))
    assert response.status_code == 422 and field in str(response.get_json())
    assert row_counts(services) == before


def test_a_reservation_needs_an_idempotency_key(client, shop):
    credit(client, shop)
    response = client.post(
        "/api/v1/orders/7001/reservation", json={"customer_id": "42", "amount": 1}, headers=auth(shop)
    )
    assert response.status_code == 422 and "Idempotency-Key" in str(response.get_json())


def test_the_orders_delivery_captures_the_reservation_exactly_once(client, shop, services):
    credit(client, shop)
    reserve(client, shop)
    for _ in range(3):
        deliver(services, shop)

    assert ledger_kinds(services) == ["adjustment", "capture"]
    assert holds(services) == [("captured", 4_148, 4_148)]
    assert wallet(client, shop)["balance"] == 10_000 - 4_148 and wallet(client, shop)["available"] == 10_000 - 4_148
    assert reserve(client, shop).get_json()["error"]["code"] == "order_already_paid"
    with unit_of_work(services.sessions) as session:
        assert verify(session) == []


def test_a_discounted_order_captures_what_is_due_and_releases_the_rest(client, shop, services):
    credit(client, shop)
    reserve(client, shop)
    deliver(services, shop, settings={"wallet_discount_kind": "fixed", "wallet_discount_value": 148})

    assert holds(services) == [("captured", 4_148, 4_000)]
    assert wallet(client, shop)["available"] == 10_000 - 4_000


def test_a_partial_reservation_is_captured_as_the_wallet_part(client, shop, services):
    credit(client, shop, amount=1_000)
    reserve(client, shop)
    deliver(services, shop)

    assert holds(services) == [("captured", 1_000, 1_000)] and ledger_kinds(services) == ["adjustment", "capture"]
    assert wallet(client, shop)["balance"] == 0


def test_a_reservation_the_delivery_cannot_use_is_released_and_the_order_refused(client, shop, services):
    credit(client, shop, amount=1_000)
    reserve(client, shop)
    deliver(services, shop, settings={"partial_payments": False})

    assert holds(services) == [("voided", 1_000, 0)] and ledger_kinds(services) == ["adjustment"]
    assert wallet(client, shop)["available"] == 1_000


def test_a_cancelled_order_releases_its_reservation(client, shop, services):
    credit(client, shop)
    reserve(client, shop)
    deliver(services, shop, status="cancelled", phase=orders.CANCELLED)

    assert holds(services) == [("voided", 4_148, 0)] and ledger_kinds(services) == ["adjustment"]
    assert wallet(client, shop)["available"] == 10_000


def test_the_shop_releases_a_reservation_and_another_shop_cannot(client, shop, other_shop, services):
    credit(client, shop)
    reserve(client, shop)

    assert client.delete("/api/v1/orders/7001/reservation", headers=auth(other_shop)).status_code == 404
    assert client.delete("/api/v1/orders/7001/reservation", headers=auth(shop)).get_json() == {"released": 4_148}
    assert client.delete("/api/v1/orders/7001/reservation", headers=auth(shop)).get_json() == {"released": 0}
    assert client.delete("/api/v1/orders/9999/reservation", headers=auth(shop)).status_code == 404
    assert wallet(client, shop)["available"] == 10_000


def test_another_shops_key_cannot_reserve_this_shops_customer(client, shop, other_shop, services):
    credit(client, shop)
    assert reserve(client, other_shop).status_code == 404
    assert holds(services) == []


def test_the_account_overview_has_the_wallet_movements_and_rules(client, shop):
    credit(client, shop)
    reserve(client, shop, amount=1_000)
    body = client.get(f"/api/v1/customers/{CUSTOMER}/account", headers=auth(shop)).get_json()

    assert (body["balance"], body["available"], body["available_formatted"]) == (10_000, 9_000, "€90.00")
    assert [(line["kind"], line["reason"], line["amount"]) for line in body["movements"]] == [
        ("adjustment", "goodwill", 10_000)
    ]
    assert body["rules"]["topup_minimum"] == 500 and body["rules"]["partial_payments"] is True
    assert (body["rules"]["wallet_discount_kind"], body["rules"]["wallet_discount_value"]) == ("none", 0)
    assert client.get("/api/v1/customers/nobody/account", headers=auth(shop)).status_code == 404


def test_the_shop_of_the_key_is_the_plugins_connection_test(client, shop, other_shop):
    body = client.get("/api/v1/shop", headers=auth(shop)).get_json()
    assert body["name"] == "Alpha Shop" and body["rules"]["currency"] == "EUR"
    assert client.get("/api/v1/shop", headers=auth(other_shop)).get_json()["name"] == "Beta Shop"
    assert client.get("/api/v1/shop", headers={"Authorization": "Bearer wb_wrong"}).status_code == 401


@pytest.mark.postgres_only
def test_parallel_checkouts_of_one_order_reserve_once(postgres_url, shop):
    from tests.integration.test_concurrency_postgres import _fund, _run_parallel

    engine = make_engine(postgres_url, pool_size=10)
    sessions = make_session_factory(engine)
    _fund(sessions, shop.shop.id, CUSTOMER, 10_000)

    def checkout(n):
        with unit_of_work(sessions) as session:
            hold, _ = reserve_for_order(
                session,
                session.get(Shop, shop.shop.id),
                CUSTOMER,
                "7001",
                amount=4_148,
                idempotency_key=f"attempt-{n}",
                expires_in=timedelta(hours=2),
            )
            return hold.id

    try:
        assert len(set(_run_parallel(checkout, 10))) == 1
        with unit_of_work(sessions) as session:
            assert session.scalars(select(Hold.status)).all() == ["open"]
            assert verify(session) == []
    finally:
        engine.dispose()
