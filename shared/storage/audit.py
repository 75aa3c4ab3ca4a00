"""The append-only audit trail: what happened, when, to which pseudonymous reference, by whom.

Audit records outlive the orders they describe (logs are kept at least 12 months), so they hold
no personal data: the partition key is the order's pseudonymous reference, and `details` accepts
only scalars and lists of text, never a `Pii` value. Nothing here updates or deletes a record.
Records written once per fact (a purge, a privacy request) carry a deterministic id, so a
retried invocation finds its record already there instead of writing a second one.

Each record and document is first written, create-only, as one JSON blob `<ref>/<id>.json` in
the blob container `audit`, whose time-based immutability policy (infra) keeps it unchanged and
undeleted until it expires; only then is it indexed in Cosmos (container `audit`), which the
reads here use. Nothing here overwrites, tags or deletes an audit blob, and purge and erasure
never sweep that container.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.crypto.pii import Pii
from shared.errors import AppError, TransientError
from shared.storage.blob_store import AUDIT_BLOBS, BlobStore
from shared.storage.document_store import AUDIT, DocumentStore, WriteConflict

Scalar = str | int | float | bool | None


class AuditAction(StrEnum):
    PURGED = "purged"
    EPOCH_SHREDDED = "epoch_shredded"
    ACCESS_EXPORTED = "access_exported"
    CORRECTED = "corrected"
    RESTRICTED = "restricted"
    ERASED = "erased"
    # An invoice that reached Amazon (or may have) for an order erased before it was recorded.
    INVOICE_UNRECORDED = "invoice_unrecorded"


class AuditValueRejected(AppError):
    """A caller tried to put something other than plain scalars into an audit record."""

    code = "audit_value_rejected"


class AuditTrailUnavailable(TransientError):
    """The immutable copy of an audit record could not be written (or, already there, read
    back): the step that needed the record fails and is retried."""

    code = "audit_trail_unavailable"


def audit_blob_name(ref: str, doc_id: str) -> str:
    """In container `audit`: a retry of a once-per-fact record lands on the same name."""
    return f"{ref}/{doc_id}.json"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    ref: str
    action: str
    at: datetime
    function: str
    details: Mapping[str, Any] = field(default_factory=dict)
    id: str = ""

    def to_doc(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ref": self.ref,
            "kind": "audit",
            "action": self.action,
            "at": self.at.isoformat(),
            "function": self.function,
            "details": dict(self.details),
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> AuditEvent:
        return cls(
            ref=doc["ref"],
            action=doc["action"],
            at=datetime.fromisoformat(doc["at"]),
            function=doc["function"],
            details=doc.get("details") or {},
            id=doc["id"],
        )


def _checked(details: Mapping[str, object]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in details.items():
        if isinstance(value, (list, tuple)):
            if not all(isinstance(v, str) and not isinstance(v, Pii) for v in value):
                raise AuditValueRejected(f"details[{key}] must be a list of text")
            out[key] = list(value)
        elif isinstance(value, Pii) or not isinstance(value, Scalar):
            raise AuditValueRejected(f"details[{key}] must be a plain scalar")
        else:
            out[key] = value
    return out


class AuditLog:
    """`blobs` holds the immutable records (container `audit`), `store` their Cosmos index."""

    def __init__(self, store: DocumentStore, blobs: BlobStore) -> None:
        self._store = store
        self._blobs = blobs

    def _keep(self, ref: str, doc: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Write `doc` as its immutable blob in one create-only put, then index it in Cosmos;
        return what is stored and whether this call's put created the blob. A blob already
        there (a retry, or a concurrent writer) is read back and indexed as it is: the first
        write wins in both stores."""
        name = audit_blob_name(ref, doc["id"])
        body = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
        try:
            created = self._blobs.create(AUDIT_BLOBS, name, body, {})
            if not created:
                existing = self._blobs.get(AUDIT_BLOBS, name)
                if existing is None:
                    raise AuditTrailUnavailable("audit blob exists but cannot be read")
                doc = json.loads(existing)
        except AuditTrailUnavailable:
            raise
        except AppError as exc:
            raise AuditTrailUnavailable(exc.code) from None
        try:
            return self._store.create(AUDIT, doc), created
        except WriteConflict:
            indexed = self._store.read(AUDIT, ref, doc["id"])
            if indexed is None:
                raise
            return indexed, created

    def record(
        self,
        ref: str,
        action: str,
        at: datetime,
        function: str,
        details: Mapping[str, object] | None = None,
        *,
        once_key: str | None = None,
    ) -> AuditEvent:
        """Append one record. With `once_key`, the record is written at most once per
        (ref, action, once_key): a repeat returns the record already stored."""
        doc_id = f"{action}:{once_key}" if once_key is not None else f"{action}:{uuid.uuid4().hex}"
        event = AuditEvent(ref, action, at, function, _checked(details or {}), doc_id)
        return AuditEvent.from_doc(self._keep(ref, event.to_doc())[0])

    def claim(
        self,
        ref: str,
        action: str,
        at: datetime,
        function: str,
        details: Mapping[str, object],
        *,
        once_key: str,
    ) -> bool:
        """Write the record once per (ref, action, once_key), as `record` does, and say whether
        this caller won: True only for the call whose create-only put made the immutable blob;
        False when it was already there (another delivery's claim, or an earlier attempt whose
        index write failed), so of two racing callers exactly one gets True."""
        event = AuditEvent(ref, action, at, function, _checked(details), f"{action}:{once_key}")
        return self._keep(ref, event.to_doc())[1]

    def put_document(self, ref: str, doc_id: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """Store a PII-free document (a deletion confirmation) once, its immutable blob before
        its index; return what is stored (the first write, on a repeat)."""
        return self._keep(ref, {**body, "id": doc_id, "ref": ref})[0]

    def get_document(self, ref: str, doc_id: str) -> Mapping[str, Any] | None:
        return self._store.read(AUDIT, ref, doc_id)

    def trail(self, ref: str) -> list[AuditEvent]:
        """Every audit event of one reference, oldest first (a single-partition query)."""
        docs = [d for d in self._store.in_partition(AUDIT, ref) if d.get("kind") == "audit"]
        return sorted((AuditEvent.from_doc(d) for d in docs), key=lambda e: e.at)
