"""The adapters between services' ports and the shared clients."""

from datetime import UTC, datetime, timedelta

import pytest

from shared.app.delivery_tracking import CarrierDeliveryTracker
from shared.crypto.envelope import EnvelopeCipher
from shared.crypto.key_epochs import KeyEpochs
from shared.crypto.secrets import OrderBytesSealer, VaultKeySealer
from shared.errors import AppError
from shared.orders.deadlines import AmazonPackageStatus
from shared.orders.record import OrderRecord, Stage
from shared.retention.service import JourneyEnd
from shared.shipping.carriers import ShipmentRef, TrackingInfo
from shared.storage.blob_store import PathBlobs
from tests.builders import order_record
from tests.fakes import MemoryBlobStore, MemorySecretStore

NOW = datetime(2026, 11, 10, 12, tzinfo=UTC)
SHIPPED = NOW - timedelta(days=5)


def _record(**extra: object) -> OrderRecord:
    fields: dict[str, object] = dict(
        stage=Stage.SHIPPED,
        amazon_status="SHIPPED",
        amazon_updated_at=NOW - timedelta(days=1),
        created_at=SHIPPED,
        shipment={"carrier": "ups", "trackingNumber": "1Z1", "shippedAt": SHIPPED.isoformat()},
    )
    fields.update(extra)
    return order_record(at=NOW, **fields)


class Carrier:
    name = "ups"
    replay_safe = False
    requires_phone = False

    def __init__(self, info: TrackingInfo) -> None:
        self.info = info
        self.asked: list[ShipmentRef] = []

    def track(self, shipment: ShipmentRef) -> TrackingInfo:
        self.asked.append(shipment)
        return self.info


def _tracker(info: TrackingInfo, carrier: Carrier | None = None) -> CarrierDeliveryTracker:
    carriers = {"ups": carrier or Carrier(info)}
    return CarrierDeliveryTracker(lambda seller: carriers, lambda: NOW, timedelta(days=3))  # type: ignore[arg-type, return-value]


def test_amazon_delivery_needs_every_package_delivered() -> None:
    both = [{"status": "DELIVERED"}, {"status": "DELIVERED"}]
    assert AmazonPackageStatus().delivered_at(_record(extra={"packages": both})) == NOW - timedelta(days=1)
    one = [{"status": "DELIVERED"}, {"status": "IN_TRANSIT"}]
    assert AmazonPackageStatus().delivered_at(_record(extra={"packages": one})) is None
    assert AmazonPackageStatus().delivered_at(_record()) is None


def test_carrier_time_is_used_and_read_as_utc_when_naive() -> None:
    naive = datetime(2026, 11, 8, 9, 30)
    assert _tracker(TrackingInfo("1Z1", "delivered", naive)).journey_end(_record()) == JourneyEnd(
        naive.replace(tzinfo=UTC)
    )
    assert _tracker(TrackingInfo("1Z1", "in_transit")).journey_end(_record()) is None


def test_an_event_dated_before_the_label_was_bought_counts_from_shipping() -> None:
    before = SHIPPED - timedelta(days=30)
    assert _tracker(TrackingInfo("1Z1", "delivered", before)).journey_end(_record()) == JourneyEnd(SHIPPED)


def test_a_parcel_returned_to_the_seller_ends_its_journey_as_returned_not_delivered() -> None:
    back = datetime(2026, 11, 9, 7, tzinfo=UTC)
    assert _tracker(TrackingInfo("1Z1", "returned", back)).journey_end(_record()) == JourneyEnd(
        back, returned=True
    )
    assert _tracker(TrackingInfo("1Z1", "exception")).journey_end(_record()) is None


def test_tracking_names_the_orders_marketplace_and_the_carrier_id_of_the_rate_bought() -> None:
    carrier = Carrier(TrackingInfo("TBA1", "in_transit"))
    shipment = {"carrier": "ups", "trackingNumber": "TBA1", "shipmentId": "S1", "carrierId": "AMZN_UK"}
    _tracker(carrier.info, carrier).journey_end(_record(marketplace_id="A1F83G8C2ARO7P", shipment=shipment))
    assert carrier.asked == [ShipmentRef("S1", "TBA1", "A1F83G8C2ARO7P", "AMZN_UK")]


def test_without_a_carrier_time_delivery_counts_from_the_earliest_possible_moment() -> None:
    end = _tracker(TrackingInfo("1Z1", "delivered")).journey_end(_record())
    assert end == JourneyEnd(NOW - timedelta(days=3))  # the previous check saw it in transit
    just_shipped = _record(
        shipment={
            "carrier": "ups",
            "trackingNumber": "1Z1",
            "shippedAt": (NOW - timedelta(days=1)).isoformat(),
        }
    )
    assert _tracker(TrackingInfo("1Z1", "delivered")).journey_end(just_shipped) == JourneyEnd(
        NOW - timedelta(days=1)
    )


def test_path_blobs_route_by_container_prefix() -> None:
    memory = MemoryBlobStore()
    blobs = PathBlobs(memory)
    blobs.put("invoices/ref-1/INV-1.pdf", b"pdf")
    assert memory.get("invoices", "ref-1/INV-1.pdf") == b"pdf"
    assert blobs.get("invoices/ref-1/INV-1.pdf") == b"pdf"
    assert blobs.delete("invoices/ref-1/INV-1.pdf") and blobs.get("invoices/ref-1/INV-1.pdf") is None
    with pytest.raises(AppError):
        blobs.put("no-container", b"x")


def test_sealers_round_trip_and_bind_the_reference() -> None:
    store = MemorySecretStore()
    order_sealer = OrderBytesSealer(EnvelopeCipher(KeyEpochs(store, lambda: NOW)))
    sealed = order_sealer.seal_bytes("ref-000000001", b"%PDF invoice", NOW)
    assert b"invoice" not in sealed and order_sealer.open_bytes("ref-000000001", sealed) == b"%PDF invoice"
    with pytest.raises(AppError):
        order_sealer.open_bytes("ref-000000002", sealed)
    archive = VaultKeySealer(store, "invoice-archive-key")
    kept = archive.seal_bytes("INV-1", b"%PDF", NOW)
    assert VaultKeySealer(store, "invoice-archive-key").open_bytes("INV-1", kept) == b"%PDF"
