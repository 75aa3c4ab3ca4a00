"""What services put on the running invocation's telemetry record."""

import pytest
from sp_api.base import exceptions as sp_errors

from shared.ingestion.rate_budget import CONFIRM_SHIPMENT
from shared.ingestion.spapi_gateway import SpApiGateway, SpApiThrottled
from shared.telemetry.invocations import AppTelemetry
from shared.telemetry.redaction import redact_text


def test_an_sp_api_429_is_counted_on_the_invocation() -> None:
    def throttled() -> None:
        raise sp_errors.SellingApiRequestThrottledException([{"code": "QuotaExceeded"}], headers={})

    with pytest.raises(SpApiThrottled), AppTelemetry().invocation("ship_order") as record:
        SpApiGateway._call(CONFIRM_SHIPMENT, throttled)
    dims = record.dimensions()  # type: ignore[attr-defined]
    assert dims["throttle_events"] == 1 and dims["throttled_operations"] == CONFIRM_SHIPMENT


def test_amazon_order_ids_are_masked_in_any_log_text() -> None:
    text = redact_text("getOrder /orders/2026-01-01/orders/302-7654321-7654321 failed")
    assert "7654321" not in text and "getOrder" in text
