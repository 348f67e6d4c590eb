"""Exit 0 when the PostgreSQL at argv[1] answers, 1 otherwise (used by `make test`)."""

import sys

from sqlalchemy import create_engine, text

try:
    with create_engine(sys.argv[1], connect_args={"connect_timeout": 3}).connect() as connection:
        connection.execute(text("SELECT 1"))
except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
    print(f"PostgreSQL not reachable at {sys.argv[1]}: {exc.__class__.__name__}", file=sys.stderr)
    sys.exit(1)
