"""USPS, FedEx and UPS labels through karrio (`karrio.sdk` with karrio.usps/fedex/ups, unmodified).

karrio is imported inside the functions below (its import costs a second only `ship_order` should
pay). It hides whether a failed purchase was carried out: `_Exchange` records it (docs/shipping.md).

Loopback hosts: each karrio carrier builds its URLs from the `server_url` property of its
settings class (production host, or the sandbox host when `test_mode`). `KarrioCarrier`
passes karrio a subclass of that very settings class whose `server_url` returns `base_url`
when one is given, so the unmodified proxies call the local stand-ins instead.

What leaves the app: the recipient's name, company, address lines, city, region, postal code,
country and phone (FedEx requires the phone); never the e-mail, which the neutral request does
not even carry. karrio records every request body in its tracer and logs through loguru; the
adapter gives it a tracer that keeps nothing and silences the `karrio` loguru namespace, so no
address outlives the call in memory or in a log.
"""

from __future__ import annotations

import base64
import functools
import http.client
import threading
import urllib.error
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from shared.shipping.carriers.base import (
    RETURNED,
    AddressProblem,
    CarrierError,
    CarrierTimeout,
    CarrierUnavailable,
    Label,
    LabelRequest,
    Recipient,
    ShipFrom,
    ShipmentRef,
    TrackingInfo,
)
from shared.shipping.carriers.label_images import one_bit_ups_labels
from shared.telemetry.invocations import record_count

CARRIER_NAMES: Mapping[str, str] = {"usps": "USPS", "fedex": "FedEx", "ups": "UPS"}

# Carrier error codes that mean "this address will not work": documented in docs/shipping.md.
# FedEx uses dotted codes naming the field, USPS JSON codes, UPS 1202xx for ship-to fields.
ADDRESS_MARKERS = ("ADDRESS", "POSTAL", "ZIP", "RECIPIENT", "SHIPTO", "STATE", "CITY")
UPS_ADDRESS_PREFIX = "1202"
COUNTRY_CODES = ("SHIPPING_SDK_DESTINATION_NOT_SERVICED_ERROR",)
TRANSIENT_MARKERS = ("INTERNAL.SERVER", "SERVICE.UNAVAILABLE", "SERVICE_UNAVAILABLE", "SYSTEM.UNAVAILABLE")
# karrio reports a body it cannot parse (a gateway's plain-text 502/503 page) as its own
# internal error; with no carrier code at all, the failure is treated as transient too (tried
# again with the back-off; for a purchase, only a 429 or 503 proves nothing was bought:
# `_unbought`).
SDK_INTERNAL = "SHIPPING_SDK_INTERNAL_ERROR"
# The HTTP statuses that prove a purchase was not carried out (`_unbought`).
THROTTLED, UNAVAILABLE = 429, 503
CLIENT_ERRORS = range(400, 500)


def _classify(carrier: str, codes: Sequence[str]) -> CarrierError | CarrierUnavailable:
    """Map carrier error codes to the app's errors; only codes travel, never message text."""
    upper = [c.upper() for c in codes]
    if (
        not upper
        or upper == [SDK_INTERNAL]
        or any(c.isdigit() and c.startswith("5") and len(c) == 3 for c in upper)
        or any(m in c for c in upper for m in TRANSIENT_MARKERS)
    ):
        return CarrierUnavailable(f"{carrier} unavailable")
    if any(c in COUNTRY_CODES for c in upper):
        return AddressProblem(f"{carrier} does not serve the country", code="country_unsupported")
    if any(m in c for c in upper for m in ADDRESS_MARKERS) or any(
        c.startswith(UPS_ADDRESS_PREFIX) for c in upper
    ):
        return AddressProblem(f"{carrier} rejected the address")
    return _refused(carrier)


def _refused(carrier: str) -> CarrierError:
    return CarrierError(f"{carrier} refused the request", code=f"carrier_refused_{carrier}")


def _error_codes(messages: Sequence[Any]) -> list[str]:
    """Error codes, plus the field a USPS error names (`source.parameter`), never the text."""
    codes: list[str] = []
    for m in messages:
        if (m.level or "error") != "error":
            continue
        code = m.code.get("code") if isinstance(m.code, dict) else m.code
        codes.append(str(code or ""))
        source = (m.details or {}).get("source")
        if isinstance(source, dict) and source.get("parameter"):
            codes.append(str(source["parameter"]))
    return codes


@functools.cache
def _karrio() -> Any:
    """Load karrio once per process, with its logging and tracing made PII-safe."""
    from loguru import logger

    # karrio logs payloads at debug level and failed operations with the request in the
    # traceback: keep all of it out, before the first import logs anything.
    logger.disable("karrio")

    from karrio import lib, sdk
    from karrio.core.utils import helpers

    _record_statuses(helpers, lib)

    class ForgetfulTracer(lib.Tracer):  # type: ignore[misc]
        """karrio's tracer keeps every request body (with the address) for later inspection;
        this one keeps nothing."""

        def trace(self, data: Any, key: str, metadata: Any = None, format: Any = None) -> Any:
            return data

    return sdk, lib, ForgetfulTracer


@functools.cache
def _settings_class(carrier: str) -> Any:
    """The carrier's own karrio settings class, with `server_url` overridable by `base_url`."""
    import attr

    module = __import__(f"karrio.mappers.{carrier}.settings", fromlist=["Settings"])
    base = module.Settings

    @attr.s(auto_attribs=True)
    class LoopbackAwareSettings(base):  # type: ignore[misc, valid-type]
        base_url: str | None = None

        @property
        def server_url(self) -> str:
            return self.base_url or str(super().server_url)

    return LoopbackAwareSettings


class _Exchange(threading.local):
    """What the last carrier exchange in this thread raised, and the HTTP status of an error
    answer it got: karrio's `fail_safe` turns any exception of an operation into its own internal
    error, and its `request` turns an error answer into its body, neither saying whether the
    request had been carried out."""

    failure: Exception | None = None
    #: Whether a request was sent, and the status of the last error answer (None: none).
    sent: bool = False
    status: int | None = None


_EXCHANGE = _Exchange()


def _record_statuses(helpers: Any, lib: Any) -> None:
    """Record whether karrio's `request` sent a request and the status of the error answer it
    read (it calls `process_request` and `process_error`, looked up in its module at each call),
    also when a proxy runs its requests on worker threads (`lib.run_asynchronously`, USPS): what
    they saw comes back to the caller's thread, and statuses that differ are recorded as one
    that proves nothing (500)."""
    process_request, process_error = helpers.process_request, helpers.process_error
    run_asynchronously = lib.run_asynchronously

    def sending(*args: Any, **kwargs: Any) -> Any:
        _EXCHANGE.sent = True
        return process_request(*args, **kwargs)

    def answered(request_id: str, error: Any, *args: Any, **kwargs: Any) -> Any:
        _EXCHANGE.status = getattr(error, "code", None)
        return process_error(request_id, error, *args, **kwargs)

    def run_reporting(predicate: Any, sequence: Any) -> Any:
        seen: set[tuple[bool, int | None]] = set()

        def run_one(item: Any) -> Any:
            _EXCHANGE.sent, _EXCHANGE.status = False, None
            try:
                return predicate(item)
            finally:
                seen.add((_EXCHANGE.sent, _EXCHANGE.status))

        try:
            return run_asynchronously(run_one, sequence)
        finally:
            statuses = {status for _, status in seen}
            _EXCHANGE.sent = _EXCHANGE.sent or any(sent for sent, _ in seen)
            _EXCHANGE.status = statuses.pop() if len(statuses) == 1 else 500

    helpers.process_request, helpers.process_error = sending, answered
    lib.run_asynchronously = run_reporting


def _record_failures(proxy: Any) -> None:
    """Record on `_EXCHANGE` what each carrier operation of this proxy raises (set on the
    instance, as `_one_bit_labels` is)."""
    for name in ("create_shipment", "cancel_shipment", "get_tracking"):
        operation = getattr(proxy, name)

        def recorded(*args: Any, _operation: Any = operation, **kwargs: Any) -> Any:
            try:
                return _operation(*args, **kwargs)
            except Exception as exc:
                _EXCHANGE.failure = exc
                raise

        setattr(proxy, name, recorded)


def _exchange_failed(carrier: str, failure: BaseException) -> CarrierUnavailable:
    """A carrier exchange that raised. urllib wraps in URLError what fails while connecting and
    sending: nothing was carried out. Anything else (a timeout, the connection reset or closed
    while the answer was read, an answer the proxy could not read) came after the request was
    sent, so a label may have been bought: the outcome is unknown. The app's own typed failures
    (an unreadable label image, `LabelImageUnreadable`) pass as they are."""
    if isinstance(failure, CarrierUnavailable):
        return failure
    if isinstance(failure, urllib.error.URLError) and not isinstance(failure.reason, TimeoutError):
        return CarrierUnavailable(f"{carrier} unreachable")
    return CarrierTimeout(f"{carrier} sent the request; its outcome is unknown")


def _unbought(
    carrier: str, codes: Sequence[str], sent: bool, status: int | None
) -> CarrierError | CarrierUnavailable:
    """A purchase that returned no label. Nothing bought: nothing was sent (karrio refused the
    request itself, e.g. a country its carrier does not serve), a 4xx refusal (an address, an
    account), or a 429 or 503 (the carrier did not take the request on). Anything else (a 2xx
    karrio could not read, a 500, 502 or 504) leaves the outcome unknown."""
    error = _classify(carrier, codes)
    if not sent or status in (THROTTLED, UNAVAILABLE):
        return error
    if status is not None and status in CLIENT_ERRORS:
        # Refused: whatever karrio made of the body, the carrier did not carry it out.
        return error if not isinstance(error, CarrierUnavailable) else _refused(carrier)
    return CarrierTimeout(f"{carrier} answered the purchase with no label; its outcome is unknown")


def _one_bit_labels(proxy: Any) -> None:
    """Make the label images of this UPS proxy's ship responses 1-bit before karrio reads them.

    Set on the instance: karrio lists a proxy's operations from its class's own attributes, so
    a subclass would hide the inherited ones (void, tracking)."""
    create_shipment = proxy.create_shipment

    def one_bit_create_shipment(request: Any) -> Any:
        response = create_shipment(request)
        if isinstance(response.value, str):
            response.value = one_bit_ups_labels(response.value)
        return response

    proxy.create_shipment = one_bit_create_shipment


# The longest text each carrier takes in a label's recipient fields (characters). FedEx Ship
# API: personName, companyName, each of streetLines and city 35 (karrio's fedex mapper cuts the
# names at 35 itself); UPS Shipping API: ShipTo Name and AttentionName 35, each AddressLine 35
# (karrio cuts these at 35), City 30; USPS Labels API 3: kept within the same 35 and a city of
# 28 (USPS Publication 28's city field). A longer value (Amazon sets no limit on a buyer's name)
# is shortened for the label only, and counted in telemetry (`label_fields_shortened`); the
# order keeps the full text, and so does the invoice.
LABEL_LIMITS: Mapping[str, Mapping[str, int]] = {
    "fedex": {"name": 35, "company": 35, "line": 35, "city": 35},
    "ups": {"name": 35, "company": 35, "line": 35, "city": 30},
    "usps": {"name": 35, "company": 35, "line": 35, "city": 28},
}
SHORTENED_COUNTER = "label_fields_shortened"


def _address(sdk_models: Any, recipient: Recipient, carrier: str) -> Any:
    """The revealed minimum a label needs; built only for the request body, each field within
    the carrier's limit (`LABEL_LIMITS`)."""
    limits = LABEL_LIMITS[carrier]
    shortened = 0

    def fit(value: str | None, field: str) -> str | None:
        nonlocal shortened
        if value is None or len(value) <= limits[field]:
            return value
        shortened += 1
        return value[: limits[field]].rstrip()

    def text(value: Any) -> str | None:
        return value.reveal() if value is not None else None

    second = " ".join(t for t in (text(recipient.line2), text(recipient.line3)) if t) or None
    address = sdk_models.Address(
        person_name=fit(recipient.name.reveal(), "name"),
        company_name=fit(text(recipient.company), "company"),
        address_line1=fit(recipient.line1.reveal(), "line"),
        address_line2=fit(second, "line"),
        city=fit(recipient.city.reveal(), "city"),
        state_code=text(recipient.state_or_region),
        postal_code=text(recipient.postal_code),
        country_code=recipient.country_code,
        phone_number=text(recipient.phone),
    )
    if shortened:
        record_count(SHORTENED_COUNTER, shortened)
    return address


def _shipper(sdk_models: Any, ship_from: ShipFrom) -> Any:
    return sdk_models.Address(
        person_name=ship_from.name,
        company_name=ship_from.company,
        address_line1=ship_from.line1,
        address_line2=ship_from.line2,
        city=ship_from.city,
        state_code=ship_from.state_or_region,
        postal_code=ship_from.postal_code,
        country_code=ship_from.country_code,
        phone_number=ship_from.phone,
    )


class KarrioCarrier:
    """One karrio carrier account (usps, fedex or ups).

    `credentials` are the karrio settings fields of that carrier, read by the caller from Key
    Vault: usps client_id, client_secret, account_number, CRID, MID, manifest_MID; fedex
    api_key, secret_key, account_number (track_api_key, track_secret_key for tracking); ups
    client_id, client_secret, account_number. `base_url` points the carrier at another host
    (the local stand-ins). `replay_safe` says whether the account's API de-duplicates on the
    customer reference; the real USPS, FedEx and UPS APIs do not (docs/shipping.md), so it is
    False unless the caller knows better (the local stand-ins do).
    """

    def __init__(
        self,
        name: str,
        credentials: Mapping[str, str],
        *,
        base_url: str | None = None,
        test_mode: bool = False,
        replay_safe: bool = False,
    ) -> None:
        if name not in CARRIER_NAMES:
            raise CarrierError("unknown karrio carrier", code="carrier_unknown")
        self.name = name
        self.replay_safe = replay_safe
        self.requires_phone = name == "fedex"
        self._credentials = dict(credentials)
        self._base_url = base_url.rstrip("/") if base_url else None
        self._test_mode = test_mode
        self._gateway: Any = None

    def _gw(self) -> Any:
        # One gateway per carrier account: it holds the OAuth token cache between labels.
        if self._gateway is None:
            sdk, lib, tracer_class = _karrio()
            settings = _settings_class(self.name)(
                **self._credentials, base_url=self._base_url, test_mode=self._test_mode
            )
            self._gateway = sdk.gateway[self.name].create(settings, tracer=tracer_class(), cache=lib.Cache())
            if self.name == "ups":
                _one_bit_labels(self._gateway.proxy)
            _record_failures(self._gateway.proxy)
        return self._gateway

    def _call(self, build: Any) -> tuple[Any, list[str]]:
        _EXCHANGE.failure, _EXCHANGE.sent, _EXCHANGE.status = None, False, None
        try:
            result, messages = build()
        except (OSError, http.client.HTTPException) as exc:
            raise _exchange_failed(self.name, exc) from None
        failure = _EXCHANGE.failure
        if failure is not None:
            # karrio's fail_safe turned it into its internal error, which says nothing of when
            # it happened: the proxy's own record does.
            raise _exchange_failed(self.name, failure)
        return result, _error_codes(messages)

    def authenticate(self) -> None:
        """One OAuth token request with this account's credentials (`ops preflight`); raises
        CarrierError when the carrier refuses them, CarrierUnavailable when it cannot answer."""
        _sdk, lib, _ = _karrio()
        from karrio.core import errors as karrio_errors

        proxy = self._gw().proxy

        def token() -> tuple[Any, list[str]]:
            return proxy.authenticate(lib.Serializable(None)).deserialize(), []

        try:
            state, _codes = self._call(token)
        except karrio_errors.ParsedMessagesError as exc:
            raise _classify(self.name, _error_codes(exc.messages) or ["auth"]) from None
        except karrio_errors.ShippingSDKError:
            raise _classify(self.name, [SDK_INTERNAL]) from None
        except CarrierUnavailable:
            raise
        except Exception:  # karrio's FedEx raises a bare Exception when a field is missing
            raise CarrierError(
                f"{self.name} credentials incomplete", code=f"carrier_credentials_incomplete_{self.name}"
            ) from None
        if not (state.get("access_token") if isinstance(state, dict) else state):
            raise CarrierError(f"{self.name} gave no token", code=f"carrier_refused_{self.name}")

    def create_label(self, request: LabelRequest) -> Label:
        if request.recipient is None:
            raise CarrierError("a karrio label needs a recipient", code="recipient_missing")
        sdk, _lib, _ = _karrio()
        from karrio.core import errors as karrio_errors
        from karrio.core import models

        gateway = self._gw()
        payload = models.ShipmentRequest(
            shipper=_shipper(models, request.ship_from),
            recipient=_address(models, request.recipient, self.name),
            parcels=[
                models.Parcel(
                    weight=float(request.parcel.weight_kg),
                    weight_unit="KG",
                    length=float(request.parcel.length_cm),
                    width=float(request.parcel.width_cm),
                    height=float(request.parcel.height_cm),
                    dimension_unit="CM",
                )
            ],
            service=request.service,
            payment=models.Payment(paid_by="sender"),
            # FedEx and USPS read `shipment_date`, UPS `shipping_date`; without them karrio
            # would use the wall clock.
            options={
                "shipment_date": request.ship_date.isoformat(),
                "shipping_date": f"{request.ship_date.isoformat()}T09:00",
            },
            reference=request.idempotency_key,
            label_type="PDF",
        )
        try:
            shipment, codes = self._call(lambda: sdk.Shipment.create(payload).from_(gateway).parse())
        except karrio_errors.ShippingSDKError as exc:
            raise _classify(self.name, [str(getattr(exc, "code", ""))]) from None
        if shipment is None or not shipment.docs or not shipment.docs.label:
            raise _unbought(self.name, codes, _EXCHANGE.sent, _EXCHANGE.status)
        return Label(
            carrier=self.name,
            carrier_name=CARRIER_NAMES[self.name],
            service=request.service,
            tracking_number=str(shipment.tracking_number),
            shipment_id=str(shipment.shipment_identifier),
            document=base64.b64decode(shipment.docs.label),
            document_format=str(shipment.label_type or "PDF"),
        )

    def cancel_label(self, shipment: ShipmentRef) -> bool:
        sdk, _lib, _ = _karrio()
        from karrio.core import models

        gateway = self._gw()
        request = models.ShipmentCancelRequest(shipment_identifier=shipment.shipment_id)
        confirmation, codes = self._call(lambda: sdk.Shipment.cancel(request).from_(gateway).parse())
        if confirmation is None and codes:
            raise _classify(self.name, codes)
        return bool(confirmation and confirmation.success)

    def track(self, shipment: ShipmentRef) -> TrackingInfo:
        tracking_number = shipment.tracking_number
        sdk, _lib, _ = _karrio()
        from karrio.core import models

        gateway = self._gw()
        request = models.TrackingRequest(tracking_numbers=[tracking_number])
        details, codes = self._call(lambda: sdk.Tracking.fetch(request).from_(gateway).parse())
        found = [d for d in details or [] if d.tracking_number == tracking_number]
        if not found:
            if codes:
                raise _classify(self.name, codes)
            return TrackingInfo(tracking_number, "unknown")
        return _tracking(found[0])


def _event_time(event: Any) -> datetime | None:
    """An event's time: karrio's ISO `timestamp`, else its date and time (karrio writes the time
    as "10:00 AM", which no ISO parser reads: then the day's start, which errs early)."""
    for stamp in (event.timestamp, f"{event.date or ''}T{event.time or ''}", event.date):
        try:
            return datetime.fromisoformat(str(stamp))
        except ValueError:
            continue
    return None


def _tracking(details: Any) -> TrackingInfo:
    """karrio's statuses (newest event first): `delivered` is the buyer's parcel; its
    `return_to_sender` (UPS RS/RT/RH/RU, FedEx RS/RT) is a parcel going back to the seller,
    returned from the earliest event that says so (else the newest event)."""
    status = str(details.status or ("delivered" if details.delivered else "unknown"))
    events = list(details.events or ())
    if status == "delivered":
        return TrackingInfo(details.tracking_number, status, _event_time(events[0]) if events else None)
    if status == "return_to_sender":
        back = [e for e in events if e.status == "return_to_sender"] or events[:1]
        return TrackingInfo(details.tracking_number, RETURNED, _event_time(back[-1]) if back else None)
    neutral = status if status in ("in_transit", "pending") else "unknown"
    if status in ("delivery_failed", "on_hold"):
        neutral = "exception"
    return TrackingInfo(details.tracking_number, neutral)
