"""The bank test, small size: the real service (gunicorn, two outbox workers, PostgreSQL) fed by a simulated
WooCommerce shop, under SIGKILLs, a shop outage and a dropped database connection; then the books are checked.

The harness is tests/reliability/bank.py; the full size is bench/bank.py; what is checked and the recorded
runs are in docs/reliability.md. Runs in the PostgreSQL pass of `make test` (35 to 65 s here, depending on the load)."""

import os

import pytest

from bridge.db import unit_of_work
from bridge.ledger import verify
from bridge.models import InboxDelivery
from tests.reliability.bank import BankConfig, format_result, run_bank
from tests.test_api import auth
from tests.woo import connect_for_tests, order_body, post_delivery

SEED = int(os.environ.get("BANK_SEED", "7"))


@pytest.mark.postgres_only
@pytest.mark.bank
def test_the_books_balance_after_kills_an_outage_and_a_dropped_database_connection(postgres_url, capsys):
    config = BankConfig(
        database_url=postgres_url,
        seed=SEED,
        shops=1,
        threads=2,
        operations=100,
        web_workers=2,
        outbox_workers=2,
        kills=3,  # a gunicorn worker, an outbox worker, a gunicorn worker
        outage_seconds=3.0,
        lost_answers=4,
        expiries=1,
        recheck=False,  # the full size (bench/bank.py) also syncs and expires a second time
        deadline_seconds=45.0,
        settle_seconds=30.0,
        echo=lambda line: None,
    )

    result = run_bank(config)

    report = format_result(result)
    with capsys.disabled():
        print("\n" + report)
    figures = result.figures
    assert result.ok, report
    assert figures["kills"]["web_worker_sigkill"] + figures["kills"]["outbox_worker_sigkill"] >= 3, report
    assert figures["kills"]["web_workers_replaced_by_gunicorn"] == figures["kills"]["web_worker_sigkill"], report
    assert figures["faults"]["db_drops"] == 1 and figures["faults"]["shop_outage_seconds"] >= 3.0, report
    assert figures["shop_journal"]["failed_by_outage"] > 0, report  # the outage did meet the bridge
    assert sum(figures["operations"].values()) >= 200, report
    assert figures["ledger_verify_exit_code"] == 0, report


def test_money_coming_back_into_a_topup_refunded_to_the_card_is_taken_back(client, services, shop):
    """The bank test's failure, distilled: a €50 top-up, €30 of it spent on a wallet order, the top-up refunded
    to the card in full (the bridge takes back the €20 left), then the wallet order cancelled: its €30 go back
    into the top-up's lot. The card already has all €50 back, so the €30 belong to the merchant."""
    connect_for_tests(services, shop.shop.id)
    topup_meta = [{"id": 9, "key": "_wallet_bridge_topup", "value": "5000"}]
    topup = order_body(id=30, status="processing", payment_method="stripe", total="50.00", refunds=[],
                       meta_data=topup_meta)  # fmt: skip
    spend = order_body(id=40, status="pending", payment_method="wallet", total="30.00", refunds=[],
                       date_modified_gmt="2026-11-23T10:00:00")  # fmt: skip
    refunded = dict(topup, status="refunded", refunds=[{"id": 31, "reason": "changed mind", "total": "-50.00"}])
    cancelled = dict(spend, status="cancelled", date_modified_gmt="2026-11-23T10:05:00")
    for topic, body in (("order.updated", topup), ("order.created", spend), ("order.updated", refunded),
                        ("order.updated", cancelled)):  # fmt: skip
        assert post_delivery(client, shop.shop.id, topic, body).get_json()["status"] == "applied"

    again = post_delivery(client, shop.shop.id, "order.updated", refunded).get_json()  # a repeat, or `sync`

    with unit_of_work(services.sessions) as session:
        errors = [d.error for d in session.query(InboxDelivery).filter(InboxDelivery.status == "failed")]
        assert verify(session) == []
    assert errors == [] and again["status"] == "applied"
    assert client.get("/api/v1/customers/2/wallet", headers=auth(shop)).get_json()["balance"] == 0
