"""Which createFeed failures may be sent again: only those that prove Amazon has no feed."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sp_api.base.exceptions import get_exception_for_code

from shared.errors import TransientError
from shared.invoices.feeds import (
    FeedOutcomeUnknown,
    FeedRejected,
    FeedUnavailable,
    SpApiVatInvoiceUploader,
)


class Payload:
    def __init__(self, payload: dict[str, Any]) -> None:
        self.payload = payload


class FakeFeeds:
    def __init__(self, create_feed_error: Exception | None) -> None:
        self.error = create_feed_error
        self.created = 0

    def create_feed_document(self, file: Any, content_type: str, **kwargs: Any) -> Payload:
        return Payload({"url": "https://uploads.test/doc-1", "feedDocumentId": "doc-1"})

    def create_feed(self, feed_type: str, input_feed_document_id: str, **kwargs: Any) -> Payload:
        self.created += 1
        if self.error is not None:
            raise self.error
        return Payload({"feedId": "feed-1"})

    def get_feed(self, feedId: str, **kwargs: Any) -> Payload:
        return Payload({"processingStatus": "IN_QUEUE"})


def _upload(error: Exception | None) -> None:
    http = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(200)))
    uploader = SpApiVatInvoiceUploader(lambda seller, marketplace: FakeFeeds(error), http)
    uploader.upload("A1SELLER", "A1PA6795UKMFR9", b"%PDF-1.4", {"metadata:OrderId": "x"})


def _status(code: int) -> Exception:
    exception: Exception = get_exception_for_code(code)([{"code": "x", "message": "x"}], headers={})
    return exception


@pytest.mark.parametrize("code", [429, 503])
def test_a_refusal_proves_nothing_was_created_and_may_be_retried(code: int) -> None:
    with pytest.raises(FeedUnavailable):
        _upload(_status(code))


@pytest.mark.parametrize("code", [500, 502, 504, 408])
def test_a_server_error_after_createfeed_was_sent_leaves_the_outcome_unknown(code: int) -> None:
    """502 and 408 have no class in python-amazon-sp-api: it raises its generic exception,
    whose code is 999. Nothing proves the feed was not created."""
    with pytest.raises(FeedOutcomeUnknown):
        _upload(_status(code))


def test_no_answer_leaves_it_unknown_and_no_connection_does_not() -> None:
    with pytest.raises(FeedOutcomeUnknown):
        _upload(httpx.ReadTimeout("read timed out"))
    with pytest.raises(FeedUnavailable):
        _upload(httpx.ConnectError("refused"))


def test_a_client_error_is_a_rejection_and_success_is_a_receipt() -> None:
    with pytest.raises(FeedRejected):
        _upload(_status(400))
    _upload(None)


def test_credentials_that_cannot_be_read_prove_nothing_was_sent() -> None:
    """Key Vault down while the seller's client is built: the invoice may be sent again."""

    def feeds_for(seller: str, marketplace: str) -> FakeFeeds:
        raise TransientError("key vault unavailable", code="key_vault_unavailable")

    http = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(200)))
    with pytest.raises(FeedUnavailable) as caught:
        SpApiVatInvoiceUploader(feeds_for, http).upload("A1SELLER", "A1PA6795UKMFR9", b"%PDF-1.4", {})
    assert "key_vault_unavailable" in str(caught.value)


class _NoDocument(FakeFeeds):
    """createFeedDocument answered by an error page without JSON `errors`: the library raises
    nothing and hands back an empty payload."""

    def create_feed_document(self, file: Any, content_type: str, **kwargs: Any) -> Payload:
        return Payload(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("code", [502, 408])
def test_an_unclassified_status_before_createfeed_may_be_retried(code: int) -> None:
    class Refused(FakeFeeds):
        def create_feed_document(self, file: Any, content_type: str, **kwargs: Any) -> Payload:
            raise _status(code)

    http = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(200)))
    with pytest.raises(FeedUnavailable):
        SpApiVatInvoiceUploader(lambda s, m: Refused(None), http).upload(
            "A1SELLER", "A1PA6795UKMFR9", b"%PDF", {}
        )


def test_an_error_page_before_createfeed_may_be_retried() -> None:
    http = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(200)))
    uploader = SpApiVatInvoiceUploader(lambda s, m: _NoDocument(None), http)
    with pytest.raises(FeedUnavailable):
        uploader.upload("A1SELLER", "A1PA6795UKMFR9", b"%PDF-1.4", {})
