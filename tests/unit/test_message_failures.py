"""What a failing queue message becomes: poisoned with a reason, re-queued, or retried."""

import codecs
import inspect
import json
import logging
import sys
from typing import Any

import pytest
from azure.functions.queue import QueueMessage

from shared.errors import InvalidInput, TransientError
from shared.settings import POISON_MESSAGE_DAYS, load_settings
from shared.storage.queues import StorageQueues
from shared.telemetry.invocations import AppTelemetry
from shared.telemetry.message_failures import MAX_DEQUEUE_COUNT, POISON_TTL_S, MessageFailures, scrubbed_body
from tests.builders import BASE_SETTINGS
from tests.fakes import FakeSender
from tests.log_capture import Capture


class Throttled(TransientError):
    code = "spapi_throttled"
    retry_after_s = 179.6


def _msg(body: str, dequeue_count: int = 1) -> QueueMessage:
    return QueueMessage(id="m-1", body=body.encode(), dequeue_count=dequeue_count)


def test_invalid_input_is_poisoned_at_once_with_its_reason() -> None:
    sender = FakeSender()
    with MessageFailures(sender).guard("shipments", _msg('{"ref": 1}')):
        raise InvalidInput(code="message_bad_ref")
    ((queue, body, _),) = sender.sent
    record = json.loads(body)
    assert queue == "shipments-poison" and record["reason"] == "message_bad_ref"
    assert record["messageId"] == "m-1" and json.loads(record["body"]) == {"ref": 1}


def test_throttling_requeues_with_the_wait_instead_of_failing() -> None:
    sender = FakeSender()
    with MessageFailures(sender).guard("order-notifications", _msg("{}")):
        raise Throttled()
    assert sender.sent == [("order-notifications", "{}", 180)]


@pytest.mark.parametrize("error", [TransientError(), KeyError("x")])
def test_other_failures_retry_until_the_last_attempt_then_poison(error: Exception) -> None:
    sender = FakeSender()
    failures = MessageFailures(sender)
    with pytest.raises(type(error)), failures.guard("invoices", _msg("{}", MAX_DEQUEUE_COUNT - 1)):
        raise error
    assert sender.sent == []
    with failures.guard("invoices", _msg("{}", MAX_DEQUEUE_COUNT)):
        raise error
    assert json.loads(sender.sent[0][1])["reason"].startswith("retries_exhausted:")


def test_poison_records_drop_the_postal_code_a_notification_carries() -> None:
    body = {
        "NotificationType": "ORDER_CHANGE",
        "Payload": {"OrderChangeNotification": {"Summary": {"DestinationPostalCode": "Zq80331Secret"}}},
        "note": "call +49 170 1234567 or zq.secret@example.com",
    }
    sender = FakeSender()
    with MessageFailures(sender).guard("order-notifications", _msg(json.dumps(body))):
        raise InvalidInput(code="notification_invalid")
    kept = sender.sent[0][1]
    assert "Zq80331Secret" not in kept and "zq.secret@example.com" not in kept and "1234567" not in kept
    assert "ORDER_CHANGE" in kept  # the rest stays, to diagnose or replay


def _poisoned_body(body: bytes) -> str:
    sender = FakeSender()
    with MessageFailures(sender).guard("order-notifications", QueueMessage(id="m-1", body=body)):
        raise InvalidInput(code="unknown_seller")
    return str(json.loads(sender.sent[0][1])["body"])


NOTIFICATION = {
    "NotificationType": "ORDER_CHANGE",
    "Payload": {"OrderChangeNotification": {"Summary": {"DestinationPostalCode": "98101"}}},
}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(codecs.BOM_UTF8 + json.dumps(NOTIFICATION).encode(), id="utf-8 with BOM"),
        pytest.param(json.dumps(NOTIFICATION).encode("utf-16"), id="utf-16"),
        pytest.param(json.dumps({"Message": json.dumps(NOTIFICATION)}).encode(), id="wrapped as a string"),
        pytest.param(json.dumps({"destination_postal_code": "98101"}).encode(), id="other spelling"),
    ],
)
def test_a_body_the_handlers_read_is_scrubbed_however_it_is_encoded_or_wrapped(body: bytes) -> None:
    kept = _poisoned_body(body)
    assert "98101" not in kept and ("ORDER_CHANGE" in kept or "destination_postal_code" in kept)


def test_a_body_that_is_not_json_is_kept_as_its_size_and_digest_only() -> None:
    body = json.dumps(NOTIFICATION).encode()[:-5]  # truncated
    kept = _poisoned_body(body)
    assert "98101" not in kept and kept.startswith(f"<not JSON: {len(body)} bytes, sha256 ")


def test_every_buyer_and_address_field_of_amazons_order_models_is_scrubbed(amazon_model: Any) -> None:
    schemas = {
        "ordersV0.json": (
            "Address",
            "AddressExtendedFields",
            "BuyerInfo",
            "BuyerTaxInfo",
            "DeliveryPreferences",
        ),
        "orders_2026-01-01.json": ("CustomerAddress", "AddressExtendedFields", "Buyer", "Recipient"),
    }
    # Kept: no one is identified by a country, an address type, delivery time windows or
    # Amazon's enum of delivery attributes (OtherAttributes).
    plain = {
        "AddressType",
        "CountryCode",
        "addressType",
        "countryCode",
        "OtherAttributes",
        "PreferredDeliveryTime",
    }
    for model, names in schemas.items():
        definitions = amazon_model(model)["definitions"]
        for name in names:
            for key in set(definitions[name]["properties"]) - plain:
                kept = _poisoned_body(json.dumps({key: "Zq-secret-value"}).encode())
                assert "Zq-secret-value" not in kept, f"{model} {name}.{key}"


@pytest.mark.parametrize(
    ("dequeue_count", "error", "queue", "poisoned"),
    [
        (1, InvalidInput(code="message_bad_ref"), "shipments-poison", True),  # at once
        (5, Throttled(), "shipments", False),  # re-queued with its wait, even on the last attempt
        (5, RuntimeError("boom"), "shipments-poison", True),  # the last attempt
    ],
)
def test_the_failure_record_says_poisoned_exactly_when_the_message_is_poisoned(
    dequeue_count: int, error: Exception, queue: str, poisoned: bool
) -> None:
    """Functions nest the telemetry invocation inside the guard: its failure record is written
    before the guard acts, and must say what the guard then does."""
    capture, sender = Capture(), FakeSender()
    logger = logging.getLogger("test.poisoned")
    logger.addHandler(capture)
    message = _msg('{"ref": "x"}', dequeue_count)
    try:
        with (
            MessageFailures(sender).guard("shipments", message),
            AppTelemetry(logger=logger).invocation("ship_order", message),
        ):
            raise error
    finally:
        logger.removeHandler(capture)
    assert [q for q, _, _ in sender.sent] == [queue]
    (failure,) = capture.records
    assert failure.custom_dimensions["poisoned"] is poisoned  # type: ignore[attr-defined]


def test_a_throttled_utf16_message_is_re_queued_as_the_same_json_and_not_marked_poisoned() -> None:
    """The handlers parse UTF-16 JSON too; re-queued as text it is the same JSON, so even on
    its last attempt a throttled message waits instead of being poisoned, as its record says."""
    capture, sender = Capture(), FakeSender()
    logger = logging.getLogger("test.poisoned.utf16")
    logger.addHandler(capture)
    body = codecs.BOM_UTF16_LE + '{"ref": "x"}'.encode("utf-16-le")
    message = QueueMessage(id="m-1", body=body, dequeue_count=MAX_DEQUEUE_COUNT)
    try:
        with (
            MessageFailures(sender).guard("shipments", message),
            AppTelemetry(logger=logger).invocation("ship_order", message),
        ):
            raise Throttled()
    finally:
        logger.removeHandler(capture)
    ((queue, text, delay),) = sender.sent
    assert (queue, json.loads(text), delay) == ("shipments", {"ref": "x"}, 180)  # 179.6 s, rounded up
    (failure,) = capture.records
    assert failure.custom_dimensions["poisoned"] is False  # type: ignore[attr-defined]


def test_a_poison_record_expires_within_the_recoverability_bound() -> None:
    sender = FakeSender()
    with MessageFailures(sender).guard("shipments", _msg('{"ref": 1}')):
        raise InvalidInput(code="message_bad_ref")
    assert sender.ttls == [POISON_TTL_S] == [POISON_MESSAGE_DAYS * 24 * 3600]
    # Poisoned while its order is stored (by its deadline at the latest): gone within the bound.
    settings = load_settings(BASE_SETTINGS)
    assert settings.retention_days + POISON_MESSAGE_DAYS <= settings.recoverability_days


def test_a_requeued_message_keeps_the_queues_time_to_live() -> None:
    sender = FakeSender()
    with MessageFailures(sender).guard("order-notifications", _msg("{}")):
        raise Throttled()
    assert sender.ttls == [None]


def test_the_storage_adapter_sends_the_time_to_live_to_the_queue() -> None:
    sent: list[tuple[str, dict[str, Any]]] = []

    class Client:
        def send_message(self, content: str, **options: Any) -> None:
            sent.append((content, options))

    class Service:
        def get_queue_client(self, queue: str, **_options: Any) -> Client:
            return Client()

    StorageQueues(Service()).send("shipments-poison", "{}", time_to_live_s=POISON_TTL_S)  # type: ignore[arg-type]
    assert sent == [("{}", {"visibility_timeout": None, "time_to_live": POISON_TTL_S})]


def test_a_body_nested_deeper_than_the_stack_allows_is_kept_as_unreadable() -> None:
    """Found by the fuzz test: JSON the parser reads, nested so deep that digesting its inner
    part runs out of stack, is kept as size and digest instead of failing the poisoning."""
    depth = 1_500
    body = ('{"a":' * depth + "1" + "}" * depth).encode()
    limit = sys.getrecursionlimit()
    frames = len(inspect.stack())
    sys.setrecursionlimit(frames + depth + 20)  # enough to parse it, not to walk it all
    try:
        kept = scrubbed_body(body)
    finally:
        sys.setrecursionlimit(limit)
    assert kept.startswith("<not JSON: ") and '"a"' not in kept
