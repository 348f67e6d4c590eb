"""Shopify's published Admin GraphQL schema (API_VERSION), and the check every request to the simulator
passes first: the document parses and validates against it, and the variables coerce to their declared
types. What fails is refused with Shopify's error shape (HTTP 200, top-level `errors`, no `data`), so the
simulator can never accept a document or a variable that a real shop refuses; `select` then shapes its
answer to what the document selects. The bridge's own test (tests/e2e/test_shopify_schema.py) validates what
the bridge sends with the same variable check. The schema file lives with the test fixtures: the
simulator runs from a checkout (tests, `wallet-bridge demo`), never from an installed wheel.

Shopify's custom scalars are strings on the wire; the schema file cannot say what a valid one is, so the
few the bridge sends are given a parser here (DateTime, Decimal, URL). The error messages are
graphql-core's wording in Shopify's layout, not Shopify's exact text."""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    build_schema,
    default_field_resolver,
    execute,
    get_operation_ast,
    is_non_null_type,
    parse,
    validate,
)
from graphql.utilities import coerce_input_value, type_from_ast, value_from_ast

from simulator.shopify_wire import API_VERSION, parse_datetime

SCHEMA_PATH = (
    Path(__file__).resolve().parent.parent
    / "tests"
    / "fixtures"
    / "shopify"
    / (f"shopify-admin-{API_VERSION}.graphql.gz")
)
_DECIMAL_RE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#]+[^\s]*")


class SchemaRefusal(Exception):
    """What Shopify answers a request that does not validate: `{"errors": [...]}`."""

    def __init__(self, errors: list[dict]):
        super().__init__(errors[0]["message"])
        self.errors = errors

    def body(self) -> dict:
        return {"errors": self.errors}


@dataclass(frozen=True)
class CheckedRequest:
    document: DocumentNode
    operation: OperationDefinitionNode
    variables: dict  # coerced to their declared types


@cache
def admin_schema() -> GraphQLSchema:
    """Built once per process (about 1.5 s: the schema is 3 MB of SDL)."""
    schema = build_schema(gzip.decompress(SCHEMA_PATH.read_bytes()).decode("utf-8"), assume_valid_sdl=True)
    for name, parser in (("DateTime", _date_time), ("Decimal", _decimal), ("URL", _url)):
        schema.type_map[name].parse_value = parser
    return schema


def check_request(query: str, variables: dict, operation_name: str | None = None) -> CheckedRequest:
    """The operation to run, with its variables coerced; raises SchemaRefusal as Shopify would answer."""
    document, errors = _validated(query)
    if errors:
        raise SchemaRefusal(errors)
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        message = f'No operation named "{operation_name}"' if operation_name else "An operation name is required"
        raise SchemaRefusal([{"message": message}])
    return CheckedRequest(document, operation, coerce_variables(admin_schema(), operation, variables))


@lru_cache(maxsize=256)
def _validated(query: str) -> tuple[DocumentNode | None, list[dict]]:
    """The document and Shopify's errors for it; the same text always validates alike, so a client's few
    documents are validated once each (a validation takes milliseconds over a schema this size)."""
    try:
        document = parse(query)
    except GraphQLError as exc:
        return None, [_formatted(exc)]
    return document, [_formatted(error) for error in validate(admin_schema(), document)]


def select(checked: CheckedRequest, raw_variables: dict, answers: dict) -> dict:
    """The answer Shopify gives: exactly the fields the document selects, read from `answers` (root field
    alias → a JSON-shaped value holding at least those fields; `__typename` tells an interface's type).
    A selected non-null field the answers lack is an error in the answer, as GraphQL reports it."""
    result = execute(
        admin_schema(),
        checked.document,
        root_value=answers,
        variable_values=raw_variables,
        operation_name=_name_of(checked.operation),
        field_resolver=_by_alias_at_the_root,
    )
    answer: dict = {"data": result.data}
    if result.errors:
        answer["errors"] = [_formatted(error) for error in result.errors]
    return answer


def _by_alias_at_the_root(source, info, **arguments):
    """Root fields were answered per alias (two aliases of one field may differ); the rest are plain keys."""
    if info.path.prev is None:
        return source[info.path.key]
    return default_field_resolver(source, info, **arguments)


def _name_of(operation: OperationDefinitionNode) -> str | None:
    return operation.name.value if operation.name else None


def coerce_variables(schema: GraphQLSchema, operation: OperationDefinitionNode, variables: dict) -> dict:
    """The variables as their declared types; every problem is reported, one error per variable, in the
    layout of Shopify's "Variable $x of type T was provided invalid value" errors."""
    coerced, errors = {}, []
    for definition in operation.variable_definitions:
        name, type_ = definition.variable.name.value, type_from_ast(schema, definition.type)
        if name not in variables:
            if definition.default_value is not None:
                coerced[name] = value_from_ast(definition.default_value, type_)
            elif is_non_null_type(type_):
                errors.append(_variable_error(name, type_, None, [([], "Expected value to not be null")]))
            continue
        value, problems = _coerce(variables[name], type_)
        if problems:
            errors.append(_variable_error(name, type_, variables[name], problems))
        coerced[name] = value
    if errors:
        raise SchemaRefusal(errors)
    return coerced


def _coerce(value: object, type_) -> tuple[object, list[tuple[list, str]]]:
    problems: list[tuple[list, str]] = []
    coerced = coerce_input_value(value, type_, lambda path, _, error: problems.append((path, error.message)))
    return coerced, problems


def _variable_error(name: str, type_, value: object, problems: list[tuple[list, str]]) -> dict:
    where = ", ".join(f"{'.'.join(map(str, path))} ({explanation})" for path, explanation in problems if path)
    return {
        "message": f"Variable ${name} of type {type_} was provided invalid value" + (f" for {where}" if where else ""),
        "extensions": {
            "value": value,
            "problems": [{"path": path, "explanation": explanation} for path, explanation in problems],
        },
    }


def _formatted(error: GraphQLError) -> dict:
    return {key: value for key, value in error.formatted.items() if value is not None}


def _date_time(value: object) -> str:
    if parse_datetime(value) is None:
        raise ValueError(f"{value!r} is not an ISO 8601 date and time with its offset")
    return value


def _decimal(value: object) -> str:
    if not isinstance(value, str) or not _DECIMAL_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a decimal string")
    return value


def _url(value: object) -> str:
    if not isinstance(value, str) or not _URL_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not an absolute URL")
    return value
