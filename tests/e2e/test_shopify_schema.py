"""Every GraphQL document the bridge sends to Shopify, with the variables it really sends, validated against
Shopify's published Admin schema of the pinned version (tests/fixtures/shopify/shopify-admin-2026-01.graphql.gz):
the document validates (deprecated fields refused too), and each variable coerces to its declared type.

The (query, variables) pairs are not typed here: the bridge's own code paths are driven against the Shopify
simulator (connect, connect again, a credit with an expiry and one without, a debit, a lost answer looked
for among the account's transactions, an order's transactions, a reconciliation that credits and debits),
and what reached the shop is read from the simulator's journal. Every GraphQL document in sync/shopify/
must be among them. See docs/shopify.md."""

from __future__ import annotations

import importlib
import pkgutil
from datetime import UTC, datetime, timedelta

import pytest
from graphql import GraphQLSyntaxError, OperationDefinitionNode, parse, specified_rules, validate
from graphql.validation import NoDeprecatedCustomRule

import sync.shopify
from simulator.shopify import API_VERSION as SIMULATED_VERSION
from simulator.shopify import ManualClock
from simulator.shopify_schema import SCHEMA_PATH, SchemaRefusal, admin_schema, coerce_variables
from sync.shopify import store_credit
from sync.shopify.client import API_VERSION
from tests.e2e.test_e2e_shopify import both, configure, connect, loopback_only, push, shopify, sim  # noqa: F401


@pytest.fixture
def clock():
    """Shopify's clock at the real time: the bridge's expiry dates (real time + days) are in its future."""
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


def schema_problems(query: str, variables: dict) -> list[str]:
    """Why Shopify would refuse this request (nothing when it would not); a deprecated field counts too."""
    schema = admin_schema()
    document = parse(query)
    errors = validate(schema, document, [*specified_rules, NoDeprecatedCustomRule])
    if errors:
        return [error.message for error in errors]
    (operation,) = document.definitions  # the bridge sends one operation per document
    try:
        coerce_variables(schema, operation, variables)
    except SchemaRefusal as refusal:
        return [f"{error['message']}: {error['extensions']['problems']}" for error in refusal.errors]
    return []


def _is_operation(text: str) -> bool:
    try:
        return any(isinstance(node, OperationDefinitionNode) for node in parse(text).definitions)
    except GraphQLSyntaxError:
        return False


def bridge_documents() -> dict[str, str]:
    """ "module.NAME" → text of every GraphQL operation held in an upper-case constant of sync/shopify/."""
    found = {}
    for module_info in pkgutil.iter_modules(sync.shopify.__path__):
        module = importlib.import_module(f"sync.shopify.{module_info.name}")
        found |= {
            f"{module_info.name}.{name}": value
            for name, value in vars(module).items()
            if name.isupper() and isinstance(value, str) and _is_operation(value)
        }
    return found


def sent_requests(sim) -> dict[str, list[dict]]:
    """query text → the variables of every request that carried it, as they reached the shop."""
    sent: dict[str, list[dict]] = {}
    for call in sim.requests:
        sent.setdefault(call.query, []).append(call.variables)
    return sent


def drive_every_code_path(client, services, sim, shop, monkeypatch) -> None:
    shop_id = shop.shop.id
    configure(services, shop_id, promotional_expiry_days=30)
    connect(services, shop_id, sim)  # shop, subscriptions, 6 × subscribe
    connect(services, shop_id, sim)  # shop, subscriptions: all there already
    alice = sim.create_customer("alice@example.test", "Alice", "Tester")["id"]  # a promotional bonus: with expiry
    sim.lose_answers(1)  # the bonus's credit is made but its answer lost: looked for among the transactions
    push(services)
    response = client.post(
        f"/api/v1/customers/{alice}/adjustments",
        json={"direction": "debit", "amount": 300, "reason": "schema check"},
        headers={"Authorization": f"Bearer {shop.api_key}", "Idempotency-Key": "d"},
    )
    assert response.status_code == 201, response.get_json()
    push(services)
    sim.place_order(alice, total="12.00", store_credit="1.00")  # the worker reads the order's transactions
    push(services)
    later = datetime.now(UTC) + timedelta(hours=1)
    monkeypatch.setattr(store_credit, "utcnow", lambda: later)  # the admin's drifts below look settled by then
    for drift in ("-0.50", "3.00"):  # closed by a credit (no expiry), then by a debit
        sim.adjust_store_credit(alice, drift)
        assert store_credit.reconcile(services.sessions, services.secrets, shop_id, timeout=5).drifts
    wallet, shopify_balance = both(services, shop_id, sim, alice)
    assert wallet == shopify_balance == 500 - 300 - 100


def test_every_document_the_bridge_sends_validates_against_shopifys_schema(
    client, services, sim, shopify, loopback_only, monkeypatch
):
    drive_every_code_path(client, services, sim, shopify, monkeypatch)

    sent, documents = sent_requests(sim), bridge_documents()
    problems = {
        query: found for query, variables in sent.items() for v in variables if (found := schema_problems(query, v))
    }
    assert problems == {}
    assert {name for name, text in documents.items() if text not in sent} == set()  # every document was sent
    assert set(sent) <= set(documents.values())  # and nothing else
    credits = [v["creditInput"] for v in sent[documents["store_credit.CREDIT"]]]
    assert {c["expiresAt"] is None for c in credits} == {True, False}  # with and without an expiry


def test_every_document_of_sync_shopify_is_found():
    assert set(bridge_documents()) == {
        "connect.SHOP",
        "connect.SUBSCRIPTIONS",
        "connect.SUBSCRIBE",
        "store_credit.CREDIT",
        "store_credit.DEBIT",
        "store_credit.ACCOUNTS",
        "store_credit.RECENT_TRANSACTIONS",
        "order_transactions.ORDER_TRANSACTIONS",
    }


@pytest.mark.parametrize(
    ("query", "variables", "problem"),
    [
        (
            "mutation S($topic: WebhookSubscriptionTopic!, $w: WebhookSubscriptionInput!) { webhookSubscriptionCreate("
            "topic: $topic, webhookSubscription: $w) { userErrors { field } } }",
            {"topic": "ORDERS_PAID", "w": {"callbackUrl": "https://b.example/w", "format": "JSON"}},
            "Field 'callbackUrl' is not defined by type 'WebhookSubscriptionInput'",
        ),
        (
            "{ webhookSubscriptions(first: 1) { nodes { endpoint { __typename } } } }",
            {},
            "WebhookSubscription.endpoint is deprecated",
        ),
        ("query C($id: ID!) { customer(id: $id) { id } }", {}, "Variable $id of type ID! was provided invalid value"),
        (
            "mutation C($id: ID!, $c: StoreCreditAccountCreditInput!) { storeCreditAccountCredit(id: $id, "
            "creditInput: $c) { userErrors { code } } }",
            {"id": "gid://shopify/Customer/1", "c": {"creditAmount": {"amount": 5, "currencyCode": "EUR"}}},
            "creditAmount.amount",
        ),
    ],
)
def test_the_check_refuses_what_shopify_refuses(query, variables, problem):
    assert any(problem in found for found in schema_problems(query, variables))


def test_the_bridge_and_the_simulator_speak_the_version_of_the_schema():
    assert API_VERSION == SIMULATED_VERSION == "2026-01"
    assert SCHEMA_PATH.name == f"shopify-admin-{API_VERSION}.graphql.gz"
