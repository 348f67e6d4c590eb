"""Shopify's store credit mutations take no idempotency key: a credit or debit whose answer was lost is
looked for on Shopify before it is sent again, so it is made once (sync/shopify/store_credit.py)."""

# ruff: noqa: F811 - the Shopify end-to-end fixtures are imported by name and requested as arguments
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bridge.db import unit_of_work
from bridge.errors import PermanentFailure
from bridge.models import OutboxMessage
from simulator.shopify import ManualClock
from sync.shopify.store_credit import already_made
from tests.e2e.test_e2e_shopify import both, connect, loopback_only, mutations, push, shopify, sim  # noqa: F401 - fixtures

KEY = "Idempotency-Key"


@pytest.fixture
def clock():
    """Shopify's clock is the real one: transactions are matched by the time they were made."""
    return ManualClock(datetime.now(UTC))


@pytest.fixture
def alice(client, services, sim, shopify, clock, loopback_only):
    connect(services, shopify.shop.id, sim)
    customer = sim.create_customer("alice@example.test", "Alice", "Tester")["id"]
    push(services)
    assert both(services, shopify.shop.id, sim, customer) == (500, 500)  # the sign-up bonus, mirrored
    return customer


def adjust(client, shopify, customer, direction: str, amount: int, key: str) -> None:
    response = client.post(
        f"/api/v1/customers/{customer}/adjustments",
        json={"direction": direction, "amount": amount, "reason": "Goodwill"},
        headers={"Authorization": f"Bearer {shopify.api_key}", KEY: key},
    )
    assert response.status_code == 201, response.get_json()


def statuses(services) -> list[tuple[str, int, str]]:
    with unit_of_work(services.sessions) as session:
        rows = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        return [(m.kind, m.payload.get("amount"), m.status) for m in rows[1:]]  # after the bonus


def test_a_credit_whose_answer_was_lost_is_made_once(client, services, sim, shopify, alice):
    adjust(client, shopify, alice, "credit", 2000, "goodwill-1")
    sim.lose_answers(1)
    push(services)
    assert [c.answer_lost for c in sim.calls("storeCreditAccountCredit")] == [False, True]  # bonus, then this one
    assert mutations(sim)[1:] == [("storeCreditAccountCredit", "20.00")]
    assert both(services, shopify.shop.id, sim, alice) == (2500, 2500)
    assert statuses(services) == [("store_credit.credit", 2000, "delivered")]


def test_a_debit_whose_answer_was_lost_is_made_once(client, services, sim, shopify, alice):
    adjust(client, shopify, alice, "debit", 300, "correction-1")
    sim.lose_answers(1)
    push(services)
    assert mutations(sim)[1:] == [("storeCreditAccountDebit", "3.00")]
    assert both(services, shopify.shop.id, sim, alice) == (200, 200)


def test_an_equal_credit_delivered_meanwhile_does_not_count_as_the_lost_one(client, services, sim, shopify, alice):
    adjust(client, shopify, alice, "credit", 2000, "goodwill-1")
    adjust(client, shopify, alice, "credit", 2000, "goodwill-2")
    sim.lose_answers(1)  # the first one's; the second is answered, then the first is tried again
    push(services)
    assert mutations(sim)[1:] == [("storeCreditAccountCredit", "20.00")] * 2
    assert both(services, shopify.shop.id, sim, alice) == (4500, 4500)
    assert [status for _, _, status in statuses(services)] == ["delivered", "delivered"]


def test_a_refused_credit_is_sent_again_though_an_equal_one_was_made_meanwhile(client, services, sim, shopify, alice):
    adjust(client, shopify, alice, "credit", 2000, "goodwill-1")
    adjust(client, shopify, alice, "credit", 2000, "goodwill-2")
    sim.fail_api(503, times=1)  # the first one's, before Shopify did anything; the second is made
    push(services)
    credits = sim.calls("storeCreditAccountCredit")[1:]
    assert [c.injected for c in credits] == [True, False, False]
    assert both(services, shopify.shop.id, sim, alice) == (4500, 4500)


# --- the decision, against Shopify's answers --------------------------------------------------------------------

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


class Answers:
    """A ShopifyAdmin stand-in answering the transactions query with `nodes`."""

    def __init__(self, nodes: list[dict], has_next_page: bool = False):
        account = {
            "balance": {"currencyCode": "EUR"},
            "transactions": {"nodes": nodes, "pageInfo": {"hasNextPage": has_next_page}},
        }
        self.data = {"customer": {"storeCreditAccounts": {"nodes": [account]}}}

    def graphql(self, query: str, variables: dict) -> dict:
        return self.data


def credit_node(amount: str, at: datetime, expires_at: str | None = None) -> dict:
    return {
        "__typename": "StoreCreditAccountCreditTransaction",
        "createdAt": at.isoformat(),
        "amount": {"amount": amount, "currencyCode": "EUR"},
        "expiresAt": expires_at,
    }


def message(expires_at: str | None = None) -> OutboxMessage:
    payload = {"customer_id": "7", "currency": "EUR", "amount": 1250, "expires_at": expires_at}
    return OutboxMessage(
        id=10**9, shop_id=10**9, kind="store_credit.credit", payload=payload, attempts=1, created_at=NOW
    )


def test_a_credit_counts_only_with_its_amount_expiry_and_time(services):
    expiry = "2027-06-01T00:00:00.734512+00:00"  # Shopify keeps whole seconds
    assert already_made(services.sessions, Answers([credit_node("12.5", NOW, "2027-06-01T00:00:00Z")]), message(expiry))
    others = [
        credit_node("12.50", NOW),  # no expiry
        credit_node("12.50", NOW, "2027-06-02T00:00:00Z"),  # another expiry
        credit_node("12.51", NOW, "2027-06-01T00:00:00Z"),  # another amount
        credit_node("12.50", NOW - timedelta(hours=1), "2027-06-01T00:00:00Z"),
    ]  # before the message
    assert not already_made(services.sessions, Answers(others), message(expiry))


def test_a_full_page_of_recent_transactions_is_not_guessed_from(services):
    recent = [credit_node("1.00", NOW)] * 100
    with pytest.raises(PermanentFailure, match="wallet-bridge sync"):
        already_made(services.sessions, Answers(recent, has_next_page=True), message())
    older = [credit_node("12.50", NOW), credit_node("1.00", NOW - timedelta(days=1))]
    assert already_made(services.sessions, Answers(older, has_next_page=True), message())
