"""The carrier handoff across the wire: karrio -> local USPS/FedEx/UPS stand-ins, and
python-amazon-sp-api -> the Shipping API v2 stand-in.

- 300 ready orders, a crash after the label purchase and before the state write for 10% of
  them, every failed message redelivered: exactly 300 labels bought, 300 confirmations.
- What each stand-in received holds no e-mail and no recipient field beyond the documented
  minimum (docs/shipping.md).
"""

from __future__ import annotations

import hashlib
from collections import Counter, deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from local import carrier_servers, spapi_shipping
from shared.crypto.envelope import EnvelopeCipher
from shared.crypto.key_epochs import KeyEpochs
from shared.orders.messages import IssueInvoice, ShipOrder
from shared.orders.record import Stage
from shared.orders.repository import OrderRepository
from shared.shipping.carriers import Carrier, Label, LabelRequest, ShipmentRef
from shared.shipping.carriers.amazon import AmazonBuyShipping, SpApiShippingV2
from shared.shipping.carriers.karrio_adapter import KarrioCarrier
from shared.shipping.rules import ShippingRules
from shared.shipping.service import ShippingService
from shared.storage.blob_store import LABELS, LabelStore
from tests.fakes import FakeConfirmer, MemoryDocumentStore, MemorySecretStore
from tests.worlds.handoff import CREDENTIALS, NOW, RULES, UK, US, build, email, order_pii

pytestmark = pytest.mark.integration


class Crash(Exception):
    """The worker dies: nothing in the service catches this."""


@dataclass
class CrashingCarrier:
    """Buys the label for real, then dies before the service can write anything."""

    inner: Carrier
    doomed: set[str]  # Amazon order ids whose first purchase crashes
    crashed: set[str] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def replay_safe(self) -> bool:
        return self.inner.replay_safe

    @property
    def requires_phone(self) -> bool:
        return self.inner.requires_phone

    def create_label(self, request: LabelRequest) -> Label:
        label = self.inner.create_label(request)
        key = str(request.amazon_order_id)
        if key in self.doomed and key not in self.crashed:
            self.crashed.add(key)
            raise Crash
        return label

    def cancel_label(self, shipment: ShipmentRef) -> bool:
        return self.inner.cancel_label(shipment)

    def track(self, shipment: ShipmentRef) -> Any:
        return self.inner.track(shipment)


class DigestBlobs:
    """Keeps each blob's digest and size: a UPS label becomes a ~4 MB PDF in karrio."""

    def __init__(self) -> None:
        self.blobs: dict[tuple[str, str], tuple[str, int]] = {}
        self.plain_hits = 0

    def put(self, container: str, name: str, data: bytes, metadata: Mapping[str, str] | None = None) -> None:
        self.plain_hits += data.count(b"%PDF")
        self.blobs[(container, name)] = (hashlib.sha256(data).hexdigest(), len(data))

    def create(self, container: str, name: str, data: bytes, metadata: Mapping[str, str]) -> bool:
        self.put(container, name, data, metadata)
        return True

    def get(self, container: str, name: str) -> bytes | None:
        return None

    def metadata(self, container: str, name: str) -> Mapping[str, str] | None:
        return None

    def delete(self, container: str, name: str) -> bool:
        return False

    def delete_prefix(self, container: str, prefix: str) -> list[str]:
        return []

    def list_names(self, container: str, prefix: str) -> list[str]:
        return []


@pytest.fixture(scope="module")
def carriers() -> Iterator[carrier_servers.CarrierServers]:
    with carrier_servers.running() as servers:
        yield servers


def karrio_carriers(servers: carrier_servers.CarrierServers) -> dict[str, Carrier]:
    return {
        name: KarrioCarrier(name, CREDENTIALS[name], base_url=url, replay_safe=True)
        for name, url in servers.endpoints().items()
    }


def test_300_orders_with_crashes_buy_300_labels_and_confirm_300(
    carriers: carrier_servers.CarrierServers,
) -> None:
    store = MemoryDocumentStore()
    cipher = EnvelopeCipher(KeyEpochs(MemorySecretStore(), lambda: NOW))
    refs = build(store, cipher, 300)
    doomed = {order_pii(n).order_id for n in range(0, 300, 10)}  # 10%, spread over all carriers
    wrapped = {name: CrashingCarrier(c, doomed) for name, c in karrio_carriers(carriers).items()}
    blobs = DigestBlobs()
    confirmer = FakeConfirmer()
    before = {name: s.purchases for name, s in carriers.all().items()}
    service = ShippingService(
        OrderRepository(store),
        cipher,
        ShippingRules(RULES),
        lambda seller: wrapped,
        LabelStore(blobs, cipher),
        confirmer,
    )

    queue = deque(ShipOrder(ref) for ref in refs)
    invoices: list[IssueInvoice] = []
    deliveries = 0
    while queue:
        message = queue.popleft()
        deliveries += 1
        try:
            invoices.extend(service.ship(message, NOW))
        except Crash:
            queue.append(message)  # the queue makes it visible again

    bought = {name: s.purchases - before[name] for name, s in carriers.all().items()}
    assert sum(bought.values()) == 300
    assert bought == {"usps": 100, "fedex": 100, "ups": 100}
    assert sum(len(c.crashed) for c in wrapped.values()) == 30 and deliveries == 330
    assert len(confirmer.calls) == 300
    assert len({c["order_id"] for c in confirmer.calls}) == 300
    assert Counter(c["carrier_code"] for c in confirmer.calls) == {"USPS": 100, "FedEx": 100, "UPS": 100}
    assert sorted(i.ref for i in invoices) == refs
    records = [OrderRepository(store).get(ref) for ref in refs]
    assert all(r is not None and r.stage is Stage.SHIPPED for r in records)
    tracking = [str((r.shipment or {})["trackingNumber"]) for r in records if r]
    assert len(set(tracking)) == 300
    assert {c["tracking_number"] for c in confirmer.calls} == set(tracking)
    assert len(blobs.blobs) == 300 and all(c == LABELS for c, _ in blobs.blobs)
    assert blobs.plain_hits == 0  # every label was sealed before it was stored


# --- what left the app -----------------------------------------------------------------------

# The documented minimum per carrier (docs/shipping.md): recipient fields only.
RECIPIENT_FIELDS = {
    "usps": {
        "firstName",
        "lastName",
        "firm",
        "streetAddress",
        "secondaryAddress",
        "city",
        "state",
        "ZIPCode",
        "ZIPPlus4",
        "phone",
        "ignoreBadAddress",
    },
    "fedex": {
        "personName",
        "companyName",
        "phoneNumber",
        "streetLines",
        "city",
        "stateOrProvinceCode",
        "postalCode",
        "countryCode",
        "residential",
        "address",
        "contact",
    },
    "ups": {
        "Name",
        "AttentionName",
        "CompanyDisplayableName",
        "Phone",
        "Number",
        "Address",
        "AddressLine",
        "City",
        "StateProvinceCode",
        "PostalCode",
        "CountryCode",
        "ResidentialAddressIndicator",
    },
}


def keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys(v)}
    return set()


def recipient_block(carrier: str, body: dict[str, Any]) -> Any:
    if carrier == "usps":
        return body["toAddress"]
    if carrier == "fedex":
        return body["requestedShipment"]["recipients"]
    return body["ShipmentRequest"]["Shipment"]["ShipTo"]


def test_carriers_receive_only_the_label_minimum(carriers: carrier_servers.CarrierServers) -> None:
    store = MemoryDocumentStore()
    cipher = EnvelopeCipher(KeyEpochs(MemorySecretStore(), lambda: NOW))
    refs = build(store, cipher, 3)  # one per carrier
    start = {name: len(s.requests) for name, s in carriers.all().items()}
    service = ShippingService(
        OrderRepository(store),
        cipher,
        ShippingRules(RULES),
        lambda seller: karrio_carriers(carriers),
        LabelStore(DigestBlobs(), cipher),
        FakeConfirmer(),
    )
    for ref in refs:
        service.ship(ShipOrder(ref), NOW)
    for name, standin in carriers.all().items():
        received = standin.requests[start[name] :]
        text = repr([r.body for r in received])
        for n in range(3):
            assert email(n) not in text and "@" not in text
            assert f"Account Holder {n}" not in text and f"District {n}" not in text
        labels = [r.body for r in received if r.method == "POST" and carrier_servers._is_label_path(r.path)]
        assert len(labels) == 1, name
        block = recipient_block(name, labels[0])
        assert keys(block) <= RECIPIENT_FIELDS[name], keys(block) - RECIPIENT_FIELDS[name]
        assert "Person" in repr(block) and "Main St" in repr(block)  # the label does carry them
        outside = repr(labels[0]).replace(repr(block), "")
        assert "Person" not in outside and "Main St" not in outside and "51255" not in outside
        assert not any("mail" in k.lower() for k in keys(block))


def test_buy_shipping_through_sp_api_sends_no_address_and_replays_by_idempotency_key() -> None:
    served = spapi_shipping.serve()
    try:
        api = SpApiShippingV2(
            refresh_token="Atzr|local",
            lwa_client_id="amzn1.application-oa2-client.local",
            lwa_client_secret="local",
            marketplace_id=US,
            endpoint=served.base_url,
            lwa_endpoint=served.base_url,
        )
        store = MemoryDocumentStore()
        cipher = EnvelopeCipher(KeyEpochs(MemorySecretStore(), lambda: NOW))
        refs = build(store, cipher, 10)
        for ref in refs:  # move them to a Buy Shipping marketplace
            repo = OrderRepository(store)
            repo.update(ref, lambda r: r.evolve(marketplace_id=UK, service_level="Standard"))
        doomed = {order_pii(n).order_id for n in range(0, 10, 3)}
        amazon = CrashingCarrier(AmazonBuyShipping(api), doomed)
        confirmer = FakeConfirmer()
        service = ShippingService(
            OrderRepository(store),
            cipher,
            ShippingRules(RULES),
            lambda seller: {"amazon": amazon},
            LabelStore(DigestBlobs(), cipher),
            confirmer,
        )
        queue = deque(ShipOrder(ref) for ref in refs)
        while queue:
            message = queue.popleft()
            try:
                service.ship(message, NOW)
            except Crash:
                queue.append(message)
        assert served.standin.purchases == 10 and len(amazon.crashed) == 4
        assert not confirmer.calls  # Buy Shipping confirms the shipment itself
        bodies = [b for _, path, b in served.standin.requests if path.endswith("/rates")]
        assert bodies and all("shipTo" not in b for b in bodies)
        text = repr(served.standin.requests)
        assert "@" not in text and "Recipient Person" not in text and "Main St" not in text
        assert all(OrderRepository(store).get(r).stage is Stage.SHIPPED for r in refs)  # type: ignore[union-attr]
    finally:
        served.stop()
