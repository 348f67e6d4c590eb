"""The Shopify simulator: its GraphQL Admin API through `requests` against `serve()` on 127.0.0.1, and its
signed webhook deliveries through an in-process transport. No network beyond the loopback."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from simulator.shopify import API_VERSION, ManualClock, ShopifySimulatorError, create_shopify_simulator
from sync.shopify.client import ShopifyAdmin
from sync.shopify.connect import SHOP, SUBSCRIBE, SUBSCRIPTIONS
from sync.shopify.order_transactions import ORDER_TRANSACTIONS, fetch_transactions
from sync.shopify.store_credit import CREDIT, DEBIT
from webhooks.shopify.payloads import (
    STORE_CREDIT_GATEWAY,
    parse_customer,
    parse_order,
    parse_refund,
    store_credit_spent,
)
from webhooks.signing import is_valid_signature

# No database here: the SQLite pass of `make test` runs these, the PostgreSQL pass need not run them again.
pytestmark = pytest.mark.database_free

TOKEN = "shpat_test_token"
SECRET = "shopify-test-secret"
HOOK_URL = "http://bridge.test/webhooks/shopify/1"

FIXTURES = Path(__file__).parents[1] / "fixtures" / "shopify"
SAMPLES = ("orders_create.json", "refunds_create.json")  # Shopify's published webhook samples

CUSTOMER = """
query StoreCredit($id: ID!) {
  customer(id: $id) { id storeCreditAccounts(first: 10) { nodes { id balance { amount currencyCode } } } }
}"""


class Receiver:
    """Stands in for the bridge: records every delivery and answers `status` (after `delay` seconds)."""

    def __init__(self):
        self.status = 200
        self.delay = 0.0
        self.received: list[tuple[str, bytes, dict]] = []

    def transport(self, url: str, body: bytes, headers: dict) -> int:
        self.received.append((url, body, headers))
        if self.delay:
            time.sleep(self.delay)
        return self.status

    def topics(self) -> list[str]:
        return [headers["X-Shopify-Topic"] for _, _, headers in self.received]

    def bodies(self, topic: str) -> list[dict]:
        return [json.loads(body) for _, body, headers in self.received if headers["X-Shopify-Topic"] == topic]


@pytest.fixture
def receiver():
    return Receiver()


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def sim(receiver, clock):
    simulator = create_shopify_simulator(
        access_token=TOKEN, webhook_secret=SECRET, transport=receiver.transport, clock=clock, seed=1
    )
    simulator.serve()
    yield simulator
    simulator.shutdown()


def gql(sim, query: str, variables: dict | None = None, token: str = TOKEN, **body) -> requests.Response:
    return requests.post(
        sim.graphql_url,
        json={"query": query, "variables": variables or {}, **body},
        headers={"X-Shopify-Access-Token": token},
        timeout=5,
    )


def data(response: requests.Response) -> dict:
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def customer_gid(customer: dict) -> str:
    return f"gid://shopify/Customer/{customer['id']}"


def credit(sim, owner: str, amount: str, currency: str = "EUR", expires_at: str | None = None) -> dict:
    variables = {
        "id": owner,
        "creditInput": {
            "creditAmount": {"amount": amount, "currencyCode": currency},
            "expiresAt": expires_at,
            "notify": False,
        },
    }
    return data(gql(sim, CREDIT, variables))["storeCreditAccountCredit"]


def debit(sim, owner: str, amount: str, currency: str = "EUR") -> dict:
    variables = {"id": owner, "debitInput": {"debitAmount": {"amount": amount, "currencyCode": currency}}}
    return data(gql(sim, DEBIT, variables))["storeCreditAccountDebit"]


# --- the API basics ---------------------------------------------------------------------------------------------


def test_shop_query_with_cost_extensions(sim):
    body = gql(sim, SHOP).json()

    assert body["data"]["shop"] | {"id": None} == {
        "id": None,
        "name": "Demo Shop",
        "currencyCode": "EUR",
        "myshopifyDomain": "demo.myshopify.com",
    }
    cost = body["extensions"]["cost"]
    assert (cost["requestedQueryCost"], cost["actualQueryCost"]) == (10, 10)
    assert cost["throttleStatus"]["maximumAvailable"] == 1000.0 and cost["throttleStatus"]["restoreRate"] == 50.0


@pytest.mark.parametrize("token", ["wrong", ""])
def test_a_wrong_token_gets_401(sim, token):
    response = gql(sim, SHOP, token=token)

    assert response.status_code == 401
    assert response.json() == {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}


def test_the_journal_keeps_the_root_field_and_variables(sim):
    customer = sim.create_customer("alice@example.test", "Alice", "Tester")
    gql(sim, CUSTOMER, {"id": customer_gid(customer)})

    call = sim.requests[-1]
    assert (call.operation, call.operation_name, call.root_field) == ("query", "StoreCredit", "customer")
    assert call.variables == {"id": customer_gid(customer)}
    assert call.status == 200 and sim.calls("customer") == [call]


def test_query_text_is_read_for_aliases_comments_and_several_root_fields(sim):
    query = """
    # a comment with { braces } and "quotes"
    query Both { first: shop { name } subs: webhookSubscriptions(first: 5) { nodes { id } } }
    query Other { shop { name } }
    """
    body = data(gql(sim, query, operationName="Both"))

    assert set(body) == {"first", "subs"}
    assert gql(sim, query).json()["errors"][0]["message"] == "An operation name is required"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            "query { storeCreditAccountDebit(id: $id) { userErrors { code } } }",
            "Cannot query field 'storeCreditAccountDebit' on type 'QueryRoot'",
        ),
        ("mutation { shop { name } }", "Cannot query field 'shop' on type 'Mutation'"),
        ("{ shop { name callbackUrl } }", "Cannot query field 'callbackUrl' on type 'Shop'"),
        ("{ customer { id } }", "argument 'id' of type 'ID!' is required"),
        ("{ shop { name }", "Syntax Error"),
        ("query ( { shop }", "Syntax Error"),
        ("{ orders(first: 5) { nodes { id } } }", "The simulator does not implement QueryRoot.orders"),
    ],
)
def test_what_shopify_refuses_and_what_the_simulator_does_not_play_are_graphql_errors(sim, query, message):
    response = gql(sim, query)

    assert response.status_code == 200
    assert message in response.json()["errors"][0]["message"]
    assert "data" not in response.json()


def test_missing_query_is_400(sim):
    response = requests.post(
        sim.graphql_url, json={"variables": {}}, headers={"X-Shopify-Access-Token": TOKEN}, timeout=5
    )

    assert response.status_code == 400
    assert response.json() == {"errors": {"query": "Required parameter missing or invalid"}}


def test_variables_are_coerced_to_the_schemas_types(sim):
    missing = gql(sim, CUSTOMER, {}).json()
    wrong_type = gql(sim, CUSTOMER, {"id": [5]}).json()
    unknown_input_field = gql(
        sim, SUBSCRIBE, {"topic": "ORDERS_PAID", "webhookSubscription": {"callbackUrl": HOOK_URL}}
    ).json()
    bad_date = gql(
        sim,
        CREDIT,
        {
            "id": "gid://shopify/Customer/1",
            "creditInput": {"creditAmount": {"amount": "1.00", "currencyCode": "EUR"}, "expiresAt": "next week"},
        },
    ).json()

    assert missing["errors"][0]["message"] == "Variable $id of type ID! was provided invalid value"
    assert "ID cannot represent value" in wrong_type["errors"][0]["extensions"]["problems"][0]["explanation"]
    assert unknown_input_field["errors"][0]["extensions"]["problems"] == [
        {"path": [], "explanation": "Field 'callbackUrl' is not defined by type 'WebhookSubscriptionInput'."}
    ]
    assert bad_date["errors"][0]["extensions"]["problems"][0]["path"] == ["expiresAt"]
    assert all("data" not in body for body in (missing, wrong_type, unknown_input_field, bad_date))


def test_answers_hold_what_the_document_selects_and_a_field_the_simulator_lacks_is_an_error(sim):
    alice = sim.create_customer("alice@example.test", "Alice", "Tester")
    credit(sim, customer_gid(alice), "2.00")
    query = """query C($id: ID!) { customer(id: $id) { mine: storeCreditAccounts(first: 1) {
        nodes { balance { amount } transactions(first: 5) { nodes { __typename amount { amount } } } } } } }"""

    account = data(gql(sim, query, {"id": customer_gid(alice)}))["customer"]["mine"]["nodes"][0]
    lacking = gql(sim, "{ shop { name email } }").json()

    assert account == {
        "balance": {"amount": "2.0"},
        "transactions": {"nodes": [{"__typename": "StoreCreditAccountCreditTransaction", "amount": {"amount": "2.0"}}]},
    }
    assert "Cannot return null for non-nullable field Shop.email" in lacking["errors"][0]["message"]


def test_literal_arguments_are_read_as_the_schema_types_them(sim):
    alice = sim.create_customer("alice@example.test", "Alice", "Tester")
    query = f"""mutation {{ storeCreditAccountCredit(id: "{customer_gid(alice)}", creditInput: {{
        creditAmount: {{ amount: "2.50", currencyCode: EUR }} }}) {{ userErrors {{ code }} }} }}"""

    assert data(gql(sim, query))["storeCreditAccountCredit"]["userErrors"] == []
    assert sim.store_credit_balance(alice["id"]) == 250


# --- store credit -----------------------------------------------------------------------------------------------


def test_unknown_customer_is_null(sim):
    assert data(gql(sim, CUSTOMER, {"id": "gid://shopify/Customer/123"})) == {"customer": None}


def test_credit_opens_one_account_per_currency(sim):
    alice = sim.create_customer("alice@example.test", "Alice", "Tester")

    first = credit(sim, customer_gid(alice), "10.00")
    credit(sim, customer_gid(alice), "2.50")
    credit(sim, customer_gid(alice), "7", currency="USD")

    transaction = first["storeCreditAccountTransaction"]
    assert first["userErrors"] == []
    assert transaction["amount"] == {"amount": "10.0", "currencyCode": "EUR"}  # GraphQL Decimal: "10.0"
    assert transaction["account"]["id"].startswith("gid://shopify/StoreCreditAccount/")
    accounts = data(gql(sim, CUSTOMER, {"id": customer_gid(alice)}))["customer"]["storeCreditAccounts"]["nodes"]
    assert [a["balance"] for a in accounts] == [
        {"amount": "12.5", "currencyCode": "EUR"},
        {"amount": "7.0", "currencyCode": "USD"},
    ]
    assert sim.store_credit_balance(alice["id"], "EUR") == 1250
    assert sim.store_credit_accounts(alice["id"]) == {"EUR": 1250, "USD": 700}


def test_credit_by_account_id_must_match_its_currency(sim):
    alice = sim.create_customer("alice@example.test", "Alice", "Tester")
    account = credit(sim, customer_gid(alice), "1.00")["storeCreditAccountTransaction"]["account"]["id"]

    again = credit(sim, account, "4.00")
    other = credit(sim, account, "4.00", currency="USD")

    assert again["storeCreditAccountTransaction"]["account"]["balance"]["amount"] == "5.0"
    assert other["userErrors"][0]["code"] == "MISMATCHING_CURRENCY"


@pytest.mark.parametrize("amount", ["abc", "", "1e3", "1,00"])
def test_an_amount_that_is_no_decimal_is_refused_as_a_variable_error(sim, amount):
    alice = sim.create_customer("alice@example.test", "Alice", "Tester")
    variables = {"id": customer_gid(alice), "creditInput": {"creditAmount": {"amount": amount, "currencyCode": "EUR"}}}

    error = gql(sim, CREDIT, variables).json()["errors"][0]

    assert error["extensions"]["problems"][0]["path"] == ["creditAmount", "amount"]
    assert sim.store_credit_accounts(alice["id"]) == {}


@pytest.mark.parametrize("amount", ["0", "0.00", "-5.00"])
def test_credit_of_an_amount_not_above_zero_is_a_user_error(sim, amount):
    alice = sim.create_customer("alice@example.test", "Alice", "Tester")

    result = credit(sim, customer_gid(alice), amount)

    assert result["storeCreditAccountTransaction"] is None
    assert result["userErrors"] == [
        {
            "field": ["creditInput", "creditAmount", "amount"],
            "message": "The amount must be greater than zero.",
            "code": "NEGATIVE_OR_ZERO_AMOUNT",
        }
    ]
    assert sim.store_credit_accounts(alice["id"]) == {}  # nothing opened


def test_credit_to_an_unknown_customer_or_account(sim):
    for owner in ("gid://shopify/Customer/42", "gid://shopify/StoreCreditAccount/42", "gid://shopify/Order/42"):
        assert credit(sim, owner, "1.00")["userErrors"][0]["code"] == "ACCOUNT_NOT_FOUND"


def test_credit_with_an_unknown_currency_or_a_past_expiry(sim, clock):
    alice = sim.create_customer("alice@example.test", "Alice", "Tester")
    past = (clock.now - timedelta(seconds=1)).isoformat()
    unknown_currency = {
        "id": customer_gid(alice),
        "creditInput": {"creditAmount": {"amount": "1.00", "currencyCode": "XYZ"}},
    }

    assert "does not exist in 'CurrencyCode' enum" in str(gql(sim, CREDIT, unknown_currency).json()["errors"])
    assert credit(sim, customer_gid(alice), "1.00", expires_at=past)["userErrors"][0]["code"] == "EXPIRES_AT_IN_PAST"


def test_debit_never_exceeds_the_balance(sim):
    alice = sim.create_customer("alice@example.test", "Alice", "Tester")
    credit(sim, customer_gid(alice), "10.00")

    too_much = debit(sim, customer_gid(alice), "10.01")
    enough = debit(sim, customer_gid(alice), "4.00")
    no_account = debit(sim, customer_gid(alice), "1.00", currency="USD")

    assert too_much["userErrors"] == [
        {
            "field": ["debitInput", "debitAmount", "amount"],
            "message": "Insufficient funds.",
            "code": "INSUFFICIENT_FUNDS",
        }
    ]
    assert enough["userErrors"] == []
    assert enough["storeCreditAccountTransaction"]["amount"] == {"amount": "-4.0", "currencyCode": "EUR"}
    assert enough["storeCreditAccountTransaction"]["account"]["balance"] == {"amount": "6.0", "currencyCode": "EUR"}
    assert no_account["userErrors"][0]["code"] == "ACCOUNT_NOT_FOUND"
    assert debit(sim, customer_gid(alice), "-1.00")["userErrors"][0]["code"] == "NEGATIVE_OR_ZERO_AMOUNT"


def test_dated_credit_expires_when_the_clock_passes_it(sim, clock):
    alice = sim.create_customer("alice@example.test", "Alice", "Tester")
    credit(sim, customer_gid(alice), "10.00")
    credit(sim, customer_gid(alice), "5.00", expires_at=(clock.now + timedelta(days=30)).isoformat())
    debit(sim, customer_gid(alice), "2.00")  # spends the credit that expires first

    clock.advance(timedelta(days=30).total_seconds() - 1)
    assert sim.store_credit_balance(alice["id"]) == 1300
    clock.advance(1)
    assert sim.store_credit_balance(alice["id"]) == 1000  # the 3.00 left of the dated credit lapsed

    accounts = data(gql(sim, CUSTOMER, {"id": customer_gid(alice)}))["customer"]["storeCreditAccounts"]["nodes"]
    assert accounts[0]["balance"]["amount"] == "10.0"
    assert [(e.kind, e.amount) for e in sim.store_credit_history(alice["id"])] == [
        ("credit", 1000),
        ("credit", 500),
        ("debit", -200),
        ("expiration", -300),
    ]


# --- webhook subscriptions --------------------------------------------------------------------------------------


def test_subscriptions_are_created_listed_and_not_duplicated(sim):
    variables = {"topic": "ORDERS_PAID", "webhookSubscription": {"uri": HOOK_URL, "format": "JSON"}}

    created = data(gql(sim, SUBSCRIBE, variables))["webhookSubscriptionCreate"]
    duplicate = data(gql(sim, SUBSCRIBE, variables))["webhookSubscriptionCreate"]
    listed = data(gql(sim, SUBSCRIPTIONS))["webhookSubscriptions"]["nodes"]

    assert created["userErrors"] == [] and created["webhookSubscription"]["topic"] == "ORDERS_PAID"
    assert duplicate == {
        "webhookSubscription": None,
        "userErrors": [
            {
                "field": ["webhookSubscription", "uri"],
                "message": "Address for this topic has already been taken",
            }
        ],
    }
    assert [(n["id"], n["topic"], n["uri"]) for n in listed] == [
        (created["webhookSubscription"]["id"], "ORDERS_PAID", HOOK_URL)
    ]


def test_unknown_topic_is_a_variable_error(sim):
    variables = {"topic": "ORDERS_EXPLODED", "webhookSubscription": {"uri": HOOK_URL}}

    assert "invalid value" in gql(sim, SUBSCRIBE, variables).json()["errors"][0]["message"]


# --- throttling and outages -------------------------------------------------------------------------------------


def test_throttle_next_answers_throttled_then_recovers(sim):
    sim.throttle_next(2)

    throttled = [gql(sim, SHOP) for _ in range(2)]
    recovered = gql(sim, SHOP)

    for response in throttled:
        assert response.status_code == 200
        assert response.json() == {
            "errors": [
                {
                    "message": "Throttled",
                    "extensions": {"code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"},
                }
            ],
            "extensions": {
                "cost": {
                    "requestedQueryCost": 10,
                    "actualQueryCost": None,
                    "throttleStatus": {"maximumAvailable": 1000.0, "currentlyAvailable": 0, "restoreRate": 50.0},
                }
            },
        }
    assert "data" in recovered.json()
    assert [c.throttled for c in sim.requests] == [True, True, False]


def test_the_leaky_bucket_empties_and_refills_at_the_restore_rate(receiver):
    now = [0.0]
    sim = create_shopify_simulator(access_token=TOKEN, transport=receiver.transport, throttle_clock=lambda: now[0])
    client = sim.app.test_client()

    def ask():
        return client.post(
            f"/admin/api/{API_VERSION}/graphql.json", json={"query": SHOP}, headers={"X-Shopify-Access-Token": TOKEN}
        ).get_json()

    answers = [ask() for _ in range(101)]
    assert all("data" in a for a in answers[:100])
    assert answers[100]["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert answers[99]["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 0

    now[0] += 0.5  # 25 points back: two more queries
    assert ["data" in ask() for _ in range(3)] == [True, True, False]


def test_fail_api_and_restore(sim):
    sim.fail_api(503, times=1)
    assert gql(sim, SHOP).status_code == 503
    assert gql(sim, SHOP).status_code == 200

    sim.fail_api(500)
    assert [gql(sim, SHOP, token="wrong").status_code for _ in range(2)] == [500, 500]  # before authentication
    sim.restore_api()
    assert gql(sim, SHOP).status_code == 200
    assert [c.injected for c in sim.requests] == [True, False, True, True, False]


def test_fail_api_delay_outlasts_the_client(sim):
    sim.fail_api(504, delay=2)
    with pytest.raises(requests.Timeout):
        requests.post(sim.graphql_url, json={"query": SHOP}, headers={"X-Shopify-Access-Token": TOKEN}, timeout=0.2)
    sim.restore_api()


# --- deliveries -------------------------------------------------------------------------------------------------


def subscribe(sim, *topics: str) -> None:
    for topic in topics:
        sim.subscribe(topic, HOOK_URL)


def test_deliveries_are_signed_with_shopify_headers(sim, receiver, clock):
    subscribe(sim, "customers/create")
    alice = sim.create_customer("alice@example.test", "Zoë", "A/B")

    url, body, headers = receiver.received[-1]
    assert url == HOOK_URL
    assert is_valid_signature(body, headers["X-Shopify-Hmac-Sha256"], [SECRET])
    assert not is_valid_signature(body, headers["X-Shopify-Hmac-Sha256"], ["another-secret"])
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Shopify-Topic"] == "customers/create"
    assert headers["X-Shopify-Shop-Domain"] == "demo.myshopify.com"
    assert headers["X-Shopify-API-Version"] == API_VERSION == "2026-01"
    assert headers["X-Shopify-Triggered-At"] == "2026-11-23T11:47:27.000000Z"
    assert len(headers["X-Shopify-Webhook-Id"]) == 36 and len(headers["X-Shopify-Event-Id"]) == 36
    assert "Zoë".encode() in body and b"A/B" in body  # UTF-8, slashes unescaped
    assert alice["id"] > 2**53 and json.loads(body)["id"] == alice["id"]
    assert parse_customer(json.loads(body)).name == "Zoë A/B"


def test_only_subscribed_topics_are_delivered_and_each_delivery_has_its_own_webhook_id(sim, receiver):
    sim.subscribe("orders/paid", HOOK_URL)
    sim.subscribe("orders/paid", "http://other.test/hooks")
    alice = sim.create_customer("alice@example.test", "Alice", "Tester")  # not subscribed

    sim.place_order(alice["id"])

    assert receiver.topics() == ["orders/paid", "orders/paid"]
    first, second = (headers for _, _, headers in receiver.received)
    assert first["X-Shopify-Event-Id"] == second["X-Shopify-Event-Id"]
    assert first["X-Shopify-Webhook-Id"] != second["X-Shopify-Webhook-Id"]


def test_order_paid_partly_from_store_credit(sim, receiver):
    subscribe(sim, "orders/create", "orders/paid")
    alice = sim.create_customer("alice@example.test", "Alice", "Tester")
    sim.adjust_store_credit(alice["id"], "15.00")

    order = sim.place_order(alice["id"], total="41.48", store_credit="10.00")

    assert receiver.topics() == ["orders/create", "orders/paid"]
    assert receiver.received[0][1] == receiver.received[1][1]
    assert sim.store_credit_balance(alice["id"]) == 500  # spent at checkout
    assert "transactions" not in order  # as in Shopify's bodies: only the gateways say store credit paid
    assert order["payment_gateway_names"] == [STORE_CREDIT_GATEWAY, "bogus"]
    snapshot = parse_order(receiver.bodies("orders/paid")[0])
    assert (snapshot.total, snapshot.spent_from_store_credit, snapshot.phase) == (4148, 0, "paid")
    assert snapshot.store_credit_spend_unknown and snapshot.customer_external_id == str(alice["id"])


def test_the_order_query_answers_its_transactions_refunds_included(sim):
    alice = sim.create_customer("alice@example.test", "Alice", "Tester")
    sim.adjust_store_credit(alice["id"], "15.00")
    order = sim.place_order(alice["id"], total="41.48", store_credit="10.00")
    sim.refund(order["id"], "4.00", to_store_credit=True)

    found = data(gql(sim, ORDER_TRANSACTIONS, {"id": f"gid://shopify/Order/{order['id']}"}))["order"]

    assert set(found) == {"transactions"}  # what the document selects, nothing more
    assert [(t["kind"], t["status"], t["gateway"], t["amountSet"]["shopMoney"]) for t in found["transactions"]] == [
        ("SALE", "SUCCESS", STORE_CREDIT_GATEWAY, {"amount": "10.0", "currencyCode": "EUR"}),
        ("SALE", "SUCCESS", "bogus", {"amount": "31.48", "currencyCode": "EUR"}),
        ("REFUND", "SUCCESS", STORE_CREDIT_GATEWAY, {"amount": "4.0", "currencyCode": "EUR"}),
    ]
    fetched = fetch_transactions(ShopifyAdmin(sim.base_url, TOKEN), str(order["id"]))
    assert store_credit_spent(fetched, "EUR") == 1000  # the refund is no spend
    assert data(gql(sim, ORDER_TRANSACTIONS, {"id": "gid://shopify/Order/1"}))["order"] is None


def keys_beyond(body: dict, sample: dict, path: str = "") -> set[str]:
    """The dotted keys of `body` that Shopify's `sample` lacks; lists of objects are compared item by item with
    the union of the sample's items (not when the sample's list is empty: nothing to compare with)."""
    extra = set()
    for key, value in body.items():
        if key not in sample:
            extra.add(path + key)
        elif isinstance(value, dict) and isinstance(sample[key], dict):
            extra |= keys_beyond(value, sample[key], f"{path}{key}.")
        elif isinstance(value, list) and sample[key] and all(isinstance(item, dict) for item in value):
            union = {k: v for item in sample[key] for k, v in item.items()}
            for item in value:
                extra |= keys_beyond(item, union, f"{path}{key}[].")
    return extra


def test_order_and_refund_bodies_carry_no_field_shopifys_samples_lack(sim, receiver):
    order_sample, refund_sample = (json.loads((FIXTURES / name).read_text()) for name in SAMPLES)
    subscribe(sim, "orders/paid", "orders/updated", "refunds/create")
    alice = sim.create_customer("alice@example.test", "Alice", "Tester")
    sim.adjust_store_credit(alice["id"], "20.00")
    order = sim.place_order(alice["id"], total="41.48", store_credit="10.00")
    sim.refund(order["id"], "12.00", to_store_credit="4.00", failed_extra="12.00")

    refund_body = receiver.bodies("refunds/create")[0]
    order_bodies = receiver.bodies("orders/paid") + receiver.bodies("orders/updated")
    assert keys_beyond(refund_body, refund_sample) == set()
    assert [keys_beyond(body, order_sample) for body in order_bodies] == [set()] * len(order_bodies)
    assert [keys_beyond(refund, refund_sample) for refund in order_bodies[-1]["refunds"]] == [set()]
    assert "transactions" not in order_bodies[0] and order_bodies[-1]["refunds"]  # the refund's were compared
    snapshot = parse_order(order_bodies[0])
    assert (snapshot.spent_from_store_credit, snapshot.store_credit_spend_unknown) == (0, True)  # asked for later


def test_spending_more_store_credit_than_held_is_refused(sim):
    alice = sim.create_customer("alice@example.test", "Alice", "Tester")
    sim.adjust_store_credit(alice["id"], "5.00")

    with pytest.raises(ShopifySimulatorError):
        sim.place_order(alice["id"], total="41.48", store_credit="5.01")
    with pytest.raises(ShopifySimulatorError):
        sim.place_order(None, total="41.48", store_credit="1.00")  # guests have none


def test_refund_with_a_failed_transaction_and_a_store_credit_part(sim, receiver):
    subscribe(sim, "refunds/create", "orders/updated")
    alice = sim.create_customer("alice@example.test", "Alice", "Tester")
    order = sim.place_order(alice["id"], total="41.48")

    refund = sim.refund(order["id"], "12.00", to_store_credit="4.00", failed_extra="12.00", note="damaged")

    assert receiver.topics() == ["refunds/create", "orders/updated"]
    assert receiver.bodies("refunds/create")[0] == refund  # not wrapped
    assert [(t["gateway"], t["status"], t["amount"]) for t in refund["transactions"]] == [
        ("bogus", "failure", "12.00"),
        ("bogus", "success", "8.00"),
        (STORE_CREDIT_GATEWAY, "success", "4.00"),
    ]
    parsed = parse_refund(refund)
    assert (parsed.order_external_id, parsed.refund.amount, parsed.refund.to_store_credit) == (
        str(order["id"]),
        1200,
        400,
    )
    assert parsed.refund.reason == "damaged"
    assert sim.store_credit_balance(alice["id"]) == 400
    updated = parse_order(receiver.bodies("orders/updated")[0])
    assert (updated.status, updated.phase, updated.refunds) == ("partially_refunded", "paid", (parsed.refund,))


def test_full_refund_and_cancel(sim, receiver):
    subscribe(sim, "orders/cancelled", "orders/updated")
    order = sim.place_order(None, total="10.00")  # a guest

    sim.refund(order["id"], "10.00")
    sim.cancel(order["id"])

    refunded, cancelled = receiver.bodies("orders/updated")
    assert parse_order(refunded).phase == "refunded"
    snapshot = parse_order(receiver.bodies("orders/cancelled")[0])
    assert (snapshot.status, snapshot.phase, snapshot.customer_external_id) == ("cancelled", "cancelled", None)
    assert cancelled == receiver.bodies("orders/cancelled")[0]
    with pytest.raises(ShopifySimulatorError):
        sim.refund(order["id"], "0.01")  # nothing left
    with pytest.raises(ShopifySimulatorError):
        sim.cancel(order["id"])


def test_secret_rotation_signs_new_deliveries_with_the_new_secret(sim, receiver):
    subscribe(sim, "customers/create")
    sim.create_customer("a@example.test")
    sim.rotate_secret("new-secret")
    sim.create_customer("b@example.test")

    (_, old_body, old_headers), (_, new_body, new_headers) = receiver.received
    assert is_valid_signature(old_body, old_headers["X-Shopify-Hmac-Sha256"], [SECRET])
    assert not is_valid_signature(new_body, new_headers["X-Shopify-Hmac-Sha256"], [SECRET])
    assert is_valid_signature(new_body, new_headers["X-Shopify-Hmac-Sha256"], [SECRET, "new-secret"])
    assert sim.webhook_secret == "new-secret"


def test_failed_deliveries_are_retried_with_the_same_webhook_id_and_body(sim, receiver):
    subscribe(sim, "customers/create")
    receiver.status = 500
    sim.create_customer("a@example.test")
    assert len(sim.failed_deliveries) == 1

    receiver.status = 302  # redirects are not followed: a failure too
    sim.retry_failed()
    receiver.status = 200
    sim.rotate_secret("new-secret")
    retried = sim.retry_failed()

    first, second, third = sim.deliveries
    assert [d.ok for d in sim.deliveries] == [False, False, True]
    assert [d.attempt for d in sim.deliveries] == [1, 2, 3]
    assert first.webhook_id == second.webhook_id == third.webhook_id
    assert first.event_id == third.event_id and first.body == third.body
    assert first.headers["X-Shopify-Triggered-At"] == third.headers["X-Shopify-Triggered-At"]
    assert is_valid_signature(third.body, third.headers["X-Shopify-Hmac-Sha256"], ["new-secret"])
    assert retried == [third] and sim.failed_deliveries == [] and sim.retry_failed() == []


def test_a_slow_answer_is_a_failure(receiver):
    sim = create_shopify_simulator(transport=receiver.transport, delivery_timeout=0.05)
    sim.subscribe("customers/create", HOOK_URL)
    receiver.delay = 0.1

    sim.create_customer("a@example.test")

    assert (sim.deliveries[0].status, sim.deliveries[0].timed_out, sim.deliveries[0].ok) == (200, True, False)
    assert len(sim.failed_deliveries) == 1


def test_a_transport_error_is_a_failure_and_retries_stop_after_eight(sim):
    def refuse(url, body, headers):
        raise requests.ConnectionError("refused")

    sim.transport = refuse
    subscribe(sim, "customers/create")
    sim.create_customer("a@example.test")
    for _ in range(10):
        sim.retry_failed()

    assert len(sim.deliveries) == 9  # the first attempt and 8 retries
    assert sim.deliveries[0].error == "ConnectionError: refused"
    assert sim.failed_deliveries == [] and len(sim.abandoned_deliveries) == 1


def test_held_deliveries_can_be_reordered_and_duplicated(sim, receiver):
    subscribe(sim, "orders/paid", "refunds/create")
    order = sim.place_order(None, total="10.00")
    receiver.received.clear()

    sim.hold_deliveries()
    sim.refund(order["id"], "1.00")
    sim.refund(order["id"], "2.00")
    first, second = sim.pending_deliveries
    sim.flush([second, first, second])
    sim.release_deliveries()

    amounts = [parse_refund(json.loads(body)).refund.amount for _, body, _ in receiver.received]
    assert amounts == [200, 100, 200]
    ids = [headers["X-Shopify-Webhook-Id"] for _, _, headers in receiver.received]
    assert ids[0] == ids[2] != ids[1]  # a duplicate is the same delivery
    assert sim.pending_deliveries == []


def test_a_receiver_can_call_the_api_back_during_its_delivery(sim):
    seen = []

    def transport(url, body, headers):
        customer = {"id": f"gid://shopify/Customer/{json.loads(body)['id']}"}
        seen.append(data(gql(sim, CUSTOMER, customer))["customer"]["id"])
        return 200

    sim.transport = transport
    subscribe(sim, "customers/create")
    alice = sim.create_customer("alice@example.test")

    assert seen == [customer_gid(alice)]


def test_refund_transactions_say_null_currency_and_the_body_still_reads_right(receiver):
    sim = create_shopify_simulator(currency="JPY", transport=receiver.transport)
    sim.subscribe("refunds/create", HOOK_URL)
    order = sim.place_order(None, total="1500")

    refund = sim.refund(order["id"], "500")

    assert [t["currency"] for t in refund["transactions"]] == [None]  # as in Shopify's samples
    parsed = parse_refund(receiver.bodies("refunds/create")[0])
    assert (parsed.currency, parsed.refund.amount) == (None, 500)  # JPY, read from total_duties_set
