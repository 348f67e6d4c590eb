"""Helpers for the merchant console's tests: users, signed-in clients, CSRF tokens, dated ledger history."""

from __future__ import annotations

import re
from contextlib import contextmanager
from datetime import datetime

from bridge import ledger
from bridge.accounts import SystemAccount, ensure_customer, points_account, system_account, wallet_account
from bridge.db import unit_of_work
from bridge.ledger import Leg, post_transaction
from bridge.money import POINTS
from bridge.users import add_membership, create_user

PASSWORD = "correct horse battery staple"
TOKEN_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def make_user(services, *shop_ids: int, email: str = "ann@example.com", name: str = "Ann Merchant"):
    with unit_of_work(services.sessions) as session:
        user = create_user(session, email=email, name=name, password=PASSWORD)
        for shop_id in shop_ids:
            add_membership(session, user, shop_id)
        return user


def csrf_token(client, path: str = "/login") -> str:
    """Flask-WTF's token is per session: any page with a form gives it."""
    page = client.get(path)
    found = TOKEN_RE.search(page.get_data(as_text=True))
    assert found, f"no CSRF token on {path} ({page.status_code})"
    return found.group(1)


def form_post(client, url: str, data: dict | None = None, *, token_from: str | None = None, **kwargs):
    token = csrf_token(client, token_from or url_for_token(url))
    return client.post(url, data={"csrf_token": token, **(data or {})}, **kwargs)


def url_for_token(url: str) -> str:
    """A page of the same shop that surely renders a form (or the sign-in page)."""
    found = re.match(r"^(/shops/\d+)/", url)
    return f"{found.group(1)}/settings" if found else "/login"


def sign_in(client, email: str = "ann@example.com", password: str = PASSWORD, **kwargs):
    token = csrf_token(client, "/login")
    return client.post("/login", data={"csrf_token": token, "email": email, "password": password}, **kwargs)


def text_of(response) -> str:
    return response.get_data(as_text=True)


# Dated ledger history ------------------------------------------------------------------------------------


@contextmanager
def posted_at(moment: datetime):
    """Post transactions as if at `moment` (ledger rows are append-only: their date cannot be changed later)."""
    original = ledger.utcnow
    ledger.utcnow = lambda: moment
    try:
        yield
    finally:
        ledger.utcnow = original


SYSTEM_SIDE = {
    "topup": SystemAccount.TOPUPS_RECEIVED,
    "payment": SystemAccount.WALLET_PAYMENTS,
    "refund_to_wallet": SystemAccount.REFUNDS_ISSUED,
    "expiry": SystemAccount.EXPIRED_CREDIT,
    "adjustment": SystemAccount.MERCHANT_ADJUSTMENTS,
    "promotion": SystemAccount.PROMOTIONS,
    "cashback": SystemAccount.PROMOTIONS,
    "points_earned": SystemAccount.POINTS_ISSUED,
    "points_clawback": SystemAccount.POINTS_ISSUED,
}


def move(
    services,
    shop,
    customer_id: str,
    kind: str,
    amount: int,
    when: datetime,
    key: str,
    *,
    email: str | None = None,
    name: str | None = None,
    reason: str | None = None,
    order: str | None = None,
) -> None:
    """One transaction of `kind` moving `amount` into (positive) or out of (negative) the customer's wallet,
    or points account for points kinds, against the matching system account, dated `when`."""
    with unit_of_work(services.sessions) as session, posted_at(when):
        customer = ensure_customer(session, shop.id, customer_id, email=email, name=name)
        points = kind.startswith("points")
        account = points_account(session, customer) if points else wallet_account(session, customer, shop.currency)
        other = system_account(session, shop.id, SYSTEM_SIDE[kind], POINTS if points else shop.currency)
        post_transaction(
            session,
            shop_id=shop.id,
            kind=kind,
            reason=reason or f"{kind} {key}",
            legs=[Leg(account, amount), Leg(other, -amount)],
            idempotency_key=key,
            order_ref=order,
        )
