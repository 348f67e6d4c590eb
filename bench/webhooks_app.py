"""The WSGI module bench/webhooks.py runs under gunicorn: the production app, plus a no-op endpoint.

    gunicorn -c deploy/gunicorn.conf.py bench.webhooks_app:app

POST /bench/noop reads the body and answers {"ok": true}: the same gunicorn worker, the same Flask app
with the same app-wide before/after-request hooks (request metrics, console), and no signature check, no
database. It is the baseline the webhook rate is compared with. Like the webhook blueprint it is exempt
from the console's CSRF check (a form token means nothing to a machine-to-machine POST). It exists only
here: the production app (bridge.surfaces.wsgi:app) has no such route.
"""

from flask import Blueprint, request

from bridge.surfaces.app import create_app

bench = Blueprint("bench", __name__)


@bench.post("/bench/noop")
def noop():
    request.get_data(cache=False)  # take the body off the socket, as the webhook view does
    return {"ok": True}


app = create_app()
app.register_blueprint(bench)
if "csrf" in app.extensions:  # flask_wtf.CSRFProtect, installed by the merchant console
    app.extensions["csrf"].exempt(bench)
