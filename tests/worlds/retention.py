"""The retention world: `RetentionService` over a counting memory store, with fake delivery
signals (Amazon, the carrier), memory blobs and a fake epoch shredder, on a clock the test moves
(`world.now`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.orders.deadlines import RetentionPolicy
from shared.retention.service import PurgeReport, RetentionService
from shared.storage.document_store import CountingStore
from tests.builders import shipped_record
from tests.fakes import FakeShredder, FakeSignal, MemoryBlobs, MemoryDocumentStore, audit_trail, epoch_of
from tests.worlds import order_repository

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
POLICY = RetentionPolicy(
    retention_days=7,
    delivery_grace_days=3,
    recoverability_days=28,
    check_interval=timedelta(hours=12),
    purge_interval=timedelta(hours=1),
)


class World:
    """`scheduled` (on, as in the app) writes orders, the world's and the service's, under the
    app's retention schedule (`tests.worlds.order_repository`)."""

    def __init__(self, batch_size: int = 200, *, scheduled: bool = True) -> None:
        self.now = T0
        self.store = CountingStore(MemoryDocumentStore())
        self.orders = order_repository(self.store, (lambda: self.now) if scheduled else None, POLICY)
        self.amazon = FakeSignal(lambda: self.now)
        self.carrier = FakeSignal(lambda: self.now)
        self.blobs = MemoryBlobs()
        self.shredder = FakeShredder()
        self.service = RetentionService(
            self.store,
            amazon=self.amazon,
            carrier=self.carrier,
            blobs=self.blobs,
            shredder=self.shredder,
            policy=POLICY,
            batch_size=batch_size,
            orders=self.orders,
            audit=audit_trail(self.store),
        )

    def ship(self, n: int, latest_delivery_days: int | None = 5) -> str:
        ref = f"ref{n:07d}"
        latest = T0 + timedelta(days=latest_delivery_days) if latest_delivery_days is not None else None
        self.orders.create(shipped_record(n, ref, T0, latest_delivery_at=latest))
        self.blobs.put("labels", f"{ref}/label.pdf", b"label")
        self.shredder.epochs.add(epoch_of(T0))
        return ref

    def deliver_and_pass_deadline(self, ref: str) -> None:
        """Amazon reports `ref` delivered at T0, seen an hour later; then the world's clock
        moves 8 days on, past its 7-day deadline: due for the purge."""
        self.amazon.deliveries[ref] = T0
        self.now = T0 + timedelta(hours=1)
        self.service.track(self.now)
        self.now = T0 + timedelta(days=8)


def purge_summary(report: PurgeReport) -> dict[str, int | float]:
    """A purge report in numbers: counts and the worst lateness."""
    return {
        "purged": len(report.purged),
        "blobsDeleted": sum(p.blobs_deleted for p in report.purged),
        "epochsShredded": len(report.shredded_epochs),
        "maxLatenessSeconds": max((p.lateness_seconds for p in report.purged), default=0.0),
    }
