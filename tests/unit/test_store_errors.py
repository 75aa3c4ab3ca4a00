"""Cosmos errors become the app's: throttling asks for a delay, outages for a retry."""

from __future__ import annotations

from azure.cosmos import exceptions as cosmos_errors

from shared.storage.document_store import StoreThrottled, StoreUnavailable, _mapped


def test_throttling_carries_a_delay_so_the_message_is_requeued_not_retried() -> None:
    mapped = _mapped(cosmos_errors.CosmosHttpResponseError(status_code=429, message="Request rate is large"))
    assert isinstance(mapped, StoreThrottled) and mapped.transient
    assert mapped.code == "store_throttled" and mapped.retry_after_s == 1.0


def test_outages_are_retried_and_other_answers_are_not() -> None:
    outage = _mapped(cosmos_errors.CosmosHttpResponseError(status_code=503, message="down"))
    assert type(outage) is StoreUnavailable and outage.transient
    refused = _mapped(cosmos_errors.CosmosHttpResponseError(status_code=400, message="bad"))
    assert refused.code == "store_error" and not refused.transient
