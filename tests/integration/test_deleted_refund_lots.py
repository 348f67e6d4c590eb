"""A refund the shop deleted after it was credited to the wallet: what it credited leaves the wallet from the credit
the refund made, not from a bonus about to expire; and a refund bonus that expired since is gone, not a reason to
take nothing back. Found on the real store (session 15): a 5.00 sign-up bonus taken instead of the refund's own
cash (which never expires), and a 10.00 refund left in the wallet because its 1.00 bonus had expired."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select

from bridge.db import unit_of_work
from bridge.ledger import verify
from bridge.models import CreditLot, LedgerTransaction, utcnow
from bridge.usecases.expiry import expire_credit
from tests.integration.test_refund_requests_tips import _later, card_order, configure, wallet, woo  # noqa: F401
from tests.woo import captured, post_delivery

REFUND = [{"id": 63, "reason": "", "total": "-10.00"}]


def lots(services) -> dict[str, int]:
    """What each kind of credit still holds, by the transaction kind that made it."""
    with unit_of_work(services.sessions) as session:
        rows = session.execute(
            select(LedgerTransaction.kind, CreditLot.kind, CreditLot.remaining).join(
                LedgerTransaction, LedgerTransaction.id == CreditLot.transaction_id
            )
        )
        return {f"{made_by}/{kind}": remaining for made_by, kind, remaining in rows}


def refund_then_delete(client, woo):  # noqa: F811
    post_delivery(client, woo.shop.id, "order.created", card_order())
    refunded = card_order(refunds=REFUND)
    post_delivery(client, woo.shop.id, "order.updated", refunded)
    return refunded


def test_a_deleted_refund_leaves_from_its_own_credit_not_from_a_bonus_about_to_expire(client, services, woo):  # noqa: F811
    configure(
        services,
        woo,
        signup_bonus=500,
        promotional_expiry_days=1,
        refund_destination="wallet",
        refund_wallet_bonus_bp=0,
    )
    body, _ = captured("0004")
    post_delivery(client, woo.shop.id, "customer.created", json.loads(body))
    refunded = refund_then_delete(client, woo)
    assert wallet(client, woo)["balance"] == 1_500

    post_delivery(client, woo.shop.id, "order.updated", card_order(**_later(refunded)))  # the refund is gone

    assert wallet(client, woo)["balance"] == 500
    assert lots(services) == {"signup_bonus/promotional": 500, "refund_to_wallet/cash": 0}
    expire_credit(services.sessions, now=utcnow() + timedelta(days=2))
    assert wallet(client, woo)["balance"] == 0  # the bonus expires, as the shop's rules say
    with unit_of_work(services.sessions) as session:
        assert verify(session) == []


def test_a_deleted_refund_whose_bonus_expired_takes_back_its_own_money(client, services, woo):  # noqa: F811
    configure(services, woo, refund_wallet_bonus_bp=1_000, promotional_expiry_days=1, refund_destination="wallet")
    refunded = refund_then_delete(client, woo)
    assert wallet(client, woo)["balance"] == 1_100
    expire_credit(services.sessions, now=utcnow() + timedelta(days=2))
    assert wallet(client, woo)["balance"] == 1_000

    post_delivery(client, woo.shop.id, "order.updated", card_order(**_later(refunded)))

    assert wallet(client, woo)["balance"] == 0
    with unit_of_work(services.sessions) as session:
        assert verify(session) == []
