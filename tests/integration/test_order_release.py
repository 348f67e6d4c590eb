"""A failed order's wallet part goes back once the customer has left it unpaid for the shop's number of days
(WooCommerce never cancels a failed order), and a trashed order's at once, as a cancellation's would."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from bridge.db import unit_of_work
from bridge.models import OutboxMessage, ShopOrder, utcnow
from bridge.usecases.order_release import release_abandoned_failed_orders
from tests.integration.test_order_lifecycle import configure, deliver, kinds, messages
from tests.integration.test_woocommerce_webhooks import count, fund, wallet_balance, woo  # noqa: F401 - the fixture
from tests.woo import THE_REST_BY_CARD, post_delivery

DAY = timedelta(days=1)


def partly_paid_then_failed(client, services, woo) -> None:  # noqa: F811
    """€10.00 from the wallet on the €41.48 order, the card declined for the rest."""
    fund(services, woo, 1_000)
    deliver(client, woo, 0)
    deliver(client, woo, 1, status="failed", **THE_REST_BY_CARD)
    assert wallet_balance(services, woo) == 0


def release(services, days_from_now: int) -> int:
    return release_abandoned_failed_orders(services.sessions, now=utcnow() + days_from_now * DAY)


def test_a_failed_order_left_for_the_shops_days_gives_its_wallet_part_back_once(client, services, woo):  # noqa: F811
    partly_paid_then_failed(client, services, woo)

    assert release(services, 6) == 0  # within the default 7 days the customer may still pay
    assert (release(services, 8), release(services, 8)) == (1, 0)

    assert wallet_balance(services, woo) == 1_000
    assert kinds(services) == ["adjustment", "payment", "payment_reversal"]
    told = {"order_id": "12", "note": "€10.00 returned to your wallet.", "note_customer": "2"}  # linked to their wallet
    assert ("order.note", told) in messages(services)
    deliver(client, woo, 2, status="cancelled", **THE_REST_BY_CARD)  # cancelled at last
    assert wallet_balance(services, woo) == 1_000 and kinds(services)[-1] == "payment_reversal"


@pytest.mark.parametrize(("setting", "released_after_days"), [(2, 3), (0, None)])
def test_the_merchant_sets_the_days_or_never(client, services, woo, setting, released_after_days):  # noqa: F811
    configure(services, woo, failed_order_release_days=setting)
    partly_paid_then_failed(client, services, woo)

    assert release(services, 1) == 0
    assert release(services, 3650) == (1 if released_after_days else 0)


def test_a_failed_order_paid_or_still_moving_is_not_released(client, services, woo):  # noqa: F811
    partly_paid_then_failed(client, services, woo)
    deliver(client, woo, 2, status="processing", **THE_REST_BY_CARD)  # paid on the next try

    assert release(services, 30) == 0 and wallet_balance(services, woo) == 0


def test_the_hourly_expire_job_releases_them(client, services, woo, app):  # noqa: F811
    configure(services, woo, failed_order_release_days=1)
    partly_paid_then_failed(client, services, woo)
    with unit_of_work(services.sessions) as session:  # the order failed two days ago
        session.execute(update(ShopOrder).values(updated_at=utcnow() - 2 * DAY))
    with app.app_context():
        result = app.test_cli_runner().invoke(args=["expire", "--json"])
    assert result.exit_code == 0, result.output
    assert '"failed_orders_released": 1' in result.output and wallet_balance(services, woo) == 1_000


def test_a_trashed_order_gives_its_wallet_part_back_like_a_cancellation(client, services, woo):  # noqa: F811
    partly_paid_then_failed(client, services, woo)

    for _ in range(2):  # WooCommerce's order.deleted body: the id alone
        assert post_delivery(client, woo, "order.deleted", {"id": 12}).get_json()["status"] == "applied"

    assert wallet_balance(services, woo) == 1_000
    assert kinds(services) == ["adjustment", "payment", "payment_reversal"]
    assert count(services, OutboxMessage, OutboxMessage.kind == "order.note") == 1
    assert post_delivery(client, woo, "order.deleted", {"id": 99}).get_json()["status"] == "applied"  # unknown
    assert post_delivery(client, woo, "order.deleted", {"id": "12"}).status_code == 422
