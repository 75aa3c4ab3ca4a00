"""Delivery of an invoice PDF to Amazon through the Feeds API (2021-06-30), feed type
UPLOAD_VAT_INVOICE: createFeedDocument, PUT the PDF to the returned URL, createFeed with the
invoice metadata in feedOptions, then one getFeed for the first processing status.

The PUT goes through our own httpx client (the library's helper opens a default client that
ignores the TLS settings and reads the whole error body as JSON). SP-API errors become
`FeedRejected` (permanent), `FeedUnavailable` (nothing reached Amazon's feed processing:
throttled or down before createFeed, or createFeed refused with 429 or 503 or never connected;
the message is retried) or `FeedOutcomeUnknown` (createFeed was sent and no answer proves it
was not processed: a timeout, a lost connection, 500, 502, 504; the invoice may be at Amazon,
so it must not be sent again).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from shared.crypto.secrets import CREDENTIALS_MAX_AGE_S, RenewedClients
from shared.errors import AppError, TransientError

FEED_TYPE = "UPLOAD_VAT_INVOICE"
PDF = "application/pdf"
IN_QUEUE = "IN_QUEUE"  # the status Amazon gives a feed it has accepted and not yet started
# Amazon accepts only these characters in feedOptions values (Feeds "Option 3" guide).
_OPTION_TEXT = re.compile(r"^[A-Za-z0-9 ,/\\_;:#.\-]*$")
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# Answers to createFeed that prove the feed was not created: throttled, or refused as down.
_NOT_CREATED_STATUS = frozenset({429, 503})
# python-amazon-sp-api's `SellingApiException.code` for a status it has no class for.
UNCLASSIFIED_STATUS = 999


class FeedRejected(AppError):
    code = "invoice_feed_rejected"


class FeedUnavailable(TransientError):
    code = "invoice_feed_unavailable"


class FeedOutcomeUnknown(AppError):
    code = "invoice_feed_upload_unknown"


class FeedsClient(Protocol):
    """The part of python-amazon-sp-api's `Feeds` client this module uses."""

    def create_feed_document(self, file: Any, content_type: str, **kwargs: Any) -> Any: ...

    def create_feed(self, feed_type: str, input_feed_document_id: str, **kwargs: Any) -> Any: ...

    def get_feed(self, feedId: str, **kwargs: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class FeedReceipt:
    feed_id: str
    processing_status: str


class VatInvoiceUploader(Protocol):
    def upload(
        self, seller_id: str, marketplace_id: str, pdf: bytes, options: Mapping[str, str]
    ) -> FeedReceipt: ...


def feed_options(
    *,
    order_id: str,
    invoice_number: str,
    document_type: str,
    total_amount: str,
    total_vat: str,
    transaction_id: str | None = None,
) -> dict[str, str]:
    options = {
        "metadata:OrderId": order_id,
        "metadata:InvoiceNumber": invoice_number,
        "metadata:DocumentType": document_type,
        "metadata:TotalAmount": total_amount,
        "metadata:TotalVATAmount": total_vat,
    }
    if transaction_id:
        options["metadata:TransactionId"] = transaction_id
    if not all(_OPTION_TEXT.match(v) for v in options.values()):
        raise FeedRejected(
            "a feed option holds a character Amazon does not accept", code="invoice_feed_option"
        )
    return options


def _status_of(exc: Exception) -> int:
    code = getattr(exc, "code", 0)
    return code if isinstance(code, int) else 0


class SpApiVatInvoiceUploader:
    """`feeds_for(seller_id, marketplace_id)` returns a configured `Feeds` client (credentials,
    endpoint); `http` performs the document upload with the app's TLS settings."""

    def __init__(self, feeds_for: Callable[[str, str], FeedsClient], http: httpx.Client) -> None:
        self._feeds_for = feeds_for
        self._http = http

    def upload(
        self, seller_id: str, marketplace_id: str, pdf: bytes, options: Mapping[str, str]
    ) -> FeedReceipt:
        from sp_api.base.exceptions import SellingApiException

        try:
            client = self._feeds_for(seller_id, marketplace_id)
        except TransientError as exc:
            # The client's credentials could not be read (Key Vault down): nothing was sent.
            raise FeedUnavailable(f"sp-api client unavailable: {exc.code}") from None
        try:
            document = client.create_feed_document(None, PDF).payload
            self._put(str(document["url"]), pdf)
            document_id = str(document["feedDocumentId"])
        except SellingApiException as exc:
            raise _refused(exc) from None
        except httpx.HTTPError:
            raise FeedUnavailable("sp-api unreachable") from None
        except (KeyError, TypeError):
            # An answer without the document (an error page the library passes on as an empty
            # payload): nothing reached feed processing, so the retry may send it.
            raise FeedUnavailable("sp-api answer lacks a field") from None
        feed_id = self._create_feed(client, marketplace_id, document_id, options)
        return FeedReceipt(feed_id, _first_status(client, feed_id))

    @staticmethod
    def _create_feed(
        client: FeedsClient, marketplace_id: str, document_id: str, options: Mapping[str, str]
    ) -> str:
        """The one call after which Amazon may hold the invoice: only an answer that proves it
        did not (a refusal, throttling, no connection) lets the caller send it again."""
        from sp_api.base.exceptions import SellingApiException

        try:
            created = client.create_feed(
                FEED_TYPE, document_id, marketplaceIds=[marketplace_id], feedOptions=dict(options)
            ).payload
            return str(created["feedId"])
        except SellingApiException as exc:
            status_code = _status_of(exc)
            # Only a refusal proves the feed was not created: a 4xx, or throttled or down.
            # Anything else (500, 504, or a status the library has no class for, such as 502
            # or 408, which it reports as its generic code 999) may have created it.
            if status_code in _NOT_CREATED_STATUS or 400 <= status_code < 500:
                raise _refused(exc) from None
            raise FeedOutcomeUnknown(f"createFeed status {status_code}") from None
        except (httpx.ConnectError, httpx.ConnectTimeout):
            raise FeedUnavailable("sp-api unreachable") from None
        except httpx.HTTPError:
            raise FeedOutcomeUnknown("createFeed sent, no answer") from None
        except (KeyError, TypeError):
            raise FeedOutcomeUnknown("createFeed answer lacks the feed id") from None

    def _put(self, url: str, pdf: bytes) -> None:
        response = self._http.put(url, content=pdf, headers={"Content-Type": PDF})
        if response.status_code in _TRANSIENT_STATUS:
            raise FeedUnavailable(f"document upload status {response.status_code}")
        if not 200 <= response.status_code < 300:
            raise FeedRejected(f"document upload status {response.status_code}")


def _refused(exc: Exception) -> AppError:
    """Before createFeed, or a createFeed refusal. A status the library has no class for (its
    generic code 999: a 502, say) is not a refusal of the document: the retry may send it."""
    status_code = _status_of(exc)
    if status_code in _TRANSIENT_STATUS or status_code == UNCLASSIFIED_STATUS:
        return FeedUnavailable(f"sp-api status {status_code}")
    return FeedRejected(f"sp-api status {status_code}")


def _first_status(client: FeedsClient, feed_id: str) -> str:
    """The new feed's processing status, for the record only. The feed exists once createFeed
    answered: a failed read here must not fail the upload, whose retry would send the same
    invoice to Amazon a second time."""
    from sp_api.base.exceptions import SellingApiException

    try:
        return str(client.get_feed(feed_id).payload.get("processingStatus", IN_QUEUE))
    except (SellingApiException, httpx.HTTPError, AttributeError, TypeError):
        return IN_QUEUE


def sp_api_feeds_factory(
    credentials_for: Callable[[str], Mapping[str, str]],
    *,
    endpoint: str | None = None,
    auth_token_client_class: type | None = None,
    verify: bool = True,
    max_age_s: float = CREDENTIALS_MAX_AGE_S,
) -> Callable[[str, str], FeedsClient]:
    """Builds python-amazon-sp-api `Feeds` clients. `credentials_for(seller_id)` returns
    {"lwa_app_id", "lwa_client_secret", "refresh_token"} (from Key Vault). `endpoint` and
    `auth_token_client_class` point the client at the local stand-ins (Settings.spapi_endpoint,
    Settings.lwa_endpoint); in Azure both stay None and Amazon's regional endpoint is used."""
    from sp_api.api import Feeds
    from sp_api.base import Marketplaces

    by_id = {m.marketplace_id: m for m in Marketplaces}

    # One client per seller and marketplace, its access token reused, made again with credentials
    # read afresh at least every `CREDENTIALS_MAX_AGE_S` (a rotated LWA secret, no restart).
    def build(key: tuple[str, str]) -> FeedsClient:
        seller_id, marketplace_id = key
        credentials = dict(credentials_for(seller_id))
        options: dict[str, Any] = {"verify": verify}
        if auth_token_client_class is not None:
            options["auth_token_client_class"] = auth_token_client_class
        client: Any = Feeds(
            by_id[marketplace_id],
            refresh_token=credentials["refresh_token"],
            credentials=credentials,
            **options,
        )
        if endpoint:
            client.endpoint = endpoint.rstrip("/")
        feeds: FeedsClient = client
        return feeds

    clients: RenewedClients[tuple[str, str], FeedsClient] = RenewedClients(build, max_age_s=max_age_s)
    return lambda seller_id, marketplace_id: clients((seller_id, marketplace_id))
