"""The one Cosmos document per order: its whole state, with every buyer field encrypted.

Document id and partition key are the order's pseudonymous reference (`shared.orders.reference`),
so neither storage, queue messages nor telemetry hold the Amazon order id in plain text: it
travels inside the encrypted envelope with the buyer's data. Non-personal facts (stage,
marketplace, ship-to country, items, timestamps, tracking) stay plain so that every stage can
work and the document still parses after its key is shredded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

from shared.crypto.pii import Pii
from shared.orders.domain import Address, Buyer, Charge, Money, Order, OrderItem

# The `extra` key of an order a deletion request is erasing: what it held, for its confirmation.
ERASURE = "erasure"
# The `extra` key of a ready order whose shipping has not started (or failed and must be tried
# again): when the redrive sends it to shipping next (a lost message, or the next try after a
# transient failure). Shipping removes it with its intent.
READY_AT = "readyAt"


def left_ready(extra: Mapping[str, Any]) -> dict[str, Any]:
    """`extra` out of the redrive's index: shipping began here, or the order is no longer ours
    to ship."""
    return {k: v for k, v in extra.items() if k != READY_AT}


# The `extra` key listing the blobs ("<container>/<name>") an order's writers store under its
# reference besides the label and the recorded invoices (a privacy export, an invoice before it
# is recorded): noted before the blob is written, so the purge deletes by name, never lists.
BLOBS = "blobs"


def noting_blob(record: OrderRecord, path: str) -> OrderRecord | None:
    """`record` noting `path` among its blobs; None when it notes it already."""
    noted = record.noted_blobs
    return None if path in noted else record.evolve(extra={**record.extra, BLOBS: [*noted, path]})


# The `extra` key naming the buyer fields a person corrected ("shipTo.line1", ...): Amazon's
# later updates of the order keep them as corrected.
CORRECTED = "corrected"


class Stage(StrEnum):
    AWAITING = "awaiting"  # at Amazon, not yet shippable (pending payment, pre-order)
    READY = "ready_to_ship"  # a `shipments` message was sent
    SHIPPED = "shipped"  # label bought and shipment confirmed to Amazon
    DELIVERED = "delivered"  # delivery known; purge deadline set
    RETURNED = "returned"  # sent back to the seller, never delivered; purge deadline set
    CANCELLED = "cancelled"  # buyer data deleted at once
    ATTENTION = "needs_attention"  # a person must act; reason in `attention`


@dataclass(frozen=True, slots=True)
class OrderPii:
    """Everything about an order that identifies a person, plus the Amazon order id."""

    order_id: str
    buyer: Buyer
    ship_to: Address | None

    def to_plain(self) -> dict[str, Any]:
        """The revealed values, for encryption only: never log or store this dict."""
        return {
            "orderId": self.order_id,
            "buyer": _reveal_fields(self.buyer),
            "shipTo": _reveal_fields(self.ship_to) if self.ship_to else None,
        }

    @classmethod
    def from_plain(cls, data: Mapping[str, Any]) -> OrderPii:
        ship_to = data.get("shipTo")
        return cls(
            order_id=str(data["orderId"]),
            buyer=Buyer(**_wrap_fields(Buyer, data.get("buyer") or {})),
            ship_to=Address(**_wrap_fields(Address, ship_to)) if ship_to else None,
        )

    @classmethod
    def of(cls, order: Order) -> OrderPii:
        return cls(order.order_id, order.buyer, order.ship_to)


_PLAIN_ADDRESS_FIELDS = frozenset({"country_code", "address_type"})
# Field names looked up once, not by reflection on every call.
_BUYER_FIELDS = tuple(f.name for f in fields(Buyer))
_ADDRESS_FIELDS = tuple(f.name for f in fields(Address))


def _field_names(cls: type[Buyer] | type[Address]) -> tuple[str, ...]:
    return _ADDRESS_FIELDS if issubclass(cls, Address) else _BUYER_FIELDS


def _reveal_fields(obj: Buyer | Address) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in _field_names(type(obj)):
        value = getattr(obj, name)
        out[name] = value.reveal() if isinstance(value, Pii) else value
    return out


def _wrap_fields(cls: type[Buyer] | type[Address], data: Mapping[str, Any]) -> dict[str, Any]:
    names = _field_names(cls)
    return {
        k: (v if k in _PLAIN_ADDRESS_FIELDS or v is None else Pii(str(v)))
        for k, v in data.items()
        if k in names
    }


class ReferenceMaker(Protocol):
    """Turns an Amazon order id into its pseudonymous reference (`shared.orders.reference`)."""

    def ref(self, order_id: str) -> str: ...


class PiiCipher(Protocol):
    """Seals an order's PII under a fresh data key; the implementation is `shared.crypto.envelope`."""

    def seal(self, ref: str, pii: OrderPii, now: datetime) -> dict[str, Any]: ...

    def open(self, ref: str, envelope: Mapping[str, Any]) -> OrderPii: ...


def stored_time(value: datetime) -> str:
    """A time as stored, in UTC: the due queries compare these as text, so every stored time
    must share one offset (a carrier's "+09:00" would otherwise sort hours away from its
    instant). A time without an offset is taken to be UTC already."""
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)).isoformat()


def _iso(value: datetime | None) -> str | None:
    return None if value is None else stored_time(value)


def _time(value: object) -> datetime | None:
    return datetime.fromisoformat(str(value)) if value else None


def item_to_doc(item: OrderItem) -> dict[str, Any]:
    priced = item.unit_price or item.item_tax
    return {
        "orderItemId": item.order_item_id,
        "asin": item.asin,
        "sku": item.sku,
        "title": item.title,
        "quantity": item.quantity,
        "unitPrice": str(item.unit_price.amount) if item.unit_price else None,
        "itemTax": str(item.item_tax.amount) if item.item_tax else None,
        "currency": priced.currency if priced else None,
        "charges": [{"kind": c.kind, "amount": str(c.amount), "tax": str(c.tax)} for c in item.charges],
    }


def item_from_doc(doc: Mapping[str, Any]) -> OrderItem:
    currency = doc.get("currency") or ""
    return OrderItem(
        order_item_id=doc["orderItemId"],
        asin=doc["asin"],
        sku=doc["sku"],
        title=doc["title"],
        quantity=int(doc["quantity"]),
        unit_price=Money(Decimal(doc["unitPrice"]), currency) if doc.get("unitPrice") else None,
        item_tax=Money(Decimal(doc["itemTax"]), currency) if doc.get("itemTax") else None,
        charges=tuple(
            Charge(str(c["kind"]), Decimal(c["amount"]), Decimal(c["tax"])) for c in doc.get("charges") or ()
        ),
    )


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """Typed view of an order document. `etag` is the `_etag` it was read with (None if new)."""

    ref: str
    seller_id: str
    marketplace_id: str
    stage: Stage
    amazon_status: str
    amazon_updated_at: datetime
    created_at: datetime
    ship_country: str | None
    service_level: str | None
    is_business: bool
    latest_ship_at: datetime | None
    latest_delivery_at: datetime | None
    items: tuple[OrderItem, ...]
    pii: Mapping[str, Any] | None  # the sealed envelope; None once deleted
    shipment: Mapping[str, Any] | None = None
    invoice: Mapping[str, Any] | None = None
    delivered_at: datetime | None = None
    delivery_source: str | None = None
    returned_at: datetime | None = None
    purge_after: datetime | None = None
    due_at: datetime | None = None  # next time-based action (delivery check, purge)
    restricted: bool = False
    attention: str | None = None
    ttl: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    etag: str | None = None

    def evolve(self, **changes: Any) -> OrderRecord:
        return replace(self, **changes)

    @property
    def being_erased(self) -> bool:
        """Stripped to a shell by a deletion request that has not finished (`shared.privacy.service`):
        nothing may be added to it, the buyer's data least of all."""
        return ERASURE in self.extra

    @property
    def noted_blobs(self) -> tuple[str, ...]:
        """The blobs ("<container>/<name>") noted on the order before they were written (`BLOBS`)."""
        return tuple(str(path) for path in self.extra.get(BLOBS) or ())

    def invoice_numbers(self) -> list[str]:
        """The numbers of the invoice and credit note recorded on the order, as printed: what
        the audit record of its purge or erasure keeps, so the number register stays whole."""
        documents = (self.invoice or {}).values()
        return sorted(str(d["numberText"]) for d in documents if isinstance(d, Mapping) and "numberText" in d)

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "id": self.ref,
            "sellerId": self.seller_id,
            "marketplaceId": self.marketplace_id,
            "stage": self.stage.value,
            "amazonStatus": self.amazon_status,
            "amazonUpdatedAt": _iso(self.amazon_updated_at),
            "createdAt": _iso(self.created_at),
            "shipCountry": self.ship_country,
            "serviceLevel": self.service_level,
            "isBusiness": self.is_business,
            "latestShipAt": _iso(self.latest_ship_at),
            "latestDeliveryAt": _iso(self.latest_delivery_at),
            "items": [item_to_doc(i) for i in self.items],
            "pii": dict(self.pii) if self.pii is not None else None,
            "shipment": dict(self.shipment) if self.shipment else None,
            "invoice": dict(self.invoice) if self.invoice else None,
            "deliveredAt": _iso(self.delivered_at),
            "deliverySource": self.delivery_source,
            "returnedAt": _iso(self.returned_at),
            "purgeAfter": _iso(self.purge_after),
            "dueAt": _iso(self.due_at),
            "restricted": self.restricted,
            "attention": self.attention,
            "extra": dict(self.extra),
        }
        if self.ttl is not None:
            doc["ttl"] = self.ttl
        return doc

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> OrderRecord:
        return cls(
            ref=doc["id"],
            seller_id=doc["sellerId"],
            marketplace_id=doc["marketplaceId"],
            stage=Stage(doc["stage"]),
            amazon_status=doc["amazonStatus"],
            amazon_updated_at=_time(doc["amazonUpdatedAt"]),  # type: ignore[arg-type]
            created_at=_time(doc["createdAt"]),  # type: ignore[arg-type]
            ship_country=doc.get("shipCountry"),
            service_level=doc.get("serviceLevel"),
            is_business=bool(doc.get("isBusiness")),
            latest_ship_at=_time(doc.get("latestShipAt")),
            latest_delivery_at=_time(doc.get("latestDeliveryAt")),
            items=tuple(item_from_doc(i) for i in doc.get("items") or ()),
            pii=doc.get("pii"),
            shipment=doc.get("shipment"),
            invoice=doc.get("invoice"),
            delivered_at=_time(doc.get("deliveredAt")),
            delivery_source=doc.get("deliverySource"),
            returned_at=_time(doc.get("returnedAt")),
            purge_after=_time(doc.get("purgeAfter")),
            due_at=_time(doc.get("dueAt")),
            restricted=bool(doc.get("restricted")),
            attention=doc.get("attention"),
            ttl=doc.get("ttl"),
            extra=doc.get("extra") or {},
            etag=doc.get("_etag"),
        )
