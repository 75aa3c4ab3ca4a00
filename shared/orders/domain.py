"""The order as this app knows it: only the fields the privacy policy lets us collect.

Policy clause 1 allows buyer name, shipping address, phone, e-mail and order details (ASIN,
quantity, price) plus what tax invoices need. Everything else in Amazon's order is dropped at
the boundary (`shared.ingestion.amazon_orders`). Buyer fields are `Pii` and never print.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from shared.crypto.pii import Pii


class FulfillmentStatus(StrEnum):
    """Amazon's fulfillment status (Orders API v2026-01-01 `FulfillmentStatus`)."""

    PENDING_AVAILABILITY = "PENDING_AVAILABILITY"
    PENDING = "PENDING"
    UNSHIPPED = "UNSHIPPED"
    PARTIALLY_SHIPPED = "PARTIALLY_SHIPPED"
    SHIPPED = "SHIPPED"
    CANCELLED = "CANCELLED"
    UNFULFILLABLE = "UNFULFILLABLE"


class PackageState(StrEnum):
    """Amazon's `PackageStatus.status`."""

    PENDING = "PENDING"
    IN_TRANSIT = "IN_TRANSIT"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    CANCELLED = "CANCELLED"
    UNDELIVERABLE = "UNDELIVERABLE"


@dataclass(frozen=True, slots=True)
class Address:
    """A delivery address. Country is kept plain: shipping rules and tax need it, and alone it
    identifies no one."""

    name: Pii
    line1: Pii
    city: Pii
    postal_code: Pii | None  # None where the country has no postal codes (the UAE)
    country_code: str
    line2: Pii | None = None
    line3: Pii | None = None
    company: Pii | None = None
    state_or_region: Pii | None = None
    district: Pii | None = None
    phone: Pii | None = None
    address_type: str | None = None


@dataclass(frozen=True, slots=True)
class Buyer:
    name: Pii | None = None
    email: Pii | None = None
    company: Pii | None = None
    vat_id: Pii | None = None


@dataclass(frozen=True, slots=True)
class Money:
    amount: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class Charge:
    """A charge on an order item besides its price (shipping, gift wrap, a cash-on-delivery fee)
    or a discount (negative), in the item's currency, with the VAT in it. An invoice shows it as
    a line of its own: transport and packing are part of the taxable amount (Directive
    2006/112/EC, Art. 78(b))."""

    kind: str  # Amazon's proceeds category: SHIPPING, GIFT_WRAP, COD_FEE, DISCOUNT or OTHER
    amount: Decimal
    tax: Decimal


@dataclass(frozen=True, slots=True)
class OrderItem:
    order_item_id: str
    asin: str
    sku: str
    title: str
    quantity: int
    unit_price: Money | None
    item_tax: Money | None = None  # the VAT on the item's price (not on its charges)
    charges: tuple[Charge, ...] = ()


@dataclass(frozen=True, slots=True)
class Package:
    """What Amazon reports about a shipped package: a delivery signal, no buyer data."""

    reference: str
    status: PackageState | None
    tracking_number: str | None = None
    carrier: str | None = None


@dataclass(frozen=True, slots=True)
class Order:
    order_id: str
    seller_id: str
    marketplace_id: str
    created_at: datetime
    last_updated_at: datetime
    fulfillment_status: FulfillmentStatus
    fulfilled_by: str
    items: tuple[OrderItem, ...]
    buyer: Buyer = field(default_factory=Buyer)
    ship_to: Address | None = None
    service_level: str | None = None
    latest_ship_at: datetime | None = None
    latest_delivery_at: datetime | None = None
    packages: tuple[Package, ...] = ()
    programs: frozenset[str] = frozenset()

    @property
    def is_merchant_fulfilled(self) -> bool:
        return self.fulfilled_by == "MERCHANT"

    @property
    def is_business(self) -> bool:
        return "AMAZON_BUSINESS" in self.programs

    @property
    def delivered_by_amazon_report(self) -> bool:
        return bool(self.packages) and all(p.status is PackageState.DELIVERED for p in self.packages)


@dataclass(frozen=True, slots=True)
class Shipment:
    carrier: str
    service: str
    tracking_number: str
    label_blob: str
    shipped_at: datetime


@dataclass(frozen=True, slots=True)
class Invoice:
    series: str
    number: int
    kind: str
    issued_at: datetime
    document_blob: str
    feed_id: str | None = None
