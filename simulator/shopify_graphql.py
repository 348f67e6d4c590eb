"""The GraphQL Admin API of the Shopify simulator: `POST /admin/api/<version>/graphql.json`.

Every request is first checked against Shopify's published schema of API_VERSION (the only version
served; simulator/shopify_schema.py): a document or a variable that does not validate gets Shopify's
error answer, as a real shop would refuse it. Each root field is answered with a fixed shape (below), of
which graphql-core's execution keeps what the document selects; a selected non-null field the shape
lacks is an error in the answer, never a made-up value. Root fields:

    shop                                          → {name, currencyCode, myshopifyDomain, id}
    customer(id:)                                 → null, or {id, ..., storeCreditAccounts {nodes}}
    order(id:)                                    → null, or {id, name, transactions: [{id, kind, status,
                                                    gateway, amountSet, createdAt}]}, refunds' included
    storeCreditAccountCredit(id:, creditInput:)   → {storeCreditAccountTransaction, userErrors}
    storeCreditAccountDebit(id:, debitInput:)     → {storeCreditAccountTransaction, userErrors}
    webhookSubscriptions(first:)                  → {nodes: [{id, topic, uri, format, ...}], pageInfo}
    webhookSubscriptionCreate(topic:, webhookSubscription:) → {webhookSubscription, userErrors}

Around them, as Shopify does: the `X-Shopify-Access-Token` check (401), a leaky-bucket rate limit whose
exhaustion answers HTTP 200 with a THROTTLED error, and `extensions.cost` on every answer.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask, Response, request
from graphql import FieldNode, GraphQLSyntaxError, get_operation_ast, parse
from graphql.execution.values import get_argument_values
from werkzeug.exceptions import HTTPException

from simulator.shopify_schema import CheckedRequest, SchemaRefusal, admin_schema, check_request, select
from simulator.shopify_store import AccountEntry, StoreCreditAccount, Transaction
from simulator.shopify_wire import (
    API_VERSION,
    gid,
    graphql_date,
    in_shop_money,
    is_currency,
    money_v2,
    parse_datetime,
    parse_gid,
    to_minor,
)

if TYPE_CHECKING:
    from simulator.shopify import ShopifySimulator

UNRECOGNIZED_LOGIN = "[API] Invalid API key or access token (unrecognized login or wrong password)"
RATE_LIMITS_DOCS = "https://shopify.dev/api/usage/rate-limits"
QUERY_FIELDS = frozenset({"shop", "customer", "order", "webhookSubscriptions"})
MUTATION_FIELDS = frozenset({"storeCreditAccountCredit", "storeCreditAccountDebit", "webhookSubscriptionCreate"})
TRANSACTIONS_PAGE = 100
TRANSACTION_TYPES = {
    "credit": "StoreCreditAccountCreditTransaction",
    "debit": "StoreCreditAccountDebitTransaction",
    "expiration": "StoreCreditAccountExpirationTransaction",
}
EVENTS = {
    "api": "ADJUSTMENT",
    "merchant": "ADJUSTMENT",
    "expiry": "ADJUSTMENT",
    "order": "ORDER_PAYMENT",
    "refund": "ORDER_REFUND",
}
REASONS = {
    429: "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service.",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass
class GraphQLCall:
    """One request, as the journal `sim.requests` keeps it. `root_fields` are the fields the query asked
    for (empty when it could not be read); `throttled` and `injected` (by `fail_api`) mark answers that
    did nothing; `answer_lost` (by `lose_answers`) marks a mutation carried out but answered 502."""

    version: str
    operation: str | None  # "query" or "mutation"
    operation_name: str | None
    root_fields: tuple[str, ...]
    variables: dict
    query: str | None
    status: int | None = None
    throttled: bool = False
    injected: bool = False
    answer_lost: bool = False

    @property
    def root_field(self) -> str | None:
        return self.root_fields[0] if self.root_fields else None


@dataclass
class Outage:
    """An active `fail_api()`."""

    status: int
    remaining: int | None
    body: object
    delay: float | None


class LeakyBucket:
    """Shopify's calculated query cost limit: `maximum` points, refilled at `restore_rate` per second
    (measured with `clock`, monotonic seconds)."""

    def __init__(self, maximum: float, restore_rate: float, clock: Callable[[], float]):
        self.maximum = float(maximum)
        self.restore_rate = float(restore_rate)
        self.available = self.maximum
        self._clock = clock
        self._at = clock()

    def _refill(self) -> None:
        now = self._clock()
        self.available = min(self.maximum, self.available + max(0.0, now - self._at) * self.restore_rate)
        self._at = now

    def take(self, cost: int) -> bool:
        self._refill()
        if self.available < cost:
            return False
        self.available -= cost
        return True

    def give_back(self, cost: int) -> None:
        self.available = min(self.maximum, self.available + cost)

    def status(self) -> dict:
        self._refill()
        return {
            "maximumAvailable": self.maximum,
            "currentlyAvailable": int(self.available),
            "restoreRate": self.restore_rate,
        }


# --- reading the request -----------------------------------------------------------------------------------


class GraphQLError(Exception):
    """A top-level GraphQL error (`{"errors": [...]}`, HTTP 200, no data)."""

    def __init__(self, message: str, extensions: dict | None = None):
        super().__init__(message)
        self.message = message
        self.extensions = extensions

    def body(self) -> dict:
        error: dict = {"message": self.message}
        if self.extensions is not None:
            error["extensions"] = self.extensions
        return {"errors": [error]}


@dataclass(frozen=True)
class RootField:
    name: str
    alias: str
    values: dict  # argument → its value, coerced to the schema's type


@dataclass(frozen=True)
class Operation:
    kind: str
    name: str | None
    fields: tuple[RootField, ...]


def read_operation(checked: CheckedRequest) -> Operation:
    """The root fields of a request that passed the schema check, with their argument values."""
    operation = checked.operation
    root_type = admin_schema().get_root_type(operation.operation)
    fields = []
    for node in operation.selection_set.selections:
        if not isinstance(node, FieldNode):
            raise GraphQLError("The simulator does not read fragments at the root of an operation")
        name = node.name.value
        values = get_argument_values(root_type.fields[name], node, checked.variables)
        fields.append(RootField(name, node.alias.value if node.alias else name, values))
    name = operation.name.value if operation.name else None
    return Operation(operation.operation.value, name, tuple(fields))


def _journal_fields(query: str, operation_name: str | None) -> tuple[str | None, str | None, tuple[str, ...]]:
    """(kind, name, root field names) of the operation, read whether or not it validates; Nones if unreadable."""
    try:
        operation = get_operation_ast(parse(query), operation_name)
    except GraphQLSyntaxError:
        operation = None
    if operation is None:
        return None, None, ()
    names = tuple(node.name.value for node in operation.selection_set.selections if isinstance(node, FieldNode))
    return operation.operation.value, operation.name.value if operation.name else None, names


# --- the app ------------------------------------------------------------------------------------------------


def json_response(data: object, status: int = 200, headers: Mapping | None = None) -> Response:
    return Response(
        json.dumps(data, separators=(",", ":")),
        status=status,
        headers=dict(headers or {}),
        content_type="application/json; charset=utf-8",
    )


def create_app(sim: ShopifySimulator) -> Flask:
    """The Flask app serving the GraphQL Admin API for `sim`."""
    admin_schema()  # built now (once per process, over a second), not inside a request a client times
    app = Flask("simulator.shopify")
    api = AdminApi(sim)
    app.add_url_rule("/admin/api/<version>/graphql.json", "graphql", api.handle, methods=["POST"])
    for status in (404, 405):
        app.register_error_handler(status, lambda exc: json_response({"errors": "Not Found"}, 404))

    def crash(exc: Exception) -> Response | HTTPException:
        if isinstance(exc, HTTPException):
            return exc
        app.logger.exception("simulator error", exc_info=exc)
        return json_response({"errors": "Internal Server Error"}, 500)

    app.register_error_handler(Exception, crash)
    return app


class AdminApi:
    """Request handling: journal, outages, authentication, throttling, then the root fields."""

    def __init__(self, sim: ShopifySimulator):
        self.sim = sim

    def handle(self, version: str) -> Response:
        call = self._journal(version)
        response = self._answer(call, version)
        call.status = response.status_code
        return response

    def _answer(self, call: GraphQLCall, version: str) -> Response:
        sim = self.sim
        outage, wake = sim.take_outage()
        if outage is not None:
            call.injected = True
            if outage.delay:
                wake.wait(outage.delay)  # the client has long given up; restore_api()/shutdown() end it early
            return _outage_response(outage)
        if version != API_VERSION:  # the only version whose schema the simulator has
            return json_response({"errors": "Not Found"}, 404)
        presented = request.headers.get("X-Shopify-Access-Token", "")
        if not hmac.compare_digest(presented.encode("utf-8", "replace"), sim.access_token.encode("utf-8")):
            return json_response({"errors": UNRECOGNIZED_LOGIN}, 401)
        body = _json_body()
        if body is None:
            return json_response({"errors": {"query": "Required parameter missing or invalid"}}, 400)
        variables = body.get("variables") or {}
        if not isinstance(variables, dict):
            return json_response(GraphQLError("Variables must be an object").body())
        try:
            checked = check_request(body["query"], variables, body.get("operationName"))
            operation = read_operation(checked)
            _check_fields(operation)
        except (SchemaRefusal, GraphQLError) as exc:
            return json_response(exc.body())
        cost = sim.query_cost * len(operation.fields)
        with sim.lock:
            forced = sim.take_forced_throttle()
            if forced or not sim.bucket.take(cost):
                call.throttled = True
                status = sim.bucket.status()
                if forced:
                    status["currentlyAvailable"] = 0
                return json_response(_throttled(cost, status))
            try:
                answers = {field.alias: self._resolve(field) for field in operation.fields}
            except GraphQLError as exc:
                sim.bucket.give_back(cost)
                return json_response(exc.body())
            cost_info = {"requestedQueryCost": cost, "actualQueryCost": cost, "throttleStatus": sim.bucket.status()}
        if operation.kind == "mutation" and sim.take_lost_answer():
            call.answer_lost = True
            return json_response({"errors": REASONS[502]}, 502)
        return json_response({**select(checked, variables, answers), "extensions": {"cost": cost_info}})

    def _journal(self, version: str) -> GraphQLCall:
        body = _json_body() or {}
        query = body.get("query") if isinstance(body.get("query"), str) else None
        variables = body.get("variables") if isinstance(body.get("variables"), dict) else {}
        kind, name, root_fields = _journal_fields(query, body.get("operationName")) if query else (None, None, ())
        call = GraphQLCall(
            version=version,
            operation=kind,
            operation_name=name,
            root_fields=root_fields,
            variables=variables,
            query=query,
        )
        with self.sim.lock:
            self.sim.requests.append(call)
        return call

    # --- root fields (under the lock) -------------------------------------------------------------------------

    def _resolve(self, field: RootField) -> object:
        return getattr(self, f"_field_{field.name}")(field)

    def _field_shop(self, field: RootField) -> dict:
        sim = self.sim
        return {
            "id": gid("Shop", sim.shop_id),
            "name": sim.shop_name,
            "currencyCode": sim.store.currency,
            "myshopifyDomain": sim.shop_domain,
        }

    def _field_customer(self, field: RootField) -> dict | None:
        customer_id = _gid_of(field.values["id"], "Customer")
        customer = self.sim.store.customers.get(customer_id) if customer_id else None
        if customer is None:
            return None
        accounts = self.sim.store.accounts_of(customer.id)
        return {
            "id": gid("Customer", customer.id),
            "email": customer.email,
            "firstName": customer.first_name,
            "lastName": customer.last_name,
            "displayName": f"{customer.first_name} {customer.last_name}".strip() or customer.email,
            "storeCreditAccounts": {
                "nodes": [_account_with_transactions_json(account) for account in accounts],
                "pageInfo": {"hasNextPage": False, "endCursor": None},
            },
        }

    def _field_order(self, field: RootField) -> dict | None:
        order_id = _gid_of(field.values["id"], "Order")
        order = self.sim.store.orders.get(order_id) if order_id else None
        if order is None:
            return None
        transactions = [*order.transactions, *(t for refund in order.refunds for t in refund.transactions)]
        return {
            "id": gid("Order", order.id),
            "name": f"#{order.number}",
            "transactions": [_order_transaction_json(t, order.currency, self.sim.store.currency) for t in transactions],
        }

    def _field_storeCreditAccountCredit(self, field: RootField) -> dict:  # noqa: N802 - the GraphQL name
        owner, credit = field.values["id"], field.values["creditInput"]
        amount_text, currency = credit["creditAmount"]["amount"], credit["creditAmount"]["currencyCode"]
        expires_at = parse_datetime(credit.get("expiresAt"))  # the schema check let only a date or null through
        notify = bool(credit.get("notify"))
        field_path = ["creditInput", "creditAmount"]
        amount, customer_id, account, error = self._target(owner, amount_text, currency, field_path)
        if error is None and expires_at is not None and expires_at <= self.sim.clock():
            message = "The expiry date must be in the future."
            error = _user_error(["creditInput", "expiresAt"], message, "EXPIRES_AT_IN_PAST")
        if error is not None:
            return {"storeCreditAccountTransaction": None, "userErrors": [error]}
        # a customer's first credit in a currency opens the account
        account, entry = self.sim.store.credit(
            customer_id, currency, amount, expires_at=expires_at, origin="api", notify=notify
        )
        return {"storeCreditAccountTransaction": _transaction_json(account, entry), "userErrors": []}

    def _field_storeCreditAccountDebit(self, field: RootField) -> dict:  # noqa: N802 - the GraphQL name
        owner, debit_amount = field.values["id"], field.values["debitInput"]["debitAmount"]
        amount_text, currency = debit_amount["amount"], debit_amount["currencyCode"]
        field_path = ["debitInput", "debitAmount"]
        amount, _, account, error = self._target(owner, amount_text, currency, field_path)
        if error is None and account is None:
            error = _NOT_FOUND
        if error is None and amount > account.balance():
            error = _user_error([*field_path, "amount"], "Insufficient funds.", "INSUFFICIENT_FUNDS")
        if error is not None:
            return {"storeCreditAccountTransaction": None, "userErrors": [error]}
        entry = self.sim.store.debit(account, amount, "api")
        return {"storeCreditAccountTransaction": _transaction_json(account, entry), "userErrors": []}

    def _target(
        self, owner: str, amount_text: str, currency: str, field_path: list[str]
    ) -> tuple[int, int | None, StoreCreditAccount | None, dict | None]:
        """(amount, customer id, account or None if none yet, user error) for a credit or debit of
        `amount_text` `currency` on `owner` (a customer or store credit account gid)."""
        parsed = parse_gid(owner)
        if parsed is None:
            raise GraphQLError(f'Invalid global id "{owner}"', {"code": "argumentLiteralsIncompatible"})
        if not is_currency(currency):
            message = f"Currency {currency} is not supported."
            return 0, None, None, _user_error([*field_path, "currencyCode"], message, "UNSUPPORTED_CURRENCY")
        amount, error = _amount(amount_text, currency, field_path)
        if error is not None:
            return 0, None, None, error
        store = self.sim.store
        kind, number = parsed
        if kind == "Customer" and number in store.customers:
            return amount, number, store.account(number, currency), None
        account = store.account_by_id(number) if kind == "StoreCreditAccount" else None
        if account is None:
            return 0, None, None, _NOT_FOUND
        if account.currency != currency:
            message = f"The currency must match the account's ({account.currency})."
            return 0, None, None, _user_error([*field_path, "currencyCode"], message, "MISMATCHING_CURRENCY")
        return amount, account.customer_id, account, None

    def _field_webhookSubscriptions(self, field: RootField) -> dict:  # noqa: N802 - the GraphQL name
        first = field.values.get("first")
        subscriptions = list(self.sim.hub.subscriptions.values())
        shown = subscriptions[: first if first is not None else 250]
        return {
            "nodes": [_subscription_json(s) for s in shown],
            "pageInfo": {"hasNextPage": len(shown) < len(subscriptions), "endCursor": None},
        }

    def _field_webhookSubscriptionCreate(self, field: RootField) -> dict:  # noqa: N802 - the GraphQL name
        topic, spec = field.values["topic"], field.values["webhookSubscription"]
        url, format_ = spec.get("uri") or "", spec.get("format") or "JSON"
        field_path = ["webhookSubscription", "uri"]
        error = None
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
            error = {"field": field_path, "message": "Address is invalid"}
        elif self.sim.hub.find(topic, url) is not None:
            error = {"field": field_path, "message": "Address for this topic has already been taken"}
        if error is not None:
            return {"webhookSubscription": None, "userErrors": [error]}
        subscription = self.sim.hub.add(self.sim.store.next_id(), topic, url, format_)
        return {"webhookSubscription": _subscription_json(subscription), "userErrors": []}


def _check_fields(operation: Operation) -> None:
    """Refuse, as an error (never a made-up answer), a field Shopify has but the simulator does not play."""
    allowed, root_type = (MUTATION_FIELDS, "Mutation") if operation.kind == "mutation" else (QUERY_FIELDS, "QueryRoot")
    for field in operation.fields:
        if field.name not in allowed:
            raise GraphQLError(
                f"The simulator does not implement {root_type}.{field.name}", {"code": "notImplementedBySimulator"}
            )


def _json_body() -> dict | None:
    raw = request.get_data(cache=True)
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        return None
    return body if isinstance(body, dict) and isinstance(body.get("query"), str) else None


def _gid_of(value: str, kind: str) -> int | None:
    parsed = parse_gid(value)
    if parsed is None:
        raise GraphQLError(f'Invalid global id "{value}"', {"code": "argumentLiteralsIncompatible"})
    return parsed[1] if parsed[0] == kind else None


def _amount(text: str, currency: str, field_path: list[str]) -> tuple[int, dict | None]:
    path = [*field_path, "amount"]
    try:
        amount = to_minor(text, currency)
    except ValueError as exc:
        if "decimals" in str(exc):
            return 0, _user_error(path, f"Too many decimal places for {currency}.", "INVALID_AMOUNT")
        return 0, _user_error(path, "The amount must be greater than zero.", "NEGATIVE_OR_ZERO_AMOUNT")
    if amount <= 0:
        return 0, _user_error(path, "The amount must be greater than zero.", "NEGATIVE_OR_ZERO_AMOUNT")
    return amount, None


def _user_error(field: list[str], message: str, code: str) -> dict:
    return {"field": field, "message": message, "code": code}


_NOT_FOUND = _user_error(["id"], "Store credit account does not exist.", "ACCOUNT_NOT_FOUND")


def _account_json(account: StoreCreditAccount) -> dict:
    return {"id": account.gid, "balance": money_v2(account.balance(), account.currency)}


def _account_with_transactions_json(account: StoreCreditAccount) -> dict:
    """An account with `transactions(first: 100, sortKey: CREATED_AT, reverse: true)`: newest first."""
    newest_first = account.history[::-1]
    page = newest_first[:TRANSACTIONS_PAGE]
    return {
        **_account_json(account),
        "transactions": {
            "nodes": [_transaction_json(account, entry, with_account=False) for entry in page],
            "pageInfo": {"hasNextPage": len(newest_first) > TRANSACTIONS_PAGE, "endCursor": None},
        },
    }


def _transaction_json(account: StoreCreditAccount, entry: AccountEntry, with_account: bool = True) -> dict:
    kind = TRANSACTION_TYPES[entry.kind]
    data = {
        "__typename": kind,
        "id": gid(kind, entry.id),
        "amount": money_v2(entry.amount, account.currency),  # negative for a debit
        "balanceAfterTransaction": money_v2(entry.balance_after, account.currency),
        "createdAt": graphql_date(entry.at),
        "event": EVENTS[entry.origin],
    }
    if with_account:
        data["account"] = _account_json(account)
    if entry.kind == "credit":
        data["expiresAt"] = graphql_date(entry.expires_at)
    return data


def _order_transaction_json(transaction: Transaction, currency: str, shop_currency: str) -> dict:
    """`currency`: the one the customer paid in (the order's presentment currency)."""
    in_shop = money_v2(in_shop_money(transaction.amount, currency, shop_currency), shop_currency)
    return {
        "id": gid("OrderTransaction", transaction.id),
        "kind": transaction.kind.upper(),  # GraphQL enums: SALE, REFUND; SUCCESS, FAILURE
        "status": transaction.status.upper(),
        "gateway": transaction.gateway,
        "amountSet": {"shopMoney": in_shop, "presentmentMoney": money_v2(transaction.amount, currency)},
        "createdAt": graphql_date(transaction.created_at),
    }


def _subscription_json(subscription) -> dict:
    return {
        "id": subscription.gid,
        "topic": subscription.topic,
        "format": subscription.format,
        "uri": subscription.callback_url,
        "endpoint": {"__typename": "WebhookHttpEndpoint", "callbackUrl": subscription.callback_url},
        "createdAt": graphql_date(subscription.created_at),
        "updatedAt": graphql_date(subscription.updated_at),
    }


def _throttled(cost: int, status: dict) -> dict:
    return {
        "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED", "documentation": RATE_LIMITS_DOCS}}],
        "extensions": {"cost": {"requestedQueryCost": cost, "actualQueryCost": None, "throttleStatus": status}},
    }


def _outage_response(outage: Outage) -> Response:
    headers = {"Retry-After": "2.0"} if outage.status == 429 else {}
    if isinstance(outage.body, str):
        return Response(outage.body, status=outage.status, headers=headers, content_type="text/html; charset=utf-8")
    body = outage.body if outage.body is not None else {"errors": REASONS.get(outage.status, str(outage.status))}
    return json_response(body, outage.status, headers)
