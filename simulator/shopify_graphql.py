"""The GraphQL Admin API of the Shopify simulator: `POST /admin/api/<version>/graphql.json`.

Not a GraphQL engine. The query text is read only far enough to find the operation (query or mutation)
and its root fields with their arguments; every answer has a fixed shape whatever the selection asks
for, and inputs come from `variables` (scalar literals such as `first: 100` are read too). Root fields:

    shop                                          → {name, currencyCode, myshopifyDomain, id}
    customer(id:)                                 → null, or {id, ..., storeCreditAccounts {nodes}}
    order(id:)                                    → null, or {id, name, transactions: [{id, kind, status,
                                                    gateway, amountSet, createdAt}]}, refunds' included
    storeCreditAccountCredit(id:, creditInput:)   → {storeCreditAccountTransaction, userErrors}
    storeCreditAccountDebit(id:, debitInput:)     → {storeCreditAccountTransaction, userErrors}
    webhookSubscriptions(first:)                  → {nodes, pageInfo}
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
from werkzeug.exceptions import HTTPException

from simulator.shopify_store import AccountEntry, StoreCreditAccount, Transaction
from simulator.shopify_wire import (
    TOPICS,
    gid,
    graphql_date,
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
_VERSION_RE = re.compile(r"[0-9]{4}-[0-9]{2}|unstable")
TRANSACTIONS_PAGE = 100
TRANSACTION_TYPES = {
    "credit": "StoreCreditAccountCreditTransaction",
    "debit": "StoreCreditAccountDebitTransaction",
    "expiration": "StoreCreditAccountExpirationTransaction",
}
EVENTS = {"api": "ADJUSTMENT", "merchant": "ADJUSTMENT", "expiry": "ADJUSTMENT", "order": "ORDER_PAYMENT",
          "refund": "ORDER_REFUND"}  # fmt: skip
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


# --- reading the query text ---------------------------------------------------------------------------------


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
    arguments: dict  # argument → ("variable", name) or ("value", literal) or ("complex", None)


@dataclass(frozen=True)
class Operation:
    kind: str
    name: str | None
    fields: tuple[RootField, ...]


_TOKEN_RE = re.compile(
    r'"""[\s\S]*?"""|"(?:\\.|[^"\\\n])*"|#[^\n]*|\.\.\.|[A-Za-z_][A-Za-z0-9_]*'
    r"|-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|[{}()\[\]:$!=@|&]|[\s,\ufeff]+|."
)
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _syntax_error(detail: str) -> GraphQLError:
    return GraphQLError(f"syntax error, {detail}", {"code": "parseError"})


def parse_operation(text: str, operation_name: str | None = None) -> Operation:
    """The operation to run in `text` (by `operation_name` when there are several)."""
    tokens = [t for t in _TOKEN_RE.findall(text) if not (t[0] == "#" or t.strip(" \t\r\n,\ufeff") == "")]
    try:
        operations = _operations(tokens)
    except IndexError:
        raise _syntax_error("unexpected end of file") from None
    if not operations:
        raise _syntax_error("unexpected end of file")
    if operation_name:
        chosen = [op for op in operations if op.name == operation_name]
        if not chosen:
            raise GraphQLError(f'No operation named "{operation_name}"')
        return chosen[0]
    if len(operations) > 1:
        raise GraphQLError("An operation name is required")
    return operations[0]


def _operations(tokens: list[str]) -> list[Operation]:
    operations, pos = [], 0
    while pos < len(tokens):
        word = tokens[pos]
        if word == "{":
            kind, name = "query", None
        elif word in ("query", "mutation", "subscription"):
            kind, name, pos = word, None, pos + 1
            if _NAME_RE.fullmatch(tokens[pos]):
                name, pos = tokens[pos], pos + 1
            if tokens[pos] == "(":
                pos = _skip(tokens, pos)
            pos = _skip_directives(tokens, pos)
            if tokens[pos] != "{":
                raise _syntax_error(f'unexpected "{tokens[pos]}"')
        elif word == "fragment":
            while tokens[pos] != "{":
                pos += 1
            pos = _skip(tokens, pos)
            continue
        else:
            raise _syntax_error(f'unexpected "{word}"')
        fields, pos = _selection(tokens, pos)
        operations.append(Operation(kind, name, tuple(fields)))
    return operations


def _selection(tokens: list[str], pos: int) -> tuple[list[RootField], int]:
    """The root fields of the selection set opening at `pos`; returns them and the position after it."""
    fields, pos = [], pos + 1
    while tokens[pos] != "}":
        if tokens[pos] == "...":
            raise GraphQLError("The simulator does not read fragments at the root of an operation")
        if not _NAME_RE.fullmatch(tokens[pos]):
            raise _syntax_error(f'unexpected "{tokens[pos]}"')
        alias = name = tokens[pos]
        pos += 1
        if tokens[pos] == ":":
            name, pos = tokens[pos + 1], pos + 2
            if not _NAME_RE.fullmatch(name):
                raise _syntax_error(f'unexpected "{name}"')
        arguments: dict = {}
        if tokens[pos] == "(":
            arguments, pos = _arguments(tokens, pos)
        pos = _skip_directives(tokens, pos)
        if tokens[pos] == "{":
            pos = _skip(tokens, pos)
        fields.append(RootField(name, alias, arguments))
    return fields, pos + 1


def _arguments(tokens: list[str], pos: int) -> tuple[dict, int]:
    arguments, pos = {}, pos + 1
    while tokens[pos] != ")":
        name = tokens[pos]
        if not _NAME_RE.fullmatch(name) or tokens[pos + 1] != ":":
            raise _syntax_error(f'unexpected "{name}"')
        pos += 2
        word = tokens[pos]
        if word == "$":
            arguments[name], pos = ("variable", tokens[pos + 1]), pos + 2
        elif word in ("[", "{"):
            arguments[name], pos = ("complex", None), _skip(tokens, pos)
        else:
            arguments[name], pos = ("value", _literal(word)), pos + 1
    return arguments, pos + 1


def _literal(word: str) -> object:
    if word.startswith('"""'):
        return word[3:-3]
    if word.startswith('"'):
        try:
            return json.loads(word)
        except ValueError:
            raise _syntax_error(f"bad string {word}") from None
    if word in ("true", "false"):
        return word == "true"
    if word == "null":
        return None
    if re.fullmatch(r"-?[0-9]+", word):
        return int(word)
    if re.fullmatch(r"-?[0-9.eE+-]+", word):
        return float(word)
    if _NAME_RE.fullmatch(word):
        return word  # an enum value
    raise _syntax_error(f'unexpected "{word}"')


def _skip(tokens: list[str], pos: int) -> int:
    """The position after the bracketed group opening at `pos` (balanced, any bracket kind)."""
    depth = 0
    while True:
        word = tokens[pos]
        if word in ("(", "[", "{"):
            depth += 1
        elif word in (")", "]", "}"):
            depth -= 1
            if depth == 0:
                return pos + 1
        pos += 1


def _skip_directives(tokens: list[str], pos: int) -> int:
    while tokens[pos] == "@":
        pos += 2
        if tokens[pos] == "(":
            pos = _skip(tokens, pos)
    return pos


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


class VariableError(GraphQLError):
    """A variable missing or of the wrong type, as GraphQL's input coercion reports it."""

    def __init__(self, variable: str, type_name: str, value: object, path: list, explanation: str):
        super().__init__(
            f"Variable ${variable} of type {type_name} was provided invalid value"
            + (f" for {'.'.join(map(str, path))}" if path else ""),
            {"value": value, "problems": [{"path": path, "explanation": explanation}]},
        )


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
        if not _VERSION_RE.fullmatch(version):
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
            operation = parse_operation(body["query"], body.get("operationName"))
            _check_fields(operation)
        except GraphQLError as exc:
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
                data = {field.alias: self._resolve(field, variables) for field in operation.fields}
            except GraphQLError as exc:
                sim.bucket.give_back(cost)
                return json_response(exc.body())
            cost_info = {"requestedQueryCost": cost, "actualQueryCost": cost, "throttleStatus": sim.bucket.status()}
        if operation.kind == "mutation" and sim.take_lost_answer():
            call.answer_lost = True
            return json_response({"errors": REASONS[502]}, 502)
        return json_response({"data": data, "extensions": {"cost": cost_info}})

    def _journal(self, version: str) -> GraphQLCall:
        body = _json_body() or {}
        query = body.get("query") if isinstance(body.get("query"), str) else None
        variables = body.get("variables") if isinstance(body.get("variables"), dict) else {}
        operation = None
        if query is not None:
            try:
                operation = parse_operation(query, body.get("operationName"))
            except GraphQLError:
                pass
        call = GraphQLCall(
            version=version,
            operation=operation.kind if operation else None,
            operation_name=operation.name if operation else None,
            root_fields=tuple(f.name for f in operation.fields) if operation else (),
            variables=variables,
            query=query,
        )
        with self.sim.lock:
            self.sim.requests.append(call)
        return call

    # --- root fields (under the lock) -------------------------------------------------------------------------

    def _resolve(self, field: RootField, variables: dict) -> object:
        resolver = getattr(self, f"_field_{field.name}")
        return resolver(_Arguments(field, variables))

    def _field_shop(self, args: _Arguments) -> dict:
        sim = self.sim
        return {
            "id": gid("Shop", sim.shop_id),
            "name": sim.shop_name,
            "currencyCode": sim.store.currency,
            "myshopifyDomain": sim.shop_domain,
        }

    def _field_customer(self, args: _Arguments) -> dict | None:
        customer_id = _gid_of(args.require("id", "ID!", str), "Customer")
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

    def _field_order(self, args: _Arguments) -> dict | None:
        order_id = _gid_of(args.require("id", "ID!", str), "Order")
        order = self.sim.store.orders.get(order_id) if order_id else None
        if order is None:
            return None
        transactions = [*order.transactions, *(t for refund in order.refunds for t in refund.transactions)]
        return {
            "id": gid("Order", order.id),
            "name": f"#{order.number}",
            "transactions": [_order_transaction_json(t, order.currency) for t in transactions],
        }

    def _field_storeCreditAccountCredit(self, args: _Arguments) -> dict:  # noqa: N802 - the GraphQL name
        owner = args.require("id", "ID!", str)
        credit = args.require("creditInput", "StoreCreditAccountCreditInput!", dict)
        args.nested(credit, "creditInput", ["creditAmount"], dict)
        amount_text = args.nested(credit, "creditInput", ["creditAmount", "amount"], str)
        currency = args.nested(credit, "creditInput", ["creditAmount", "currencyCode"], str)
        expires_text = args.nested(credit, "creditInput", ["expiresAt"], str, required=False)
        notify = args.nested(credit, "creditInput", ["notify"], bool, required=False) or False
        expires_at = None
        if expires_text is not None:
            expires_at = parse_datetime(expires_text)
            if expires_at is None:
                raise VariableError(
                    args.variable_of("creditInput"), "StoreCreditAccountCreditInput!", credit, ["expiresAt"],
                    "Could not coerce value to DateTime",
                )  # fmt: skip
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

    def _field_storeCreditAccountDebit(self, args: _Arguments) -> dict:  # noqa: N802 - the GraphQL name
        owner = args.require("id", "ID!", str)
        debit = args.require("debitInput", "StoreCreditAccountDebitInput!", dict)
        args.nested(debit, "debitInput", ["debitAmount"], dict)
        amount_text = args.nested(debit, "debitInput", ["debitAmount", "amount"], str)
        currency = args.nested(debit, "debitInput", ["debitAmount", "currencyCode"], str)
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

    def _field_webhookSubscriptions(self, args: _Arguments) -> dict:  # noqa: N802 - the GraphQL name
        first = args.optional("first", "Int", int)
        subscriptions = list(self.sim.hub.subscriptions.values())
        shown = subscriptions[: first if first is not None else 250]
        return {
            "nodes": [_subscription_json(s) for s in shown],
            "pageInfo": {"hasNextPage": len(shown) < len(subscriptions), "endCursor": None},
        }

    def _field_webhookSubscriptionCreate(self, args: _Arguments) -> dict:  # noqa: N802 - the GraphQL name
        topic = args.require("topic", "WebhookSubscriptionTopic!", str)
        if topic not in TOPICS:
            raise VariableError(
                args.variable_of("topic"), "WebhookSubscriptionTopic!", topic, [],
                f"Expected \"{topic}\" to be one of: {', '.join(sorted(TOPICS))}",
            )  # fmt: skip
        spec = args.require("webhookSubscription", "WebhookSubscriptionInput!", dict)
        url = args.nested(spec, "webhookSubscription", ["callbackUrl"], str)
        format_ = args.nested(spec, "webhookSubscription", ["format"], str, required=False) or "JSON"
        field_path = ["webhookSubscription", "callbackUrl"]
        error = None
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
            error = {"field": field_path, "message": "Address is invalid"}
        elif self.sim.hub.find(topic, url) is not None:
            error = {"field": field_path, "message": "Address for this topic has already been taken"}
        if error is not None:
            return {"webhookSubscription": None, "userErrors": [error]}
        subscription = self.sim.hub.add(self.sim.store.next_id(), topic, url, format_)
        return {"webhookSubscription": _subscription_json(subscription), "userErrors": []}


class _Arguments:
    """A root field's arguments resolved against the variables, with GraphQL-style type errors."""

    def __init__(self, field: RootField, variables: dict):
        self.field = field
        self.variables = variables

    def variable_of(self, name: str) -> str:
        kind, value = self.field.arguments.get(name, ("value", None))
        return value if kind == "variable" else name

    def _value(self, name: str) -> tuple[bool, object]:
        kind, value = self.field.arguments.get(name, (None, None))
        if kind is None:
            return False, None
        if kind == "variable":
            return value in self.variables, self.variables.get(value)
        if kind == "complex":
            raise GraphQLError(f"The simulator reads {self.field.name}({name}:) from variables only")
        return True, value

    def require(self, name: str, type_name: str, kind: type) -> object:
        present, value = self._value(name)
        if name not in self.field.arguments:
            raise GraphQLError(
                f"Field '{self.field.name}' is missing required arguments: {name}",
                {"code": "missingRequiredArguments", "className": "Field", "name": self.field.name},
            )
        if not present or value is None:
            raise VariableError(self.variable_of(name), type_name, None, [], "Expected value to not be null")
        if not _is_a(value, kind):
            raise VariableError(self.variable_of(name), type_name, value, [], f"Could not coerce value to {type_name}")
        return value

    def optional(self, name: str, type_name: str, kind: type) -> object:
        present, value = self._value(name)
        if not present or value is None:
            return None
        if not _is_a(value, kind):
            raise VariableError(self.variable_of(name), type_name, value, [], f"Could not coerce value to {type_name}")
        return value

    def nested(self, root: dict, argument: str, path: list[str], kind: type, required: bool = True) -> object:
        node: object = root
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if node is None:
            if required:
                raise VariableError(self.variable_of(argument), _TYPE_NAMES.get(argument, "Input!"), root, path,
                                    "Expected value to not be null")  # fmt: skip
            return None
        if not _is_a(node, kind):
            raise VariableError(
                self.variable_of(argument), _TYPE_NAMES.get(argument, "Input!"), root, path,
                f"Could not coerce value to {kind.__name__}",
            )  # fmt: skip
        return node


_TYPE_NAMES = {
    "creditInput": "StoreCreditAccountCreditInput!",
    "debitInput": "StoreCreditAccountDebitInput!",
    "webhookSubscription": "WebhookSubscriptionInput!",
}


def _is_a(value: object, kind: type) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _check_fields(operation: Operation) -> None:
    allowed, root_type = (MUTATION_FIELDS, "Mutation") if operation.kind == "mutation" else (QUERY_FIELDS, "QueryRoot")
    if operation.kind == "subscription":
        raise GraphQLError("Subscriptions are not supported")
    for field in operation.fields:
        if field.name not in allowed:
            raise GraphQLError(
                f"Field '{field.name}' doesn't exist on type '{root_type}'",
                {"code": "undefinedField", "typeName": root_type, "fieldName": field.name},
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


def _order_transaction_json(transaction: Transaction, currency: str) -> dict:
    amount = money_v2(transaction.amount, currency)  # the simulator's orders are in the shop's currency
    return {
        "id": gid("OrderTransaction", transaction.id),
        "kind": transaction.kind.upper(),  # GraphQL enums: SALE, REFUND; SUCCESS, FAILURE
        "status": transaction.status.upper(),
        "gateway": transaction.gateway,
        "amountSet": {"shopMoney": amount, "presentmentMoney": amount},
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
