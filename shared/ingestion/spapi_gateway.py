"""The Selling Partner API through python-amazon-sp-api: searchOrders, getOrder, confirmShipment.

Design notes: docs/ingestion.md ("Design notes: `shared.ingestion.spapi_gateway`")."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from sp_api.api import Orders
from sp_api.auth import AccessTokenClient
from sp_api.auth.exceptions import AuthorizationError
from sp_api.base import Marketplaces
from sp_api.base import exceptions as sp_errors
from sp_api.base.credential_provider import FromCodeCredentialProvider

from shared.crypto.secrets import CREDENTIALS_MAX_AGE_S, RenewedClients
from shared.errors import AppError, InvalidInput, TransientError
from shared.ingestion.rate_budget import CONFIRM_SHIPMENT, DEFAULT_PLANS, GET_ORDER, SEARCH_ORDERS
from shared.settings import SellerAccount, Settings
from shared.telemetry.invocations import current_invocation
from shared.telemetry.redaction import quiet_loggers

#: What the pipeline reads: buyer and recipient (shipping, invoices), fulfillment (status,
#: service level, windows), packages (delivery signals), proceeds (item tax) and tax (buyer VAT).
INCLUDED_DATA: tuple[str, ...] = ("BUYER", "RECIPIENT", "FULFILLMENT", "PACKAGES", "PROCEEDS", "TAX")
MAX_RESULTS_PER_PAGE = 100
ORDERS_VERSION = "2026-01-01"
QUIET_LOGGERS = ("sp_api", "httpx", "httpcore")

#: Credentials for one seller: {"lwa_app_id", "lwa_client_secret", "refresh_token"}.
Credentials = Mapping[str, str]
CredentialsProvider = Callable[[str], Credentials]


class SpApiThrottled(TransientError):
    code = "spapi_throttled"

    def __init__(self, operation: str, retry_after_s: float, rate: float | None) -> None:
        super().__init__(f"{operation} throttled, retry after {retry_after_s:.1f}s")
        self.operation = operation
        self.retry_after_s = retry_after_s
        self.rate = rate


class SpApiUnavailable(TransientError):
    code = "spapi_unavailable"


class SpApiAuthFailed(TransientError):
    code = "spapi_auth_failed"


class SpApiRejected(InvalidInput):
    code = "spapi_rejected"


class SpApiNotFound(SpApiRejected):
    code = "spapi_not_found"


class UnknownSeller(InvalidInput):
    code = "unknown_seller"


@dataclass(frozen=True, slots=True)
class SearchPage:
    orders: list[dict[str, Any]]
    next_token: str | None
    #: Amazon's upper bound of the search ("lastUpdatedBefore" in the response), if sent.
    last_updated_before: datetime | None
    rate: float | None


@dataclass(frozen=True, slots=True)
class FetchedOrder:
    order: dict[str, Any]
    rate: float | None


def amazon_time(value: datetime) -> str:
    """ISO 8601 in UTC to the second (rounded down, so a window only ever widens)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_rate(headers: object) -> float | None:
    getter = getattr(headers, "get", None)
    raw = getter("x-amzn-RateLimit-Limit") if callable(getter) else None
    try:
        rate = float(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None
    return rate if rate is not None and rate > 0 else None


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def token_client_class(lwa_endpoint: str | None) -> Any:
    """AccessTokenClient, or a subclass whose scheme/host/path point at `lwa_endpoint`."""
    if not lwa_endpoint:
        return AccessTokenClient
    parts = urlsplit(lwa_endpoint)
    attrs = {
        "scheme": f"{parts.scheme}://",
        "host": parts.netloc,
        "path": parts.path if parts.path not in ("", "/") else AccessTokenClient.path,
    }
    return type("ConfiguredAccessTokenClient", (AccessTokenClient,), attrs)


def lwa_token_url(lwa_endpoint: str | None) -> str:
    """The LWA token endpoint the SP-API clients use (`token_client_class`), for a plain POST."""
    client = token_client_class(lwa_endpoint)
    return f"{client.scheme}{client.host}{client.path}"


def _marketplace(seller: SellerAccount) -> Any:
    for marketplace in Marketplaces:
        if marketplace.marketplace_id == seller.marketplace_ids[0]:
            return marketplace
    raise InvalidInput(
        "seller's first marketplace id is not an Amazon marketplace", code="unknown_marketplace"
    )


class SpApiGateway:
    """Thread-safe; share one per process."""

    def __init__(
        self,
        settings: Settings,
        credentials: CredentialsProvider,
        *,
        verify: bool | str | ssl.SSLContext | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        """`verify`: None uses `settings.spapi_verify_tls`; a path names a CA bundle (the
        stand-in's throw-away CA in tests and the local run)."""
        quiet_loggers(QUIET_LOGGERS)
        self._settings = settings
        self._credentials = credentials
        chosen = settings.spapi_verify_tls if verify is None else verify
        self._verify = ssl.create_default_context(cafile=chosen) if isinstance(chosen, str) else chosen
        self._timeout = timeout_s
        self._token_class = token_client_class(settings.lwa_endpoint)
        # Each client is made with credentials read when it is made and kept at most
        # `CREDENTIALS_MAX_AGE_S`, shorter than an LWA access token lives, so every token refresh
        # happens on a client whose credentials were read afresh. (`time` is looked up at each
        # call: tests replace the module's clock.)
        self._clients: RenewedClients[tuple[str, str], Any] = RenewedClients(
            lambda key: self._build(*key),
            max_age_s=CREDENTIALS_MAX_AGE_S,
            monotonic=lambda: time.monotonic(),  # noqa: PLW0108 - looked up at each call
            on_drop=lambda client: client.close(),
        )

    # ---- operations ------------------------------------------------------------------------

    def search_orders(
        self,
        seller_id: str,
        marketplace_ids: Sequence[str],
        *,
        last_updated_after: datetime,
        pagination_token: str | None = None,
        included_data: Sequence[str] = INCLUDED_DATA,
        fulfilled_by: Sequence[str] = ("MERCHANT",),
    ) -> SearchPage:
        params: dict[str, Any] = {
            "lastUpdatedAfter": amazon_time(last_updated_after),
            "marketplaceIds": list(marketplace_ids),
            "fulfilledBy": list(fulfilled_by),
            "maxResultsPerPage": MAX_RESULTS_PER_PAGE,
            "includedData": list(included_data),
        }
        if pagination_token:
            params["paginationToken"] = pagination_token
        response = self._use(seller_id, ORDERS_VERSION, SEARCH_ORDERS, lambda c: c.search_orders(**params))
        payload = response.payload if isinstance(response.payload, dict) else {}
        orders = payload.get("orders")
        if not isinstance(orders, list):
            raise SpApiUnavailable("searchOrders answered without an orders list")
        if response.next_token and not isinstance(response.next_token, str):
            raise SpApiUnavailable("searchOrders answered with a malformed next token")
        return SearchPage(
            orders=orders,
            next_token=response.next_token or None,
            last_updated_before=_parse_time(payload.get("lastUpdatedBefore")),
            rate=_parse_rate(response.headers),
        )

    def get_order(
        self, seller_id: str, order_id: str, *, included_data: Sequence[str] = INCLUDED_DATA
    ) -> FetchedOrder:
        response = self._use(
            seller_id,
            ORDERS_VERSION,
            GET_ORDER,
            lambda c: c.get_order(order_id, includedData=list(included_data)),
        )
        payload = response.payload if isinstance(response.payload, dict) else {}
        order = payload.get("order")
        if not isinstance(order, dict):
            raise SpApiUnavailable("getOrder answered without an order")
        return FetchedOrder(order, _parse_rate(response.headers))

    def confirm_shipment(  # noqa: PLR0917 - positional, as the carriers code calls it
        self,
        seller_id: str,
        marketplace_id: str,
        order_id: str,
        package_reference: str,
        carrier_code: str,
        carrier_name: str,
        shipping_method: str,
        tracking_number: str,
        ship_date: datetime,
        items: Sequence[tuple[str, int]],
    ) -> float | None:
        """v0 confirmShipment (204). Returns the live rate Amazon reported, if any."""
        package = {
            "packageReferenceId": package_reference,
            "carrierCode": carrier_code,
            "carrierName": carrier_name,
            "shippingMethod": shipping_method,
            "trackingNumber": tracking_number,
            "shipDate": amazon_time(ship_date),
            "orderItems": [{"orderItemId": item_id, "quantity": qty} for item_id, qty in items],
        }
        response = self._use(
            seller_id,
            "v0",
            CONFIRM_SHIPMENT,
            lambda c: c.confirm_shipment(order_id, marketplaceId=marketplace_id, packageDetail=package),
        )
        return _parse_rate(response.headers)

    # ---- plumbing --------------------------------------------------------------------------

    def _use(self, seller_id: str, version: str, operation: str, call: Callable[[Any], Any]) -> Any:
        """`call(client)`, mapped. A call refused as unauthorised (LWA refusing the token
        refresh, or SP-API a 401/403) drops the seller's clients and is tried once more with
        credentials read again from Key Vault: a rotated LWA secret is used from then on,
        with no restart. A refused call was not carried out, so the retry cannot repeat it."""
        try:
            with self._clients.borrow((seller_id, version)) as client:
                return self._call(operation, lambda: call(client))
        except SpApiAuthFailed:
            self.forget(seller_id)
        with self._clients.borrow((seller_id, version)) as client:
            return self._call(operation, lambda: call(client))

    def _build(self, seller_id: str, version: str) -> Any:
        seller = self._settings.seller(seller_id)
        if seller is None:
            raise UnknownSeller("seller is not configured")
        creds = self._credentials(seller_id)
        client = Orders(
            _marketplace(seller),
            version=version,
            refresh_token=creds["refresh_token"],
            credentials={"lwa_app_id": creds["lwa_app_id"], "lwa_client_secret": creds["lwa_client_secret"]},
            credential_providers=[FromCodeCredentialProvider],
            auth_token_client_class=self._token_class,
            verify=self._verify,
            timeout=self._timeout,
        )
        if self._settings.spapi_endpoint:
            client.endpoint = self._settings.spapi_endpoint.rstrip("/")
        return client

    def forget(self, seller_id: str) -> None:
        """Drop a seller's clients (after credentials rotate): the next call rebuilds them."""
        self._clients.forget(lambda key: key[0] == seller_id)

    def close(self) -> None:
        self._clients.forget()

    @staticmethod
    def _call(operation: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except sp_errors.SellingApiRequestThrottledException as exc:
            rate = _parse_rate(exc.headers)
            wait = 1.0 / (rate or DEFAULT_PLANS[operation].rate)
            record = current_invocation()
            if record is not None:
                record.throttled(operation, wait)
            raise SpApiThrottled(operation, wait, rate) from None
        except (sp_errors.SellingApiForbiddenException, AuthorizationError):
            raise SpApiAuthFailed(f"{operation} refused the credentials") from None
        except sp_errors.SellingApiNotFoundException:
            raise SpApiNotFound(f"{operation} found no such resource") from None
        except sp_errors.SellingApiException as exc:
            raise _mapped(operation, exc) from None
        except httpx.HTTPError as exc:
            raise SpApiUnavailable(f"{operation} transport failure: {type(exc).__name__}") from None
        except (AttributeError, IndexError, KeyError, TypeError, ValueError, RecursionError) as exc:
            # The library parses the body before returning or raising, and fails on a malformed
            # one (an errors field that is not a list of objects, a body that is not UTF-8 JSON).
            raise SpApiUnavailable(f"{operation} answer unreadable: {type(exc).__name__}") from None


def _mapped(operation: str, exc: Any) -> AppError:
    status = int(getattr(exc, "code", 0) or 0)
    if 400 <= status < 500 and status not in (401, 408):
        return SpApiRejected(f"{operation} rejected the request with status {status}")
    return SpApiUnavailable(f"{operation} failed with status {status}")
