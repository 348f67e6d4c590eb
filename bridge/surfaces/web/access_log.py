"""Access logs that keep no bearer secret: a statement link's token is its reader's only credential for an hour,
and logs are kept longer and read by more people. Both ways the project runs gunicorn (deploy/gunicorn.conf.py
in production, `wallet-bridge serve` in development) write `/statement/[token]` instead, wherever a line would
hold one: the request line, the path, a Referer, a redirect's Location, any header or environ atom."""

from __future__ import annotations

import re

from gunicorn.glogging import Logger

STATEMENT_TOKEN = re.compile(r"/statement/[^/?#\s\"]+")
REDACTED = "/statement/[token]"


def without_tokens(text: str) -> str:
    return STATEMENT_TOKEN.sub(REDACTED, text)


class TokenFreeGunicornLogger(Logger):
    """gunicorn's logger (`logger_class` in deploy/gunicorn.conf.py) with every atom of the access line redacted."""

    def atoms(self, resp, req, environ, request_time) -> dict:
        atoms = super().atoms(resp, req, environ, request_time)
        return {name: without_tokens(value) if isinstance(value, str) else value for name, value in atoms.items()}
