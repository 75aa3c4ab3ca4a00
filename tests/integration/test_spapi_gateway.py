"""python-amazon-sp-api, through SpApiGateway, against the SP-API stand-in over HTTPS."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from local.sample_orders import generate
from local.spapi_server import SimClock, SpApiStandIn
from shared.ingestion.rate_budget import CONFIRM_SHIPMENT, GET_ORDER, SEARCH_ORDERS
from shared.ingestion.spapi_gateway import (
    SpApiAuthFailed,
    SpApiGateway,
    SpApiNotFound,
    SpApiRejected,
    SpApiThrottled,
    SpApiUnavailable,
)
from shared.settings import load_settings

pytestmark = pytest.mark.integration
START = datetime(2026, 11, 1, tzinfo=UTC)
DE, FR = "A1PA6795UKMFR9", "A13V1IB3VIYZZH"
CREDS = {
    "lwa_app_id": "amzn1.application-oa2-client.test",
    "lwa_client_secret": "s3cret",
    "refresh_token": "Atzr|r",
}


class EchoHandler:
    """An extra handler (as the Shipping and Feeds stand-ins are) answering one path."""

    def handle(  # noqa: PLR0917 - the extra-handler signature
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes,
        base_url: str,
    ) -> tuple[int, dict[str, str], bytes] | None:
        if path != "/shipping/v2/echo":
            return None
        return 200, {"content-type": "application/json"}, json.dumps({"base": base_url}).encode()


@pytest.fixture
def stand_in() -> Iterator[SpApiStandIn]:
    orders = generate(150, seed=5, start=START - timedelta(days=20), marketplaces=(DE, FR), afn_share=0.2)
    server = SpApiStandIn(
        orders, clock=SimClock(START), lwa_clients={CREDS["lwa_app_id"]: CREDS["lwa_client_secret"]}
    )
    server.start(handlers=[EchoHandler()])
    yield server
    server.stop()


def gateway(
    stand_in: SpApiStandIn, creds: dict[str, str] = CREDS, *, verify: bool | str | None = None
) -> SpApiGateway:
    settings = load_settings(
        {
            "STORAGE": "UseDevelopmentStorage=true",
            "COSMOS_ENDPOINT": "https://127.0.0.1:1",
            "KEY_VAULT_URL": "https://127.0.0.1:1",
            "SELLERS": json.dumps(
                [{"sellerId": "S1", "marketplaceIds": [DE, FR], "refreshTokenSecret": "rt"}]
            ),
            "SPAPI_ENDPOINT": stand_in.url,
            "LWA_ENDPOINT": stand_in.url + "/auth/o2/token",
        }
    )
    return SpApiGateway(
        settings, lambda _seller: creds, verify=stand_in.ca_file if verify is None else verify
    )


def test_search_pages_through_merchant_orders_with_only_the_datasets_asked_for(
    stand_in: SpApiStandIn,
) -> None:
    gw = gateway(stand_in)
    after = START - timedelta(days=30)
    page = gw.search_orders("S1", [DE, FR], last_updated_after=after)
    orders: list[dict[str, Any]] = list(page.orders)
    while page.next_token:
        page = gw.search_orders("S1", [DE, FR], last_updated_after=after, pagination_token=page.next_token)
        orders += page.orders
    expected = {
        o["orderId"]
        for o in generate(150, seed=5, start=START - timedelta(days=20), marketplaces=(DE, FR), afn_share=0.2)
        if o["fulfillment"]["fulfilledBy"] == "MERCHANT"
    }
    assert {o["orderId"] for o in orders} == expected
    assert page.last_updated_before == START - timedelta(minutes=2) and page.rate == 0.0056
    assert all("payment" not in o and "promotion" not in o["orderItems"][0] for o in orders)
    assert all("buyer" in o and "proceeds" in o["orderItems"][0] for o in orders)
    assert stand_in.calls[SEARCH_ORDERS] == 2 and stand_in.token_requests <= 1
    gw.close()


def test_get_order_and_confirm_shipment(stand_in: SpApiStandIn) -> None:
    gw = gateway(stand_in)
    order_id = stand_in.order_ids()[0]
    fetched = gw.get_order("S1", order_id)
    assert fetched.order["orderId"] == order_id and fetched.rate == 0.5
    for _ in range(2):
        gw.confirm_shipment("S1", DE, order_id, "1", "DHL", "DHL", "Paket", "TRACK1", START, [("11", 1)])
    assert [c.order_id for c in stand_in.confirmations] == [order_id, order_id]  # duplicates are visible
    body = stand_in.confirmations[0].body
    assert body["packageDetail"]["shipDate"] == "2026-11-01T00:00:00Z"
    assert body["packageDetail"]["orderItems"] == [{"orderItemId": "11", "quantity": 1}]
    assert stand_in.order(order_id)["fulfillment"]["fulfillmentStatus"] == "SHIPPED"
    assert stand_in.calls[CONFIRM_SHIPMENT] == 2
    with pytest.raises(SpApiNotFound):
        gw.get_order("S1", "000-0000000-0000000")


def test_errors_are_typed_and_carry_no_amazon_text(stand_in: SpApiStandIn) -> None:
    gw = gateway(stand_in)
    order_id = stand_in.order_ids()[0]
    stand_in.fail_next(GET_ORDER, 429)
    with pytest.raises(SpApiThrottled) as throttled:
        gw.get_order("S1", order_id)
    assert throttled.value.rate == 0.5 and throttled.value.retry_after_s == 2.0 and throttled.value.transient
    stand_in.fail_next(GET_ORDER, 500)
    with pytest.raises(SpApiUnavailable):
        gw.get_order("S1", order_id)
    with pytest.raises(SpApiRejected) as rejected:  # "after" later than Amazon's two-minute bound
        gw.search_orders("S1", [DE], last_updated_after=START + timedelta(days=1))
    assert "two minutes" not in str(rejected.value) and order_id not in repr(throttled.value)


def test_the_bucket_throttles_at_amazons_burst_and_refills_on_simulated_time(stand_in: SpApiStandIn) -> None:
    gw = gateway(stand_in)
    order_id = stand_in.order_ids()[0]
    for _ in range(30):
        gw.get_order("S1", order_id)
    with pytest.raises(SpApiThrottled):
        gw.get_order("S1", order_id)
    assert stand_in.throttled[GET_ORDER] == 1
    stand_in.advance(2)
    gw.get_order("S1", order_id)


def test_wrong_lwa_secret_and_untrusted_certificate_fail_cleanly(stand_in: SpApiStandIn) -> None:
    bad = gateway(stand_in, {**CREDS, "lwa_client_secret": "wrong", "refresh_token": "Atzr|other"})
    with pytest.raises(SpApiAuthFailed) as auth:
        bad.get_order("S1", stand_in.order_ids()[0])
    assert "wrong" not in repr(auth.value)
    untrusted = gateway(stand_in, {**CREDS, "refresh_token": "Atzr|third"}, verify=True)
    with pytest.raises(SpApiUnavailable):
        untrusted.get_order("S1", stand_in.order_ids()[0])


def test_extra_handlers_answer_before_404(stand_in: SpApiStandIn) -> None:
    import ssl

    import httpx

    with httpx.Client(verify=ssl.create_default_context(cafile=stand_in.ca_file)) as http:
        assert http.get(stand_in.url + "/shipping/v2/echo").json() == {"base": stand_in.url}
        missing = http.get(stand_in.url + "/nothing/here")
    assert missing.status_code == 404 and missing.json()["errors"][0]["code"] == "NotFound"


def test_library_loggers_stay_quiet(stand_in: SpApiStandIn, caplog: pytest.LogCaptureFixture) -> None:
    gw = gateway(stand_in)
    with caplog.at_level(logging.DEBUG):
        gw.get_order("S1", stand_in.order_ids()[0])
    leaked = [r for r in caplog.records if r.name.startswith(("sp_api", "httpx", "httpcore"))]
    assert leaked == []
