"""Invoice delivery over the wire: python-amazon-sp-api's Feeds client against the Feeds
stand-in (with its LWA token endpoint), checked against Amazon's Feeds model."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sp_api.auth import AccessTokenClient

from local.amazon_models import ModelJudge
from local.spapi_feeds import FeedsStandIn, RunningFeeds, serve
from shared.invoices.feeds import (
    FeedRejected,
    FeedUnavailable,
    SpApiVatInvoiceUploader,
    feed_options,
    sp_api_feeds_factory,
)
from shared.invoices.service import InvoicingService
from tests.fakes import stored
from tests.worlds.invoices import DE, US, World, de_consumer

pytestmark = pytest.mark.integration
CREDENTIALS = {"lwa_app_id": "amzn1.application-oa2-client.local", "lwa_client_secret": "local-secret"}


@pytest.fixture
def running() -> Iterator[RunningFeeds]:
    with serve(FeedsStandIn()) as feeds:
        yield feeds


def _uploader(running: RunningFeeds, http: httpx.Client) -> SpApiVatInvoiceUploader:
    class LocalLwa(AccessTokenClient):  # type: ignore[misc]
        scheme = "http://"
        host = running.lwa_host

    factory = sp_api_feeds_factory(
        lambda seller: {**CREDENTIALS, "refresh_token": f"Atzr|{seller}"},
        endpoint=running.base_url,
        auth_token_client_class=LocalLwa,
    )
    return SpApiVatInvoiceUploader(factory, http)


def _world_with(uploader: SpApiVatInvoiceUploader) -> World:
    world = World()
    world.service = InvoicingService(
        orders=world.orders,
        counter=world.counter,
        cipher=world.cipher,
        sealer=world.sealer,
        blobs=world.blobs,
        renderer=world.service._renderer,
        profile=world.service._profile,
        invoice_marketplaces=(DE,),
        uploader=uploader,
        audit=world.audit,
    )
    return world


def _check_against_model(model: dict[str, Any], definition: str, payload: dict[str, Any]) -> None:
    schema = model["definitions"][definition]
    assert set(schema.get("required", [])) <= set(payload)
    assert set(payload) <= set(schema["properties"])


def test_invoice_travels_through_the_feeds_api(
    running: RunningFeeds, amazon_model: Callable[[str], Any]
) -> None:
    model = amazon_model("feeds_2021-06-30.json")
    with httpx.Client() as http:
        world = _world_with(_uploader(running, http))
        de_consumer(world)
        world.issue("ref-de-consumer-1")
    delivery = world.issue_doc("ref-de-consumer-1", "invoice")["delivery"]
    assert delivery["status"] == "submitted" and delivery["processingStatus"] == "IN_QUEUE"
    feed = running.stand_in.feeds[delivery["feedId"]]
    assert feed.feed_type == "UPLOAD_VAT_INVOICE" and feed.marketplace_ids == [DE]
    assert feed.options["metadata:InvoiceNumber"] == "INV2026-000001"
    assert feed.options["metadata:OrderId"] == "302-1111111-1111111"
    kept = world.sealer.open_bytes(
        "ref-de-consumer-1", stored(world.memory)[world.issue_doc("ref-de-consumer-1", "invoice")["blob"]]
    )
    assert feed.content == kept  # the uploaded bytes are the invoice we keep
    document = running.stand_in.documents[feed.document_id]
    assert document.content_type == "application/pdf"
    # the stand-in answers in Amazon's shapes
    from local.spapi_feeds import _feed_json  # the same serialiser the HTTP answers use

    _check_against_model(model, "Feed", _feed_json(feed))
    spec = model["definitions"]["CreateFeedSpecification"]
    assert {"feedType", "marketplaceIds", "inputFeedDocumentId", "feedOptions"} <= set(spec["properties"])


def test_throttling_is_transient_and_a_bad_request_is_permanent(running: RunningFeeds) -> None:
    with httpx.Client() as http:
        uploader = _uploader(running, http)
        options = feed_options(
            order_id="302-1111111-1111111",
            invoice_number="INV2026-000009",
            document_type="Invoice",
            total_amount="1.00",
            total_vat="0.16",
        )
        running.stand_in.fail_next(429)
        with pytest.raises(FeedUnavailable):
            uploader.upload("A1SELLER", DE, b"%PDF-1.4 test", options)
        with pytest.raises(FeedRejected):  # not a VAT-upload marketplace
            uploader.upload("A1SELLER", US, b"%PDF-1.4 test", options)
        with pytest.raises(FeedRejected):  # not a PDF
            uploader.upload("A1SELLER", DE, b"plain text", options)
        receipt = uploader.upload("A1SELLER", DE, b"%PDF-1.4 test", options)
    running.stand_in.complete_all()
    assert running.stand_in.feeds[receipt.feed_id].status == "DONE"


def test_feed_options_refuse_characters_amazon_rejects() -> None:
    with pytest.raises(FeedRejected):
        feed_options(
            order_id="302-1111111-1111111",
            invoice_number="INV<2026>",
            document_type="Invoice",
            total_amount="1.00",
            total_vat="0.16",
        )


def test_stand_in_refuses_calls_without_a_token_and_unknown_paths() -> None:
    stand_in = FeedsStandIn(judge=ModelJudge.off())  # sends what Amazon's model forbids, on purpose
    assert stand_in.handle("GET", "/orders/2026-01-01/orders", {}, {}, b"", "http://x") is None
    status, _, body = stand_in.handle("POST", "/feeds/2021-06-30/documents", {}, {}, b"{}", "http://x")  # type: ignore[misc]
    assert status == 403 and b"errors" in body
    status, _, body = stand_in.handle(  # type: ignore[misc]
        "POST", "/feeds/2021-06-30/documents", {}, {"x-amz-access-token": "t"}, b"{}", "http://x"
    )
    assert status == 400 and b"contentType" in body
