"""The audit log is append-only, PII-free by construction, and writes once-facts once."""

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from shared.crypto.pii import Pii
from shared.privacy.deletion_confirmation import DeletionConfirmation, confirmation_text, load, save
from shared.storage.audit import AuditLog, AuditValueRejected
from tests.fakes import MemoryDocumentStore

NOW = datetime(2026, 3, 2, tzinfo=UTC)


def test_pii_and_structures_are_refused() -> None:
    audit = AuditLog(MemoryDocumentStore())
    for bad in (Pii("Erika Mustermann"), {"nested": 1}, ["ok", Pii("x")], b"bytes"):
        with pytest.raises(AuditValueRejected) as caught:
            audit.record("ref0000001", "purged", NOW, "purge_expired", {"v": bad})
        assert "Erika" not in str(caught.value)


def test_once_key_writes_once_and_trail_is_ordered() -> None:
    audit = AuditLog(MemoryDocumentStore())
    first = audit.record("ref0000001", "purged", NOW, "purge_expired", {"n": 1}, once_key="order")
    again = audit.record(
        "ref0000001", "purged", NOW + timedelta(hours=1), "purge_expired", {"n": 2}, once_key="order"
    )
    audit.record("ref0000001", "restricted", NOW - timedelta(days=1), "ops_cli", {"requestId": "r"})
    assert again == first
    assert [e.action for e in audit.trail("ref0000001")] == ["restricted", "purged"]


def test_confirmation_is_kept_once_and_prints_without_pii() -> None:
    audit = AuditLog(MemoryDocumentStore())
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
