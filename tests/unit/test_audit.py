"""The audit log is append-only, PII-free by construction, and writes once-facts once."""

import dataclasses
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from shared.crypto.pii import Pii
from shared.errors import TransientError
from shared.orders.deadlines import RetentionPolicy
from shared.orders.repository import OrderRepository
from shared.privacy.deletion_confirmation import DeletionConfirmation, confirmation_text, load, save
from shared.privacy.service import PrivacyService
from shared.storage.audit import AuditLog, AuditTrailUnavailable, AuditValueRejected, audit_blob_name
from shared.storage.blob_store import AUDIT_BLOBS, LABELS, ORDER_BLOB_CONTAINERS, BlobUnavailable
from shared.storage.document_store import AUDIT
from tests.builders import shipped_record
from tests.fakes import FakeCipher, MemoryBlobStore, MemoryDocumentStore

NOW = datetime(2026, 3, 2, tzinfo=UTC)


def test_pii_and_structures_are_refused() -> None:
    audit = AuditLog(MemoryDocumentStore(), MemoryBlobStore())
    for bad in (Pii("Erika Mustermann"), {"nested": 1}, ["ok", Pii("x")], b"bytes"):
        with pytest.raises(AuditValueRejected) as caught:
            audit.record("ref0000001", "purged", NOW, "purge_expired", {"v": bad})
        assert "Erika" not in str(caught.value)


def test_once_key_writes_once_and_trail_is_ordered() -> None:
    audit = AuditLog(MemoryDocumentStore(), MemoryBlobStore())
    first = audit.record("ref0000001", "purged", NOW, "purge_expired", {"n": 1}, once_key="order")
    again = audit.record(
        "ref0000001", "purged", NOW + timedelta(hours=1), "purge_expired", {"n": 2}, once_key="order"
    )
    audit.record("ref0000001", "restricted", NOW - timedelta(days=1), "ops_cli", {"requestId": "r"})
    assert again == first
    assert [e.action for e in audit.trail("ref0000001")] == ["restricted", "purged"]


def test_confirmation_is_kept_once_and_prints_without_pii() -> None:
    audit = AuditLog(MemoryDocumentStore(), MemoryBlobStore())
    conf = DeletionConfirmation(
        request_id="req-00000001",
        request_type="amazon_delete",
        ref="ref0000001",
        held=True,
        deleted=("order document", "1 file(s) in blob container 'labels'"),
        method="m",
        requested_at=NOW,
        completed_at=NOW,
        recoverable_until=NOW + timedelta(days=28),
        recoverability_days=28,
    )
    assert save(audit, conf) == conf
    assert save(audit, dataclasses.replace(conf, held=False)) == conf  # a redelivery keeps the first
    assert load(audit, "ref0000001", "req-00000001") == conf
    text = confirmation_text(audit, "ref0000001", "req-00000001")
    assert text is not None and "req-00000001" in text and "ref0000001" in text and "28 days" in text
    assert audit.trail("ref0000001") == []  # a confirmation is a document, not an event
    assert confirmation_text(audit, "ref0000001", "other-request") is None


class _BlobsDown(MemoryBlobStore):
    def create(self, container: str, name: str, data: bytes, metadata: Mapping[str, str]) -> bool:
        raise BlobUnavailable("blob status 503")


def test_each_record_is_an_immutable_blob_written_before_its_index() -> None:
    store, blobs = MemoryDocumentStore(), MemoryBlobStore()
    audit = AuditLog(store, blobs)
    event = audit.record("ref0000001", "purged", NOW, "purge_expired", {"n": 1}, once_key="order")
    assert audit_blob_name("ref0000001", "purged:order") == "ref0000001/purged:order.json"
    assert json.loads(blobs.blobs[(AUDIT_BLOBS, "ref0000001/purged:order.json")]) == event.to_doc()
    assert AUDIT_BLOBS not in ORDER_BLOB_CONTAINERS  # purge and erasure never sweep it

    audit.record("ref0000001", "purged", NOW, "purge_expired", {"n": 2}, once_key="order")
    assert [n for c, n in blobs.blobs if c == AUDIT_BLOBS] == ["ref0000001/purged:order.json"]
    assert blobs.writes == 1  # a retry lands on the same name and writes nothing


def test_a_failed_blob_write_fails_the_step_and_indexes_nothing() -> None:
    store = MemoryDocumentStore()
    audit = AuditLog(store, _BlobsDown())
    with pytest.raises(AuditTrailUnavailable) as caught:
        audit.record("ref0000001", "erased", NOW, "ops_cli", once_key="req-00000001")
    assert isinstance(caught.value, TransientError)
    with pytest.raises(AuditTrailUnavailable):
        audit.put_document("ref0000001", "deletion-confirmation:req-00000001", {"held": True})
    assert store.in_partition(AUDIT, "ref0000001") == []


def test_a_retry_after_a_crash_before_the_index_keeps_the_first_blob() -> None:
    blobs = MemoryBlobStore()
    first = AuditLog(MemoryDocumentStore(), blobs).record(
        "ref0000001", "erased", NOW, "ops_cli", {"n": 1}, once_key="req-00000001"
    )
    store = MemoryDocumentStore()  # the index was never written
    again = AuditLog(store, blobs).record(
        "ref0000001", "erased", NOW + timedelta(hours=1), "ops_cli", {"n": 2}, once_key="req-00000001"
    )
    assert again == first and AuditLog(store, blobs).trail("ref0000001") == [first]


def test_a_deletion_confirmation_is_kept_as_a_blob_and_erasure_leaves_the_trail() -> None:
    store, blobs = MemoryDocumentStore(), MemoryBlobStore()
    audit = AuditLog(store, blobs)
    policy = RetentionPolicy(retention_days=7, delivery_grace_days=3, recoverability_days=28)
    OrderRepository(store).create(shipped_record(1, "ref0000001", NOW, latest_delivery_at=None))
    blobs.put(LABELS, "ref0000001/label.pdf", b"label")
    privacy = PrivacyService(store, cipher=FakeCipher(), blobs=blobs, audit=audit, policy=policy)

    confirmation = privacy.delete("ref0000001", "req-00000001", NOW, request_type="amazon_delete")

    kept = {n: json.loads(b) for (c, n), b in blobs.blobs.items() if c == AUDIT_BLOBS}
    assert set(kept) == {
        "ref0000001/deletion-confirmation:req-00000001.json",
        "ref0000001/erased:req-00000001.json",
    }
    assert (
        DeletionConfirmation.from_doc(kept["ref0000001/deletion-confirmation:req-00000001.json"])
        == confirmation
    )
    assert blobs.get(LABELS, "ref0000001/label.pdf") is None


def test_a_claim_is_won_by_the_one_caller_whose_write_created_the_record() -> None:
    store, blobs = MemoryDocumentStore(), MemoryBlobStore()
    first, second = AuditLog(store, blobs), AuditLog(store, blobs)  # two instances, one trail
    assert first.claim("lwa-client-secret", "started", NOW, "f", {"n": 1}, once_key="w.1") is True
    assert second.claim("lwa-client-secret", "started", NOW, "f", {"n": 2}, once_key="w.1") is False
    assert first.claim("lwa-client-secret", "started", NOW, "f", {"n": 3}, once_key="w.1") is False
    [kept] = first.trail("lwa-client-secret")
    assert kept.details == {"n": 1}
    assert second.claim("lwa-client-secret", "started", NOW, "f", {}, once_key="w.2") is True


def test_a_claim_retried_after_a_crash_before_its_index_is_lost_and_indexed() -> None:
    """The blob cannot say who wrote it: the step the claim guarded is then not run again."""
    blobs = MemoryBlobStore()
    assert AuditLog(MemoryDocumentStore(), blobs).claim("r", "started", NOW, "f", {}, once_key="w.1")
    store = MemoryDocumentStore()  # the index was never written
    assert AuditLog(store, blobs).claim("r", "started", NOW, "f", {}, once_key="w.1") is False
    assert [e.id for e in AuditLog(store, blobs).trail("r")] == ["started:w.1"]
