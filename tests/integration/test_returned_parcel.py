"""A returned parcel is not delivered, over the wire (issue 24, item 7).

Two UK orders of a seller whose first marketplace is the US ship through Buy Shipping: the app's
ShippingService buys each label from the Shipping API v2 stand-in with python-amazon-sp-api,
under the UK business (the stand-in rates AMZN_UK there, and knows a shipment only under the
business that bought it). One parcel is sent back the way Amazon's getTracking example shows
(forward leg Undeliverable, then a RETURNS leg ending Delivered to the seller, summary
Delivered). The retention timer asks the stand-in through the app's carrier tracking: the other
order is delivered, this one is `returned`, never delivered, and forgotten 7 days after the
return event. Amazon's model judges every exchange.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from local import spapi_shipping
from shared.app.delivery_tracking import CarrierDeliveryTracker
from shared.crypto.envelope import EnvelopeCipher
from shared.crypto.key_epochs import KeyEpochs
from shared.orders.messages import ShipOrder
from shared.orders.record import OrderRecord, Stage
from shared.retention.service import RetentionService
from shared.shipping.carriers import ShipmentRef
from shared.shipping.carriers.amazon import MarketplaceBuyShipping, SpApiShippingV2
from shared.shipping.rules import ShippingRules
from shared.shipping.service import ShippingService
from shared.storage.audit import AuditAction
from shared.storage.blob_store import LabelStore
from tests.fakes import (
    FakeConfirmer,
    FakeShredder,
    FakeSignal,
    MemoryBlobs,
    MemoryDocumentStore,
    MemorySecretStore,
    audit_trail,
)
from tests.worlds import RETENTION, order_repository
from tests.worlds.handoff import NOW, RULES, UK, US, build

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def served() -> Iterator[spapi_shipping.Served]:
    served = spapi_shipping.serve()
    if served.standin.judge.missing:
        served.stop()
        pytest.skip("Amazon's models are not beside the repository")
    yield served
    served.stop()


def test_a_parcel_sent_back_is_returned_not_delivered_and_forgotten_from_the_return(
    served: spapi_shipping.Served,
) -> None:
    clock = Clock()
    store = MemoryDocumentStore()
    orders = order_repository(store, clock, RETENTION)
    cipher = EnvelopeCipher(KeyEpochs(MemorySecretStore(), clock))
    returning, delivering = build(store, cipher, 2)
    for ref in (returning, delivering):
        orders.update(ref, lambda r: r.evolve(marketplace_id=UK, service_level="Standard"))

    def api_for(business: str) -> SpApiShippingV2:
        return SpApiShippingV2(
            refresh_token="Atzr|local",
            lwa_client_id="amzn1.application-oa2-client.local",
            lwa_client_secret="local",  # pragma: allowlist secret
            marketplace_id=UK,
            business_id=business,
            endpoint=served.base_url,
            lwa_endpoint=served.base_url,
        )

    # The seller's first marketplace is the US: the UK orders must still go through the UK business.
    amazon = MarketplaceBuyShipping(api_for, US)
    carriers = {"amazon": amazon}
    shipping = ShippingService(
        orders,
        cipher,
        ShippingRules(RULES),
        lambda seller: carriers,
        LabelStore(MemoryBlobs(), cipher),
        FakeConfirmer(),
    )
    for ref in (returning, delivering):
        shipping.ship(ShipOrder(ref), clock.now)
    shipment = _stored(orders.get(returning)).shipment or {}
    assert shipment["carrierId"] == "AMZN_UK"  # the rate's carrier, kept for getTracking

    back = NOW + timedelta(days=2)
    assert served.standin.send_back(str(shipment["trackingNumber"]), back)
    retention = RetentionService(
        store,
        amazon=FakeSignal(clock),  # Amazon's order status says nothing
        carrier=CarrierDeliveryTracker(lambda seller: carriers, clock, RETENTION.recheck),
        blobs=MemoryBlobs(),
        audit=audit_trail(store),
        shredder=FakeShredder(),
        policy=RETENTION,
        orders=orders,
    )
    clock.now = NOW + timedelta(days=6)
    report = retention.track(clock.now)

    assert report.source_errors == [] and report.failed == []
    sent_back = _stored(orders.get(returning))
    assert sent_back.stage is Stage.RETURNED and sent_back.delivered_at is None
    assert (sent_back.returned_at, sent_back.delivery_source) == (back, "carrier")
    assert sent_back.purge_after == back + timedelta(days=RETENTION.retention_days)
    arrived = _stored(orders.get(delivering))
    assert arrived.stage is Stage.DELIVERED  # the stand-in's forward Delivered event
    assert arrived.delivered_at == datetime(2026, 1, 10, 10, tzinfo=UTC)
    assert [d.ref for d in report.returned] == [returning]
    assert [d.ref for d in report.delivered] == [delivering]

    # Cancelling goes through the order's business too (the stand-in knows it nowhere else).
    ref = ShipmentRef(str(shipment["shipmentId"]), str(shipment["trackingNumber"]), UK, "AMZN_UK")
    assert amazon.cancel_label(ref) is True and ref.shipment_id in served.standin.cancelled

    clock.now = back + timedelta(days=RETENTION.retention_days) - timedelta(seconds=1)
    assert retention.purge(clock.now).purged == []
    clock.now += timedelta(seconds=1)
    assert [(p.ref, p.stage) for p in retention.purge(clock.now).purged] == [(returning, "returned")]
    assert orders.get(returning) is None
    [purged] = [e for e in audit_trail(store).trail(returning) if e.action is AuditAction.PURGED]
    assert purged.details["returnedAt"] == back.isoformat()

    judge = served.standin.judge
    judge.assert_clean()
    assert judge.exchanges["getTracking"] == 2 and judge.exchanges["cancelShipment"] == 1


def _stored(record: OrderRecord | None) -> OrderRecord:
    assert record is not None
    return record
