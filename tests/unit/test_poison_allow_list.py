"""Poison records are scrubbed by allow-list (issue 24, item 3): a value survives only under a
key the app's messages or Amazon's notification envelope define as not personal, and only with
that key's shape. Proved against every property of every schema in ../shared/amazon-models,
and against keys nobody defined."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from azure.functions.queue import QueueMessage

from shared.errors import InvalidInput
from shared.telemetry.message_failures import NOT_PERSONAL, MessageFailures
from tests.conftest import AMAZON_MODELS


class _Sender:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, int]] = []

    def send(
        self, queue: str, body: str, visibility_timeout_s: int = 0, time_to_live_s: int | None = None
    ) -> None:
        self.sent.append((queue, body, visibility_timeout_s))


def _poisoned(body: object) -> str:
    sender = _Sender()
    msg = QueueMessage(id="m-1", body=json.dumps(body).encode(), dequeue_count=1)
    with MessageFailures(sender).guard("order-notifications", msg):
        raise InvalidInput(code="notification_invalid")
    return sender.sent[0][1]


def _properties(node: Any) -> Iterator[str]:
    """Every property name any schema or swagger definition in `node` declares."""
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict):
            yield from (k for k in props if isinstance(k, str))
        for value in node.values():
            yield from _properties(value)
    elif isinstance(node, list):
        for value in node:
            yield from _properties(value)


def _every_property() -> list[str]:
    names: set[str] = set()
    for path in sorted(AMAZON_MODELS.glob("*.json")):
        names |= set(_properties(json.loads(path.read_text(encoding="utf-8"))))
    return sorted(names)


PROPERTIES = _every_property()
UNKNOWN = ["note", "freeText", "giftMessage", "customizedUrl", "x-forwarded-for", "Erika", "a" * 64]


def _normal(key: str) -> str:
    return key.replace("_", "").replace("-", "").lower()


def test_the_models_are_walked() -> None:
    assert len(PROPERTIES) > 300  # the orders, shipping, feeds and notification models
    assert {"giftMessage", "legalName", "GiftMessageText", "AmazonOrderId"} <= set(PROPERTIES)


def _nested(message: dict[str, Any]) -> dict[str, Any]:
    """The same fields at the top level and where a notification carries its payload."""
    return {
        **message,
        "Payload": {"OrderChangeNotification": {"Summary": dict(message), "OrderItems": [dict(message)]}},
        "NotificationMetadata": dict(message),
        "Message": json.dumps(message),  # a notification wrapped as text
    }


def test_no_free_text_survives_under_any_key_of_any_model() -> None:
    """Free text (a name, a note, a gift message) is never an id, an enum or a timestamp."""
    markers = {key: f"zq marker {n} Müller, Hauptstraße 5" for n, key in enumerate(PROPERTIES + UNKNOWN)}
    kept = _poisoned(_nested(markers))
    assert [k for k, m in markers.items() if m in kept] == []
    nested = {key: {"inner": m, "list": [m]} for key, m in markers.items()}
    kept = _poisoned(nested)
    assert [k for k, m in markers.items() if m in kept] == []


def test_no_value_survives_under_a_key_not_on_the_allow_list_whatever_its_shape() -> None:
    """An id-shaped value under an unlisted key (a postal code, a tax number) becomes a digest."""
    listed = {_normal(k) for k in NOT_PERSONAL}
    unlisted = [k for k in PROPERTIES + UNKNOWN if _normal(k) not in listed]
    assert {"DestinationPostalCode", "legalName", "Name", "giftMessage"} <= set(unlisted)
    for value in ("ZQ80331", "2026-03-02", 80331, True, ["ZQ80331"]):
        kept = json.loads(json.loads(_poisoned({k: value for k in unlisted}))["body"])
        leaves = [w for v in kept.values() for w in (v if isinstance(v, list) else [v])]
        assert all(isinstance(w, str) and w.startswith("<") for w in leaves), value


@pytest.mark.parametrize(
    "key", ["AmazonOrderId", "NotificationType", "EventTime", "ref", "NumberOfItemsShipped"]
)
def test_ids_types_timestamps_and_counts_stay_to_diagnose_and_replay(key: str) -> None:
    value = {
        "AmazonOrderId": "903-8868176-2219830",
        "NotificationType": "ORDER_CHANGE",
        "EventTime": "2020-01-11T00:09:53.109Z",
        "ref": "Rf0000000000000000000A",
        "NumberOfItemsShipped": 3,
    }[key]
    kept = json.loads(json.loads(_poisoned({key: value}))["body"])
    assert kept == {key: value}


def test_a_key_that_is_itself_text_is_not_kept() -> None:
    kept = _poisoned({"Erika Mustermann, 80331 München": 1})
    assert "Mustermann" not in kept and "80331" not in kept
