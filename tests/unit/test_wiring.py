"""The registered functions, read back from the Functions programming model itself."""

import json

from shared import messages
from tests.registry import registered

EXPECTED = {
    "poll_orders": ("timerTrigger", "%POLL_ORDERS_SCHEDULE%"),
    "ingest_notification": ("queueTrigger", messages.ORDER_NOTIFICATIONS),
    "ship_order": ("queueTrigger", messages.SHIPMENTS),
    "issue_invoice": ("queueTrigger", messages.INVOICES),
    "track_deliveries": ("timerTrigger", "%TRACK_DELIVERIES_SCHEDULE%"),
    "purge_expired": ("timerTrigger", "%PURGE_EXPIRED_SCHEDULE%"),
    "handle_privacy_request": ("queueTrigger", messages.PRIVACY_REQUESTS),
}


def _bindings() -> dict[str, list[dict[str, object]]]:
    return {fn.get_function_name(): json.loads(fn.get_function_json())["bindings"] for fn in registered()}


def _trigger(bindings: list[dict[str, object]]) -> dict[str, object]:
    (trigger,) = [b for b in bindings if str(b["type"]).endswith("Trigger")]
    return trigger


def test_every_function_has_its_trigger_and_source() -> None:
    found = _bindings()
    assert set(found) == set(EXPECTED)
    for name, (kind, source) in EXPECTED.items():
        trigger = _trigger(found[name])
        assert trigger["type"] == kind, name
        if kind == "timerTrigger":
            assert trigger["schedule"] == source, name
            assert trigger["runOnStartup"] is False, name
        else:
            assert trigger["queueName"] == source, name
            assert trigger["connection"] == messages.STORAGE_CONNECTION, name


def test_queue_triggers_have_no_retry_policy() -> None:
    # Queue triggers ignore @retry; retries come from host.json and end in <queue>-poison.
    for fn in registered():
        assert "retry" not in json.loads(fn.get_function_json()), fn.get_function_name()


def test_every_queue_written_is_consumed() -> None:
    found = _bindings()
    consumed = {b["queueName"] for bs in found.values() for b in bs if b["type"] == "queueTrigger"}
    written = {
        b["queueName"]
        for bs in found.values()
        for b in bs
        if b["type"] == "queue" and b["direction"] == "OUT"
    }
    assert written, "no output queue found: the wiring check would be vacuous"
    assert written <= consumed
    for bs in found.values():
        for b in bs:
            if b["type"] == "queue":
                assert b["connection"] == messages.STORAGE_CONNECTION


def test_host_json_queue_settings() -> None:
    with open("host.json") as fh:
        host = json.load(fh)
    assert host["extensionBundle"]["version"] == "[4.*, 5.0.0)"
    queues = host["extensions"]["queues"]
    assert queues["messageEncoding"] == "base64"
    assert 1 <= queues["maxDequeueCount"] <= 10
    assert set(queues) >= {"batchSize", "maxDequeueCount", "visibilityTimeout"}
