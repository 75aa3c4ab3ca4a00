"""Amazon Buy Shipping through the SP-API Shipping API v2 (`shippingV2.json`).

With `channelDetails.channelType = AMAZON` and the Amazon order id, Amazon rates and buys the
label against the address it already holds: this adapter sends no recipient field at all,
only the seller's ship-from address, the parcel and the order item ids. Buying through
Buy Shipping also confirms the shipment to Amazon, so the service skips confirmShipment.

Exactly one label: `purchaseShipment` takes `x-amzn-IdempotencyKey`; the adapter sends the
persisted intent id there, and as `packageClientReferenceId`, so a retried purchase after a
crash is recognised by Amazon as the same request.

python-amazon-sp-api's `ShippingV2` client sends fixed headers, so `SpApiShippingV2` adds the
idempotency header through the client's own `_request(..., headers=...)` parameter.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from shared.shipping.carriers.amazon_business import business_id
from shared.shipping.carriers.base import (
    RETURNED,
    AddressProblem,
    CarrierError,
    CarrierTimeout,
    CarrierUnavailable,
    Label,
    LabelRequest,
    ShipmentRef,
    TrackingInfo,
)
from shared.telemetry.invocations import current_invocation

DOCUMENT_SPEC: Mapping[str, Any] = {
    "format": "PDF",
    "size": {"width": 4, "length": 6, "unit": "INCH"},
    "needFileJoining": False,
    "requestedDocumentTypes": ["LABEL"],
}
ANY_SERVICE = "*"
# What reading a malformed Shipping v2 answer raises (missing keys, wrong types, bad base64
# or timestamps): mapped to typed errors that name the operation, never a value.
_MALFORMED = (AttributeError, IndexError, KeyError, TypeError, ValueError)


class ShippingV2Api(Protocol):
    """The four Shipping API v2 operations this adapter uses; each returns the `payload`."""

    def get_rates(self, body: Mapping[str, Any]) -> Mapping[str, Any]: ...

    def purchase_shipment(self, body: Mapping[str, Any], idempotency_key: str) -> Mapping[str, Any]: ...

    def cancel_shipment(self, shipment_id: str) -> Mapping[str, Any]: ...

    def get_tracking(self, tracking_id: str, carrier_id: str) -> Mapping[str, Any]: ...


def _money(value: Decimal) -> dict[str, Any]:
    return {"value": float(value), "unit": "USD"}


def rates_body(request: LabelRequest) -> dict[str, Any]:
    """getRates for an Amazon order: ship-from, parcel and order items; never a ship-to."""
    if not request.amazon_order_id:
        raise CarrierError("Buy Shipping needs the Amazon order id", code="amazon_order_missing")
    sf = request.ship_from
    ship_from = {
        "name": sf.name,
        "addressLine1": sf.line1,
        "city": sf.city,
        "postalCode": sf.postal_code,
        "countryCode": sf.country_code,
        "stateOrRegion": sf.state_or_region or "",
    }
    if sf.line2:
        ship_from["addressLine2"] = sf.line2
    if sf.phone:
        ship_from["phoneNumber"] = sf.phone
    parcel = request.parcel
    return {
        "shipFrom": ship_from,
        "shipDate": f"{request.ship_date.isoformat()}T09:00:00Z",
        "packages": [
            {
                "dimensions": {
                    "length": float(parcel.length_cm),
                    "width": float(parcel.width_cm),
                    "height": float(parcel.height_cm),
                    "unit": "CENTIMETER",
                },
                "weight": {"value": float(parcel.weight_kg), "unit": "KILOGRAM"},
                "insuredValue": _money(Decimal(0)),
                "packageClientReferenceId": request.idempotency_key,
                "items": [{"itemIdentifier": i.order_item_id, "quantity": i.quantity} for i in request.items],
            }
        ],
        "channelDetails": {
            "channelType": "AMAZON",
            "amazonOrderDetails": {"orderId": request.amazon_order_id},
        },
    }


def _pick_rate(rates: list[Mapping[str, Any]], service: str) -> Mapping[str, Any]:
    eligible = [r for r in rates if not r.get("requiresAdditionalInputs")]
    if service != ANY_SERVICE:
        eligible = [r for r in eligible if r.get("serviceId") == service]
    if not eligible:
        raise AddressProblem("no eligible Buy Shipping rate", code="buy_shipping_ineligible")
    return min(eligible, key=lambda r: float((r.get("totalCharge") or {}).get("value", 0)))


class AmazonBuyShipping:
    """Buy Shipping for one seller. `api` is an `SpApiShippingV2` (or a fake in unit tests);
    rule services are Amazon `serviceId`s, or "*" for the cheapest eligible rate."""

    name = "amazon"
    replay_safe = True
    requires_phone = False

    def __init__(self, api: ShippingV2Api) -> None:
        self._api = api

    def create_label(self, request: LabelRequest) -> Label:
        rates = self._api.get_rates(rates_body(request))
        try:
            rate = _pick_rate(list(rates.get("rates") or []), request.service)
            body = {
                "requestToken": rates["requestToken"],
                "rateId": rate["rateId"],
                "requestedDocumentSpecification": dict(DOCUMENT_SPEC),
            }
        except _MALFORMED:
            raise CarrierUnavailable("getRates answer unreadable", code="amazon_rates_unreadable") from None
        try:
            purchase = self._api.purchase_shipment(body, request.idempotency_key)
        except CarrierUnavailable as exc:
            if exc.code != NOT_BOUGHT:
                # Sent, and no answer proves nothing was bought (a 5xx, a dropped connection):
                # CarrierTimeout keeps the intent, and the replay's same key finds the label.
                raise CarrierTimeout(
                    "purchaseShipment outcome unknown", code="amazon_purchase_unknown"
                ) from None
            raise
        try:
            return self._label(rate, purchase)
        except (*_MALFORMED, CarrierError):
            # An answer was given, so a label may have been bought even if it is unreadable or
            # incomplete: CarrierTimeout keeps the intent for the replay (never a second label).
            raise CarrierTimeout(
                "purchaseShipment answer unreadable", code="amazon_purchase_unreadable"
            ) from None

    def _label(self, rate: Mapping[str, Any], purchase: Mapping[str, Any]) -> Label:
        details = (purchase.get("packageDocumentDetails") or [{}])[0]
        documents = [d for d in details.get("packageDocuments") or [] if d.get("type") == "LABEL"]
        if not documents or not details.get("trackingId"):
            raise CarrierError("Buy Shipping returned no label", code="amazon_label_missing")
        import base64

        return Label(
            carrier=self.name,
            carrier_name=str(rate.get("carrierName") or rate.get("carrierId")),
            service=str(rate.get("serviceId")),
            tracking_number=str(details["trackingId"]),
            shipment_id=str(purchase["shipmentId"]),
            document=base64.b64decode(documents[0]["contents"]),
            document_format=str(documents[0].get("format") or "PDF"),
            confirmed_by_carrier=True,
            carrier_id=str(rate["carrierId"]),
        )

    def cancel_label(self, shipment: ShipmentRef) -> bool:
        self._api.cancel_shipment(shipment.shipment_id)
        return True

    def track(self, shipment: ShipmentRef) -> TrackingInfo:
        """getTracking with the `carrierId` of the rate bought, as Amazon's model asks."""
        if not shipment.carrier_id:
            raise CarrierError("the shipment has no Buy Shipping carrierId", code="carrier_id_missing")
        result = self._api.get_tracking(shipment.tracking_number, shipment.carrier_id)
        try:
            return _tracking(shipment.tracking_number, result)
        except _MALFORMED:
            raise CarrierUnavailable(
                "getTracking answer unreadable", code="amazon_tracking_unreadable"
            ) from None


_STATUSES = {
    "Delivered": "delivered",
    "InTransit": "in_transit",
    "OutForDelivery": "in_transit",
    "PreTransit": "pending",
}


def _event_time(event: Mapping[str, Any]) -> datetime:
    return datetime.fromisoformat(str(event["eventTime"]).replace("Z", "+00:00"))


def _tracking(tracking_number: str, result: Mapping[str, Any]) -> TrackingInfo:
    """An event's shipmentType tells the way to the buyer (FORWARD, or unsaid) from the way back
    to the seller (RETURNS). Only a forward Delivered reaches the buyer; a parcel with a RETURNS
    leg and no forward delivery is returned from the return leg's first event (ReturnInitiated
    in Amazon's example), even when the summary says Delivered (it arrived back)."""
    events = list(result.get("eventHistory") or [])
    forward = [e for e in events if e.get("shipmentType") != "RETURNS"]
    handed = [_event_time(e) for e in forward if e.get("eventCode") == "Delivered"]
    if handed:
        return TrackingInfo(tracking_number, "delivered", handed[-1])
    returns = [_event_time(e) for e in events if e.get("shipmentType") == "RETURNS"]
    if returns:
        return TrackingInfo(tracking_number, RETURNED, min(returns))
    status = str((result.get("summary") or {}).get("status") or "")
    return TrackingInfo(tracking_number, _STATUSES.get(status) or ("exception" if status else "unknown"))


THROTTLED = 429


def _record_throttled(operation: str, exc: Exception) -> None:
    """Count the 429 on the running invocation, as the order gateway does for its calls, so
    the throttling rule and the workbook see Buy Shipping's throttling too."""
    record = current_invocation()
    if record is None:
        return
    headers = getattr(exc, "headers", None) or {}
    try:
        wait = float(headers.get("Retry-After", 0))
    except (TypeError, ValueError):
        wait = 0.0
    record.throttled(operation, wait)


# A CarrierUnavailable that proves the call was not carried out: throttled, refused as down,
# or never connected. Any other failure of a call that was sent leaves its outcome unknown.
NOT_BOUGHT = "carrier_not_reached"


def _raise_mapped(exc: Exception) -> None:
    """sp_api errors carry the HTTP status in `code`: 429 and 5xx retry, the rest do not; only
    429 and 503 prove the call was not carried out (999 is the library's code for a status it
    has no class for, e.g. 502)."""
    status = getattr(exc, "code", None)
    if status in (THROTTLED, 503):
        raise CarrierUnavailable(f"shipping api status {status}", code=NOT_BOUGHT) from None
    if isinstance(status, int) and status >= 500:
        raise CarrierUnavailable(f"shipping api status {status}") from None
    raise CarrierError(f"shipping api status {status}", code="amazon_shipping_refused") from None


class SpApiShippingV2:
    """`ShippingV2Api` over python-amazon-sp-api's `ShippingV2` client.

    `endpoint` and `lwa_endpoint` (scheme://host[:port]) point the client at another host,
    the local stand-ins in tests; None keeps the library's region endpoint and api.amazon.com.
    `business_id` is the `x-amzn-shipping-business-id` (e.g. AmazonShipping_US)."""

    def __init__(
        self,
        *,
        refresh_token: str,
        lwa_client_id: str,
        lwa_client_secret: str,
        marketplace_id: str,
        business_id: str = "AmazonShipping_US",
        endpoint: str | None = None,
        lwa_endpoint: str | None = None,
        verify: bool = True,
    ) -> None:
        from sp_api.api import ShippingV2
        from sp_api.api.shipping.shipping_v2 import AmznShippingBusiness
        from sp_api.auth import AccessTokenClient
        from sp_api.base import Marketplaces

        marketplace = next(m for m in Marketplaces if m.marketplace_id == marketplace_id)
        token_class: type[Any] = AccessTokenClient
        if lwa_endpoint:
            scheme, _, host = lwa_endpoint.partition("://")
            token_class = type(
                "LoopbackTokenClient", (AccessTokenClient,), {"scheme": f"{scheme}://", "host": host}
            )
        self._client = ShippingV2(
            marketplace,
            refresh_token=refresh_token,
            credentials={"lwa_app_id": lwa_client_id, "lwa_client_secret": lwa_client_secret},
            amzn_shipping_business=AmznShippingBusiness(business_id),
            auth_token_client_class=token_class,
            verify=verify,
        )
        if endpoint:
            self._client.endpoint = endpoint.rstrip("/")

    def _call(self, operation: str, fn: Any, *args: Any, **kwargs: Any) -> Mapping[str, Any]:
        """`fn(*args, **kwargs)`, errors mapped; `operation` is the API's name for it (what a
        429 is counted under)."""
        import httpx
        from sp_api.base import SellingApiException

        try:
            response = fn(*args, **kwargs)
        except SellingApiException as exc:
            if getattr(exc, "code", None) == THROTTLED:
                _record_throttled(operation, exc)
            _raise_mapped(exc)
            raise
        except httpx.TimeoutException:
            raise CarrierTimeout("shipping api did not answer") from None
        except httpx.ConnectError:
            raise CarrierUnavailable("shipping api unreachable", code=NOT_BOUGHT) from None
        except httpx.TransportError:
            # Sent, then the connection failed (reset, a broken answer): outcome unknown.
            raise CarrierTimeout("shipping api connection lost") from None
        payload = response.payload
        return payload if isinstance(payload, dict) else {}

    def get_rates(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        return self._call("getRates", self._client.get_rates, **body)

    def purchase_shipment(self, body: Mapping[str, Any], idempotency_key: str) -> Mapping[str, Any]:
        headers = {**self._client.headers, "x-amzn-IdempotencyKey": idempotency_key}
        return self._call(
            "purchaseShipment",
            self._client._request,
            "/shipping/v2/shipments",
            data={**body, "method": "POST"},
            headers=headers,
            add_marketplace=False,
        )

    def cancel_shipment(self, shipment_id: str) -> Mapping[str, Any]:
        return self._call("cancelShipment", self._client.cancel_shipment, shipment_id)

    def get_tracking(self, tracking_id: str, carrier_id: str) -> Mapping[str, Any]:
        return self._call(
            "getTracking", self._client.get_tracking, trackingId=tracking_id, carrierId=carrier_id
        )


class MarketplaceBuyShipping:
    """Buy Shipping for one seller across its marketplaces: each label goes through the
    shipping business of the order's marketplace (`amazon_business.BUSINESS_IDS`), with one
    Shipping v2 client per business, made on first use by `api_for(business_id)`.

    Cancelling and tracking go through the business of the shipment's marketplace too; a
    request or shipment that names none uses `default_marketplace` (the seller's first
    marketplace with a business)."""

    name = "amazon"
    replay_safe = True
    requires_phone = False

    def __init__(self, api_for: Callable[[str], ShippingV2Api], default_marketplace: str) -> None:
        self._api_for = api_for
        self._default = default_marketplace
        self._carriers: dict[str, AmazonBuyShipping] = {}
        self._lock = threading.Lock()

    def _carrier(self, marketplace_id: str | None) -> AmazonBuyShipping:
        marketplace = marketplace_id or self._default
        business = business_id(marketplace)
        if business is None:
            raise CarrierError(
                "the marketplace has no Amazon Buy Shipping business", code="buy_shipping_unavailable"
            )
        with self._lock:
            if business not in self._carriers:
                self._carriers[business] = AmazonBuyShipping(self._api_for(business))
            return self._carriers[business]

    def create_label(self, request: LabelRequest) -> Label:
        return self._carrier(request.marketplace_id).create_label(request)

    def cancel_label(self, shipment: ShipmentRef) -> bool:
        return self._carrier(shipment.marketplace_id).cancel_label(shipment)

    def track(self, shipment: ShipmentRef) -> TrackingInfo:
        return self._carrier(shipment.marketplace_id).track(shipment)
