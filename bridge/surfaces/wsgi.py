"""The WSGI entry point for gunicorn. The outbox worker runs as its own process in production
(`wallet-bridge worker`); only `wallet-bridge serve` starts one inside the web process."""

from bridge.surfaces.app import create_app

app = create_app()
