"""The customer list's filters: locked wallets, wallets with a balance, credit expiring within N days; a search
that knows letters beyond ASCII on SQLite as on PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from bridge.accounts import ensure_customer, find_wallet
from bridge.db import unit_of_work
from bridge.models import Account, CreditLot, Customer, LedgerTransaction
from tests.console_support import move, text_of

pytest_plugins = ("tests.console_fixtures",)  # fixtures: merchant, console

NOW = datetime.now(UTC)


def names_in(page: str) -> list[str]:
    return sorted(re.findall(r'/customers/[^"]+">([^<]+)</a>', page))


def listed(console, shop, **args) -> list[str]:
    response = console.get(f"/shops/{shop.id}/customers", query_string=args)
    assert response.status_code == 200, text_of(response)
    return names_in(text_of(response))


def expiring_lot(services, shop, external_id: str, amount: int, expires_at: datetime, remaining: int | None = None):
    """A promotional lot of the customer's wallet that expires at `expires_at`."""
    with unit_of_work(services.sessions) as session:
        customer = session.scalar(
            select(Customer).where(Customer.shop_id == shop.id, Customer.external_id == external_id)
        )
        wallet = find_wallet(session, customer, shop.currency)
        transaction = session.scalar(select(LedgerTransaction.id).order_by(LedgerTransaction.id.desc()).limit(1))
        session.add(
            CreditLot(
                shop_id=shop.id,
                account_id=wallet.id,
                transaction_id=transaction,
                kind="promotional",
                source="promotion",
                amount=amount,
                remaining=amount if remaining is None else remaining,
                expires_at=expires_at,
            )
        )


@pytest.fixture
def people(services, shop):
    """Anna: 10.00, locked. Björn: 5.00, 5.00 of it expiring in 3 days. Cem: 0.00 after spending all, a spent lot
    expiring tomorrow. Dora: never moved money. Erik: 2.00 expiring in 40 days, another 1.00 already expired."""
    s = shop.shop
    day = NOW - timedelta(days=1)
    move(services, s, "1", "adjustment", 1_000, day, "a", name="Anna", email="anna@example.com")
    move(services, s, "2", "promotion", 500, day, "b", name="Björn", email="bjorn@example.com")
    expiring_lot(services, s, "2", 500, NOW + timedelta(days=3))
    move(services, s, "3", "promotion", 300, day, "c1", name="Cem", email="cem@example.com")
    move(services, s, "3", "payment", -300, day, "c2")
    expiring_lot(services, s, "3", 300, NOW + timedelta(days=1), remaining=0)
    with unit_of_work(services.sessions) as session:
        ensure_customer(session, s.id, "4", name="Dora", email="dora@example.com")
    move(services, s, "5", "promotion", 300, day, "e", name="Erik", email="erik@example.com")
    expiring_lot(services, s, "5", 200, NOW + timedelta(days=40))
    expiring_lot(services, s, "5", 100, NOW - timedelta(hours=1))
    with unit_of_work(services.sessions) as session:
        session.execute(
            update(Account)
            .where(
                Account.code.like("wallet:%"),
                Account.customer_id.in_(
                    select(Customer.id).where(Customer.shop_id == s.id, Customer.external_id == "1")
                ),
            )
            .values(locked=True)
        )
    return s


def test_filters_each_and_together(console, people):
    assert listed(console, people) == ["Anna", "Björn", "Cem", "Dora", "Erik"]
    assert listed(console, people, locked="1") == ["Anna"]
    assert listed(console, people, balance="1") == ["Anna", "Björn", "Erik"]
    assert listed(console, people, expiring="7") == ["Björn"]  # Cem's lot is spent, Erik's expired or far off
    assert listed(console, people, expiring="60") == ["Björn", "Erik"]
    assert listed(console, people, expiring="60", q="erik") == ["Erik"]
    assert listed(console, people, locked="1", balance="1", expiring="60") == []


def test_filters_are_counted_and_kept_by_sorting_and_pages(console, people):
    page = text_of(console.get(f"/shops/{people.id}/customers", query_string={"balance": "1", "expiring": "60"}))
    assert "2 customers matching the filters" in page
    by_balance = re.search(r'href="([^"]*sort=balance[^"]*)"', page).group(1).replace("&amp;", "&")
    assert "balance=1" in by_balance and "expiring=60" in by_balance
    assert 'name="balance" value="1" checked' in page and 'value="60"' in page


def test_a_number_of_days_that_is_not_one_is_said(console, people):
    refused = console.get(f"/shops/{people.id}/customers", query_string={"expiring": "soon"})
    assert refused.status_code == 422
    assert "Enter a number of days from 1 to 3660." in text_of(refused)
    assert names_in(text_of(refused)) == ["Anna", "Björn", "Cem", "Dora", "Erik"]  # not applied


@pytest.mark.parametrize(
    "query, expected",
    [
        ("MÜLLER", ["Jürgen Müller"]),
        ("müller", ["Jürgen Müller"]),
        ("ÇELIK@", ["Zeynep"]),
        ("åsa öberg", ["ÅSA ÖBERG"]),
    ],
)
def test_search_ignores_case_beyond_ascii(console, services, shop, query, expected):
    s = shop.shop
    with unit_of_work(services.sessions) as session:
        ensure_customer(session, s.id, "10", name="Jürgen Müller", email="jm@example.de")
        ensure_customer(session, s.id, "11", name="Zeynep", email="çelik@example.com.tr")
        ensure_customer(session, s.id, "12", name="ÅSA ÖBERG", email="asa@example.se")
        ensure_customer(session, s.id, "13", name="Muller", email="muller@example.com")
    assert listed(console, s, q=query) == expected


def test_a_page_past_the_end_says_so(console, people):
    past = console.get(f"/shops/{people.id}/customers", query_string={"page": "3", "locked": "1"})
    assert past.status_code == 404
    assert "There is no page 3: this list has 1 page." in text_of(past) and names_in(text_of(past)) == []
    empty = console.get(f"/shops/{people.id}/customers", query_string={"page": "2", "q": "nobody"})
    assert "There is no page 2: the list is empty, so it has 1 page." in text_of(empty)
