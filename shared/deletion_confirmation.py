"""Written deletion confirmations: PII-free, kept in the audit store, printable by an ops verb.

The policy promises Amazon a written confirmation of every deletion. The confirmation names the
request, the pseudonymous reference, what was deleted (kinds and counts, never contents), the
method, when, and until when a copy could at worst still be recovered (backups and soft-deleted
keys), computed from configuration. It is stored in the order's audit partition under an id
derived from the request id, so a redelivered request finds it instead of writing another.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.audit import AuditLog

METHOD = (
    "NIST SP 800-88 purge: logical deletion of the order document and of every file under its "
    "reference, with cryptographic erase of the buyer data (its key-encryption-key epoch is "
    "destroyed once no live order uses it)"
)
NOTHING_HELD_METHOD = "none required: no data was held for this reference"


def confirmation_id(request_id: str) -> str:
    return f"deletion-confirmation:{request_id}"


@dataclass(frozen=True, slots=True)
class DeletionConfirmation:
    request_id: str
    request_type: str
    ref: str
    held: bool
    deleted: tuple[str, ...]
    method: str
    requested_at: datetime
    completed_at: datetime
    recoverable_until: datetime
    recoverability_days: int

    def to_doc(self) -> dict[str, Any]:
        return {
            "kind": "deletion_confirmation",
            "requestId": self.request_id,
            "requestType": self.request_type,
            "held": self.held,
            "deleted": list(self.deleted),
            "method": self.method,
            "requestedAt": self.requested_at.isoformat(),
            "completedAt": self.completed_at.isoformat(),
            "recoverableUntil": self.recoverable_until.isoformat(),
            "recoverabilityDays": self.recoverability_days,
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> DeletionConfirmation:
        return cls(
            request_id=doc["requestId"],
            request_type=doc["requestType"],
            ref=doc["ref"],
            held=bool(doc["held"]),
            deleted=tuple(doc["deleted"]),
            method=doc["method"],
            requested_at=datetime.fromisoformat(doc["requestedAt"]),
            completed_at=datetime.fromisoformat(doc["completedAt"]),
            recoverable_until=datetime.fromisoformat(doc["recoverableUntil"]),
            recoverability_days=int(doc["recoverabilityDays"]),
        )


def save(audit: AuditLog, confirmation: DeletionConfirmation) -> DeletionConfirmation:
    """Store once; a repeat returns the confirmation written first."""
    stored = audit.put_document(
        confirmation.ref, confirmation_id(confirmation.request_id), confirmation.to_doc()
    )
    return DeletionConfirmation.from_doc(stored)


def load(audit: AuditLog, ref: str, request_id: str) -> DeletionConfirmation | None:
    doc = audit.get_document(ref, confirmation_id(request_id))
    return DeletionConfirmation.from_doc(doc) if doc else None


def render(confirmation: DeletionConfirmation) -> str:
    """The printable confirmation (ops verb `deletion-confirmation`)."""
    deleted = (
        "\n".join(f"  - {item}" for item in confirmation.deleted) if confirmation.deleted else "  (nothing)"
    )
    outcome = (
        "All data held for this reference has been deleted."
        if confirmation.held
        else "No data was held for this reference; nothing needed deleting."
    )
    return (
        "DELETION CONFIRMATION\n"
        f"Request id:        {confirmation.request_id}\n"
        f"Request type:      {confirmation.request_type}\n"
        f"Order reference:   {confirmation.ref} (pseudonymous)\n"
        f"Requested at:      {confirmation.requested_at.isoformat()}\n"
        f"Completed at:      {confirmation.completed_at.isoformat()}\n"
        f"Outcome:           {outcome}\n"
        f"Deleted:\n{deleted}\n"
        f"Method:            {confirmation.method}\n"
        f"Recoverability:    no copy is recoverable after {confirmation.recoverable_until.isoformat()} "
        f"(at most {confirmation.recoverability_days} days: retention + key epoch + database backup "
        "+ key soft-delete; Amazon's limit is 30 days)\n"
    )


def confirmation_text(audit: AuditLog, ref: str, request_id: str) -> str | None:
    """For the ops verb: the printable confirmation of one request, or None if there is none."""
    found = load(audit, ref, request_id)
    return render(found) if found else None
