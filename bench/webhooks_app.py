"""The WSGI module bench/webhooks.py runs under gunicorn: the production app, plus a no-op endpoint.

    gunicorn -c deploy/gunicorn.conf.py 'bench.webhooks_app:bench_app()'

POST /webhooks/bench/noop reads the body and answers {"ok": true}: the same gunicorn worker, the same Flask app
with the same app-wide before/after-request hooks (request metrics, the console's hooks), and no signature check,
no database. It is the baseline the webhook rate is compared with. It lives under /webhooks/ because the console
treats paths by prefix: under /webhooks/ a POST is a machine's (JSON errors, no CSRF token asked), exactly as a
delivery is; anywhere else the console would ask for a form's CSRF token and answer 400. It exists only here:
the production app (bridge.surfaces.wsgi:app) has no such route.
"""

from flask import Blueprint, Flask, request

from bridge.surfaces.app import create_app

NOOP_PATH = "/webhooks/bench/noop"
bench = Blueprint("bench", __name__)


@bench.post(NOOP_PATH)
def noop():
    request.get_data(cache=False)  # take the body off the socket, as the webhook view does
    return {"ok": True}


def with_noop(app: Flask) -> Flask:
    app.register_blueprint(bench)
    return app


def bench_app() -> Flask:
    return with_noop(create_app())
