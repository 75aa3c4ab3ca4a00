"""The invoicing world: `InvoicingService` wired to memory stores, the fake cipher, real
AES-GCM byte sealers, the production blob naming (`PathBlobs`), reportlab and a fake feed
uploader; the legal archive beside it."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from PyPDF2 import PdfReader

from shared.crypto.pii import Pii
from shared.invoices.archive import InvoiceArchive
from shared.invoices.numbering import CLAIM_PREFIX, InvoiceCounter, counter_id
from shared.invoices.profile import parse_profile
from shared.invoices.render import ReportlabRenderer
from shared.invoices.service import InvoicingService
from shared.orders.domain import Address, Buyer, Money, OrderItem
from shared.orders.messages import IssueInvoice
from shared.orders.record import OrderPii, PiiCipher, Stage
from shared.storage.blob_store import PathBlobs
from shared.storage.document_store import STATE, DocumentStore
from tests.builders import order_record
from tests.fakes import (
    FakeCipher,
    FakeUploader,
    LocalByteSealer,
    MemoryBlobStore,
    MemoryDocumentStore,
    audit_trail,
    stored,
)
from tests.worlds import order_repository

NOW = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
DE, FR, UK, US = "A1PA6795UKMFR9", "A13V1IB3VIYZZH", "A1F83G8C2ARO7P", "ATVPDKIKX0DER"

PROFILE = {
    "legalName": "Muster Handel GmbH",
    "address": {"lines": ["Hauptstraße 1"], "postalCode": "10115", "city": "Berlin", "countryCode": "DE"},
    "vatIds": {"DE": "DE123456789", "GB": "GB123456789"},  # pragma: allowlist secret - VAT ids
    "series": {"invoice": "INV", "creditNote": "CN"},
    "extraLines": ["Registered at Amtsgericht Berlin HRB 12345"],
}


def item(n: int, title: str, qty: int, unit: str, tax: str, *, currency: str = "EUR") -> OrderItem:
    return OrderItem(
        order_item_id=f"item-{n}",
        asin=f"B0000000{n}",
        sku=f"SKU-{n}",
        title=title,
        quantity=qty,
        unit_price=Money(Decimal(unit), currency),
        item_tax=Money(Decimal(tax), currency),
    )


def address(name: str, line1: str, postal: str, city: str, country: str, **more: str) -> Address:
    wrapped = {k: Pii(v) for k, v in more.items()}
    return Address(Pii(name), Pii(line1), Pii(city), Pii(postal), country, **wrapped)


class World:
    """The service wired to in-memory stores, a fake cipher and a fake uploader. `scheduled`
    writes orders under the app's retention schedule (`tests.worlds.order_repository`); it is
    off by default because it changes what the tests see: a cancelled order then loses its
    buyer data in the same write, so its invoice is skipped as `pii_deleted`, not `cancelled`."""

    def __init__(
        self,
        marketplaces: tuple[str, ...] = (DE, FR, UK),
        archive_years: Mapping[str, int] | None = None,
        *,
        scheduled: bool = False,
        cipher: PiiCipher | None = None,
    ):
        self.store = MemoryDocumentStore()
        self.orders = order_repository(self.store, (lambda: NOW) if scheduled else None)
        self.cipher = cipher or FakeCipher()
        self.sealer = LocalByteSealer()
        # The production adapter (names that start with their container) over a memory store.
        self.memory, self.archive_memory = MemoryBlobStore(), MemoryBlobStore()
        self.blobs = PathBlobs(self.memory)
        self.archive_blobs = PathBlobs(self.archive_memory)
        self.archive_sealer = LocalByteSealer()
        self.uploader = FakeUploader()
        self.counter = InvoiceCounter(self.store, sleep=lambda _s: None)
        self.audit = audit_trail(self.store)
        self.archive = InvoiceArchive(
            self.store, self.archive_blobs, self.archive_sealer, archive_years or {}
        )
        self.service = InvoicingService(
            orders=self.orders,
            counter=self.counter,
            cipher=self.cipher,
            sealer=self.sealer,
            blobs=self.blobs,
            renderer=ReportlabRenderer(),
            profile=parse_profile(PROFILE),
            invoice_marketplaces=marketplaces,
            uploader=self.uploader,
            audit=self.audit,
            archive=self.archive,
        )

    def add_order(
        self,
        ref: str,
        *,
        marketplace: str = DE,
        items: tuple[OrderItem, ...],
        pii: OrderPii,
        business: bool = False,
        stage: Stage = Stage.SHIPPED,
        **changes: Any,
    ) -> None:
        record = order_record(
            at=NOW,
            ref=ref,
            seller_id="A1SELLER",
            marketplace_id=marketplace,
            stage=stage,
            amazon_status="SHIPPED",
            created_at=NOW - timedelta(days=2),
            ship_country=pii.ship_to.country_code if pii.ship_to else None,
            is_business=business,
            items=items,
            pii=self.cipher.seal(ref, pii, NOW),
            shipment={"carrier": "DHL", "trackingNumber": "T1", "shippedAt": "2026-11-01T15:00:00+00:00"},
            **changes,
        )
        self.orders.create(record)

    def issue(self, ref: str, kind: str = "invoice", now: datetime = NOW) -> dict[str, Any]:
        self.service.issue(IssueInvoice(ref=ref, kind=kind), now)
        record = self.orders.get(ref)
        assert record is not None
        return dict(record.invoice or {})

    def pdf_text(self, ref: str, key: str = "invoice") -> str:
        doc = self.issue_doc(ref, key)
        pdf = self.sealer.open_bytes(ref, stored(self.memory)[doc["blob"]])
        reader = PdfReader(io.BytesIO(pdf))
        return "\n".join(page.extract_text() for page in reader.pages)

    def issue_doc(self, ref: str, key: str) -> Mapping[str, Any]:
        record = self.orders.get(ref)
        assert record is not None and record.invoice is not None
        return dict(record.invoice[key])


def held_claims(store: DocumentStore, series: str) -> dict[str, list[Any]]:
    """The claims in `series`: {claim key: [number, claimed at]}."""
    return {
        str(item["id"]).removeprefix(CLAIM_PREFIX): [item["claim"]["number"], item["claim"]["at"]]
        for item in store.in_partition(STATE, counter_id(series))
        if str(item["id"]).startswith(CLAIM_PREFIX)
    }


def de_consumer(world: World, ref: str = "ref-de-consumer-1") -> None:
    pii = OrderPii(
        order_id="302-1111111-1111111",
        buyer=Buyer(name=Pii("Jürgen Weiß"), email=Pii("jw@marketplace.example")),
        ship_to=address("Jürgen Weiß", "Lindenstraße 5", "80331", "München", "DE", phone="+49 89 123456"),
    )
    items = (
        item(1, "Kaffeemühle aus Edelstahl", 1, "59.50", "9.50"),
        item(2, "Espressotassen, 6er Set", 2, "10.70", "1.40"),  # reduced rate 7 %
    )
    world.add_order(ref, marketplace=DE, items=items, pii=pii)


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def assert_has(text: str, *needles: str) -> None:
    flat = normalise(text)
    missing = [n for n in needles if normalise(n) not in flat]
    assert not missing, f"missing on the invoice: {missing}"
