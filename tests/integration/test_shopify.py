"""Shopify end to end: signed deliveries in (rotation, duplicates, order), the same rules, native store
credit mirrored through GraphQL (throttling retried), reconciliation of a drift."""

import json
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import responses
from sqlalchemy import func, select

from bridge.db import unit_of_work
from bridge.ledger import verify
from bridge.models import InboxDelivery, LedgerTransaction, OutboxMessage, Shop, utcnow
from bridge.surfaces.platforms import pushers_for
from bridge.usecases.pushes import RetryPolicy, retry_dead
from sync.shopify.client import API_VERSION, ShopifyAdmin
from sync.shopify.store_credit import reconcile
from sync.worker import drain
from tests.conftest import make_shop
from tests.integration.test_api import auth
from webhooks.shopify.payloads import STORE_CREDIT_GATEWAY
from webhooks.signing import sign

FIXTURES = Path(__file__).parents[1] / "fixtures" / "shopify"
DOMAIN = "demo.myshopify.com"
SECRET = "shpss_current_secret"
GRAPHQL = f"https://{DOMAIN}/admin/api/{API_VERSION}/graphql.json"
FAST = RetryPolicy(max_attempts=3, base_delay_seconds=0)


@pytest.fixture
def shopify(services):
    created = make_shop(services, name="Shopify Shop", platform="shopify", url=f"https://{DOMAIN}", currency="USD")
    with unit_of_work(services.sessions) as session:
        shop = session.get(Shop, created.shop.id)
        shop.webhook_secret_enc = services.secrets.seal(SECRET)
        shop.consumer_secret_enc = services.secrets.seal("shpat_token")
        shop.settings = {**shop.settings, "signup_bonus": 500, "points_per_currency_unit": 1}
    return created


def deliver(client, shop_id, topic, data, *, secret=SECRET, webhook_id=None, domain=DOMAIN):
    body = json.dumps(data).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": sign(body, secret),
        "X-Shopify-Shop-Domain": domain,
        "X-Shopify-API-Version": API_VERSION,
        "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
        "X-Shopify-Event-Id": str(uuid.uuid4()),
        "X-Shopify-Triggered-At": "2026-11-23T12:00:00Z",
    }
    return client.post(f"/webhooks/shopify/{shop_id}", data=body, headers=headers)


def customer(customer_id=7):
    return {"id": customer_id, "email": "jon@example.com", "first_name": "Jon", "last_name": "Snow"}


def order(order_id=1001, total="40.00", store_credit="0.00", customer_id=7, **changes):
    data = json.loads((FIXTURES / "orders_create.json").read_text())
    transactions = [
        {
            "id": 1,
            "kind": "sale",
            "status": "success",
            "gateway": "bogus",
            "amount": str(Decimal(total) - Decimal(store_credit)),
        }
    ]
    if store_credit != "0.00":
        transactions.append(
            {"id": 2, "kind": "sale", "status": "success", "gateway": "shopify_store_credit", "amount": store_credit}
        )
    data.update(
        id=order_id,
        currency="USD",
        total_price=total,
        financial_status="paid",
        cancelled_at=None,
        customer={**data["customer"], "id": customer_id},
        refunds=[],
        transactions=transactions,
    )
    data.update(changes)
    data["presentment_currency"] = data["currency"]  # the customer paid in the shop's currency
    return data


def refund(refund_id=5001, order_id=1001, amounts=(("10.00", "success", "bogus"),)):
    data = json.loads((FIXTURES / "refunds_create.json").read_text())
    data.update(
        id=refund_id,
        order_id=order_id,
        transactions=[
            {
                "id": n,
                "order_id": order_id,
                "kind": "refund",
                "status": status,
                "gateway": gateway,
                "amount": amount,
                "currency": None,
            }
            for n, (amount, status, gateway) in enumerate(amounts)
        ],
    )
    return data


def balance(client, shop, customer_id="7"):
    return client.get(f"/api/v1/customers/{customer_id}/wallet", headers=auth(shop)).get_json()["balance"]


def outbox(services):
    with unit_of_work(services.sessions) as session:
        return [
            (m.kind, m.payload["amount"])
            for m in session.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars()
            if m.kind.startswith("store_credit")
        ]


def test_new_customer_gets_the_bonus_mirrored_to_store_credit(client, services, shopify):
    assert deliver(client, shopify.shop.id, "customers/create", customer()).status_code == 200
    assert balance(client, shopify) == 500
    assert outbox(services) == [("store_credit.credit", 500)]


def test_the_same_webhook_id_is_applied_once(client, services, shopify):
    for _ in range(3):
        assert deliver(client, shopify.shop.id, "customers/create", customer(), webhook_id="w-1").status_code == 200
    with unit_of_work(services.sessions) as session:
        assert session.scalar(select(func.count()).select_from(InboxDelivery)) == 1
    assert balance(client, shopify) == 500


def test_rotation_accepts_the_old_and_the_new_secret_and_nothing_else(client, services, shopify):
    with unit_of_work(services.sessions) as session:
        shop = session.get(Shop, shopify.shop.id)
        shop.previous_webhook_secret_enc = shop.webhook_secret_enc
        shop.webhook_secret_enc = services.secrets.seal("new")
    assert deliver(client, shopify.shop.id, "customers/create", customer(7)).status_code == 200
    assert deliver(client, shopify.shop.id, "customers/create", customer(8), secret="new").status_code == 200
    assert deliver(client, shopify.shop.id, "customers/create", customer(9), secret="forged").status_code == 401


def test_a_delivery_for_another_shop_domain_is_refused(client, shopify):
    response = deliver(client, shopify.shop.id, "customers/create", customer(), domain="other.myshopify.com")
    assert response.status_code == 401


def test_store_credit_spent_at_checkout_is_recorded_and_not_sent_back(client, services, shopify):
    deliver(client, shopify.shop.id, "customers/create", customer())
    for _ in range(2):
        deliver(client, shopify.shop.id, "orders/paid", order(store_credit="5.00"))
    assert balance(client, shopify) == 0
    assert outbox(services) == [("store_credit.credit", 500)]  # the bonus only: the spend is Shopify's own
    with unit_of_work(services.sessions) as session:
        assert verify(session) == []


TO_STORE_CREDIT = (("10.00", "success", "shopify_store_credit"),)


def test_refund_with_a_failed_transaction_counts_only_the_money_refunded(client, services, shopify):
    deliver(client, shopify.shop.id, "customers/create", customer())
    deliver(client, shopify.shop.id, "orders/paid", order())
    deliver(
        client,
        shopify.shop.id,
        "refunds/create",
        refund(amounts=(*TO_STORE_CREDIT, ("30.00", "failure", "shopify_store_credit"))),
    )
    assert balance(client, shopify) == 500 + 1_000  # Shopify's own store credit: recorded, not echoed
    assert outbox(services) == [("store_credit.credit", 500)]


def test_a_refund_shopify_paid_to_the_card_moves_no_wallet_money(client, services, shopify):
    deliver(client, shopify.shop.id, "customers/create", customer())
    deliver(client, shopify.shop.id, "orders/paid", order())
    deliver(client, shopify.shop.id, "refunds/create", refund())  # to the card ("bogus"), whatever the policy
    assert balance(client, shopify) == 500 and outbox(services) == [("store_credit.credit", 500)]


def test_refund_delivered_before_its_order_is_applied_once_with_the_order(client, services, shopify):
    deliver(client, shopify.shop.id, "customers/create", customer())
    deliver(client, shopify.shop.id, "refunds/create", refund(amounts=TO_STORE_CREDIT))
    with_refund = order(refunds=[refund(amounts=TO_STORE_CREDIT)], financial_status="partially_refunded")
    deliver(client, shopify.shop.id, "orders/updated", with_refund)
    deliver(client, shopify.shop.id, "refunds/create", refund(amounts=TO_STORE_CREDIT))
    assert balance(client, shopify) == 500 + 1_000


def test_native_refund_to_store_credit_is_recorded_without_echo(client, services, shopify):
    deliver(client, shopify.shop.id, "customers/create", customer())
    deliver(client, shopify.shop.id, "orders/paid", order(total="5.00", store_credit="5.00"))
    deliver(client, shopify.shop.id, "refunds/create", refund(amounts=(("5.00", "success", "shopify_store_credit"),)))
    assert balance(client, shopify) == 500
    assert outbox(services) == [("store_credit.credit", 500)]


def test_a_cancelled_store_credit_order_gives_back_only_through_its_refund(client, services, shopify):
    deliver(client, shopify.shop.id, "customers/create", customer())
    deliver(client, shopify.shop.id, "orders/paid", order(total="5.00", store_credit="5.00"))
    cancelled = order(
        total="5.00", store_credit="5.00", cancelled_at="2026-11-23T13:00:00-05:00", financial_status="refunded"
    )
    for _ in range(2):
        deliver(client, shopify.shop.id, "orders/cancelled", cancelled)
    assert balance(client, shopify) == 0  # Shopify returns store credit by a refund, not by the cancellation
    deliver(client, shopify.shop.id, "refunds/create", refund(amounts=(("5.00", "success", "shopify_store_credit"),)))
    assert balance(client, shopify) == 500
    with unit_of_work(services.sessions) as session:
        kinds = session.execute(select(LedgerTransaction.kind)).scalars().all()
        assert "payment_reversal" not in kinds and verify(session) == []


def graphql_reply(root, balance_amount="5.00"):
    account = {"id": "gid://shopify/StoreCreditAccount/1", "balance": {"amount": balance_amount, "currencyCode": "USD"}}
    return {
        "data": {
            root: {
                "storeCreditAccountTransaction": {
                    "amount": {"amount": "5.00", "currencyCode": "USD"},
                    "account": account,
                },
                "userErrors": [],
            }
        }
    }


THROTTLED = {
    "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
    "extensions": {
        "cost": {
            "requestedQueryCost": 10,
            "actualQueryCost": None,
            "throttleStatus": {"maximumAvailable": 1000.0, "currentlyAvailable": 0, "restoreRate": 50.0},
        }
    },
}


@responses.activate
def test_mirroring_waits_out_throttling_and_sends_the_credit(client, services, shopify, monkeypatch):
    monkeypatch.setattr("sync.shopify.client.time.sleep", lambda seconds: None)
    responses.add(responses.POST, GRAPHQL, json=THROTTLED)
    responses.add(responses.POST, GRAPHQL, json=graphql_reply("storeCreditAccountCredit"))
    deliver(client, shopify.shop.id, "customers/create", customer())
    drain(services.sessions, pushers_for(services), FAST)
    assert len(responses.calls) == 2
    sent = json.loads(responses.calls[1].request.body)
    assert sent["variables"]["id"] == "gid://shopify/Customer/7"
    assert sent["variables"]["creditInput"]["creditAmount"] == {"amount": "5.00", "currencyCode": "USD"}
    assert responses.calls[1].request.headers["X-Shopify-Access-Token"] == "shpat_token"
    with unit_of_work(services.sessions) as session:
        assert session.execute(select(OutboxMessage.status)).scalar_one() == "delivered"


def settle_outbox(services, status: str) -> None:
    """Every message delivered (or dead-lettered) five minutes ago."""
    with unit_of_work(services.sessions) as session:
        for message in session.scalars(select(OutboxMessage)):
            message.status = status
            message.delivered_at = utcnow() - timedelta(minutes=5) if status == "delivered" else None


@responses.activate
def test_reconciliation_closes_a_dead_letters_drift_and_retires_the_dead_letter(client, services, shopify):
    deliver(client, shopify.shop.id, "customers/create", customer())
    settle_outbox(services, "dead")
    balances = store_credit_reply("2.00", last_moved_at="2026-01-05T10:00:00Z")
    responses.add(responses.POST, GRAPHQL, json=balances)
    responses.add(responses.POST, GRAPHQL, json=graphql_reply("storeCreditAccountCredit"))
    result = reconcile(services.sessions, services.secrets, shopify.shop.id)
    assert result.drifts == [{"customer_id": "7", "currency": "USD", "ledger": 500, "shopify": 200, "fixed": True}]
    credit = json.loads(responses.calls[1].request.body)["variables"]["creditInput"]["creditAmount"]
    assert credit == {"amount": "3.00", "currencyCode": "USD"}
    assert retry_dead(services.sessions) == 0  # retrying the dead credit now would pay the €3 twice
    with unit_of_work(services.sessions) as session:
        assert session.scalars(select(OutboxMessage.status)).all() == ["reconciled"]


def store_credit_reply(amount: str, last_moved_at: str) -> dict:
    account = {
        "balance": {"amount": amount, "currencyCode": "USD"},
        "transactions": {"nodes": [{"createdAt": last_moved_at}]},
    }
    return {"data": {"customer": {"storeCreditAccounts": {"nodes": [account]}}}}


@responses.activate
def test_reconciliation_leaves_a_difference_the_outbox_is_still_closing(client, services, shopify):
    deliver(client, shopify.shop.id, "customers/create", customer())  # the bonus's credit is not sent yet
    responses.add(responses.POST, GRAPHQL, json=store_credit_reply("0.00", last_moved_at="2026-01-05T10:00:00Z"))
    result = reconcile(services.sessions, services.secrets, shopify.shop.id)
    assert (result.drifts, len(responses.calls)) == ([], 1)  # nothing sent: the message will close it
    assert result.unsettled == [
        {
            "customer_id": "7",
            "currency": "USD",
            "ledger": 500,
            "shopify": 0,
            "why": "1 store credit message(s) on their way to Shopify",
        }
    ]


@responses.activate
def test_reconciliation_leaves_a_difference_shopify_made_moments_ago(client, services, shopify):
    deliver(client, shopify.shop.id, "customers/create", customer())
    settle_outbox(services, "delivered")
    moments_ago = (utcnow() - timedelta(minutes=2)).isoformat()  # a checkout spend whose webhook is on its way
    responses.add(responses.POST, GRAPHQL, json=store_credit_reply("1.00", last_moved_at=moments_ago))
    result = reconcile(services.sessions, services.secrets, shopify.shop.id)
    assert (result.drifts, len(responses.calls)) == ([], 1)
    assert result.unsettled[0]["why"].endswith("its webhook may be on its way")


def test_throttle_wait_comes_from_the_bucket(monkeypatch):
    waits = []
    admin = ShopifyAdmin(f"https://{DOMAIN}", "t", sleep=waits.append)
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, GRAPHQL, json=THROTTLED)
        mock.add(responses.POST, GRAPHQL, json={"data": {"shop": {"name": "Demo"}}})
        assert admin.graphql("query { shop { name } }") == {"shop": {"name": "Demo"}}
    assert waits == [0.2]  # (10 needed − 0 available) / 50 per second


# --- store credit spent at checkout, read by the worker (Shopify's order bodies carry no transactions) ---------


def as_shopify_sends_it(data):
    """An order body without `transactions`, its gateways named instead, as Shopify's webhooks have it."""
    body = {key: value for key, value in data.items() if key != "transactions"}
    return {**body, "payment_gateway_names": [t["gateway"] for t in data["transactions"]]}


def transactions_reply(*nodes):
    return {
        "data": {
            "order": {
                "transactions": [
                    {
                        "kind": kind,
                        "status": status,
                        "gateway": gateway,
                        "amountSet": {"shopMoney": {"amount": amount, "currencyCode": "USD"}},
                    }
                    for kind, status, gateway, amount in nodes
                ]
            }
        }
    }


CHECKOUT_SPEND = ("SALE", "SUCCESS", STORE_CREDIT_GATEWAY, "5.0")


def fetches(services):
    with unit_of_work(services.sessions) as session:
        query = select(OutboxMessage.payload).where(OutboxMessage.kind == "order.fetch_transactions")
        return session.execute(query.order_by(OutboxMessage.id)).scalars().all()


def payments(services):
    with unit_of_work(services.sessions) as session:
        query = select(LedgerTransaction.idempotency_key).where(LedgerTransaction.kind == "payment")
        return session.execute(query).scalars().all()


def take_again(services, kind):
    """The worker takes a delivered message again (as after a lease that expired)."""
    with unit_of_work(services.sessions) as session:
        message = session.execute(select(OutboxMessage).where(OutboxMessage.kind == kind)).scalar_one()
        message.status, message.next_attempt_at = "pending", utcnow()


def test_an_order_body_without_transactions_asks_the_worker_for_them(client, services, shopify):
    deliver(client, shopify.shop.id, "customers/create", customer())
    for _ in range(2):
        deliver(client, shopify.shop.id, "orders/paid", as_shopify_sends_it(order(store_credit="5.00")))
    deliver(client, shopify.shop.id, "orders/paid", as_shopify_sends_it(order(order_id=1002)))  # by card only
    deliver(client, shopify.shop.id, "orders/paid", order(order_id=1003, store_credit="5.00"))  # the body says
    assert fetches(services) == [{"order_id": "1001", "currency": "USD"}]
    assert payments(services) == ["native:order:1003:checkout-spend"]
    assert balance(client, shopify) == 0


@responses.activate
def test_the_worker_reads_the_checkout_spend_and_records_it_once(client, services, shopify, monkeypatch):
    monkeypatch.setattr("sync.shopify.client.time.sleep", lambda seconds: None)
    responses.add(responses.POST, GRAPHQL, json=graphql_reply("storeCreditAccountCredit"))  # the bonus, mirrored
    responses.add(responses.POST, GRAPHQL, json=THROTTLED)
    failed = ("SALE", "FAILURE", STORE_CREDIT_GATEWAY, "2.0")
    responses.add(
        responses.POST, GRAPHQL, json=transactions_reply(("SALE", "SUCCESS", "bogus", "35.0"), failed, CHECKOUT_SPEND)
    )
    deliver(client, shopify.shop.id, "customers/create", customer())
    deliver(client, shopify.shop.id, "orders/paid", as_shopify_sends_it(order(store_credit="5.00")))
    assert balance(client, shopify) == 500
    drain(services.sessions, pushers_for(services), FAST)
    assert json.loads(responses.calls[-1].request.body)["variables"] == {"id": "gid://shopify/Order/1001"}
    assert balance(client, shopify) == 0
    assert payments(services) == ["native:order:1001:checkout-spend"]
    assert outbox(services) == [("store_credit.credit", 500)]  # the spend is Shopify's own: nothing sent back
    take_again(services, "order.fetch_transactions")
    drain(services.sessions, pushers_for(services), FAST)
    assert len(responses.calls) == 4  # the credit, the throttled read, the read, and the read again
    assert balance(client, shopify) == 0 and len(payments(services)) == 1
    with unit_of_work(services.sessions) as session:
        assert verify(session) == []


@responses.activate
def test_a_spend_read_after_its_refund_and_the_cancellation_is_still_recorded(client, services, shopify):
    responses.add(responses.POST, GRAPHQL, json=graphql_reply("storeCreditAccountCredit"))
    responses.add(
        responses.POST,
        GRAPHQL,
        json=transactions_reply(CHECKOUT_SPEND, ("REFUND", "SUCCESS", STORE_CREDIT_GATEWAY, "5.0")),
    )
    deliver(client, shopify.shop.id, "customers/create", customer())
    deliver(client, shopify.shop.id, "orders/paid", as_shopify_sends_it(order(total="5.00", store_credit="5.00")))
    deliver(client, shopify.shop.id, "refunds/create", refund(amounts=(("5.00", "success", STORE_CREDIT_GATEWAY),)))
    cancelled = order(
        total="5.00", store_credit="5.00", cancelled_at="2026-11-23T13:00:00-05:00", financial_status="refunded"
    )
    deliver(client, shopify.shop.id, "orders/cancelled", as_shopify_sends_it(cancelled))
    assert balance(client, shopify) == 500 + 500  # the refund is in, the spend not yet
    drain(services.sessions, pushers_for(services), FAST)
    assert balance(client, shopify) == 500  # as in Shopify: spent 5.00, refunded 5.00; the cancellation gave none
    deliver(client, shopify.shop.id, "orders/updated", as_shopify_sends_it(cancelled))
    assert balance(client, shopify) == 500
    with unit_of_work(services.sessions) as session:
        kinds = session.execute(select(LedgerTransaction.kind)).scalars().all()
        assert "payment_reversal" not in kinds and verify(session) == []


@responses.activate
def test_a_spend_the_body_brought_first_is_not_recorded_again_by_the_worker(client, services, shopify):
    responses.add(responses.POST, GRAPHQL, json=graphql_reply("storeCreditAccountCredit"))
    responses.add(responses.POST, GRAPHQL, json=transactions_reply(CHECKOUT_SPEND))
    deliver(client, shopify.shop.id, "customers/create", customer())
    deliver(client, shopify.shop.id, "orders/paid", as_shopify_sends_it(order(store_credit="5.00")))
    deliver(client, shopify.shop.id, "orders/updated", order(store_credit="5.00"))
    drain(services.sessions, pushers_for(services), FAST)
    assert len(responses.calls) == 2 and balance(client, shopify) == 0
    assert payments(services) == ["native:order:1001:checkout-spend"]


def test_a_store_credit_refund_beyond_the_order_total_fails_and_moves_nothing(client, services, shopify):
    deliver(client, shopify.shop.id, "customers/create", customer())
    deliver(client, shopify.shop.id, "orders/paid", order(total="20.00"))
    response = deliver(
        client, shopify.shop.id, "refunds/create", refund(amounts=(("5000.00", "success", "shopify_store_credit"),))
    )
    assert response.status_code == 200  # stored, then kept as failed for the merchant
    assert balance(client, shopify) == 500
    with unit_of_work(services.sessions) as session:
        failed = session.scalars(select(InboxDelivery).where(InboxDelivery.status == "failed")).one()
        assert "refunds_exceed_order" in failed.error
