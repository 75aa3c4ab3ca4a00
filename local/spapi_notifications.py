"""A stand-in for the SP-API Notifications API v1 and for Amazon's delivery of ORDER_CHANGE to SQS.

An independent imitation (it imports nothing from the app). The SP-API stand-in
(local/spapi_server.py) mounts `NotificationsStandIn.handle`, which answers, with the status codes
and bodies of Amazon's model (`notifications.json`, beside the repository):

- getDestinations, createDestination, getDestination, deleteDestination: grantless, so they take
  only an access token from LWA's client_credentials grant (scope
  `sellingpartnerapi::notifications`); a seller's token is refused, as Amazon does;
- getSubscription, createSubscription, getSubscriptionById: the seller's token;
  deleteSubscriptionById: either (Amazon documents it as grantless, python-amazon-sp-api sends
  the seller's token and Amazon accepts it).

createDestination refuses a second destination for the same queue ARN (409), createSubscription
a second ORDER_CHANGE subscription of one payload version (409), as Amazon does; an SQS ARN must
match the model's pattern.

Amazon's side: once an ORDER_CHANGE subscription exists, `observe(order)` (the SP-API stand-in
calls it each time an order changes) queues an ORDER_CHANGE notification when the order's status
changed since the last one, and `flush()` sends them to the destination's SQS queue through
`deliver(queue_arn, body)` (local/aws_emulator.py). Each notification is checked against Amazon's
`OrderChangeNotification.json` (JSON Schema draft 7); violations go to the shared judge, reported
as path and rule, never a value.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from local.amazon_models import MODELS_DIR, ModelJudge, Violation
from local.spapi_server import SpApiStandIn

Response = tuple[int, dict[str, str], bytes]

PREFIX = "/notifications/v1/"
ORDER_CHANGE = "ORDER_CHANGE"
APPLICATION_ID = "amzn1.sp.solution.00000000-0000-4000-8000-00000000c0c0"
SQS_ARN = re.compile(r"^arn:aws:sqs:\S+:\S+:\S+")
STATUS = {
    "PENDING": "Pending",
    "PENDING_AVAILABILITY": "PendingAvailability",
    "UNSHIPPED": "Unshipped",
    "PARTIALLY_SHIPPED": "PartiallyShipped",
    "SHIPPED": "Shipped",
    "CANCELLED": "Canceled",
    "UNFULFILLABLE": "Unfulfillable",
}
GRANTLESS = frozenset({"getDestinations", "createDestination", "getDestination", "deleteDestination"})


@dataclass
class Destination:
    destination_id: str
    name: str
    arn: str

    def body(self) -> dict[str, Any]:
        return {
            "destinationId": self.destination_id,
            "name": self.name,
            "resource": {"sqs": {"arn": self.arn}},
        }


@dataclass
class Subscription:
    subscription_id: str
    notification_type: str
    payload_version: str
    destination_id: str
    processing_directive: dict[str, Any] | None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "subscriptionId": self.subscription_id,
            "payloadVersion": self.payload_version,
            "destinationId": self.destination_id,
        }
        if self.processing_directive:
            body["processingDirective"] = copy.deepcopy(self.processing_directive)
        return body


def _json(status: int, body: object) -> Response:
    return (
        status,
        {"content-type": "application/json", "x-amzn-RequestId": str(uuid.uuid4())},
        json.dumps(body).encode(),
    )


def _error(status: int, code: str, message: str) -> Response:
    return _json(status, {"errors": [{"code": code, "message": message, "details": ""}]})


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


@functools.cache
def _notification_validator() -> Any:
    from jsonschema import Draft7Validator

    path = MODELS_DIR / "OrderChangeNotification.json"
    if not path.exists():
        return None
    return Draft7Validator(json.loads(path.read_text(encoding="utf-8")))


class NotificationsStandIn:
    def __init__(
        self,
        seller_id: str,
        *,
        clock: Callable[[], datetime],
        deliver: Callable[[str, str], None] | None = None,
        judge: ModelJudge | None = None,
    ) -> None:
        self.seller_id = seller_id
        self.clock = clock
        self.deliver = deliver
        self.judge = judge if judge is not None else ModelJudge.default()
        self.destinations: dict[str, Destination] = {}
        self.subscriptions: dict[tuple[str, str], Subscription] = {}
        #: Requests per operation, and requests refused for the wrong kind of token.
        self.calls: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        #: ORDER_CHANGE notifications queued, sent to SQS, and refused by Amazon's schema.
        self.published = 0
        self.delivered = 0
        self.schema_violations = 0
        self._outbox: list[tuple[str, str]] = []
        self._last_status: dict[str, str] = {}
        self._lock = threading.RLock()

    # ---- the API ------------------------------------------------------------------------------

    def handle(  # noqa: PLR0917 - the SP-API stand-in calls it positionally
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes,
        base_url: str,
    ) -> Response | None:
        if not path.startswith(PREFIX):
            return None
        answer = self._answer(method, path[len(PREFIX) :], query, headers, body)
        self.judge.judge(
            method, path, query=query, headers=headers, body=body, status=answer[0], response=answer[2]
        )
        return answer

    def _answer(
        self, method: str, rest: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes
    ) -> Response:
        parts = [p for p in rest.split("/") if p]
        operation = self._operation(method, parts)
        if operation is None:
            return _error(404, "NotFound", "Resource not found.")
        token = {k.lower(): v for k, v in headers.items()}.get("x-amz-access-token", "")
        grantless = SpApiStandIn.grantless_token_valid(token)
        seller = SpApiStandIn.seller_token_valid(token)
        allowed = (
            grantless
            if operation in GRANTLESS
            else seller or (operation == "deleteSubscriptionById" and grantless)
        )
        with self._lock:
            self.calls[operation] += 1
            if not allowed:
                self.refused[operation] += 1
                return _error(403, "Unauthorized", "Access to requested resource is denied.")
            try:
                data = json.loads(body) if body else {}
            except ValueError:
                return _error(400, "InvalidInput", "The request body is not JSON.")
            return self._run(operation, parts, query, data if isinstance(data, dict) else {})

    @staticmethod
    def _operation(method: str, parts: list[str]) -> str | None:
        if parts[:1] == ["destinations"]:
            if len(parts) == 1:
                return {"GET": "getDestinations", "POST": "createDestination"}.get(method)
            if len(parts) == 2:
                return {"GET": "getDestination", "DELETE": "deleteDestination"}.get(method)
        if parts[:1] == ["subscriptions"]:
            if len(parts) == 2:
                return {"GET": "getSubscription", "POST": "createSubscription"}.get(method)
            if len(parts) == 3:
                return {"GET": "getSubscriptionById", "DELETE": "deleteSubscriptionById"}.get(method)
        return None

    def _run(
        self, operation: str, parts: list[str], query: dict[str, list[str]], data: dict[str, Any]
    ) -> Response:
        if operation == "getDestinations":
            return _json(200, {"payload": [d.body() for d in self.destinations.values()]})
        if operation == "createDestination":
            return self._create_destination(data)
        if operation in ("getDestination", "deleteDestination"):
            found = self.destinations.get(parts[1])
            if found is None:
                return _error(404, "NotFound", "The destination was not found.")
            if operation == "getDestination":
                return _json(200, {"payload": found.body()})
            if any(s.destination_id == found.destination_id for s in self.subscriptions.values()):
                return _error(409, "Conflict", "The destination has a subscription.")
            del self.destinations[found.destination_id]
            return _json(200, {})
        notification_type = parts[1]
        if operation == "getSubscription":
            version = (query.get("payloadVersion") or ["1.0"])[-1]
            subscription = self.subscriptions.get((notification_type, version))
            if subscription is None:
                return _error(404, "NotFound", "The subscription was not found.")
            return _json(200, {"payload": subscription.body()})
        if operation == "createSubscription":
            return self._create_subscription(notification_type, data)
        subscription = next(
            (
                s
                for s in self.subscriptions.values()
                if s.subscription_id == parts[2] and s.notification_type == notification_type
            ),
            None,
        )
        if subscription is None:
            return _error(404, "NotFound", "The subscription was not found.")
        if operation == "getSubscriptionById":
            return _json(200, {"payload": subscription.body()})
        del self.subscriptions[(subscription.notification_type, subscription.payload_version)]
        return _json(200, {})

    def _create_destination(self, data: dict[str, Any]) -> Response:
        spec = data.get("resourceSpecification")
        sqs = spec.get("sqs") if isinstance(spec, dict) else None
        arn = sqs.get("arn") if isinstance(sqs, dict) else None
        name = data.get("name")
        if not isinstance(arn, str) or not SQS_ARN.match(arn) or not isinstance(name, str) or not name:
            return _error(400, "InvalidInput", "name and resourceSpecification.sqs.arn are required.")
        if any(d.arn == arn for d in self.destinations.values()):
            return _error(409, "Conflict", "A destination for this resource already exists.")
        destination = Destination(str(uuid.uuid4()), name, arn)
        self.destinations[destination.destination_id] = destination
        return _json(200, {"payload": destination.body()})

    def _create_subscription(self, notification_type: str, data: dict[str, Any]) -> Response:
        version, destination_id = data.get("payloadVersion"), data.get("destinationId")
        if notification_type != ORDER_CHANGE:
            return _error(400, "InvalidInput", "This stand-in serves ORDER_CHANGE only.")
        if version != "1.0" or destination_id not in self.destinations:
            return _error(
                400, "InvalidInput", "payloadVersion 1.0 and an existing destinationId are required."
            )
        directive = data.get("processingDirective")
        event_filter = directive.get("eventFilter") if isinstance(directive, dict) else None
        if event_filter is not None and (
            not isinstance(event_filter, dict) or event_filter.get("eventFilterType") != ORDER_CHANGE
        ):
            return _error(400, "InvalidInput", "The eventFilter must be of type ORDER_CHANGE.")
        if (notification_type, version) in self.subscriptions:
            return _error(409, "Conflict", "A subscription of this type and version already exists.")
        subscription = Subscription(
            str(uuid.uuid4()),
            notification_type,
            version,
            str(destination_id),
            directive if isinstance(directive, dict) else None,
        )
        self.subscriptions[(notification_type, version)] = subscription
        return _json(200, {"payload": subscription.body()})

    # ---- Amazon's side: ORDER_CHANGE to the destination's queue -------------------------------

    def _subscription(self) -> Subscription | None:
        return self.subscriptions.get((ORDER_CHANGE, "1.0"))

    def observe(self, order: Mapping[str, Any]) -> None:
        """An order changed (or is new): queue an ORDER_CHANGE when its status changed."""
        fulfillment = order.get("fulfillment") or {}
        status = STATUS.get(str(fulfillment.get("fulfillmentStatus")))
        order_id = str(order["orderId"])
        with self._lock:
            subscription = self._subscription()
            if subscription is None or status is None or self._last_status.get(order_id) == status:
                return
            directive = subscription.processing_directive or {}
            marketplaces = (directive.get("eventFilter") or {}).get("marketplaceIds")
            marketplace = str((order.get("salesChannel") or {}).get("marketplaceId"))
            if marketplaces and marketplace not in marketplaces:
                return
            self._last_status[order_id] = status
            body = self.notification(order, status, subscription.subscription_id)
            self._check(body)
            destination = self.destinations[subscription.destination_id]
            self._outbox.append((destination.arn, json.dumps(body)))
            self.published += 1

    def announce(self, orders: list[dict[str, Any]]) -> int:
        """Amazon's notifications of orders that exist already (sent when they were placed)."""
        before = self.published
        for order in orders:
            self.observe(order)
        return self.published - before

    def flush(self) -> int:
        """Deliver the queued notifications to SQS; returns how many."""
        with self._lock:
            outbox, self._outbox = self._outbox, []
        if self.deliver is None:
            return 0
        for arn, body in outbox:
            self.deliver(arn, body)
        with self._lock:
            self.delivered += len(outbox)
        return len(outbox)

    def notification(self, order: Mapping[str, Any], status: str, subscription_id: str) -> dict[str, Any]:
        """ORDER_CHANGE payload version 1.0 for `order` (Orders API 2026-01-01 shape)."""
        now = self.clock()
        fulfillment = order.get("fulfillment") or {}
        address = (order.get("recipient") or {}).get("deliveryAddress") or {}
        items = []
        shipped_total = unshipped_total = 0
        for item in order.get("orderItems") or []:
            quantity = int(item.get("quantityOrdered") or 0)
            shipped = int((item.get("fulfillment") or {}).get("quantityFulfilled") or 0)
            if status == "Shipped":
                shipped = quantity
            shipped_total += shipped
            unshipped_total += quantity - shipped
            items.append(
                {
                    "OrderItemId": str(item["orderItemId"]),
                    "SellerSKU": str((item.get("product") or {}).get("sellerSku") or ""),
                    "SupplySourceId": None,
                    "OrderItemStatus": "Shipped" if shipped >= quantity > 0 else "Unshipped",
                    "Quantity": quantity,
                    "QuantityShipped": shipped,
                }
            )
        return {
            "NotificationVersion": "1.0",
            "NotificationType": ORDER_CHANGE,
            "PayloadVersion": "1.0",
            "EventTime": _iso(now),
            "Payload": {
                "OrderChangeNotification": {
                    "NotificationLevel": "OrderLevel",
                    "SellerId": self.seller_id,
                    "AmazonOrderId": str(order["orderId"]),
                    "OrderChangeType": "OrderStatusChange",
                    "OrderChangeTrigger": {
                        "TimeOfOrderChange": order.get("lastUpdatedTime"),
                        "ChangeReason": "Order status changed",
                    },
                    "Summary": {
                        "MarketplaceId": str((order.get("salesChannel") or {}).get("marketplaceId")),
                        "OrderStatus": status,
                        "PurchaseDate": order.get("createdTime"),
                        "DestinationPostalCode": address.get("postalCode"),
                        "FulfillmentType": "AFN" if fulfillment.get("fulfilledBy") == "AMAZON" else "MFN",
                        "OrderType": "StandardOrder",
                        "NumberOfItemsShipped": shipped_total,
                        "NumberOfItemsUnshipped": unshipped_total,
                        "OrderItems": items,
                    },
                }
            },
            "NotificationMetadata": {
                "ApplicationId": APPLICATION_ID,
                "SubscriptionId": subscription_id,
                "PublishTime": _iso(now),
                "NotificationId": str(uuid.uuid4()),
            },
        }

    def _check(self, body: Mapping[str, Any]) -> None:
        validator = _notification_validator()
        if validator is None:
            return
        found = [
            Violation(
                "OrderChangeNotification.json",
                ORDER_CHANGE,
                "sqs",
                "notification",
                "/" + "/".join(str(p) for p in error.absolute_path),
                f"{error.validator}: the notification breaks the schema",
            )
            for error in validator.iter_errors(body)
        ]
        self.schema_violations += len(found)
        self.judge.record(ORDER_CHANGE, found)
