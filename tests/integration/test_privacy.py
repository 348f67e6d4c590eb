"""A customer's personal data: exported whole for an access request, erased on request (name, e-mail, stored
webhook bodies) while the ledger keeps its amounts and still verifies."""

import json

from sqlalchemy import select

from bridge.db import unit_of_work
from bridge.ledger import verify
from bridge.models import AuditEvent, Customer, InboxDelivery
from tests.console_support import form_post, make_user, sign_in, text_of
from tests.integration.test_woocommerce_webhooks import fund, send_captured, wallet_balance, woo  # noqa: F401

EMAIL = "alice@example.test"  # the captured customer's


def bodies(services) -> str:
    with unit_of_work(services.sessions) as session:
        return " ".join(d.body.decode() for d in session.scalars(select(InboxDelivery)))


def test_a_customers_data_is_exported_then_erased_and_the_ledger_still_adds_up(client, services, woo):  # noqa: F811
    send_captured(client, woo, "0004")  # customer.created: Alice, with her e-mail address
    fund(services, woo, 10_000)
    send_captured(client, woo, "0005")  # her order, paid from the wallet: her address in the body
    assert EMAIL in bodies(services)
    make_user(services, woo)
    sign_in(client)

    exported = client.get(f"/shops/{woo}/customers/2/personal-data.json")
    assert exported.status_code == 200 and "attachment" in exported.headers["Content-Disposition"]
    data = json.loads(exported.data)
    assert data["customer"]["email"] == EMAIL
    assert [line["kind"] for line in data["movements"]] == ["payment", "adjustment"]
    assert {d["topic"] for d in data["webhook_deliveries"]} == {"customer.created", "order.created"}
    assert [(o["total"], o["wallet_paid"]) for o in data["orders"]] == [(4148, 4148)]

    unconfirmed = form_post(client, f"/shops/{woo}/customers/2/erase", follow_redirects=True)
    assert "Tick the box" in text_of(unconfirmed) and EMAIL in bodies(services)
    erased = form_post(client, f"/shops/{woo}/customers/2/erase", {"confirm": "yes"}, follow_redirects=True)
    assert "Personal data erased" in text_of(erased)

    with unit_of_work(services.sessions) as session:
        customer = session.scalars(select(Customer)).one()
        assert (customer.name, customer.email) == (None, None)
        assert verify(session) == []
        [event] = session.scalars(select(AuditEvent).where(AuditEvent.action == "customer.erase")).all()
        assert EMAIL not in (event.new_value or "") and "2 stored webhook bodies scrubbed" in event.new_value
    everything = bodies(services)
    assert EMAIL not in everything and "Alice" not in everything and '"total":"41.48"' in everything
    assert wallet_balance(services, woo) == 10_000 - 4148  # still owed
    again = json.loads(client.get(f"/shops/{woo}/customers/2/personal-data.json").data)
    assert again["customer"]["email"] is None and EMAIL not in json.dumps(again)
