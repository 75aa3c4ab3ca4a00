"""Benchmark of the retention part of an order's life: delivery detection and purge.

Runs the real `RetentionService` over an in-memory store wrapped in `CountingStore`, with a
simulated clock and simple stand-ins for Amazon, the carrier, blobs and the key shredder.
Yields the purge cost per order (CPU milliseconds, store operations and blob listings: each
order has a label and a recorded invoice, and nothing may be left) and the store writes
per order that retention adds to a lifecycle (the lead adds ingest, shipping and invoicing).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

from local.memory_stores import MemoryBlobStore, MemoryDocumentStore
from shared.orders.deadlines import RetentionPolicy
from shared.orders.domain import OrderItem
from shared.orders.record import OrderRecord, Stage
from shared.orders.repository import OrderRepository
from shared.retention.service import JourneyEnd, RetentionService
from shared.storage.audit import AuditLog
from shared.storage.blob_store import INVOICES, LABELS, invoice_blob_name, label_blob_name
from shared.storage.document_store import CountingStore

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ORDERS = 2000
POLICY = RetentionPolicy(retention_days=7, delivery_grace_days=3, recoverability_days=28)


class _Signal:
    def __init__(self, deliveries: dict[str, datetime], clock: Callable[[], datetime]) -> None:
        self._deliveries = deliveries
        self._clock = clock

    def delivered_at(self, record: OrderRecord) -> datetime | None:
        at = self._deliveries.get(record.ref)
        return at if at is not None and at <= self._clock() else None

    def journey_end(self, record: OrderRecord) -> JourneyEnd | None:
        at = self.delivered_at(record)
        return JourneyEnd(at) if at is not None else None


class _Blobs:
    def __init__(self) -> None:
        self.names: set[tuple[str, str]] = set()
        self.lists = 0

    def delete(self, container: str, name: str) -> bool:
        found = (container, name) in self.names
        self.names.discard((container, name))
        return found

    def delete_prefix(self, container: str, prefix: str) -> list[str]:
        self.lists += 1
        doomed = {k for k in self.names if k[0] == container and k[1].startswith(prefix)}
        self.names -= doomed
        return [name for _, name in doomed]


class _Shredder:
    def shred_unused(self, now: datetime, epoch_in_use: Callable[[str], bool]) -> list[str]:
        return [] if epoch_in_use("e0") else ["e0"]


def _number(n: int) -> str:
    return f"INV2026-{n:06d}"


def _record(n: int) -> OrderRecord:
    return OrderRecord(
        ref=f"bench{n:07d}",
        seller_id="A1SELLER",
        marketplace_id="A1PA6795UKMFR9",
        stage=Stage.SHIPPED,
        amazon_status="SHIPPED",
        amazon_updated_at=T0,
        created_at=T0,
        ship_country="DE",
        service_level="Standard",
        is_business=False,
        latest_ship_at=T0,
        latest_delivery_at=T0 + timedelta(days=4),
        items=(OrderItem("1", "B000TEST01", "SKU-1", "Widget", 1, None),),
        pii={"epoch": "e0", "ciphertext": "x" * 600},
        shipment={"carrier": "dhl", "trackingNumber": f"TRK{n:08d}", "shippedAt": T0.isoformat()},
        invoice={"invoice": {"numberText": _number(n)}},
        due_at=T0 + timedelta(days=1),
    )


class _Scenario:
    def __init__(self, deliveries: dict[str, datetime]) -> None:
        self.now = T0
        self.store = CountingStore(MemoryDocumentStore())
        self.blobs = _Blobs()
        for n in range(ORDERS):
            record = OrderRepository(self.store).create(_record(n))
            self.blobs.names |= {
                (LABELS, label_blob_name(record.ref)),
                (INVOICES, invoice_blob_name(record.ref, _number(n))),
            }
        self.store.counts.clear()
        self.service = RetentionService(
            self.store,
            amazon=_Signal(deliveries, lambda: self.now),
            carrier=_Signal({}, lambda: self.now),
            blobs=self.blobs,
            audit=AuditLog(self.store, MemoryBlobStore()),
            shredder=_Shredder(),
            policy=POLICY,
            batch_size=500,
        )

    def writes(self) -> int:
        return sum(v for k, v in self.store.counts.items() if k.endswith(".write"))

    def ops(self) -> int:
        return sum(self.store.counts.values())


def _refs() -> list[str]:
    return [f"bench{n:07d}" for n in range(ORDERS)]


def run() -> Iterator[dict[str, object]]:
    # Typical path: Amazon reports delivery before the first check.
    fast = _Scenario(dict.fromkeys(_refs(), T0 + timedelta(hours=20)))
    fast.now = T0 + timedelta(days=1)
    cpu = time.process_time()
    fast.service.track_deliveries(fast.now)
    track_cpu = time.process_time() - cpu
    track_writes, track_ops = fast.writes(), fast.ops()
    fast.store.counts.clear()
    fast.now = T0 + timedelta(days=8)
    cpu = time.process_time()
    purged = fast.service.purge_expired(fast.now)
    purge_cpu = time.process_time() - cpu
    assert purged == ORDERS, "the bench must purge every order it measures"  # noqa: S101
    assert not fast.blobs.names, "the purge must leave no blob behind"  # noqa: S101
    yield {"metric": "retention_track_cpu_ms_per_order", "value": 1000 * track_cpu / ORDERS, "unit": "ms"}
    yield {"metric": "retention_track_store_ops_per_order", "value": track_ops / ORDERS, "unit": "ops"}
    yield {"metric": "purge_cpu_ms_per_order", "value": 1000 * purge_cpu / ORDERS, "unit": "ms"}
    yield {"metric": "purge_store_ops_per_order", "value": fast.ops() / ORDERS, "unit": "ops"}
    yield {"metric": "purge_blob_lists_per_order", "value": fast.blobs.lists / ORDERS, "unit": "List Blobs"}
    yield {
        "metric": "store_writes_per_order",
        "value": (track_writes + fast.writes()) / ORDERS,
        "unit": "writes",
        "part": "retention",
        "note": "delivery known at the first check: 1 order write + 1 audit write + 1 delete",
    }
    # Slow path: nobody confirms; every daily check re-schedules the order until the bound.
    slow = _Scenario({})
    day = 1
    while slow.service.track_deliveries(T0 + timedelta(days=day)) < ORDERS and day < 30:
        day += 1
    slow.service.purge_expired(T0 + timedelta(days=day + 8))
    yield {
        "metric": "store_writes_per_order",
        "value": slow.writes() / ORDERS,
        "unit": "writes",
        "part": "retention_never_confirmed",
        "note": f"first check 1 day after shipping, re-check every {POLICY.recheck.days} days, "
        "delivered at the bound (latest delivery + grace)",
    }


if __name__ == "__main__":
    import json
    import sys

    for row in run():
        sys.stdout.write(json.dumps(row) + "\n")
