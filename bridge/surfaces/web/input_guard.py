"""Input no surface can store or read, refused at the edge before any view runs (API, console, statement page).

- A NUL character: PostgreSQL's text cannot hold U+0000, so a `%00` in a customer id, a search or a sign-in e-mail,
  or a `\\u0000` in a JSON reason, used to reach a query and end in a 500 (SQLite stored it). Path arguments, query,
  form and JSON body are looked at; the first field holding one is named.
- A JSON body nested deeper than Python's parser goes (`[[[[…]]]]`): its RecursionError used to be a 500.

Each is a ValidationFailed naming the field, which the API answers as 422 JSON and the console as its error page.
Webhook bodies are the platforms' signed bytes and are left to the webhook pipeline: it answers a body too deep as
"not JSON", and its text fields drop a NUL when parsed (webhooks/payload_fields.py), so the money still moves.
"""

from __future__ import annotations

from flask import Flask, request

from bridge.errors import ValidationFailed

NUL = "\x00"
PROBLEM = "contains a NUL character"


def install(app: Flask) -> None:
    app.before_request(refuse_unreadable_input)


def refuse_unreadable_input() -> None:
    field = _field_with_nul()
    if field is not None:
        raise ValidationFailed(f"{field} {PROBLEM}", fields={field: PROBLEM})


def _field_with_nul() -> str | None:
    for name, value in (request.view_args or {}).items():
        if isinstance(value, str) and NUL in value:
            return name
    signed = request.path.startswith("/webhooks/")  # the body is read raw by its endpoint: never parsed here
    for source in (request.args,) if signed else (request.args, request.form):
        for name, value in source.items(multi=True):
            if NUL in name or NUL in value:
                return _printable(name)
    return None if signed else _in_json(_json_body())


def _json_body():
    if not request.is_json:
        return None
    try:
        return request.get_json(silent=True)  # the view parses the body again (webargs): at most MAX_CONTENT_LENGTH
    except RecursionError as exc:  # silent=True covers ValueError only
        raise ValidationFailed("the body is nested too deep", fields={"body": "nested too deep"}) from exc


def _in_json(body) -> str | None:
    """The dotted path of the first string (or key) holding a NUL; iterative, as JSON may nest deep."""
    pending = [("", body)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, str):
            if NUL in value:
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
            if NUL in key:
                return _printable(name)
            pending.append((name, item))
    return None


def _printable(name: str) -> str:
    return name.replace(NUL, "\\0")[:100]
