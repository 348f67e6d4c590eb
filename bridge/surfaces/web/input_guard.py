"""Input no surface can store or read, refused at the edge before any view runs (API, console, statement page).

- A NUL character: PostgreSQL's text cannot hold U+0000, so a `%00` in a customer id, a search or a sign-in e-mail,
  a `\\u0000` in a JSON reason, or one in an `Idempotency-Key` or a webhook's topic header, used to reach a query and
  end in a 500 (SQLite stored it). Path arguments, headers, query, form and JSON body are looked at; the first field
  holding one is named.
- A lone surrogate (`\\ud800` in JSON: half of a UTF-16 pair) is no character at all and cannot be written as UTF-8,
  by either database: a 500 too. Only JSON can carry one (werkzeug decodes paths, queries and forms leniently).
- A JSON body nested deeper than Python's parser goes (`[[[[…]]]]`): its RecursionError used to be a 500; so was a
  number longer than Python reads (4 300 digits), whose ValueError is no JSON error to the view's parser.
- A body sent as JSON that is not (cut short, not UTF-8): the view's parser answered a bare 400 naming nothing.

Each is a ValidationFailed naming the field, which the API answers as 422 JSON and the console as its error page.
Webhook bodies are the platforms' signed bytes and are left to the webhook pipeline: it answers a body too deep as
"not JSON", and its text fields drop a NUL or a lone surrogate when parsed (webhooks/payload_fields.py), so the
money still moves.
"""

from __future__ import annotations

import json
import re

from flask import Flask, request

from bridge.errors import ValidationFailed

NUL = "\x00"
PROBLEM = "contains a NUL character"
NOT_UNICODE = "is not valid Unicode (a lone surrogate)"
_SURROGATE = re.compile("[\ud800-\udfff]")


def install(app: Flask) -> None:
    app.before_request(refuse_unreadable_input)


def refuse_unreadable_input() -> None:
    body = _json_body()  # parsed once for both looks
    field = _field_with_nul(body)
    if field is not None:
        raise ValidationFailed(f"{field} {PROBLEM}", fields={field: PROBLEM})
    field = _in_json(body, _SURROGATE.search)
    if field is not None:
        raise ValidationFailed(f"{field} {NOT_UNICODE}", fields={field: NOT_UNICODE})


def _field_with_nul(body) -> str | None:
    for name, value in (request.view_args or {}).items():
        if isinstance(value, str) and NUL in value:
            return name
    for name, value in request.headers.items():  # unsigned, even on a webhook
        if NUL in name or NUL in value:
            return _printable(name)
    for source in (request.args,) if _signed() else (request.args, request.form):
        for name, value in source.items(multi=True):
            if NUL in name or NUL in value:
                return _printable(name)
    return _in_json(body, lambda text: NUL in text)


def _signed() -> bool:
    """A webhook: its endpoint reads the body raw (the signed bytes), so it is never parsed here."""
    return request.path.startswith("/webhooks/")


def _json_body():
    if _signed() or not request.is_json:
        return None
    body = request.get_data(cache=True)
    if not body:
        return None  # a route without a body
    try:  # read as the view's parser (webargs) reads it, which parses it again: at most MAX_CONTENT_LENGTH
        return json.loads(body.decode("utf-8"))
    except RecursionError as exc:
        raise ValidationFailed("the body is nested too deep", fields={"body": "nested too deep"}) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:  # webargs' own refusal would name no field
        raise ValidationFailed("the body is not JSON (UTF-8)", fields={"body": "not JSON"}) from exc
    except ValueError as exc:  # an integer too long for int()
        raise ValidationFailed("a number in the body is too long", fields={"body": "number too long"}) from exc


def _in_json(body, holds) -> str | None:
    """The dotted path of the first string (or key) that `holds` the character; iterative, as JSON may nest deep."""
    pending = [("", body)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, str):
            if holds(value):
                return path or "body"
            continue
        if isinstance(value, dict):
            items = [(str(key), item) for key, item in value.items()]
        elif isinstance(value, list):
            items = [(str(index), item) for index, item in enumerate(value)]
        else:
            continue
        for key, item in reversed(items):
            name = f"{path}.{key}" if path else key
            if holds(key):
                return _printable(name)
            pending.append((name, item))
    return None


def _printable(name: str) -> str:
    return _SURROGATE.sub("\ufffd", name.replace(NUL, "\\0"))[:100]
