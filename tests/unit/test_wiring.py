"""The registered functions, read back from the Functions programming model itself."""

import json

from shared.orders import messages
from tests.function_table import FUNCTIONS, by_name
from tests.registry import registered


def _bindings() -> dict[str, list[dict[str, object]]]:
    return {fn.get_function_name(): json.loads(fn.get_function_json())["bindings"] for fn in registered()}


def test_every_function_has_exactly_the_bindings_of_the_table() -> None:
    found = _bindings()
    assert set(found) == set(FUNCTIONS)
    for name, expected in FUNCTIONS.items():
        assert by_name(found[name]) == by_name(expected), name


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
