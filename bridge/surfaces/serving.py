"""`wallet-bridge serve` (and so `make run`): the bridge through gunicorn, as in production, in one process of
several threads. With the embedded worker (the SQLite default) the outbox worker is a thread of that process, so
a newcomer runs one command; production runs gunicorn with deploy/gunicorn.conf.py and `wallet-bridge worker`."""

from __future__ import annotations

from gunicorn.app.base import BaseApplication

from bridge.config import Settings
from bridge.surfaces.app import create_app
from bridge.surfaces.workers import start_embedded_worker


class BridgeServer(BaseApplication):
    def __init__(self, settings: Settings, bind: str, threads: int):
        self.settings = settings
        # One process: SQLite has one writer at a time anyway, and one outbox worker is all a newcomer needs.
        # The access log goes to the terminal, statement tokens redacted (bridge/surfaces/web/access_log.py).
        self.options = {
            "bind": bind,
            "workers": 1,
            "worker_class": "gthread",
            "threads": threads,
            "timeout": 30,
            "graceful_timeout": 20,
            "accesslog": "-",
            "logger_class": "bridge.surfaces.web.access_log.TokenFreeGunicornLogger",
        }
        super().__init__()

    def load_config(self) -> None:
        for name, value in self.options.items():
            self.cfg.set(name, value)
        if "control_socket_disable" in self.cfg.settings:  # newer gunicorn: else two `serve`s share one socket
            self.cfg.set("control_socket_disable", True)

    def load(self):
        """Called in the worker process, after the fork: its app, database connections and outbox thread are
        its own (a restarted worker starts them again)."""
        app = create_app(self.settings)
        if self.settings.embedded_worker:
            start_embedded_worker(app.extensions["wallet_bridge"])
        return app
