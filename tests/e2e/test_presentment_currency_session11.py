"""Session 11: Shopify orders paid in the customer's currency (`presentment_currency`) rather than the shop's, end
to end through the bridge's Shopify webhook endpoint, with bodies shaped as Shopify sends them (REST resources,
API 2026-01): every money `*_set` carries `shop_money` and `presentment_money`.

What Shopify documents, and these tests rely on:

- REST Order: `currency` is "the three-letter code (ISO 4217 format) for the shop currency"; `total_price`,
  `subtotal_price`, `total_tax` … are "in the shop currency"; `total_price_set` is "the total price of the order
  in shop and presentment currencies" (https://shopify.dev/docs/api/admin-rest/2026-01/resources/order).
- REST Transaction: "Transactions attached to multi-currency orders are in the presentment currency by default.
  To retrieve transactions in the shop currency, include the URL parameter `in_shop_currency=true`" — a webhook
  has no URL parameter, so `refunds[].transactions[].amount` is in the presentment currency; `currency` is "the
  currency used for the payment" (https://shopify.dev/docs/api/admin-rest/2026-01/resources/transaction).
- REST Refund: `refund_line_items[].subtotal_set` / `total_tax_set`, `refund_shipping_lines[].subtotal_amount_set`,
  `order_adjustments[].amount_set` are "in shop and presentment currencies"; its sample is a CAD shop refunding
  a USD customer: `subtotal_set` shop 10.99 CAD / presentment 8.95 USD, transaction `currency: "USD"`
  (https://shopify.dev/docs/api/admin-rest/2026-01/resources/refund).
- GraphQL (tests/fixtures/shopify/shopify-admin-2026-01.graphql.gz): RefundInput.currency "must be the
  presentment currency … required for orders where the currency and presentment currency differ";
  OrderTransaction.amountSet "in shop and presentment currencies"; MoneyBag.presentmentMoney "Amount in
  presentment currency", shopMoney "Amount in shop currency"; StoreCreditAccount "is held in the specified
  currency"; storeCreditAccountCredit: "Store credit accounts are currency-specific. A single owner can have
  multiple accounts, each holding a different currency", and crediting a customer "creates an account if one
  doesn't exist for the specified currency".

So the store credit a refund returns on a JPY-presented order is ¥ (the refund is made in the presentment
currency) and goes to the customer's JPY store credit account; the store credit a JPY checkout spends comes from
that JPY account. The bridge's wallets mirror Shopify's accounts currency by currency (sync/shopify/store_credit.py
reconciles wallet(c) with the accounts in c): a yen movement must never be written into the USD wallet, or the
next reconciliation pushes it to Shopify's USD account as well.

The shop here is in USD; the customer pays in JPY at 150 JPY to the dollar (¥6000 = $40.00, ¥1650 = $11.00).

Tests marked `xfail(strict=True, reason="finding: ...")` fail today; the others pin behaviour that is right."""

from __future__ import annotations

import copy
import json
from decimal import Decimal

import pytest
import responses
from sqlalchemy import select

from bridge.db import unit_of_work
from bridge.models import Account, Customer, OrderRefund, OutboxMessage, Shop, ShopOrder
from bridge.surfaces.platforms import pushers_for
from bridge.usecases.pushes import RetryPolicy
from simulator.shopify import create_shopify_simulator
from sync.worker import drain
from tests.e2e.test_audit_session10_shopify import (  # noqa: F401 - the shopify fixture
    CUSTOMER_ID,
    GRAPHQL,
    customer_body,
    deliver,
    order_sample,
    refund_sample,
    shopify,
)

ORDER_ID = 450789469
REFUND_ID = 509562969
FAST = RetryPolicy(max_attempts=3, base_delay_seconds=0)
YEN_PER_DOLLAR = 150


# --- helpers (the style of tests/e2e/test_audit_session10_shopify.py) --------------------------------------


def yen(dollars: str) -> str:
    """A USD amount as Shopify writes its JPY equivalent (no decimals in JPY)."""
    return str(int(Decimal(dollars) * YEN_PER_DOLLAR))


def money_set(dollars: str) -> dict:
    """A REST `*_set` of a JPY-presented order in a USD shop."""
    return {
        "shop_money": {"amount": dollars, "currency_code": "USD"},
        "presentment_money": {"amount": yen(dollars), "currency_code": "JPY"},
    }


def present_in_yen(node):
    """Every `*_set` of a body (any depth) made shop USD / presentment JPY, as Shopify sends a JPY checkout."""
    if isinstance(node, dict):
        if "shop_money" in node and "presentment_money" in node:
            return money_set(str(node["shop_money"]["amount"]))
        return {key: present_in_yen(value) for key, value in node.items()}
    if isinstance(node, list):
        return [present_in_yen(item) for item in node]
    return node


def rest_transaction(amount: str, currency: str | None, *, kind="refund", gateway="shopify_payments", **extra):
    """A REST Transaction as refunds/create and orders/* `refunds[].transactions` carry it: `amount` in the
    presentment currency; no `amount_set` (REST webhook transactions have none, Shopify's sample neither)."""
    return {
        "id": 245135271310201194,
        "order_id": ORDER_ID,
        "kind": kind,
        "gateway": gateway,
        "status": "success",
        "message": None,
        "created_at": "2026-01-05T10:00:00-05:00",
        "test": False,
        "authorization": None,
        "location_id": None,
        "user_id": None,
        "parent_id": None,
        "processed_at": None,
        "device_id": None,
        "error_code": None,
        "source_name": "web",
        "receipt": {},
        "amount": amount,
        "currency": currency,
        "payment_id": "#1001.2",
        "total_unsettled_set": {
            "presentment_money": {"amount": "0", "currency": "JPY"},
            "shop_money": {"amount": "0.00", "currency": "USD"},
        },
        "manual_payment_gateway": False,
        "amount_rounding": None,
        "admin_graphql_api_id": "gid://shopify/OrderTransaction/245135271310201194",
        **extra,
    }


def yen_order(total="40.00", **changes) -> dict:
    """The docs sample made a paid order of our customer in a USD shop, paid in JPY: `currency` USD,
    `presentment_currency` JPY, `total_price` in USD, every `*_set` both. No `transactions` (Shopify's order
    bodies have none)."""
    data = order_sample()
    item = copy.deepcopy(data["line_items"][0])
    item.update(price=total, quantity=1, total_discount="0.00", tax_lines=[], discount_allocations=[], duties=[])
    item.update(price_set=money_set(total), total_discount_set=money_set("0.00"))
    data.update(
        id=ORDER_ID,
        currency="USD",
        presentment_currency="JPY",
        total_price=total,
        current_total_price=total,
        subtotal_price=total,
        current_subtotal_price=total,
        total_line_items_price=total,
        total_tax="0.00",
        current_total_tax="0.00",
        total_discounts="0.00",
        current_total_discounts="0.00",
        total_outstanding="0.00",
        financial_status="paid",
        cancelled_at=None,
        cancel_reason=None,
        customer={**data["customer"], "id": CUSTOMER_ID, "currency": "USD"},
        refunds=[],
        payment_gateway_names=["shopify_payments"],
        taxes_included=False,
        tax_lines=[],
        discount_codes=[],
        discount_applications=[],
        line_items=[item],
        shipping_lines=[],
    )
    for key in list(data):
        if key.endswith("_set") and isinstance(data[key], dict) and "shop_money" in data[key]:
            data[key] = money_set("0.00")
    for key in ("total_price_set", "current_total_price_set", "subtotal_price_set", "current_subtotal_price_set"):
        data[key] = money_set(total)
    data["total_line_items_price_set"] = money_set(total)
    data.update(changes)
    return present_in_yen(data)


def yen_refund(dollars="11.00", *, gateway="shopify_payments", currency: str | None = "JPY", refund_id=REFUND_ID):
    """refunds/create for one item refunded in JPY (¥1650 = $11.00): the transaction's `amount` in yen, the
    refund line's `subtotal_set` in both currencies, `total_duties_set` both (shop money in USD)."""
    data = refund_sample()
    line = copy.deepcopy(data["refund_line_items"][0])
    line.update(
        subtotal=float(dollars), total_tax=0.0, subtotal_set=money_set(dollars), total_tax_set=money_set("0.00")
    )
    line["line_item"] = present_in_yen(line["line_item"])
    data.update(
        id=refund_id,
        order_id=ORDER_ID,
        note="Returned",
        refund_line_items=[line],
        refund_shipping_lines=[],
        order_adjustments=[],
        duties=[],
        total_duties_set=money_set("0.00"),
        transactions=[rest_transaction(yen(dollars), currency, gateway=gateway)],
    )
    return data


def refunded(order: dict, *refunds: dict) -> dict:
    """The orders/updated Shopify sends after the refunds: the same order, its `refunds` carrying them."""
    return order | {"financial_status": "partially_refunded", "refunds": [copy.deepcopy(r) for r in refunds]}


def accept_yen(services, shopify) -> None:
    with unit_of_work(services.sessions) as session:
        shop = session.get(Shop, shopify.shop.id)
        shop.settings = {**shop.settings, "extra_currencies": ["JPY"]}


def applied(answer) -> bool:
    return answer.status_code == 200 and answer.get_json().get("status") == "applied"


def wallet(services, shopify, currency: str) -> int:
    """The customer's wallet balance in `currency` (0 when the bridge never opened that wallet)."""
    with unit_of_work(services.sessions) as session:
        customer = session.execute(
            select(Customer).where(Customer.shop_id == shopify.shop.id, Customer.external_id == str(CUSTOMER_ID))
        ).scalar_one()
        account = session.execute(
            select(Account).where(
                Account.shop_id == shopify.shop.id, Account.code == f"wallet:{customer.id}:{currency}"
            )
        ).scalar_one_or_none()
        return account.balance if account else 0


def recorded_order(services) -> ShopOrder:
    with unit_of_work(services.sessions) as session:
        order = session.execute(select(ShopOrder).where(ShopOrder.external_id == str(ORDER_ID))).scalar_one()
        session.expunge(order)
        return order


def recorded_refunds(services) -> list[int]:
    with unit_of_work(services.sessions) as session:
        return list(
            session.execute(select(OrderRefund.amount).where(OrderRefund.external_id == str(REFUND_ID))).scalars()
        )


def credits_pushed(services) -> list[dict]:
    with unit_of_work(services.sessions) as session:
        messages = session.execute(select(OutboxMessage).where(OutboxMessage.kind == "store_credit.credit")).scalars()
        return [dict(m.payload) for m in messages]


def paid(client, shopify, order: dict | None = None):
    assert applied(deliver(client, shopify.shop.id, "customers/create", customer_body()))
    return deliver(client, shopify.shop.id, "orders/paid", order or yen_order())


# --- 1. the order itself ---------------------------------------------------------------------------------------


def test_an_order_paid_in_yen_is_recorded_in_the_shop_currency_from_total_price(client, services, shopify):
    """`currency` and `total_price` are the shop's (REST Order); with JPY not accepted the bridge records the
    order as Shopify's own reports do: $40.00, not ¥6000 and not 6000 read as dollars."""
    assert applied(paid(client, shopify))
    order = recorded_order(services)
    assert (order.currency, order.total) == ("USD", 4000)


# --- 2. refunds made in yen, to the card -------------------------------------------------------------------------


def test_a_card_refund_in_yen_is_recorded_once_in_shop_money(client, services, shopify):
    assert applied(paid(client, shopify))
    refund = yen_refund()
    assert applied(deliver(client, shopify.shop.id, "refunds/create", refund))
    assert applied(deliver(client, shopify.shop.id, "orders/updated", refunded(yen_order(), refund)))
    # $11.00: Shopify's own shop money for the refund (`refund_line_items[].subtotal_set.shop_money`)
    assert recorded_refunds(services) == [1100]
    assert wallet(services, shopify, "USD") == 5000  # a card refund settled by Shopify moves no wallet


def test_a_refund_whose_transactions_say_currency_null_is_not_read_as_dollars(client, services, shopify):
    assert applied(paid(client, shopify))
    assert applied(deliver(client, shopify.shop.id, "refunds/create", yen_refund(currency=None)))
    assert set(recorded_refunds(services)) <= {1100}  # recorded later (orders/updated) is fine; never 165000 or 1650
    assert applied(deliver(client, shopify.shop.id, "orders/updated", refunded(yen_order(), yen_refund(currency=None))))
    assert recorded_refunds(services) == [1100]


def test_refunds_of_a_yen_order_never_count_as_more_than_it_cost(client, services, shopify):
    """The whole order refunded in yen (¥6000) is exactly its total, never above it: whatever the bridge does
    with the delivery, it must not record more refunded than the order's $40.00."""
    assert applied(paid(client, shopify))
    refund = yen_refund("40.00")
    deliver(client, shopify.shop.id, "refunds/create", refund)
    deliver(client, shopify.shop.id, "orders/updated", refunded(yen_order(), refund) | {"financial_status": "refunded"})
    assert sum(recorded_refunds(services)) <= 4000


# --- 3. refunds to store credit: Shopify credits the customer's JPY account ------------------------------------


def test_yen_store_credit_never_lands_in_the_usd_wallet(client, services, shopify):
    """Shopify returned ¥1650 to the customer's JPY store credit account; the bridge keeps no JPY wallet (JPY is
    not accepted): the refund is applied (points/cashback shares, the order's refunded sum) and the USD wallet,
    the mirror of Shopify's USD account, does not move, and nothing is pushed to Shopify."""
    assert applied(paid(client, shopify))
    pushed_before = credits_pushed(services)  # the sign-up bonus's mirror
    refund = yen_refund(gateway="shopify_store_credit")
    assert applied(deliver(client, shopify.shop.id, "refunds/create", refund))
    assert applied(deliver(client, shopify.shop.id, "orders/updated", refunded(yen_order(), refund)))
    assert wallet(services, shopify, "USD") == 5000
    assert recorded_refunds(services) == [1100]
    assert credits_pushed(services) == pushed_before


@pytest.mark.xfail(
    strict=True,
    reason="finding: with JPY accepted, the ¥1650 Shopify returned to the customer's JPY store credit account is not "
    "mirrored in the JPY wallet (the bridge reads a JPY-presented order in the shop's USD and books no store credit "
    "of it); a reconciliation of the JPY wallet would then see Shopify's account 1650 above it",
)
def test_with_yen_accepted_the_store_credit_refund_is_mirrored_in_the_yen_wallet(client, services, shopify):
    accept_yen(services, shopify)
    assert applied(paid(client, shopify))
    refund = yen_refund(gateway="shopify_store_credit")
    assert applied(deliver(client, shopify.shop.id, "refunds/create", refund))
    assert applied(deliver(client, shopify.shop.id, "orders/updated", refunded(yen_order(), refund)))
    assert wallet(services, shopify, "USD") == 5000
    assert wallet(services, shopify, "JPY") == 1650  # once, though two deliveries carry the refund
    assert all(p["currency"] == "JPY" for p in credits_pushed(services))  # nothing pushed in USD


# --- 4. store credit spent at a JPY checkout ---------------------------------------------------------------------


def stub_shopify(rsps, spent_dollars: str):
    """Shopify's GraphQL answer to the order's transactions, holding what the query selects: a card sale and a
    store credit sale of the JPY checkout, `amountSet.shopMoney` in USD and `presentmentMoney` in JPY."""

    def money(dollars: str, query: str) -> dict:
        bag = {
            "shopMoney": {"amount": dollars, "currencyCode": "USD"},
            "presentmentMoney": {"amount": yen(dollars), "currencyCode": "JPY"},
        }
        return {key: value for key, value in bag.items() if key in query}

    def answer(request):
        query = json.loads(request.body)["query"]
        if "OrderTransactions" in query:
            nodes = [
                {
                    "kind": "SALE",
                    "status": "SUCCESS",
                    "gateway": "shopify_payments",
                    "amountSet": money("25.00", query),
                },
                {
                    "kind": "SALE",
                    "status": "SUCCESS",
                    "gateway": "shopify_store_credit",
                    "amountSet": money(spent_dollars, query),
                },
            ]
            return 200, {}, json.dumps({"data": {"order": {"transactions": nodes}}})
        if "storeCreditAccount" in query:
            money_ = {"amount": "0.00", "currencyCode": "USD"}
            root = "storeCreditAccountCredit" if "storeCreditAccountCredit" in query else "storeCreditAccountDebit"
            account = {"id": "gid://shopify/StoreCreditAccount/1", "balance": money_}
            payload = {
                root: {"storeCreditAccountTransaction": {"amount": money_, "account": account}, "userErrors": []}
            }
            return 200, {}, json.dumps({"data": payload})
        return 200, {}, json.dumps({"errors": [{"message": f"unexpected query in the stub: {query[:60]}"}]})

    rsps.add_callback(responses.POST, GRAPHQL, callback=answer, content_type="application/json")


def test_store_credit_spent_at_a_yen_checkout_is_not_taken_from_the_usd_wallet(client, services, shopify):
    order = yen_order(payment_gateway_names=["shopify_store_credit", "shopify_payments"])
    assert applied(paid(client, shopify, order))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        stub_shopify(rsps, spent_dollars="15.00")
        drain(services.sessions, pushers_for(services), FAST)
        drain(services.sessions, pushers_for(services), FAST)
    assert wallet(services, shopify, "USD") == 5000


# --- 5. the simulator ---------------------------------------------------------------------------------------------


@pytest.mark.database_free
def test_the_simulator_sends_a_checkout_in_another_currency_as_shopify_does():
    sim = create_shopify_simulator(currency="USD", transport=lambda url, body, headers: 200)
    customer = sim.create_customer("bob@biller.com", "Bob", "Biller")
    body = sim.place_order(customer["id"], total="6000", currency="JPY")
    assert (body["currency"], body["presentment_currency"]) == ("USD", "JPY")
    assert body["total_price_set"]["shop_money"]["currency_code"] == "USD"
    assert body["total_price_set"]["presentment_money"] == {"amount": "6000", "currency_code": "JPY"}


@pytest.mark.parametrize(
    ("side", "amount", "code"),
    [("presentment_money", "-6000", "JPY"), ("shop_money", "-40.00", "USD"), ("presentment_money", "6000", "EUR")],
)
def test_a_total_price_set_that_cannot_be_shopifys_is_refused_naming_it(client, services, shopify, side, amount, code):
    body = yen_order()
    body["total_price_set"][side] = {"amount": amount, "currency_code": code}
    answer = paid(client, shopify, body)
    assert answer.status_code == 422
    assert "total_price_set" in json.dumps(answer.get_json())
