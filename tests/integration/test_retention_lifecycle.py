"""200 orders over every delivery path, on the Cosmos emulator and Azurite, with a simulated clock.

Paths: Amazon reports DELIVERED, the carrier reports delivery, nobody ever confirms (the bound,
with and without a latest delivery date), and cancelled (ingestion drops the PII at once). The
clock advances one purge interval at a time; after each step the test reads the containers
itself and checks that no order outlives its deadline plus one purge interval, that none goes
before its deadline, that its blobs go with it, and at the end that every order has its audit
record, every key epoch was shredded only once unused, and the audit holds no personal data.
The purge deletes every blob by the name its order knows: Azurite receives no List Blobs from it.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient

from local.emulators import Emulators
from shared.orders.deadlines import RetentionPolicy
from shared.orders.lifecycle import cancelled_now
from shared.orders.record import BLOBS
from shared.orders.repository import OrderRepository
from shared.retention.service import RetentionService
from shared.storage.audit import AuditAction, AuditEvent
from shared.storage.blob_store import (
    ORDER_BLOB_CONTAINERS,
    AzureBlobStore,
    invoice_blob_name,
    label_blob_name,
)
from shared.storage.document_store import AUDIT, ORDERS, CosmosDocumentStore
from tests.builders import shipped_record
from tests.fakes import FakeCipher, FakeShredder, FakeSignal, audit_trail, epoch_of

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
POLICY = RetentionPolicy(
    retention_days=7,
    delivery_grace_days=3,
    recoverability_days=28,
    default_transit_days=7,
    check_interval=timedelta(days=3),
    purge_interval=timedelta(hours=12),
)
ORDERS_N = 200
PATHS = ("amazon", "carrier", "bound", "cancelled")


@dataclass
class Planned:
    n: int
    ref: str
    path: str
    shipped_at: datetime
    event_at: datetime  # delivery (amazon, carrier), bound, or cancellation
    latest_delivery_at: datetime | None

    @property
    def deadline(self) -> datetime:
        return self.event_at + timedelta(days=POLICY.retention_days)


def plan(run: str) -> list[Planned]:
    out = []
    for n in range(ORDERS_N):
        path = PATHS[n % 4]
        shipped = T0 + timedelta(hours=(7 * n) % 96)
        latest = shipped + timedelta(days=3) if n % 8 != 2 else None
        if path in ("amazon", "carrier"):
            event = shipped + timedelta(days=1 + n % 4, minutes=n)
        elif path == "bound":
            base = latest if latest is not None else shipped + timedelta(days=POLICY.default_transit_days)
            event = base + timedelta(days=POLICY.delivery_grace_days)
        else:
            event = shipped + timedelta(hours=5)
        out.append(Planned(n, f"{run}{n:05d}", path, shipped, event, latest))
    return out


@pytest.fixture(scope="module")
def cosmos(fresh_cosmos_store: Callable[[str], CosmosDocumentStore]) -> CosmosDocumentStore:
    return fresh_cosmos_store("retention")


@pytest.fixture(scope="module")
def blob_service(emulators: Emulators) -> Iterator[BlobServiceClient]:
    service = BlobServiceClient.from_connection_string(emulators.storage_connection)
    for name in ORDER_BLOB_CONTAINERS:  # another module may have made them (test order)
        with contextlib.suppress(ResourceExistsError):
            service.create_container(name)
    yield service
    for name in ORDER_BLOB_CONTAINERS:
        service.delete_container(name)


def _blob_refs(service: BlobServiceClient) -> set[str]:
    return {
        b.name.split("/", 1)[0]
        for c in ORDER_BLOB_CONTAINERS
        for b in service.get_container_client(c).list_blobs()
    }


def test_every_order_is_gone_by_its_deadline_plus_one_purge_interval(
    cosmos: CosmosDocumentStore, blob_service: BlobServiceClient, emulators: Emulators
) -> None:
    now = T0
    run = uuid.uuid4().hex[:6]
    orders = plan(run)
    repo = OrderRepository(cosmos)
    cipher = FakeCipher(readable=True)
    amazon, carrier = FakeSignal(lambda: now), FakeSignal(lambda: now)
    shredder = FakeShredder()
    blobs = AzureBlobStore(blob_service)
    # The purge's own client counts the requests Azurite receives from it: List Blobs is billed.
    requests: list[tuple[str, str]] = []
    purge_client = BlobServiceClient.from_connection_string(
        emulators.storage_connection,
        raw_request_hook=lambda r: requests.append((r.http_request.method, r.http_request.url)),
    )
    service = RetentionService(
        cosmos,
        amazon=amazon,
        carrier=carrier,
        blobs=AzureBlobStore(purge_client),
        shredder=shredder,
        policy=POLICY,
        batch_size=50,
        audit=audit_trail(cosmos),
    )
    for o in orders:
        record = shipped_record(
            o.n, o.ref, o.shipped_at, latest_delivery_at=o.latest_delivery_at, cipher=cipher
        )
        blobs.put("labels", label_blob_name(o.ref), f"label for SYNTHPIINAME{o.n:05d}".encode())
        if o.path == "amazon":
            # Half the invoices recorded on the order, half stored and never recorded (their
            # message poisoned after the blob): the order noted those before writing them.
            number = f"INV2026-{o.n:06d}"
            name = invoice_blob_name(o.ref, number)
            if o.n % 8 == 0:
                record = record.evolve(invoice={"invoice": {"numberText": number}})
            else:
                record = record.evolve(extra={**record.extra, BLOBS: [f"invoices/{name}"]})
            blobs.put("invoices", name, f"invoice for SYNTHPIINAME{o.n:05d}".encode())
            amazon.deliveries[o.ref] = o.event_at
        elif o.path == "carrier":
            carrier.deliveries[o.ref] = o.event_at
        repo.create(record)
        shredder.epochs.add(epoch_of(o.shipped_at))

    cancel_pending = {o.ref: o for o in orders if o.path == "cancelled"}
    gone_at: dict[str, datetime] = {}
    lateness: dict[str, float] = {}
    epoch_last_purge: dict[str, datetime] = {}
    end = max(o.deadline for o in orders) + 2 * POLICY.purge_interval
    while now <= end:
        for ref, o in list(cancel_pending.items()):
            if o.event_at <= now:  # ingestion sees the cancellation
                repo.update(ref, lambda r, at=o.event_at: cancelled_now(r, at, POLICY))
                del cancel_pending[ref]
        service.track_deliveries(now)
        for purged in service.purge(now).purged:
            lateness[purged.ref] = purged.lateness_seconds
        present = {d["id"]: d for d in cosmos.scan(ORDERS) if d["id"].startswith(run)}
        with_blobs = _blob_refs(blob_service)
        for o in orders:
            if o.ref in present:
                assert now <= o.deadline + POLICY.purge_interval, (o.path, o.n)
                if o.path == "cancelled" and o.ref not in cancel_pending:
                    assert present[o.ref]["pii"] is None
            else:
                assert now >= o.deadline, (o.path, o.n)  # never purged early
                assert o.ref not in with_blobs, (o.path, o.n)
                if o.ref not in gone_at:
                    gone_at[o.ref] = now
                    epoch = epoch_of(o.shipped_at)
                    epoch_last_purge[epoch] = max(epoch_last_purge.get(epoch, now), now)
        now += POLICY.purge_interval

    assert set(gone_at) == {o.ref for o in orders}
    # Every blob went by its name: one Delete Blob each (label, invoice), and not one listing.
    assert [url for method, url in requests if method == "GET" and "comp=list" in url] == []
    assert sum(method == "DELETE" for method, _ in requests) == ORDERS_N + ORDERS_N // 4
    assert all(0 <= s <= POLICY.purge_interval.total_seconds() for s in lateness.values())
    # Key epochs: each destroyed, and never while an order sealed under it was still stored.
    assert set(shredder.shredded) == {epoch_of(o.shipped_at) for o in orders}
    for epoch, shredded_at in shredder.shredded.items():
        assert shredded_at >= epoch_last_purge[epoch], epoch

    audit_docs = [d for d in cosmos.scan(AUDIT) if d["ref"].startswith(run)]
    trails: dict[str, list[AuditEvent]] = {}
    for doc in audit_docs:
        trails.setdefault(doc["ref"], []).append(AuditEvent.from_doc(doc))
    assert set(trails) == {o.ref for o in orders}
    assert audit_trail(cosmos).trail(orders[0].ref) == trails[orders[0].ref]  # the partition query agrees
    for o in orders:
        (event,) = trails[o.ref]
        assert event.action == AuditAction.PURGED and event.function == "purge_expired"
        expected_source = None if o.path == "cancelled" else o.path
        assert event.details["deliverySource"] == expected_source, (o.path, o.n)
        assert event.details["purgeAfter"] == o.deadline.isoformat()
        assert event.details["blobsDeleted"] == (2 if o.path == "amazon" else 1)
        assert event.details["invoices"] == ([f"INV2026-{o.n:06d}"] if o.path == "amazon" else [])
    audit_text = json.dumps(list(cosmos.scan(AUDIT)))
    assert "SYNTHPII" not in audit_text
    assert not [o.n for o in orders if f"306-{o.n:07d}" in audit_text]  # no Amazon order id
