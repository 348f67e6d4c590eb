"""The webhook benchmark's baseline answers as a delivery would be answered, minus the delivery's work."""

from bench.webhooks_app import NOOP_PATH, with_noop
from tests.woo import captured


def test_the_bench_noop_passes_the_webhook_middleware_without_a_csrf_token(app):
    body, headers = captured("0005")
    response = with_noop(app).test_client().post(NOOP_PATH, data=body, headers=headers)
    assert response.status_code == 200
    assert response.get_json() == {"ok": True}
