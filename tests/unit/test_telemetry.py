"""AppTelemetry: one record per invocation with the documented dimensions; failures recorded,
then re-raised (without personal data in their text)."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from azure.functions.queue import QueueMessage

from shared.crypto.pii import Pii, tracked_values
from shared.errors import AppError, OrderMappingError, SettingsError, TransientError
from shared.telemetry.invocations import (
    FAILURE_DIMENSIONS,
    INVOCATION_DIMENSIONS,
    TELEMETRY_LOGGER,
    AppTelemetry,
    InvocationFailed,
    configure_telemetry,
    current_invocation,
)
from tests.log_capture import Capture

REF = "Qk3v_9aZ-01bcdEFghIJkl"
# Always present on an invocation record (`order_ref_rejected` only when code erred).
ALWAYS = INVOCATION_DIMENSIONS - {"order_ref_rejected"}


class Records(Capture):
    def dims(self) -> list[dict[str, object]]:
        return [r.custom_dimensions for r in self.records if hasattr(r, "custom_dimensions")]


@pytest.fixture
def records() -> Iterator[Records]:
    handler = Records()
    logger = logging.getLogger(TELEMETRY_LOGGER)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def ticking() -> object:
    now = [100.0]

    def timer() -> float:
        now[0] += 0.25
        return now[0]

    return timer


def telemetry() -> AppTelemetry:
    return AppTelemetry(timer=ticking(), new_id=lambda: "generated-id")  # type: ignore[arg-type]


def message(dequeue_count: int = 1) -> QueueMessage:
    # azure.functions.queue.QueueMessage is the concrete class the worker builds (it has
    # dequeue_count; the func.QueueMessage base does not).
    return QueueMessage(id="msg-1", body=b"{}", dequeue_count=dequeue_count)


def test_success_record_has_the_documented_dimensions(records: Records) -> None:
    with telemetry().invocation("ship_order", message=message(2)) as record:
        record.order(REF)
        record.stage("label_bought")
        record.count("labels", 1)
        record.count("labels", 2)
        record.throttled("getOrder", 2.5)
        record.throttled("getOrder", 1.0)
        record.throttled("confirmShipment", 0.5)
    (dims,) = records.dims()
    assert set(dims) >= ALWAYS
    assert not FAILURE_DIMENSIONS & set(dims)
    assert dims["operation"] == "ship_order"
    assert dims["invocation_id"] == "msg-1"
    assert dims["order_ref"] == REF
    assert dims["stage"] == "label_bought"
    assert dims["outcome"] == "success"
    assert dims["duration_ms"] == 250.0
    assert dims["dequeue_count"] == 2
    assert dims["count_labels"] == 3
    assert dims["throttle_events"] == 3
    assert dims["throttle_wait_s"] == 4.0
    assert dims["throttled_operations"] == "getOrder,confirmShipment"
    assert records.records[0].levelno == logging.INFO


def test_timer_invocations_get_a_generated_id(records: Records) -> None:
    with telemetry().invocation("purge_expired"):
        pass
    (dims,) = records.dims()
    assert dims["invocation_id"] == "generated-id"
    assert dims["dequeue_count"] == 0


def test_app_error_is_recorded_with_its_code_and_propagates_unchanged(records: Records) -> None:
    with pytest.raises(OrderMappingError), telemetry().invocation("ingest_notification", message(5)):
        raise OrderMappingError("no items")
    (dims,) = records.dims()
    assert dims["outcome"] == "failure"
    assert dims["error_code"] == "order_unmappable"
    assert dims["error_type"] == "OrderMappingError"
    assert dims["error_transient"] is False
    assert dims["poisoned"] is True  # fifth delivery of five
    assert records.records[0].levelno == logging.ERROR


def test_transient_flag_is_recorded(records: Records) -> None:
    with pytest.raises(TransientError), telemetry().invocation("ship_order", message(1)):
        raise TransientError("carrier down")
    (dims,) = records.dims()
    assert dims["error_transient"] is True
    assert dims["poisoned"] is False


def test_other_exceptions_are_recorded_by_class_name(records: Records) -> None:
    with pytest.raises(KeyError), telemetry().invocation("issue_invoice", message()):
        raise KeyError("sku")
    assert records.dims()[0]["error_code"] == "KeyError"


def test_exception_text_with_pii_is_scrubbed_before_it_leaves(records: Records) -> None:
    class Throttled(TransientError):
        retry_after_s = 30.0

    with pytest.raises(Throttled) as raised, telemetry().invocation("ship_order", message()):
        address = Pii("77 Brombeltrax Road")
        try:
            raise ValueError(address.reveal())
        except ValueError:
            raise Throttled(f"carrier rejected {address.reveal()}") from None
    rendered = "".join(traceback.format_exception(raised.value))
    assert "Brombeltrax" not in rendered
    assert raised.value.code == "transient"
    assert raised.value.retry_after_s == 30.0
    (dims,) = records.dims()
    assert dims["error_code"] == "transient"
    logged = records.records[0]
    assert logged.exc_info is not None
    assert "Brombeltrax" not in str(logged.exc_info[1])


def test_exception_rendering_pii_from_attributes_is_replaced(records: Records) -> None:
    class Rejected(AppError):
        code = "carrier_rejected"

        def __init__(self, address: str) -> None:
            super().__init__()
            self.address = address

        def __str__(self) -> str:
            return f"rejected {self.address}"

    with pytest.raises(InvocationFailed) as raised, telemetry().invocation("ship_order", message()):
        raise Rejected(Pii("77 Brombeltrax Road").reveal())
    assert "Brombeltrax" not in "".join(traceback.format_exception(raised.value))
    assert raised.value.code == "carrier_rejected"
    assert raised.value.__suppress_context__


def test_invocation_tracks_pii_only_while_it_runs() -> None:
    with telemetry().invocation("handle_privacy_request", message()):
        Pii("Vexmorland")
        assert "Vexmorland" in tracked_values()
    assert tracked_values() == frozenset()


def test_current_invocation_reaches_services() -> None:
    assert current_invocation() is None
    with telemetry().invocation("poll_orders") as record:
        current = current_invocation()
        assert current is record
    assert current_invocation() is None


@pytest.mark.parametrize("ref", ["123-1234567-1234567", "a@b.example", "short"])
def test_order_refuses_anything_but_a_reference(records: Records, ref: str) -> None:
    with telemetry().invocation("issue_invoice") as record:
        record.order(ref)
    (dims,) = records.dims()
    assert dims["order_ref"] == ""
    assert dims["order_ref_rejected"] is True


def test_names_must_be_constants() -> None:
    with pytest.raises(ValueError), telemetry().invocation("ship_order") as record:
        record.count("Jane Doe", 1)


def test_heartbeat(records: Records) -> None:
    telemetry().heartbeat(datetime(2026, 3, 1, 12, 0, tzinfo=UTC), source="poll_orders")
    (dims,) = records.dims()
    assert dims == {
        "event": "heartbeat",
        "schema": 1,
        "source": "poll_orders",
        "heartbeat_utc": "2026-03-01T12:00:00+00:00",
    }


def test_configure_none_and_missing_connection_string() -> None:
    export = configure_telemetry(
        SimpleNamespace(telemetry_exporter="none", appinsights_connection_string=None)
    )  # type: ignore[arg-type]
    assert export.handler is None
    export.flush()
    export.shutdown()
    with pytest.raises(SettingsError) as raised:
        configure_telemetry(
            SimpleNamespace(telemetry_exporter="opencensus", appinsights_connection_string=None)
        )  # type: ignore[arg-type]
    assert isinstance(raised.value, AppError)


def test_a_buy_shipping_429_counts_as_throttling_on_the_invocation(records: Records) -> None:
    """Buy Shipping (SP-API Shipping v2) answers 429 like the order API: the throttling rule and
    the workbook read throttle_events for both."""
    from sp_api.base.exceptions import SellingApiRequestThrottledException

    from shared.shipping.carriers.amazon import SpApiShippingV2
    from shared.shipping.carriers.base import CarrierUnavailable

    api = object.__new__(SpApiShippingV2)  # no client: the call below raises on its own

    def answered_429(**_: object) -> None:  # the wrapper names the operation, not the callable
        error = [{"code": "QuotaExceeded", "message": "x"}]
        raise SellingApiRequestThrottledException(error, {"Retry-After": "2"})

    with pytest.raises(CarrierUnavailable), AppTelemetry().invocation("ship_order"):
        api._call("purchaseShipment", answered_429)
    (dims,) = records.dims()
    assert dims["outcome"] == "failure" and dims["throttle_events"] == 1
    assert (dims["throttled_operations"], dims["throttle_wait_s"]) == ("purchaseShipment", 2.0)


def test_the_opencensus_exporter_signs_with_the_managed_identity_when_entra_id_is_required() -> None:
    """Local authentication is off on the deployed Application Insights (monitoring.bicep):
    OpenCensus ignores APPLICATIONINSIGHTS_AUTHENTICATION_STRING, so it is handed the credential."""
    from azure.identity import ManagedIdentityCredential

    from shared.telemetry.invocations import _entra_credential

    assert _entra_credential("") is None
    assert isinstance(_entra_credential("Authorization=AAD"), ManagedIdentityCredential)
    assert isinstance(_entra_credential("Authorization=AAD;ClientId=0000-1111"), ManagedIdentityCredential)
