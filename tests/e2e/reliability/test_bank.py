"""The bank test, small size: the real service (gunicorn, two outbox workers, PostgreSQL) fed by a simulated
WooCommerce shop, under SIGKILLs, a shop outage and a dropped database connection; then the books are checked.

The harness is tests/e2e/reliability/bank.py; the full size is bench/bank.py; what is checked and the recorded
runs are in docs/reliability.md. Runs in the PostgreSQL pass of `make test` (35 to 65 s here, depending on the load)."""

import os

import pytest

from tests.e2e.reliability.bank import BankConfig, format_result, run_bank

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
