"""Once createFeed has answered, the invoice is at Amazon: a failing getFeed must not fail the
upload, whose retry would send the same invoice again (found by fault injection)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import httpx
from sp_api.base.exceptions import SellingApiRequestThrottledException, SellingApiServerException

from shared.invoices.feeds import SpApiVatInvoiceUploader


class Feeds:
    def __init__(self, status_error: Exception) -> None:
        self.created: list[str] = []
        self._status_error = status_error

    def create_feed_document(self, file: Any, content_type: str, **kwargs: Any) -> Any:
        return SimpleNamespace(payload={"url": "https://upload.local/doc-1", "feedDocumentId": "doc-1"})

    def create_feed(self, feed_type: str, input_feed_document_id: str, **kwargs: Any) -> Any:
        self.created.append(input_feed_document_id)
        return SimpleNamespace(payload={"feedId": "50001"})

    def get_feed(self, feedId: str, **kwargs: Any) -> Any:
        raise self._status_error


def test_a_failed_status_read_after_create_feed_still_returns_the_feed() -> None:
    http = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(200)))
    for error in (
        SellingApiRequestThrottledException([{"code": "QuotaExceeded", "message": "x"}], {}),
        SellingApiServerException([{"code": "InternalFailure", "message": "x"}], {}),
    ):
        feeds = Feeds(error)
        uploader = SpApiVatInvoiceUploader(lambda seller, marketplace, f=feeds: f, http)
        receipt = uploader.upload("A1SELLER", "A1PA6795UKMFR9", b"%PDF-1.4", {"metadata:OrderId": "1"})
        assert (receipt.feed_id, receipt.processing_status) == ("50001", "IN_QUEUE")
        assert feeds.created == ["doc-1"]
