"""ORDER_CHANGE parsing, and the enforced schema subset checked against Amazon's model."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from shared.ingestion.notifications import SCHEMA, NotificationRejected, parse_order_change


def _subset(mine: dict[str, Any], theirs: dict[str, Any], path: str = "$") -> None:
    assert mine.get("type") == theirs.get("type"), path
    assert mine.get("enum") == theirs.get("enum"), path
    assert sorted(mine.get("required", [])) == sorted(theirs.get("required", [])), path
    for name, sub in mine.get("properties", {}).items():
        assert name in theirs.get("properties", {}), f"{path}.{name} is not in Amazon's model"
        _subset(sub, theirs["properties"][name], f"{path}.{name}")
    if "items" in mine:
        _subset(mine["items"], theirs["items"], f"{path}[]")


def test_enforced_schema_is_amazons(amazon_model: Callable[[str], dict[str, Any]]) -> None:
    _subset(SCHEMA, amazon_model("OrderChangeNotification.json"))


def test_amazons_example_parses(amazon_model: Callable[[str], dict[str, Any]]) -> None:
    example = amazon_model("OrderChangeNotification.json")["examples"][0]
    change = parse_order_change(json.dumps(example).encode())
    assert (change.seller_id, change.order_id, change.fulfillment_type) == (
        "A3TH9S8BH6GOGM",
        "903-8868176-2219830",
        "MFN",
    )
    assert change.change_time is not None and change.notification_id.startswith("d0e9")
    assert len(change.dedupe_key) == 40


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda d: d.update(NotificationType="ANY_OFFER_CHANGED"), "notification_wrong_type"),
        (lambda d: d["NotificationMetadata"].pop("NotificationId"), "notification_malformed"),
        (
            lambda d: d["Payload"]["OrderChangeNotification"]["Summary"].update(OrderItems={}),
            "notification_malformed",
        ),
        (lambda d: d["Payload"]["OrderChangeNotification"].update(SellerId=" "), "notification_malformed"),
        (lambda d: d.update(EventTime="yesterday"), "notification_malformed"),
    ],
)
def test_bad_notifications_are_rejected_with_a_reason_and_no_values(
    amazon_model: Callable[[str], dict[str, Any]], mutate: Callable[[dict[str, Any]], object], code: str
) -> None:
    example = amazon_model("OrderChangeNotification.json")["examples"][0]
    mutate(example)
    with pytest.raises(NotificationRejected) as err:
        parse_order_change(json.dumps(example).encode())
    assert err.value.code == code
    assert "903-8868176-2219830" not in str(err.value) and "48110" not in str(err.value)


def test_a_json_array_is_malformed() -> None:
    with pytest.raises(NotificationRejected) as err:
        parse_order_change(b"[]")
    assert err.value.code == "notification_malformed"
