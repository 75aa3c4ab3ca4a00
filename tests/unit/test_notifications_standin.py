"""The Notifications API stand-in (local/spapi_notifications.py) behaves as Amazon documents it,
and Amazon's model judges each answer: grantless destinations refuse a seller's token, a second
destination for one queue and a second subscription are conflicts, and "Amazon" sends an
ORDER_CHANGE that Amazon's schema and the app's parser accept, once per status change."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from local.amazon_models import ModelJudge
from local.spapi_notifications import NotificationsStandIn
from local.spapi_server import SpApiStandIn
from shared.ingestion.notifications import parse_order_change

ARN = "arn:aws:sqs:eu-west-1:123456789012:mfn-notifications-A1SELLER"
SELLER = SpApiStandIn._access_token("amzn1.application-oa2-client.x", "Atzr|refresh")
GRANTLESS = SpApiStandIn._grantless_token(
    "amzn1.application-oa2-client.x", "sellingpartnerapi::notifications"
)


def _call(
    stand_in: NotificationsStandIn, method: str, path: str, token: str, body: Any = None, *, query: str = ""
) -> tuple[int, dict[str, Any]]:
    query_map = {k: [v] for k, v in (p.split("=", 1) for p in query.split("&") if p)}
    raw = json.dumps(body).encode() if body is not None else b""
    answer = stand_in.handle(method, path, query_map, {"x-amz-access-token": token}, raw, "https://127.0.0.1")
    assert answer is not None
    status, _, payload = answer
    return status, json.loads(payload) if payload else {}


@pytest.fixture
def stand_in() -> NotificationsStandIn:
    judge = ModelJudge.default()
    if judge.missing:
        pytest.skip("Amazon's models are not beside the repository")
    return NotificationsStandIn("A1SELLER", clock=lambda: datetime(2026, 11, 1, tzinfo=UTC), judge=judge)


def _subscribe(stand_in: NotificationsStandIn) -> str:
    status, created = _call(
        stand_in,
        "POST",
        "/notifications/v1/destinations",
        GRANTLESS,
        {"name": "mfn-fulfilment-A1SELLER", "resourceSpecification": {"sqs": {"arn": ARN}}},
    )
    assert status == 200
    destination = str(created["payload"]["destinationId"])
    status, _ = _call(
        stand_in,
        "POST",
        "/notifications/v1/subscriptions/ORDER_CHANGE",
        SELLER,
        {
            "payloadVersion": "1.0",
            "destinationId": destination,
            "processingDirective": {
                "eventFilter": {"eventFilterType": "ORDER_CHANGE", "marketplaceIds": ["A1PA6795UKMFR9"]}
            },
        },
    )
    assert status == 200
    return destination


def test_destinations_are_grantless_and_subscriptions_the_sellers(stand_in: NotificationsStandIn) -> None:
    assert _call(stand_in, "GET", "/notifications/v1/destinations", SELLER)[0] == 403
    assert _call(stand_in, "GET", "/notifications/v1/destinations", GRANTLESS) == (200, {"payload": []})
    assert _call(stand_in, "GET", "/notifications/v1/subscriptions/ORDER_CHANGE", GRANTLESS)[0] == 403
    destination = _subscribe(stand_in)
    status, found = _call(
        stand_in, "GET", "/notifications/v1/subscriptions/ORDER_CHANGE", SELLER, query="payloadVersion=1.0"
    )
    assert status == 200 and found["payload"]["destinationId"] == destination
    again = {"name": "again", "resourceSpecification": {"sqs": {"arn": ARN}}}
    assert _call(stand_in, "POST", "/notifications/v1/destinations", GRANTLESS, again)[0] == 409
    body = {"payloadVersion": "1.0", "destinationId": destination}
    assert _call(stand_in, "POST", "/notifications/v1/subscriptions/ORDER_CHANGE", SELLER, body)[0] == 409
    subscription = found["payload"]["subscriptionId"]
    path = f"/notifications/v1/subscriptions/ORDER_CHANGE/{subscription}"
    assert _call(stand_in, "DELETE", path, SELLER) == (200, {})
    assert _call(stand_in, "DELETE", path, SELLER)[0] == 404
    assert stand_in.judge.snapshot()[1] == []  # every exchange as Amazon's model declares it
    assert stand_in.judge.exchanges["createSubscription"] == 2


def test_amazon_sends_one_order_change_per_status_change_that_the_app_reads(
    stand_in: NotificationsStandIn,
) -> None:
    sent: list[tuple[str, str]] = []
    stand_in.deliver = lambda arn, body: sent.append((arn, body))
    order: dict[str, Any] = {
        "orderId": "302-1234567-1234567",
        "createdTime": "2026-10-30T10:00:00Z",
        "lastUpdatedTime": "2026-10-31T10:00:00Z",
        "salesChannel": {"marketplaceId": "A1PA6795UKMFR9"},
        "recipient": {"deliveryAddress": {"postalCode": "10115"}},
        "fulfillment": {"fulfillmentStatus": "UNSHIPPED", "fulfilledBy": "MERCHANT"},
        "orderItems": [{"orderItemId": "111", "quantityOrdered": 2, "product": {"sellerSku": "SKU-1"}}],
    }
    stand_in.observe(order)  # no subscription yet: Amazon sends nothing
    _subscribe(stand_in)
    stand_in.observe(order)
    stand_in.observe(order)  # the same status again: nothing new
    other_marketplace = {
        **order,
        "orderId": "302-7654321-7654321",
        "salesChannel": {"marketplaceId": "ATVPDKIKX0DER"},
    }
    stand_in.observe(other_marketplace)  # filtered out by the subscription's event filter
    shipped = {**order, "fulfillment": {"fulfillmentStatus": "SHIPPED", "fulfilledBy": "MERCHANT"}}
    stand_in.observe(shipped)
    assert stand_in.flush() == 2 and stand_in.schema_violations == 0
    changes = [parse_order_change(body) for _, body in sent]
    assert {arn for arn, _ in sent} == {ARN}
    assert [(c.order_id, c.order_status, c.seller_id) for c in changes] == [
        ("302-1234567-1234567", "Unshipped", "A1SELLER"),
        ("302-1234567-1234567", "Shipped", "A1SELLER"),
    ]
    assert len({c.notification_id for c in changes}) == 2
    assert stand_in.judge.exchanges["ORDER_CHANGE"] == 2
