"""Every chart of the report adds up to the reconciliation of the same period, whatever kind of transaction moved
the money: a kind the report forgot would show as "Nothing in this period" beside a ledger that moved."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from bridge.accounts import SystemAccount, ensure_customer, points_account, system_account, wallet_account
from bridge.db import unit_of_work
from bridge.ledger import TRANSACTION_KINDS, Actor, Leg, post_transaction
from bridge.reports import MONEY_SOURCES, build_report, report_table
from bridge.surfaces.console.report_views import chart_series
from bridge.wallets import adjust_wallet
from tests.console_support import SYSTEM_SIDE, posted_at, text_of

pytest_plugins = ("tests.console_fixtures",)  # fixtures: merchant, console

TODAY = datetime.now(UTC).date()
DAY = TODAY - timedelta(days=2)
MERCHANT = Actor("merchant", "ann@example.com")


def _post(session, shop, kind: str, account, amount: int, key: str) -> None:
    counter = system_account(session, shop.id, SYSTEM_SIDE.get(kind, SystemAccount.PROMOTIONS), account.currency)
    post_transaction(
        session,
        shop_id=shop.id,
        kind=kind,
        reason=f"{kind} {key}",
        legs=[Leg(account, amount), Leg(counter, -amount)],
        idempotency_key=key,
    )


@pytest.fixture
def every_kind(services, shop):
    """One credit and one debit of money and of points for every transaction kind (a merchant's adjustment
    through adjust_wallet, as the console posts it), all on one day."""
    s = shop.shop
    with unit_of_work(services.sessions) as session, posted_at(datetime.combine(DAY, time(12), tzinfo=UTC)):
        customer = ensure_customer(session, s.id, "c1")
        wallet, points = wallet_account(session, customer, "EUR"), points_account(session, customer)
        _post(session, s, "topup", wallet, 1_000_000, "seed-money")
        _post(session, s, "points_earned", points, 1_000_000, "seed-points")
        for n, kind in enumerate(sorted(TRANSACTION_KINDS)):
            if kind == "adjustment":
                for direction, amount in (("credit", 447_200), ("debit", 53_658)):
                    adjust_wallet(
                        session,
                        s,
                        "c1",
                        direction=direction,
                        amount=amount,
                        reason="goodwill",
                        idempotency_key=direction,
                        actor=MERCHANT,
                    )
                continue
            _post(session, s, kind, wallet, 1_000 + n, f"{kind}-money-in")
            _post(session, s, kind, wallet, -(500 + n), f"{kind}-money-out")
            _post(session, s, kind, points, 10 + n, f"{kind}-points-in")
            _post(session, s, kind, points, -(5 + n), f"{kind}-points-out")
    return s


def test_every_transaction_kind_has_a_source_in_the_report():
    sourced = [kind for _, _, kinds in MONEY_SOURCES for kind in kinds]
    assert sorted(sourced) == sorted(TRANSACTION_KINDS)  # each kind once: none missing, none counted twice


@pytest.mark.parametrize("granularity", ["day", "week", "month"])
def test_each_chart_adds_up_to_the_reconciliation(services, every_kind, granularity):
    with unit_of_work(services.sessions) as session:
        report = build_report(session, every_kind.id, "EUR", DAY - timedelta(days=1), TODAY, granularity)
    money, points = report.money, report.points
    assert money.closes and points.closes
    assert {line.kind for line in money.lines} | {"expiry"} == TRANSACTION_KINDS  # every kind moved money
    charts = {
        name: [sum(s.values) for s in series]
        for name, (_, series) in chart_series(report).items()
        if name in ("wallet", "points", "reconciliation")
    }
    assert charts["wallet"] == [money.credits, money.debits + money.expiries]
    assert charts["points"] == [points.credits, points.debits + points.expiries]
    assert charts["reconciliation"] == [money.credits, money.debits + money.expiries]
    nets = report_table(report, "wallet").rows
    assert sum(sum(row[7:]) for row in nets) == money.closing - money.opening  # the sources' nets
    assert chart_series(report)["liability"][1][0].values[-1] == money.closing


def test_merchant_credits_and_debits_show_on_the_wallet_chart(console, services, shop):
    with unit_of_work(services.sessions) as session, posted_at(datetime.combine(DAY, time(12), tzinfo=UTC)):
        for direction, amount in (("credit", 447_200), ("debit", 53_658)):
            adjust_wallet(
                session,
                shop.shop,
                "c1",
                direction=direction,
                amount=amount,
                reason="goodwill",
                idempotency_key=direction,
                actor=MERCHANT,
            )
    page = text_of(console.get(f"/shops/{shop.shop.id}/reports"))
    wallet_card = page[page.index('id="table-wallet"') : page.index('id="table-liability"')]
    assert "Nothing in this period" not in wallet_card
    assert "4,472.00" in wallet_card and "536.58" in wallet_card


def test_an_empty_shop_shows_no_flat_line(console, shop):
    page = text_of(console.get(f"/shops/{shop.shop.id}/reports"))
    liability_card = page[page.index('id="table-liability"') : page.index('id="table-points"')]
    assert "Nothing in this period" in liability_card and "<polyline" not in liability_card
