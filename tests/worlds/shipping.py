"""The shipping world: `ShippingService` with memory stores, the fake cipher, fake carriers
(USPS, FedEx that needs a phone, Amazon that confirms itself) and a fake Amazon confirmation."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.crypto.pii import Pii
from shared.orders.domain import Address, Buyer, OrderItem
from shared.orders.record import OrderPii, OrderRecord, Stage
from shared.orders.repository import OrderRepository
from shared.shipping.rules import ShippingRules
from shared.shipping.service import ShippingService
from shared.storage.blob_store import LabelStore
from tests.builders import order_record
from tests.fakes import (
    FakeCarrier,
    FakeCipher,
    FakeConfirmer,
    MemoryBlobStore,
    MemoryDocumentStore,
    XorBlobCipher,
)
from tests.worlds import order_repository

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
US = "ATVPDKIKX0DER"
EMAIL = "buyer-secret@example.invalid"

RULES = {
    "shipFrom": {
        "name": "Dock",
        "line1": "1 Dock St",
        "city": "Seattle",
        "postalCode": "98101",
        "countryCode": "US",
    },
    "packages": {"small": {"lengthCm": 20, "widthCm": 15, "heightCm": 10}},
    "skus": {"MUG": {"weightKg": 0.5, "package": "small"}},
    "buyShipping": {"marketplaces": ["A1F83G8C2ARO7P"], "services": {"Standard": "*"}},
    "rules": [
        {
            "serviceLevels": ["NextDay"],
            "countries": ["US"],
            "carrier": "fedex",
            "service": "fedex_priority_overnight",
        },
        {"countries": ["US"], "carrier": "usps", "service": "usps_ground_advantage"},
    ],
}


def address(phone: str | None = "5125550100", country: str = "US") -> Address:
    return Address(
        name=Pii("Jane Doe"),
        line1=Pii("2 Main St"),
        city=Pii("Austin"),
        postal_code=Pii("78701"),
        country_code=country,
        state_or_region=Pii("TX"),
        phone=Pii(phone) if phone else None,
    )


@dataclass
class World:
    """The service over memory stores, under the retention schedule the app applies."""

    store: MemoryDocumentStore = field(default_factory=MemoryDocumentStore)
    cipher: FakeCipher = field(default_factory=FakeCipher)
    blobs: MemoryBlobStore = field(default_factory=MemoryBlobStore)
    confirmer: FakeConfirmer = field(default_factory=FakeConfirmer)
    carriers: dict[str, Any] = field(
        default_factory=lambda: {
            "usps": FakeCarrier("usps"),
            "fedex": FakeCarrier("fedex", requires_phone=True),
            "amazon": FakeCarrier("amazon", confirmed=True),
        }
    )
    #: Orders written under the retention schedule, as in the app (`tests.worlds.order_repository`).
    scheduled: bool = True

    @property
    def orders(self) -> OrderRepository:
        return order_repository(self.store, (lambda: NOW) if self.scheduled else None)

    def service(self) -> ShippingService:
        return ShippingService(
            self.orders,
            self.cipher,
            ShippingRules(RULES),
            lambda seller: self.carriers,
            LabelStore(self.blobs, XorBlobCipher()),
            self.confirmer,
        )

    def add(
        self,
        ref: str,
        *,
        stage: Stage = Stage.READY,
        level: str = "Standard",
        addr: Address | None = None,
        marketplace: str = US,
        restricted: bool = False,
        ship_by: datetime | None = None,
    ) -> None:
        addr = addr or address()
        pii = OrderPii("111-0000000-0000001", Buyer(name=Pii("Buyer Name"), email=Pii(EMAIL)), addr)
        self.orders.create(
            order_record(
                at=NOW,
                ref=ref,
                seller_id="A1SELLER",
                marketplace_id=marketplace,
                stage=stage,
                ship_country=addr.country_code,
                service_level=level,
                items=(OrderItem("OI-1", "B000", "MUG", "Mug", 2, None),),
                pii=self.cipher.seal(ref, pii, NOW),
                restricted=restricted,
                latest_ship_at=ship_by,
            )
        )

    def get(self, ref: str) -> OrderRecord:
        record = self.orders.get(ref)
        assert record is not None
        return record


REF = "ref-00000001"
