"""The carrier-neutral contract: what the shipping service asks of any carrier.

Buyer fields stay `Pii` in these requests; each adapter reveals them only while building the
body it sends, and only the fields its carrier needs to print a label (name, address lines,
city, region, postal code, country, phone). The e-mail is not part of the type at all, so no
adapter can hand it over by mistake.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol

from shared.crypto.pii import Pii
from shared.errors import AppError, TransientError


class CarrierError(AppError):
    """A carrier refused the request for a reason retrying will not fix (credentials, service)."""

    code = "carrier_error"


class AddressProblem(CarrierError):
    """The order cannot ship to this address as it stands: a person must look at it.

    `code` is one of the reason codes in docs/shipping.md (address_rejected,
    country_unsupported, phone_missing); never any part of the address."""

    code = "address_rejected"


class CarrierUnavailable(TransientError):
    """The carrier answered 5xx or could not be reached: no label was bought; retry later."""

    code = "carrier_unavailable"


class CarrierTimeout(CarrierUnavailable):
    """The carrier did not answer in time: a label may or may not have been bought."""

    code = "carrier_timeout"


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who the label is addressed to: the label minimum, as `Pii` until the adapter reveals it."""

    name: Pii
    line1: Pii
    city: Pii
    postal_code: Pii | None  # None where the country has no postal codes (the UAE)
    country_code: str
    line2: Pii | None = None
    line3: Pii | None = None
    company: Pii | None = None
    state_or_region: Pii | None = None
    phone: Pii | None = None


@dataclass(frozen=True, slots=True)
class ShipFrom:
    """The seller's dispatch address (business data, not buyer PII), from configuration."""

    name: str
    line1: str
    city: str
    postal_code: str
    country_code: str
    state_or_region: str | None = None
    line2: str | None = None
    phone: str | None = None
    company: str | None = None


@dataclass(frozen=True, slots=True)
class Parcel:
    weight_kg: Decimal
    length_cm: Decimal
    width_cm: Decimal
    height_cm: Decimal


@dataclass(frozen=True, slots=True)
class LabelItem:
    """An order line in the parcel. Amazon Buy Shipping needs them; the others do not."""

    order_item_id: str
    quantity: int


@dataclass(frozen=True, slots=True)
class LabelRequest:
    """One label for one order.

    `idempotency_key` is the shipment intent id persisted before the call: adapters send it as
    the API's idempotency key or customer reference, so a retried purchase finds the first.
    `recipient` is None for Amazon Buy Shipping, where Amazon already holds the address.
    """

    idempotency_key: str
    service: str
    ship_from: ShipFrom
    parcel: Parcel
    ship_date: date
    recipient: Recipient | None = None
    amazon_order_id: str | None = None
    items: Sequence[LabelItem] = ()
    #: The order's marketplace: Buy Shipping picks its shipping business by it.
    marketplace_id: str | None = None


@dataclass(frozen=True, slots=True)
class Label:
    """A bought label. `shipment_id` names it to `cancel_label`; `carrier_name` is the name
    Amazon's confirmShipment expects (e.g. "USPS"). `confirmed_by_carrier` is True when buying
    the label already told Amazon the order shipped (Buy Shipping), so no confirmShipment."""

    carrier: str
    carrier_name: str
    service: str
    tracking_number: str
    shipment_id: str
    document: bytes
    document_format: str = "PDF"
    confirmed_by_carrier: bool = False
    #: Buy Shipping's `carrierId` of the rate bought, which getTracking asks for again.
    carrier_id: str | None = None


RETURNED = "returned"


@dataclass(frozen=True, slots=True)
class TrackingInfo:
    """What a carrier's tracking says of a parcel. `status` is "delivered" (to the buyer, on the
    way out), "returned" (sent back to the seller: never delivered), "in_transit", "pending",
    "exception" or "unknown"; `event_at` is when it was delivered or returned, if the carrier
    says."""

    tracking_number: str
    status: str
    event_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ShipmentRef:
    """A bought label as cancelling and tracking name it: the carrier's ids, the order's
    marketplace (Buy Shipping's business is chosen by it) and the `carrierId` Buy Shipping's
    rate gave (getTracking needs it)."""

    shipment_id: str
    tracking_number: str
    marketplace_id: str | None = None
    carrier_id: str | None = None


class Carrier(Protocol):
    """A label provider. `name` is the key shipping rules use ("usps", "fedex", "ups", "amazon").

    `replay_safe` is True when repeating `create_label` with the same idempotency key returns
    the first label instead of buying another: the shipping service retries an unresolved
    intent only then, and otherwise asks a person (reason `label_intent_unresolved`).
    `requires_phone` is True when the carrier refuses labels without a recipient phone.
    """

    name: str
    replay_safe: bool
    requires_phone: bool

    def create_label(self, request: LabelRequest) -> Label: ...

    def cancel_label(self, shipment: ShipmentRef) -> bool: ...

    def track(self, shipment: ShipmentRef) -> TrackingInfo: ...
