"""Retention's delivery source from the carriers' tracking: the composition root fits the
shipping context's carriers to retention's `DeliveryTracker` port."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from shared.orders.record import OrderRecord
from shared.retention.service import JourneyEnd
from shared.shipping.carriers import Carrier, ShipmentRef
from shared.shipping.carriers.base import RETURNED

DELIVERED = "delivered"


class CarrierDeliveryTracker:
    """Carrier tracking for the order's shipment, asked through the carrier (and, for Buy
    Shipping, the marketplace and carrierId) that bought its label.

    No journey ends before the label was bought. When the carrier reports delivery or return
    without a time, it counts as happening at the earliest moment it could have been: the
    previous check (at most `recheck` ago) saw it in transit, and it cannot predate shipping.
    Erring early shortens retention, never lengthens it past the policy's 7 days."""

    def __init__(
        self,
        carriers: Callable[[str], Mapping[str, Carrier]],
        clock: Callable[[], datetime],
        recheck: timedelta,
    ) -> None:
        self._carriers = carriers
        self._clock = clock
        self._recheck = recheck

    def journey_end(self, record: OrderRecord) -> JourneyEnd | None:
        shipment = record.shipment or {}
        carrier = self._carriers(record.seller_id).get(str(shipment.get("carrier")))
        tracking = shipment.get("trackingNumber")
        if carrier is None or not tracking:
            return None
        info = carrier.track(
            ShipmentRef(
                shipment_id=str(shipment.get("shipmentId") or ""),
                tracking_number=str(tracking),
                marketplace_id=record.marketplace_id,
                carrier_id=str(shipment["carrierId"]) if shipment.get("carrierId") else None,
            )
        )
        if info.status not in (DELIVERED, RETURNED):
            return None
        return JourneyEnd(self._when(info.event_at, shipment), returned=info.status == RETURNED)

    def _when(self, at: datetime | None, shipment: Mapping[str, object]) -> datetime:
        raw = shipment.get("shippedAt")
        shipped = datetime.fromisoformat(str(raw)) if raw else None
        if at is not None:
            # Carriers often report local time without an offset: read it as UTC. An event
            # dated before the label was bought (a carrier's clock, a time zone misread) is
            # taken at shipping.
            at = at if at.tzinfo else at.replace(tzinfo=UTC)
            return max(at, shipped) if shipped else at
        earliest = self._clock() - self._recheck
        return max(earliest, shipped) if shipped else earliest
