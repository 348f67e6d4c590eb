"""Cashback on paid orders: credited once when the order reaches the status the merchant picked, as promotional
credit; taken back pro rata by refunds and whole by a cancellation; on the customer's statement."""

from __future__ import annotations

from sqlalchemy import select

from bridge.db import unit_of_work
from bridge.ledger import verify
from bridge.models import CreditLot, LedgerTransaction
from tests.integration.test_api import auth
from tests.integration.test_order_lifecycle import configure
from tests.integration.test_points_base import TAXED_CARD_ORDER
from tests.integration.test_woocommerce_webhooks import wallet_balance, woo  # noqa: F401 - the fixture
from tests.woo import post_delivery


def deliver(client, shop_id, **changes):
    response = post_delivery(client, shop_id, "order.updated", {**TAXED_CARD_ORDER, **changes})
    assert response.get_json()["status"] == "applied", response.get_json()


def cashback_moves(services) -> list[tuple[str, str]]:
    with unit_of_work(services.sessions) as session:
        rows = session.execute(
            select(LedgerTransaction.kind, LedgerTransaction.reason)
            .where(LedgerTransaction.kind.startswith("cashback"))
            .order_by(LedgerTransaction.id)
        ).all()
        return [tuple(row) for row in rows]


def test_cashback_is_credited_once_when_the_order_completes_as_promotional_credit(client, services, shop, woo):  # noqa: F811
    configure(services, woo, cashback_kind="percent", cashback_value=500, promotional_expiry_days=90)
    deliver(client, woo)  # processing: not yet
    assert wallet_balance(services, woo) == 0
    for _ in range(3):
        deliver(client, woo, status="completed")
    assert wallet_balance(services, woo) == 150  # 5 % of the €30.00 of goods, not of tax or shipping
    assert cashback_moves(services) == [("cashback", "Cashback on order #70 (€30.00 paid)")]
    with unit_of_work(services.sessions) as session:
        [lot] = session.scalars(select(CreditLot)).all()
        assert (lot.kind, lot.expires_at is not None) == ("promotional", True)
    lines = client.get("/api/v1/customers/2/transactions", headers=auth(shop)).get_json()
    assert [line["kind"] for line in lines["lines"]] == ["cashback"]


def test_refunds_take_cashback_back_pro_rata_and_a_cancellation_the_rest(client, services, woo):  # noqa: F811
    configure(
        services, woo, cashback_kind="fixed", cashback_value=400, cashback_on="paid", refund_destination="original"
    )  # the refunds go to the card: only the cashback moves the wallet
    deliver(client, woo)
    assert wallet_balance(services, woo) == 400
    half = [{"id": 81, "reason": "one mug back", "total": "-20.44"}]  # half of the €40.88 total
    deliver(client, woo, refunds=half)
    deliver(client, woo, refunds=half)
    assert wallet_balance(services, woo) == 200
    deliver(client, woo, refunds=half, status="cancelled")
    assert wallet_balance(services, woo) == 0
    assert [kind for kind, _ in cashback_moves(services)] == ["cashback", "cashback_reversal", "cashback_reversal"]
    with unit_of_work(services.sessions) as session:
        assert verify(session) == []


def test_no_cashback_below_the_minimum_order(client, services, woo):  # noqa: F811
    configure(
        services, woo, cashback_kind="percent", cashback_value=500, cashback_minimum_order=5_000, cashback_on="paid"
    )
    deliver(client, woo)
    assert wallet_balance(services, woo) == 0 and cashback_moves(services) == []
