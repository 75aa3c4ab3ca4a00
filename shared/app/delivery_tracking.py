"""Retention's delivery source from the carriers' tracking: the composition root fits the
shipping context's carriers to retention's `DeliveryTracker` port."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from shared.orders.record import OrderRecord
from shared.shipping.carriers import Carrier


class CarrierDeliveryTracker:
    """Carrier tracking for the order's shipment.

    When the carrier reports delivery without a time, the order counts as delivered at the
    earliest moment it could have been: the previous check (at most `recheck` ago) saw it in
    transit, and it cannot predate shipping. Erring early shortens retention, never lengthens
    it past the policy's 7 days."""

    def __init__(
        self,
        carriers: Callable[[str], Mapping[str, Carrier]],
        clock: Callable[[], datetime],
        recheck: timedelta,
    ) -> None:
        self._carriers = carriers
        self._clock = clock
        self._recheck = recheck

    def delivered_at(self, record: OrderRecord) -> datetime | None:
        shipment = record.shipment or {}
        carrier = self._carriers(record.seller_id).get(str(shipment.get("carrier")))
        tracking = shipment.get("trackingNumber")
        if carrier is None or not tracking:
            return None
        info = carrier.track(str(tracking))
        if info.status != "delivered":
            return None
        if info.delivered_at is not None:
            # Carriers often report local time without an offset: read it as UTC.
            at = info.delivered_at
            return at if at.tzinfo else at.replace(tzinfo=UTC)
        earliest = self._clock() - self._recheck
        shipped = shipment.get("shippedAt")
        return max(earliest, datetime.fromisoformat(str(shipped))) if shipped else earliest
