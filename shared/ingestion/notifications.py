"""ORDER_CHANGE notifications: checked against the shape of Amazon's OrderChangeNotification.json.

Amazon delivers notifications to SQS/EventBridge; a forwarder puts the JSON body on our queue.
A body that is too large, not JSON, or not shaped as the model says is rejected with a reason
code and a field path, never a value (the message is poisoned as it is). `SCHEMA` is the subset
of Amazon's JSON schema this module enforces; a unit test checks it against the model file, so
the two cannot drift apart silently.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.errors import InvalidInput

MAX_NOTIFICATION_BYTES = 64 * 1024  # an Azure Storage queue message's limit
ORDER_CHANGE = "ORDER_CHANGE"

_STR: dict[str, Any] = {"type": "string"}
_NULLABLE_STR: dict[str, Any] = {"type": ["string", "null"]}
_INT: dict[str, Any] = {"type": "integer"}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [
        "NotificationVersion",
        "NotificationType",
        "PayloadVersion",
        "EventTime",
        "Payload",
        "NotificationMetadata",
    ],
    "properties": {
        "NotificationVersion": _STR,
        "NotificationType": _STR,
        "PayloadVersion": _STR,
        "EventTime": _STR,
        "Payload": {
            "type": "object",
            "required": ["OrderChangeNotification"],
            "properties": {
                "OrderChangeNotification": {
                    "type": "object",
                    "required": [
                        "NotificationLevel",
                        "SellerId",
                        "AmazonOrderId",
                        "OrderChangeType",
                        "OrderChangeTrigger",
                        "Summary",
                    ],
                    "properties": {
                        "NotificationLevel": {"type": "string", "enum": ["OrderItemLevel", "OrderLevel"]},
                        "SellerId": _STR,
                        "AmazonOrderId": _STR,
                        "OrderChangeType": {
                            "type": "string",
                            "enum": ["BuyerRequestedChange", "DeliveryTipChange", "OrderStatusChange"],
                        },
                        "OrderChangeTrigger": {
                            "type": "object",
                            "required": ["TimeOfOrderChange", "ChangeReason"],
                            "properties": {"TimeOfOrderChange": _NULLABLE_STR, "ChangeReason": _STR},
                        },
                        "Summary": {
                            "type": "object",
                            "required": [
                                "MarketplaceId",
                                "OrderStatus",
                                "PurchaseDate",
                                "DestinationPostalCode",
                                "FulfillmentType",
                                "OrderType",
                                "OrderItems",
                            ],
                            "properties": {
                                "MarketplaceId": _STR,
                                "OrderStatus": {
                                    "type": "string",
                                    "enum": [
                                        "Pending",
                                        "Unshipped",
                                        "PartiallyShipped",
                                        "Shipped",
                                        "Canceled",
                                        "Unfulfillable",
                                        "InvoiceUnconfirmed",
                                        "PendingAvailability",
                                    ],
                                },
                                "PurchaseDate": _NULLABLE_STR,
                                "DestinationPostalCode": _NULLABLE_STR,
                                "FulfillmentType": {"type": "string", "enum": ["AFN", "MFN"]},
                                "OrderType": {
                                    "type": "string",
                                    "enum": [
                                        "StandardOrder",
                                        "LongLeadTimeOrder",
                                        "Preorder",
                                        "BackOrder",
                                        "SourcingOnDemandOrder",
                                    ],
                                },
                                "NumberOfItemsShipped": _INT,
                                "NumberOfItemsUnshipped": _INT,
                                "OrderItems": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": [
                                            "OrderItemId",
                                            "SellerSKU",
                                            "SupplySourceId",
                                            "Quantity",
                                        ],
                                        "properties": {
                                            "OrderItemId": _STR,
                                            "SellerSKU": _STR,
                                            "SupplySourceId": _NULLABLE_STR,
                                            "Quantity": _INT,
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
        "NotificationMetadata": {
            "type": "object",
            "required": ["ApplicationId", "SubscriptionId", "PublishTime", "NotificationId"],
            "properties": {
                "ApplicationId": _STR,
                "SubscriptionId": _STR,
                "PublishTime": _STR,
                "NotificationId": _STR,
            },
        },
    },
}

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "boolean": (bool,),
    "null": (type(None),),
}


class NotificationRejected(InvalidInput):
    code = "notification_invalid"


def _type_ok(value: object, expected: str | list[str]) -> bool:
    names = [expected] if isinstance(expected, str) else expected
    for name in names:
        if name == "integer" and isinstance(value, bool):
            continue
        if isinstance(value, _JSON_TYPES[name]):
            return True
    return False


def validate(value: object, schema: Mapping[str, Any], path: str = "$") -> None:
    """Enforce type, required, enum, properties and items; raises with the field's path."""
    if "type" in schema and not _type_ok(value, schema["type"]):
        raise NotificationRejected(f"{path} has the wrong type", code="notification_malformed")
    if "enum" in schema and value not in schema["enum"]:
        raise NotificationRejected(f"{path} is not an allowed value", code="notification_malformed")
    if isinstance(value, dict):
        for name in schema.get("required", ()):
            if name not in value:
                raise NotificationRejected(f"{path}.{name} is missing", code="notification_malformed")
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                validate(value[name], sub, f"{path}.{name}")
    if isinstance(value, list) and "items" in schema:
        for item in value:
            validate(item, schema["items"], f"{path}[]")


@dataclass(frozen=True, slots=True)
class OrderChange:
    """What the pipeline needs from one ORDER_CHANGE notification (no buyer data)."""

    notification_id: str
    seller_id: str
    order_id: str
    marketplace_id: str
    fulfillment_type: str
    order_status: str
    change_time: datetime | None
    event_time: datetime

    @property
    def dedupe_key(self) -> str:
        """A fixed-length id safe for a Cosmos document id, whatever the notification id holds."""
        return hashlib.sha256(self.notification_id.encode()).hexdigest()[:40]


def _time(value: object, path: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise NotificationRejected(f"{path} is not ISO 8601", code="notification_malformed") from None
    if parsed.tzinfo is None:
        raise NotificationRejected(f"{path} has no time zone", code="notification_malformed")
    return parsed


def _encodable(text: str) -> bool:
    """False for a lone surrogate (JSON allows "\\ud800"): ids are hashed and stored as UTF-8."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def parse_order_change(body: bytes | str) -> OrderChange:
    if len(body) > MAX_NOTIFICATION_BYTES:
        raise NotificationRejected("notification too large", code="notification_too_large")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser allows
        raise NotificationRejected("notification is not JSON", code="notification_not_json") from None
    validate(data, SCHEMA)
    if data["NotificationType"] != ORDER_CHANGE:
        raise NotificationRejected("not an ORDER_CHANGE notification", code="notification_wrong_type")
    change = data["Payload"]["OrderChangeNotification"]
    summary = change["Summary"]
    metadata = data["NotificationMetadata"]
    for path, text in (
        ("NotificationId", metadata["NotificationId"]),
        ("SellerId", change["SellerId"]),
        ("AmazonOrderId", change["AmazonOrderId"]),
        ("MarketplaceId", summary["MarketplaceId"]),
    ):
        if not text.strip() or len(text) > 200 or not _encodable(text):
            raise NotificationRejected(
                f"{path} is empty, too long or not UTF-8", code="notification_malformed"
            )
    changed = change["OrderChangeTrigger"]["TimeOfOrderChange"]
    return OrderChange(
        notification_id=metadata["NotificationId"],
        seller_id=change["SellerId"],
        order_id=change["AmazonOrderId"],
        marketplace_id=summary["MarketplaceId"],
        fulfillment_type=summary["FulfillmentType"],
        order_status=summary["OrderStatus"],
        change_time=_time(changed, "TimeOfOrderChange") if changed else None,
        event_time=_time(data["EventTime"], "EventTime"),
    )
