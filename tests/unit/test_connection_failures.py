"""Typed transient errors for every SDK's connection failure (issue 24, item 5): a lost
connection gives the dependency's stable reason code, in telemetry and on the poison record,
never the library's class name."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import requests
from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.functions.queue import QueueMessage

from shared.errors import DEPENDENCY_UNAVAILABLE, connection_failure_code
from shared.telemetry.invocations import error_code
from shared.telemetry.message_failures import MAX_DEQUEUE_COUNT, MessageFailures


def _raised_in(module: str, make: Callable[[], BaseException]) -> BaseException:
    """`make()` raised from a frame of `module`, as the SDK raises it."""
    namespace: dict[str, object] = {"__name__": module, "make": make}
    exec("def call():\n    raise make()\n", namespace)  # noqa: S102 - a frame named like the SDK's
    try:
        namespace["call"]()  # type: ignore[operator]
    except BaseException as exc:
        return exc
    raise AssertionError("not raised")


CASES = [
    (
        "azure.cosmos._synchronized_request",
        lambda: ServiceRequestError("connection refused"),
        "store_unavailable",
    ),
    ("azure.cosmos._retry_utility", lambda: ServiceResponseError("connection reset"), "store_unavailable"),
    ("azure.storage.blob._blob_client", lambda: ServiceRequestError("lost"), "blob_unavailable"),
    ("azure.storage.queue._queue_client", lambda: ServiceResponseError("lost"), "queue_unavailable"),
    ("azure.keyvault.secrets._client", lambda: ServiceRequestError("lost"), "key_vault_unavailable"),
    ("shared.ingestion.spapi_gateway", lambda: requests.ConnectionError("refused"), "spapi_unavailable"),
    ("shared.ingestion.spapi_gateway", lambda: requests.ReadTimeout("slow"), "spapi_unavailable"),
    ("karrio.core.utils.helpers", lambda: requests.ConnectionError("refused"), "carrier_unavailable"),
    ("karrio.core.utils.helpers", lambda: TimeoutError("slow"), "carrier_unavailable"),
    ("shared.shipping.carriers.karrio", lambda: ConnectionResetError(104, "reset"), "carrier_unavailable"),
    ("somewhere.else", lambda: ServiceRequestError("lost"), DEPENDENCY_UNAVAILABLE),
]


@pytest.mark.parametrize(("module", "make", "code"), CASES)
def test_a_lost_connection_has_the_dependencys_code(
    module: str, make: Callable[[], BaseException], code: str
) -> None:
    exc = _raised_in(module, make)
    assert connection_failure_code(exc) == code == error_code(exc)
    assert type(exc).__name__ not in error_code(exc)


def test_an_error_raised_from_a_lost_connection_keeps_the_code() -> None:
    lost = _raised_in("azure.cosmos._synchronized_request", lambda: ServiceRequestError("x"))
    try:
        raise RuntimeError("wrapped") from lost
    except RuntimeError as exc:
        assert error_code(exc) == "store_unavailable"


def test_other_errors_are_not_connection_failures() -> None:
    assert connection_failure_code(KeyError("x")) is None
    assert error_code(KeyError("x")) == "KeyError"


def test_a_killed_cosmos_poisons_with_a_typed_reason() -> None:
    sent: list[tuple[str, str, int]] = []

    class Sender:
        def send(
            self, queue: str, body: str, visibility_timeout_s: int = 0, time_to_live_s: int | None = None
        ) -> None:
            sent.append((queue, body, visibility_timeout_s))

    lost = _raised_in("azure.cosmos._synchronized_request", lambda: ServiceRequestError("refused"))
    msg = QueueMessage(id="m-1", body=b'{"ref": "Rf0000000000000000000A"}', dequeue_count=MAX_DEQUEUE_COUNT)
    with MessageFailures(Sender()).guard("shipments", msg):
        raise lost
    ((queue, body, _),) = sent
    assert queue == "shipments-poison"
    assert json.loads(body)["reason"] == "retries_exhausted:store_unavailable"
    assert "ServiceRequestError" not in body
