"""A key epoch is shredded only when no stored order needs it: for its buyer data, its label
or its invoice, each of which may be sealed in a different epoch (ingested on Sunday, shipped
and invoiced on Monday)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.crypto.envelope import EnvelopeCipher
from shared.crypto.key_epochs import EpochShredder, KeyEpochs
from shared.crypto.secrets import OrderBytesSealer
from shared.orders.deadlines import RetentionPolicy
from shared.orders.record import OrderRecord, Stage
from shared.orders.repository import OrderRepository
from shared.retention.service import RetentionService
from shared.storage.blob_store import LabelStore
from tests.builders import order_record, portuguese_pii
from tests.fakes import FakeSignal, MemoryBlobStore, MemoryDocumentStore, MemorySecretStore, audit_trail

SUNDAY = datetime(2026, 3, 8, 22, 0, tzinfo=UTC)  # in the epoch that starts 2026-03-02
MONDAY = SUNDAY + timedelta(hours=11)  # in the next one
A_WEEK_LATER = datetime(2026, 3, 16, 2, 0, tzinfo=UTC)  # Monday's epoch has ended
POLICY = RetentionPolicy(retention_days=7, delivery_grace_days=3, recoverability_days=28)
REF = "ref-0000000001"


def _sealed_on_monday(kind: str, cipher: EnvelopeCipher, blobs: MemoryBlobStore) -> dict[str, object]:
    """What the order records of a document sealed on Monday."""
    if kind == "label":
        stored = LabelStore(blobs, cipher).put(REF, b"%PDF label", {"intentId": "i-1"}, MONDAY)
        return {"shipment": stored}
    sealer = OrderBytesSealer(cipher)
    epoch = sealer.epoch_of(sealer.seal_bytes(REF, b"%PDF invoice", MONDAY))
    return {"invoice": {"invoice": {"numberText": "INV2026-000001", "epoch": epoch}}}


@pytest.mark.parametrize("kind", ["label", "invoice"])
def test_an_epoch_sealing_only_a_live_orders_label_or_invoice_is_kept(kind: str) -> None:
    now = {"t": SUNDAY}
    epochs = KeyEpochs(MemorySecretStore(), lambda: now["t"])
    cipher = EnvelopeCipher(epochs)
    store = MemoryDocumentStore()
    orders = OrderRepository(store)
    blobs = MemoryBlobStore()
    orders.create(
        order_record(at=SUNDAY, ref=REF, stage=Stage.READY, pii=cipher.seal(REF, portuguese_pii("1"), SUNDAY))
    )
    now["t"] = MONDAY
    recorded = _sealed_on_monday(kind, cipher, blobs)

    def shipped(record: OrderRecord) -> OrderRecord:
        return record.evolve(stage=Stage.SHIPPED, due_at=MONDAY + timedelta(days=3), **recorded)

    orders.update(REF, shipped)
    service = RetentionService(
        store,
        amazon=FakeSignal(lambda: now["t"]),
        carrier=FakeSignal(lambda: now["t"]),
        blobs=blobs,
        shredder=EpochShredder(epochs),
        policy=POLICY,
        audit=audit_trail(store),
    )
    now["t"] = A_WEEK_LATER

    report = service.purge(now["t"])

    monday_epoch = epochs.epoch_at(MONDAY).id
    assert monday_epoch not in report.shredded_epochs
    if kind == "label":
        assert LabelStore(blobs, cipher).get(REF) == b"%PDF label"  # still opens
