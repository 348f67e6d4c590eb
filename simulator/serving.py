"""Serving a simulator's Flask app on 127.0.0.1 from a background thread, for tests and the demo."""

from __future__ import annotations

import threading

from werkzeug.serving import WSGIRequestHandler, make_server


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:  # keep test and demo output clean
        pass


class BackgroundServer:
    """A threaded werkzeug server; a short poll interval keeps `stop()` fast over a test suite."""

    def __init__(self, name: str):
        self._name = name
        self._server = None
        self._thread: threading.Thread | None = None

    def start(self, app, host: str, port: int) -> str:
        self._server = make_server(host, port, app, threaded=True, request_handler=_QuietHandler)
        server = self._server
        self._thread = threading.Thread(
            target=lambda: server.serve_forever(poll_interval=0.01), name=self._name, daemon=True
        )
        self._thread.start()
        return self.base_url

    @property
    def base_url(self) -> str | None:
        """The served URL (None before `start()`)."""
        return f"http://{self._server.host}:{self._server.server_port}" if self._server else None

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
