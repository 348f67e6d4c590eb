"""Customers in the console: search, sort and pages; a customer's statement; manual credit and debit (moved once
per form, never into overdraft, always with a reason); locking a wallet."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bridge.accounts import ensure_customer, find_wallet
from bridge.db import unit_of_work
from bridge.models import AuditEvent, Customer, Entry, LedgerTransaction
from tests.console_support import form_post, move, text_of

pytest_plugins = ("tests.console_fixtures",)  # fixtures: merchant, console

TOKEN = "0123456789abcdef0123456789abcdef"


def customer(services, shop, external_id="42", email="cleo@example.com", name="Cleo Customer"):
    with unit_of_work(services.sessions) as session:
        return ensure_customer(session, shop.shop.id, external_id, email=email, name=name)


def adjust(console, shop, external_id="42", token=TOKEN, **values):
    data = {"direction": "credit", "amount": "25.00", "reason": "Goodwill for a late parcel", "token": token}
    data.update(values)
    return form_post(console, f"/shops/{shop.shop.id}/customers/{external_id}/adjust", data)


def transactions(services) -> list[tuple]:
    with unit_of_work(services.sessions) as session:
        return session.execute(
            select(
                LedgerTransaction.kind,
                LedgerTransaction.actor_kind,
                LedgerTransaction.actor_id,
                LedgerTransaction.reason,
            ).order_by(LedgerTransaction.id)
        ).all()


def balance(services, shop, external_id="42") -> int:
    with unit_of_work(services.sessions) as session:
        found = session.execute(
            select(Customer).where(Customer.shop_id == shop.shop.id, Customer.external_id == external_id)
        ).scalar_one()
        wallet = find_wallet(session, found, shop.shop.currency)
        return wallet.balance if wallet else 0


# The list ---------------------------------------------------------------------------------------------------


@pytest.fixture
def crowd(services, shop):
    """30 customers with balances 1.00 … 30.00 EUR, moved an hour apart (customer 30 last)."""
    start = datetime.now(UTC) - timedelta(days=2)
    for n in range(1, 31):
        move(
            services,
            shop.shop,
            str(1000 + n),
            "adjustment",
            n * 100,
            start + timedelta(hours=n),
            f"seed-{n}",
            email=f"person{n}@example.com",
            name=f"Person {n:02d}",
        )


def names_in(page: str) -> list[str]:
    return re.findall(r">(Person \d\d)</a>", page)


def test_list_shows_balance_points_and_last_movement_newest_first_by_default(console, shop, crowd):
    page = text_of(console.get(f"/shops/{shop.shop.id}/customers"))
    assert "30 customers" in page
    assert names_in(page)[:3] == ["Person 30", "Person 29", "Person 28"]
    assert len(names_in(page)) == 25  # one page
    assert "€30.00" in page and "Page 1 of 2" in page


def test_list_sorts_by_any_column_both_ways(console, shop, crowd):
    ascending = text_of(console.get(f"/shops/{shop.shop.id}/customers?sort=balance&dir=asc"))
    assert names_in(ascending)[:2] == ["Person 01", "Person 02"]
    by_name = text_of(console.get(f"/shops/{shop.shop.id}/customers?sort=name&dir=desc"))
    assert names_in(by_name)[0] == "Person 30"
    nonsense = console.get(f"/shops/{shop.shop.id}/customers?sort=password&dir=sideways&page=x")
    assert nonsense.status_code == 200 and names_in(text_of(nonsense))[0] == "Person 30"


def test_list_pages(console, shop, crowd):
    second = text_of(console.get(f"/shops/{shop.shop.id}/customers?sort=balance&dir=asc&page=2"))
    assert names_in(second) == [f"Person {n}" for n in range(26, 31)] and "Page 2 of 2" in second
    beyond = console.get(f"/shops/{shop.shop.id}/customers?sort=name&page=99")
    assert beyond.status_code == 404 and names_in(text_of(beyond)) == []
    assert "There is no page 99: this list has 2 pages." in text_of(beyond)
    assert f'href="/shops/{shop.shop.id}/customers?sort=name&amp;dir=desc&amp;page=2"' in text_of(beyond)


@pytest.mark.parametrize(
    "query, expected",
    [
        ("person7@", ["Person 07"]),
        ("person 1", [f"Person {n}" for n in (19, 18, 17, 16, 15, 14, 13, 12, 11, 10)]),
        ("1023", ["Person 23"]),
        ("100%", []),
    ],
)
def test_search_by_email_name_or_shop_customer_id(console, shop, crowd, query, expected):
    page = text_of(console.get(f"/shops/{shop.shop.id}/customers", query_string={"q": query}))
    assert names_in(page) == expected


def test_list_shows_only_this_shops_customers(console, shop, other_shop, services):
    customer(services, other_shop, "7", email="stranger@example.com", name="Stranger")
    page = text_of(console.get(f"/shops/{shop.shop.id}/customers"))
    assert "Stranger" not in page and "No customers yet" in page


# One customer -----------------------------------------------------------------------------------------------


def test_customer_page_shows_wallet_and_statement(console, shop, services):
    customer(services, shop)
    move(services, shop.shop, "42", "topup", 5_000, datetime.now(UTC) - timedelta(days=3), "t1")
    move(services, shop.shop, "42", "payment", -1_250, datetime.now(UTC) - timedelta(days=1), "p1")
    page = text_of(console.get(f"/shops/{shop.shop.id}/customers/42"))
    assert "Cleo Customer" in page and 'id="balance">€37.50<' in page
    rows = re.findall(r'<span class="kind kind-(\w+)">', page)
    assert rows == ["payment", "topup"]
    assert "€12.50" in page and "+€50.00" in page


def test_unknown_customer_is_a_404(console, shop, other_shop, services):
    customer(services, other_shop, "42")
    assert console.get(f"/shops/{shop.shop.id}/customers/42").status_code == 404


def test_statement_filters_by_kind_and_period(console, shop, services):
    customer(services, shop)
    now = datetime.now(UTC)
    move(services, shop.shop, "42", "topup", 5_000, now - timedelta(days=10), "t1")
    move(services, shop.shop, "42", "payment", -1_000, now - timedelta(days=5), "p1")
    move(services, shop.shop, "42", "payment", -500, now - timedelta(days=1), "p2")
    base = f"/shops/{shop.shop.id}/customers/42"

    def kinds(**query) -> list[str]:
        return re.findall(r'<span class="kind kind-(\w+)">', text_of(console.get(base, query_string=query)))

    assert kinds(kind="payment") == ["payment", "payment"]
    start = (now - timedelta(days=6)).date().isoformat()
    end = (now - timedelta(days=2)).date().isoformat()
    assert kinds(start=start, end=end) == ["payment"]
    assert kinds(kind="topup", start=start) == []
    bad = console.get(base, query_string={"start": "last tuesday", "kind": "bribe"})
    assert bad.status_code == 200
    assert 'id="e-start">Enter a date as YYYY-MM-DD.<' in text_of(bad)
    assert "Unknown kind." in text_of(bad)


# Manual credit and debit ----------------------------------------------------------------------------------


def test_credit_moves_money_with_the_merchant_as_actor_and_shows_in_the_statement(console, shop, services):
    customer(services, shop)
    response = adjust(console, shop)
    assert response.status_code == 302
    assert balance(services, shop) == 2_500
    assert transactions(services) == [("adjustment", "merchant", "ann@example.com", "Goodwill for a late parcel")]
    page = text_of(console.get(response.location))
    assert "Credited €25.00. New balance: €25.00." in page
    assert "Goodwill for a late parcel" in page and "ann@example.com" in page
    with unit_of_work(services.sessions) as session:
        event = session.execute(select(AuditEvent)).scalar_one()
        assert (event.action, event.target, event.old_value, event.new_value) == (
            "wallet.credit",
            "42",
            "€0.00",
            "€25.00",
        )


def test_a_double_submitted_form_moves_money_once(console, shop, services):
    customer(services, shop)
    first, second = adjust(console, shop), adjust(console, shop)
    assert first.status_code == second.status_code == 302
    assert balance(services, shop) == 2_500 and len(transactions(services)) == 1
    assert "already been sent" in text_of(console.get(second.location))


def test_a_reused_form_with_other_content_moves_nothing(console, shop, services):
    customer(services, shop)
    adjust(console, shop)
    response = adjust(console, shop, amount="99.00")
    assert response.status_code == 422
    assert "already used for a different movement" in text_of(response)
    assert TOKEN not in text_of(response)  # a fresh form is offered
    assert balance(services, shop) == 2_500


def test_an_overdraft_is_refused_with_a_clear_message(console, shop, services):
    customer(services, shop)
    adjust(console, shop, amount="10.00")
    response = adjust(console, shop, token="f" * 32, direction="debit", amount="10.01")
    assert response.status_code == 409
    assert re.search(r'id="e-amount">Refused: this would overdraw the wallet. Available: €10.00.<', text_of(response))
    assert balance(services, shop) == 1_000 and len(transactions(services)) == 1
    assert adjust(console, shop, token="e" * 32, direction="debit", amount="10.00").status_code == 302
    assert balance(services, shop) == 0


@pytest.mark.parametrize(
    "values, field, message",
    [
        ({"reason": ""}, "reason", "Say why"),
        ({"amount": "ten"}, "amount", "Enter an amount such as 12.50."),
        ({"amount": "0"}, "amount", "Enter an amount between 0.01 and"),
        ({"amount": "1.999"}, "amount", "Too many decimals"),
        ({"amount": "5.000000000000000000000000000001"}, "amount", "Too many decimals"),  # whole, never cut
        ({"amount": "9" * 1_001}, "amount", "Too large."),  # refused before a slow conversion to an int
        ({"direction": "sideways"}, "direction", "Must be one of"),
    ],
)
def test_a_bad_adjustment_is_refused_next_to_its_field_and_moves_nothing(
    console, shop, services, values, field, message
):
    customer(services, shop)
    response = adjust(console, shop, **values)
    assert response.status_code == 422
    page = text_of(response)
    if field == "direction":
        assert message in page
    else:
        assert re.search(rf'id="e-{field}">[^<]*{re.escape(message)}', page), page[:200]
    assert transactions(services) == []


def test_a_form_without_its_token_moves_nothing(console, shop, services):
    customer(services, shop)
    response = adjust(console, shop, token="")
    assert response.status_code == 422 and "Reload the page" in text_of(response)
    assert transactions(services) == []


def test_adjusting_an_unknown_customer_is_a_404_and_creates_no_one(console, shop, services):
    assert adjust(console, shop, external_id="777").status_code == 404
    with unit_of_work(services.sessions) as session:
        assert session.scalar(select(func.count()).select_from(Customer)) == 0


# Locking ----------------------------------------------------------------------------------------------------


def test_a_locked_wallet_refuses_debits_until_unlocked(console, shop, services, client):
    customer(services, shop)
    adjust(console, shop, amount="20.00")
    locked = form_post(console, f"/shops/{shop.shop.id}/customers/42/lock", {"action": "lock", "confirm": "yes"})
    assert locked.status_code == 302
    page = text_of(console.get(f"/shops/{shop.shop.id}/customers/42"))
    assert "wallet locked" in page and "Unlock wallet" in page
    refused = adjust(console, shop, token="d" * 32, direction="debit", amount="5.00")
    assert refused.status_code == 422 and "This wallet is locked" in text_of(refused)
    api = client.post(
        "/api/v1/customers/42/holds",
        json={"amount": 100, "reason": "order 1"},
        headers={"Authorization": f"Bearer {shop.api_key}", "Idempotency-Key": "h1"},
    )
    assert api.status_code == 409 and api.get_json()["error"]["code"] == "wallet_locked"
    form_post(console, f"/shops/{shop.shop.id}/customers/42/lock", {"action": "unlock"})
    assert adjust(console, shop, token="c" * 32, direction="debit", amount="5.00").status_code == 302
    assert balance(services, shop) == 1_500
    with unit_of_work(services.sessions) as session:
        locks = session.execute(
            select(AuditEvent.action, AuditEvent.old_value, AuditEvent.new_value)
            .where(AuditEvent.field == "locked")
            .order_by(AuditEvent.id)
        ).all()
    assert locks == [("wallet.lock", "unlocked", "locked"), ("wallet.unlock", "locked", "unlocked")]


def test_locking_twice_changes_nothing_more(console, shop, services):
    customer(services, shop)
    form_post(console, f"/shops/{shop.shop.id}/customers/42/lock", {"action": "lock", "confirm": "yes"})
    again = form_post(console, f"/shops/{shop.shop.id}/customers/42/lock", {"action": "lock", "confirm": "yes"})
    assert "already locked" in text_of(console.get(again.location))
    with unit_of_work(services.sessions) as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == 1
        assert session.scalar(select(func.count()).select_from(Entry)) == 0


# Safe manual adjustments ------------------------------------------------------------------------------------


def test_every_field_error_shows_at_once(console, shop, services):
    customer(services, shop)
    page = text_of(adjust(console, shop, amount="", reason=""))
    assert 'id="e-amount">Enter an amount.' in page and 'id="e-reason">Say why' in page
    assert transactions(services) == []


def test_the_same_movement_from_a_fresh_form_soon_after_asks_first(console, shop, services):
    """The Back button, or a second tab: a new form token, the same customer, direction and amount."""
    customer(services, shop)
    assert adjust(console, shop).status_code == 302
    again = adjust(console, shop, token="a" * 32)
    assert again.status_code == 409 and len(transactions(services)) == 1
    page = text_of(again)
    assert "The same credit of €25.00 was recorded for this customer" in page and 'name="confirm" value="yes"' in page
    assert f'name="token" value="{"a" * 32}"' in page  # confirming sends this form, not a third one
    assert adjust(console, shop, token="a" * 32, confirm="yes").status_code == 302
    assert balance(services, shop) == 5_000
    # Another amount, or the other direction, is another movement: nothing to ask.
    assert adjust(console, shop, token="b" * 32, amount="25.01").status_code == 302
    assert adjust(console, shop, token="c" * 32, direction="debit").status_code == 302


def test_a_large_debit_asks_first(console, shop, services):
    customer(services, shop)
    adjust(console, shop, amount="1000.00")
    asked = adjust(console, shop, token="a" * 32, direction="debit", amount="500.00")
    assert asked.status_code == 409 and "This debit takes €500.00 from the wallet." in text_of(asked)
    assert balance(services, shop) == 100_000
    assert adjust(console, shop, token="b" * 32, direction="debit", amount="499.99").status_code == 302
    assert adjust(console, shop, token="a" * 32, direction="debit", amount="500.00", confirm="yes").status_code == 302
    assert balance(services, shop) == 1


def test_the_form_does_not_keep_what_was_sent(console, shop, services):
    customer(services, shop)
    done = adjust(console, shop)
    page = text_of(console.get(done.location))
    assert "Goodwill for a late parcel" not in page.split('id="statement"')[0]  # the form is empty again
    assert TOKEN not in page and 'autocomplete="off"' in page


def test_locking_asks_first(console, shop, services):
    customer(services, shop)
    asked = form_post(console, f"/shops/{shop.shop.id}/customers/42/lock", {"action": "lock"})
    assert asked.status_code == 200 and "Lock this wallet?" in text_of(asked)
    assert "wallet locked" not in text_of(console.get(f"/shops/{shop.shop.id}/customers/42"))
    unlocking = form_post(console, f"/shops/{shop.shop.id}/customers/42/lock", {"action": "unlock"})
    assert unlocking.status_code == 302  # unlocking gives back what locking took: nothing to ask
