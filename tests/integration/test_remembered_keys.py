"""The webhook keys each process remembers (bridge/usecases/deliveries.py, `Arrival`), attacked through HTTP: a
secret dropped, a URL changed, a secret re-sealed or shared by another process, even between the keys' read and
the store, never lets a delivery in under keys that are no longer the shop's, and never answers 5xx."""

from __future__ import annotations

import json
import threading
import uuid

import pytest
from sqlalchemy import event, func, select, update

from bridge.db import make_engine, make_session_factory, unit_of_work
from bridge.models import InboxDelivery, Shop
from bridge.security import SecretBox
from bridge.usecases import deliveries
from tests.conftest import FERNET_KEY, make_shop
from tests.integration.test_process_caches import change_shop_elsewhere
from tests.woo import connect_for_tests, post_delivery
from webhooks.signing import sign

OTHER_BOX = SecretBox((FERNET_KEY,))  # another process's box: same key, its own random IVs


@pytest.fixture(autouse=True)
def forget_remembered_keys():
    deliveries._remembered_keys.clear()  # shop ids are reused across tests (fresh database each time)
    yield
    deliveries._remembered_keys.clear()


@pytest.fixture
def app_500(app):
    app.config["PROPAGATE_EXCEPTIONS"] = False  # an escaping exception becomes the 500 a real server answers
    return app


@pytest.fixture
def client5(app_500):
    return app_500.test_client()


def stored_count(services, shop_id=None) -> int:
    with unit_of_work(services.sessions) as session:
        query = select(func.count()).select_from(InboxDelivery)
        if shop_id is not None:
            query = query.where(InboxDelivery.shop_id == shop_id)
        return session.scalar(query)


# -- Shopify helpers ----------------------------------------------------------------------------------------


def shopify_shop(services, name, domain, secret):
    created = make_shop(services, name=name, platform="shopify", url=f"https://{domain}", currency="USD")
    with unit_of_work(services.sessions) as session:
        shop = session.get(Shop, created.shop.id)
        shop.webhook_secret_enc = services.secrets.seal(secret)
        shop.consumer_secret_enc = services.secrets.seal("shpat_token")
    return created.shop.id


def post_shopify(client, shop_id, secret, domain, *, body=None, topic="customers/create", webhook_id=None):
    if body is None:
        body = json.dumps({"id": 77, "email": "jon@example.com", "first_name": "Jon", "last_name": "Snow"}).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": sign(body, secret),
        "X-Shopify-Shop-Domain": domain,
        "X-Shopify-API-Version": "2025-01",
        "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
    }
    return client.post(f"/webhooks/shopify/{shop_id}", data=body, headers=headers)


def woo_rotated_then_dropped(client, services, shop_id, database_url):
    """The shop rotates (elsewhere) from first to second; this process remembers both; then the rotation ends."""
    connect_for_tests(services, shop_id, secret="first-secret")
    first, second = OTHER_BOX.seal("first-secret"), OTHER_BOX.seal("second-secret")
    change_shop_elsewhere(database_url, shop_id, webhook_secret_enc=second, previous_webhook_secret_enc=first)
    assert post_delivery(client, shop_id, "customer.created", {"id": 1}, secret="first-secret").status_code == 200
    change_shop_elsewhere(database_url, shop_id, previous_webhook_secret_enc=None)


# -- A dropped secret: every answer, not only a stored one --------------------------------------------------


def test_dropped_secret_ignored_topic_is_refused(client5, services, shop, database_url):
    shop_id = shop.shop.id
    woo_rotated_then_dropped(client5, services, shop_id, database_url)
    before = stored_count(services, shop_id)
    response = post_delivery(client5, shop_id, "coupon.created", {"id": 2}, secret="first-secret")
    assert response.status_code == 401
    assert stored_count(services, shop_id) == before


def test_dropped_secret_unparsable_payload_is_refused(client5, services, shop, database_url):
    shop_id = shop.shop.id
    woo_rotated_then_dropped(client5, services, shop_id, database_url)
    before = stored_count(services, shop_id)
    response = post_delivery(client5, shop_id, "order.created", {"id": "x", "total": "nope"}, secret="first-secret")
    assert response.status_code == 401
    assert stored_count(services, shop_id) == before


def test_dropped_secret_not_json_is_refused(client5, services, shop, database_url):
    """The claim: a secret dropped elsewhere is refused at once. A body that is not JSON is answered before the
    store (the only place the remembered keys are checked against the row)."""
    shop_id = shop.shop.id
    woo_rotated_then_dropped(client5, services, shop_id, database_url)
    response = post_delivery(client5, shop_id, "customer.created", b"{not json", secret="first-secret")
    assert response.status_code == 401, response.get_json()


def test_dropped_secret_shopify_duplicate_is_refused(client5, services, database_url):
    shop_id = shopify_shop(services, "S", "s1.myshopify.com", "old-secret")
    assert post_shopify(client5, shop_id, "old-secret", "s1.myshopify.com", webhook_id="w-1").status_code == 200
    change_shop_elsewhere(database_url, shop_id, webhook_secret_enc=OTHER_BOX.seal("new-secret"))  # old one gone
    response = post_shopify(client5, shop_id, "old-secret", "s1.myshopify.com", webhook_id="w-1")
    assert response.status_code == 401, response.get_json()


@pytest.fixture
def deferred(settings):
    from dataclasses import replace

    from bridge.surfaces.cli import create_cli_app

    app = create_cli_app(replace(settings, defer_deliveries=True))
    app.config["TESTING"] = True
    app.config["PROPAGATE_EXCEPTIONS"] = False
    yield app
    app.extensions["wallet_bridge"].engine.dispose()


def test_dropped_secret_deferred_is_refused(deferred, database_url):
    services = deferred.extensions["wallet_bridge"]
    assert services.settings.defer_deliveries
    client = deferred.test_client()
    shop_id = make_shop(services).shop.id
    woo_rotated_then_dropped(client, services, shop_id, database_url)
    before = stored_count(services, shop_id)
    assert post_delivery(client, shop_id, "customer.created", {"id": 9}, secret="first-secret").status_code == 401
    assert stored_count(services, shop_id) == before
    response = post_delivery(client, shop_id, "customer.created", {"id": 10}, secret="second-secret")
    assert response.status_code == 200 and response.get_json()["status"] == "received", response.get_json()


def test_deferred_resealed_twice_pg(deferred, postgres_url):
    services = deferred.extensions["wallet_bridge"]
    client = deferred.test_client()
    shop_id = make_shop(services).shop.id
    connect_for_tests(services, shop_id, secret="s")
    assert post_delivery(client, shop_id, "customer.created", {"id": 1}, secret="s").status_code == 200
    remove = _hook_changes_before_store(services, postgres_url, shop_id, "s", 2)
    try:
        response = post_delivery(client, shop_id, "customer.created", {"id": 2}, secret="s")
    finally:
        remove()
    assert response.status_code == 200, response.status_code


# -- Shopify: the domain header against a URL changed elsewhere ---------------------------------------------


def test_shopify_url_changed_elsewhere_old_domain_refused(client5, services, database_url):
    shop_id = shopify_shop(services, "S", "old.myshopify.com", "s-secret")
    assert post_shopify(client5, shop_id, "s-secret", "old.myshopify.com").status_code == 200
    change_shop_elsewhere(database_url, shop_id, url="https://new.myshopify.com")
    before = stored_count(services, shop_id)
    assert post_shopify(client5, shop_id, "s-secret", "old.myshopify.com").status_code == 401
    assert post_shopify(client5, shop_id, "s-secret", "old.myshopify.com", topic="shop/update").status_code == 401
    assert stored_count(services, shop_id) == before
    assert post_shopify(client5, shop_id, "s-secret", "new.myshopify.com").status_code == 200


def test_shopify_url_changed_elsewhere_old_domain_not_json(client5, services, database_url):
    shop_id = shopify_shop(services, "S", "old.myshopify.com", "s-secret")
    assert post_shopify(client5, shop_id, "s-secret", "old.myshopify.com").status_code == 200
    change_shop_elsewhere(database_url, shop_id, url="https://new.myshopify.com")
    response = post_shopify(client5, shop_id, "s-secret", "old.myshopify.com", body=b"[[[")
    assert response.status_code == 401, response.get_json()


def test_shopify_url_emptied_elsewhere(client5, services, database_url):
    shop_id = shopify_shop(services, "S", "old.myshopify.com", "s-secret")
    assert post_shopify(client5, shop_id, "s-secret", "old.myshopify.com").status_code == 200
    change_shop_elsewhere(database_url, shop_id, url="")
    assert post_shopify(client5, shop_id, "s-secret", "old.myshopify.com").status_code == 401
    assert post_shopify(client5, shop_id, "s-secret", "").status_code in (200, 401)  # never 5xx


def test_shopify_secret_shared_elsewhere_is_refused_at_once(client5, services, database_url):
    """Shop A remembered; another process gives shop B A's secret: A's next delivery is refused (shared)."""
    a = shopify_shop(services, "A", "a.myshopify.com", "secret-a")
    b = shopify_shop(services, "B", "b.myshopify.com", "secret-b")
    assert post_shopify(client5, a, "secret-a", "a.myshopify.com").status_code == 200
    change_shop_elsewhere(database_url, b, webhook_secret_enc=OTHER_BOX.seal("secret-a"))
    before = stored_count(services)
    assert post_shopify(client5, a, "secret-a", "a.myshopify.com").status_code == 401
    assert post_shopify(client5, b, "secret-a", "b.myshopify.com").status_code == 401
    assert stored_count(services) == before


def rotate_elsewhere(database_url, shop_id, old: str, new: str) -> None:
    """Another process starts a rotation: `new` is the secret, `old` still accepted."""
    change_shop_elsewhere(
        database_url, shop_id, webhook_secret_enc=OTHER_BOX.seal(new), previous_webhook_secret_enc=OTHER_BOX.seal(old)
    )


def test_two_shops_b_secret_changed_delivery_to_a_signed_with_b(client5, services, database_url):
    a = shopify_shop(services, "A", "a.myshopify.com", "secret-a")
    b = shopify_shop(services, "B", "b.myshopify.com", "secret-b")
    assert post_shopify(client5, a, "secret-a", "a.myshopify.com").status_code == 200
    assert post_shopify(client5, b, "secret-b", "b.myshopify.com").status_code == 200
    rotate_elsewhere(database_url, b, "secret-b", "secret-b2")
    before = stored_count(services, a)
    for secret in ("secret-b", "secret-b2"):
        for domain in ("a.myshopify.com", "b.myshopify.com"):
            assert post_shopify(client5, a, secret, domain).status_code == 401
    assert stored_count(services, a) == before


def test_woo_two_shops_cross_signed(client5, services, shop, other_shop, database_url):
    a, b = shop.shop.id, other_shop.shop.id
    connect_for_tests(services, a, secret="secret-a")
    connect_for_tests(services, b, secret="secret-b")
    assert post_delivery(client5, a, "customer.created", {"id": 1}, secret="secret-a").status_code == 200
    assert post_delivery(client5, b, "customer.created", {"id": 1}, secret="secret-b").status_code == 200
    rotate_elsewhere(database_url, b, "secret-b", "secret-b2")
    before = stored_count(services, a)
    for secret in ("secret-b", "secret-b2"):
        assert post_delivery(client5, a, "customer.created", {"id": 2}, secret=secret).status_code == 401
    assert stored_count(services, a) == before
    # A's own remembered keys were B's? swap the rows' secrets elsewhere: A now holds B's old secret
    change_shop_elsewhere(database_url, a, webhook_secret_enc=OTHER_BOX.seal("secret-b"))
    assert post_delivery(client5, a, "customer.created", {"id": 3}, secret="secret-a").status_code == 401
    assert post_delivery(client5, a, "customer.created", {"id": 4}, secret="secret-b").status_code == 200


# -- Unknown shops ------------------------------------------------------------------------------------------


def test_shop_moved_to_another_platform_answers_like_unknown(client5, services, shop, database_url):
    """A shop no longer on woocommerce is, for the woocommerce endpoint, an unknown shop: 401 on any body."""
    shop_id = shop.shop.id
    connect_for_tests(services, shop_id, secret="s")
    assert post_delivery(client5, shop_id, "customer.created", {"id": 1}, secret="s").status_code == 200
    change_shop_elsewhere(database_url, shop_id, platform="shopify")
    response = post_delivery(client5, shop_id, "customer.created", b"not json", secret="s")
    assert response.status_code == 401, response.get_json()
    assert post_delivery(client5, shop_id, "customer.created", {"id": 2}, secret="s").status_code == 401


def test_unknown_and_huge_shop_ids(client5, services, shop):
    for shop_id in (0, 999_999, 2**31, 2**63, 2**70):
        response = post_delivery(client5, shop_id, "customer.created", {"id": 1}, secret="whatever")
        assert response.status_code in (401, 404), (shop_id, response.status_code)


# -- Re-sealed secrets (same secret, new ciphertext) and no-op updates: accepted, stored once ---------------


@pytest.mark.parametrize(
    "topic,data,status",
    [
        ("customer.created", {"id": 5}, 200),
        ("coupon.created", {"id": 5}, 200),  # ignored
        ("order.created", {"id": "x"}, 422),  # failed payload, stored as failed
    ],
)
def test_resealed_secret_accepted_and_stored_once(client5, services, shop, database_url, topic, data, status):
    shop_id = shop.shop.id
    connect_for_tests(services, shop_id, secret="s")
    assert post_delivery(client5, shop_id, "customer.created", {"id": 1}, secret="s").status_code == 200
    change_shop_elsewhere(database_url, shop_id, webhook_secret_enc=OTHER_BOX.seal("s"))
    before = stored_count(services, shop_id)
    assert post_delivery(client5, shop_id, topic, data, secret="s").status_code == status
    assert stored_count(services, shop_id) == before + 1


def remembered_secret(client, services, shop_id) -> str:
    """The shop connected with the secret "s", one delivery accepted (this process remembers the keys): its
    stored ciphertext."""
    connect_for_tests(services, shop_id, secret="s")
    assert post_delivery(client, shop_id, "customer.created", {"id": 1}, secret="s").status_code == 200
    with unit_of_work(services.sessions) as session:
        return session.get(Shop, shop_id).webhook_secret_enc


def test_same_ciphertext_written_again(client5, services, shop, database_url):
    shop_id = shop.shop.id
    token = remembered_secret(client5, services, shop_id)
    change_shop_elsewhere(database_url, shop_id, webhook_secret_enc=token, previous_webhook_secret_enc=None)
    assert post_delivery(client5, shop_id, "customer.created", {"id": 2}, secret="s").status_code == 200


def test_previous_set_to_current_ciphertext(client5, services, shop, database_url):
    shop_id = shop.shop.id
    token = remembered_secret(client5, services, shop_id)
    change_shop_elsewhere(
        database_url, shop_id, webhook_secret_enc=OTHER_BOX.seal("t"), previous_webhook_secret_enc=token
    )
    assert post_delivery(client5, shop_id, "customer.created", {"id": 2}, secret="s").status_code == 200
    change_shop_elsewhere(database_url, shop_id, previous_webhook_secret_enc=None)
    assert post_delivery(client5, shop_id, "customer.created", {"id": 3}, secret="s").status_code == 401


# -- Races: the keys change between the (re)read and the INSERT ---------------------------------------------


def _hook_changes_before_store(services, database_url, shop_id, secret, times):
    """Before the checked INSERT runs, another process re-seals the shop's (unchanged) secret: `times` times."""
    done = []

    def before(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("INSERT INTO INBOX", "WITH STORED")) and len(done) < times:
            done.append(1)
            change = threading.Thread(
                target=change_shop_elsewhere,
                args=(database_url, shop_id),
                kwargs={"webhook_secret_enc": OTHER_BOX.seal(secret)},
            )
            change.start()
            change.join(1.0)  # done at once, unless the store holds the shop's row: then it waits for the commit

    event.listen(services.engine, "before_cursor_execute", before)
    return lambda: event.remove(services.engine, "before_cursor_execute", before)


@pytest.mark.parametrize(("remembered", "times"), [(True, 1), (True, 2), (False, 1)])
def test_keys_resealed_during_one_delivery_pg(client5, services, shop, postgres_url, remembered, times):
    """A secret that never changed, re-sealed (e.g. `wallet-bridge secrets rotate`, or a console save) right before
    the store, `times` times (the second right before the retry's store), with keys remembered or not (a fresh
    process): the delivery must not get a 5xx."""
    shop_id = shop.shop.id
    connect_for_tests(services, shop_id, secret="s")
    if remembered:
        assert post_delivery(client5, shop_id, "customer.created", {"id": 1}, secret="s").status_code == 200
    remove = _hook_changes_before_store(services, postgres_url, shop_id, "s", times)
    try:
        response = post_delivery(client5, shop_id, "customer.created", {"id": 2}, secret="s")
    finally:
        remove()
    assert response.status_code == 200, response.status_code


def test_concurrent_reseal_while_deliveries_arrive(client5, services, shop, database_url):
    """A thread re-seals the (unchanged) secret in a loop, as another process would; deliveries signed with it
    keep arriving. None may be answered 5xx (each is authentic all along)."""
    shop_id = shop.shop.id
    connect_for_tests(services, shop_id, secret="s")
    stop = threading.Event()
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)

    def reseal():
        while not stop.is_set():
            with unit_of_work(sessions) as session:
                session.execute(update(Shop).where(Shop.id == shop_id).values(webhook_secret_enc=OTHER_BOX.seal("s")))

    thread = threading.Thread(target=reseal, daemon=True)
    thread.start()
    statuses = []
    try:
        for n in range(150):
            statuses.append(
                post_delivery(client5, shop_id, "customer.created", {"id": 1000 + n}, secret="s").status_code
            )
    finally:
        stop.set()
        thread.join(10)
        engine.dispose()
    counts = {s: statuses.count(s) for s in set(statuses)}
    assert set(statuses) == {200}, counts
