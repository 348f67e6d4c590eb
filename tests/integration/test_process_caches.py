"""Each process remembers shops' secrets, settings and system accounts; another process's change is honoured
at once (the cache is keyed by what is stored, never invalidated by message)."""

from sqlalchemy import select, update

from bridge.db import make_engine, make_session_factory, unit_of_work
from bridge.models import InboxDelivery, OutboxMessage, Shop
from bridge.security import SecretBox
from tests.conftest import FERNET_KEY
from tests.woo import connect_for_tests, order_body, post_delivery


def change_shop_elsewhere(database_url: str, shop_id: int, **values) -> None:
    """What another process (a console worker, the CLI) does: its own engine, its own secret box."""
    engine = make_engine(database_url)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            session.execute(update(Shop).where(Shop.id == shop_id).values(**values))
    finally:
        engine.dispose()


def test_a_secret_rotated_by_another_process_is_honoured_at_once(client, services, shop, database_url):
    shop_id = shop.shop.id
    connect_for_tests(services, shop_id, secret="first-secret")
    assert post_delivery(client, shop_id, "customer.created", {"id": 1}, secret="first-secret").status_code == 200

    other_box = SecretBox((FERNET_KEY,))
    change_shop_elsewhere(
        database_url, shop_id, webhook_secret_enc=other_box.seal("second-secret"), previous_webhook_secret_enc=None
    )

    refused = post_delivery(client, shop_id, "customer.created", {"id": 2}, secret="first-secret")
    assert refused.status_code == 401
    assert post_delivery(client, shop_id, "customer.created", {"id": 3}, secret="second-secret").status_code == 200


def test_a_previous_secret_dropped_by_another_process_is_refused_at_once(client, services, shop, database_url):
    """This process remembers the keys that accepted the last delivery; the store checks they are still the shop's."""
    shop_id = shop.shop.id
    connect_for_tests(services, shop_id, secret="first-secret")
    assert post_delivery(client, shop_id, "customer.created", {"id": 1}, secret="first-secret").status_code == 200
    other_box = SecretBox((FERNET_KEY,))
    first, second = other_box.seal("first-secret"), other_box.seal("second-secret")
    change_shop_elsewhere(database_url, shop_id, webhook_secret_enc=second, previous_webhook_secret_enc=first)
    assert post_delivery(client, shop_id, "customer.created", {"id": 2}, secret="second-secret").status_code == 200
    assert post_delivery(client, shop_id, "customer.created", {"id": 3}, secret="first-secret").status_code == 200

    change_shop_elsewhere(database_url, shop_id, previous_webhook_secret_enc=None)  # the rotation's end

    refused = post_delivery(client, shop_id, "customer.created", {"id": 4}, secret="first-secret")
    assert refused.status_code == 401
    assert post_delivery(client, shop_id, "customer.created", {"id": 5}, secret="second-secret").status_code == 200
    with unit_of_work(services.sessions) as session:
        stored = session.scalars(select(InboxDelivery.resource_id).where(InboxDelivery.shop_id == shop_id)).all()
    assert sorted(stored) == ["1", "2", "3", "5"]


def wallet_refusals(services) -> list[str]:
    """Orders the bridge tried to charge (the customer has no money: each is refused)."""
    with unit_of_work(services.sessions) as session:
        messages = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "order.mark_unpaid"))
        return sorted(message.payload["order_id"] for message in messages)


def test_settings_saved_by_another_process_apply_to_the_next_delivery(client, services, shop, database_url):
    shop_id = shop.shop.id
    connect_for_tests(services, shop_id)
    with unit_of_work(services.sessions) as session:
        settings = dict(session.get(Shop, shop_id).settings)
    post_delivery(client, shop_id, "order.created", order_body(id=901, payment_method="wallet"))
    assert wallet_refusals(services) == ["901"]

    change_shop_elsewhere(database_url, shop_id, settings={**settings, "wallet_payment_methods": ["bridge_wallet"]})

    post_delivery(client, shop_id, "order.created", order_body(id=902, payment_method="wallet"))
    post_delivery(client, shop_id, "order.created", order_body(id=903, payment_method="bridge_wallet"))
    assert wallet_refusals(services) == ["901", "903"]
