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

from shared.storage.audit import AuditAction, AuditEvent, AuditLog

METHOD = (
    "NIST SP 800-88 purge: logical deletion of the order document and of every file under its "
    "reference, with cryptographic erase of the buyer data (its key-encryption-key epoch is "
    "destroyed once no live order uses it)"
)
NOTHING_HELD_METHOD = "none required: nothing is stored under this reference"


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
    # What the law makes the seller keep beyond the deletion (the invoice archive), by kind,
    # number and date: a confirmation never claims more was deleted than was.
    kept: tuple[str, ...] = ()
    # When nothing was stored under the reference: what the audit log knows of it (a purge by
    # retention, an earlier erasure), one line per record, so the answer says only what is true.
    history: tuple[str, ...] = ()

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
            "kept": list(self.kept),
            "history": list(self.history),
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
            kept=tuple(doc.get("kept") or ()),
            history=tuple(doc.get("history") or ()),
        )


def describe_event(event: AuditEvent) -> str:
    """One audit record as a line of a confirmation: what happened, when, and the record's id."""
    day = event.at.date().isoformat()
    where = f"audit record '{event.id}' under reference {event.ref}"
    if event.action == AuditAction.PURGED:
        return f"purged by retention on {day} ({where})"
    if event.action == AuditAction.ERASED:
        request = event.details.get("requestId")
        return f"erased on {day} at request {request} ({where})"
    return f"{event.action} on {day} ({where})"


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
    if not confirmation.held:
        outcome = "No order and no file is stored under this reference; nothing was deleted."
    elif confirmation.kept:
        outcome = (
            "All data held for this reference has been deleted, except what the law requires "
            "the seller to keep (listed below)."
        )
    else:
        outcome = "All data held for this reference has been deleted."
    lines = [
        "DELETION CONFIRMATION",
        f"Request id:        {confirmation.request_id}",
        f"Request type:      {confirmation.request_type}",
        f"Order reference:   {confirmation.ref} (pseudonymous)",
        f"Requested at:      {confirmation.requested_at.isoformat()}",
        f"Completed at:      {confirmation.completed_at.isoformat()}",
        f"Outcome:           {outcome}",
        "Deleted:",
        *(f"  - {item}" for item in confirmation.deleted or ("(nothing)",)),
    ]
    if not confirmation.held:
        lines += [
            "What the audit log records of this reference:",
            *(f"  - {item}" for item in confirmation.history or ("no record of an order under it",)),
        ]
    if confirmation.kept:
        lines += [
            "Kept under a legal obligation (not deleted):",
            *(f"  - {item}" for item in confirmation.kept),
        ]
    lines += [
        f"Method:            {confirmation.method}",
        f"Recoverability:    no copy of the deleted data is recoverable after "
        f"{confirmation.recoverable_until.isoformat()} (at most {confirmation.recoverability_days} "
        "days: retention + key epoch + database backup + key soft-delete; Amazon's limit is 30 days)",
    ]
    return "\n".join(lines) + "\n"


def confirmation_text(audit: AuditLog, ref: str, request_id: str) -> str | None:
    """For the ops verb: the printable confirmation of one request, or None if there is none."""
    found = load(audit, ref, request_id)
    return render(found) if found else None
