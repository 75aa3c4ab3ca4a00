"""Privacy requests: access, correct, delete, restrict, and Amazon's deletion requests.

Design notes: docs/privacy.md ("Design notes: `shared.privacy.service`")."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.crypto.pii import Pii
from shared.errors import IntegrityFailure, InvalidInput
from shared.orders import integrity
from shared.orders.corrections import CORRECTABLE, REQUIRED, applied
from shared.orders.deadlines import RetentionPolicy, refresh_ttl
from shared.orders.messages import checked_ref, is_request_id, parse_json
from shared.orders.record import (
    CORRECTED,
    ERASURE,
    OrderPii,
    OrderRecord,
    PiiCipher,
    item_to_doc,
    noting_blob,
)
from shared.orders.repository import OrderRepository
from shared.privacy.deletion_confirmation import (
    METHOD,
    NOTHING_HELD_METHOD,
    DeletionConfirmation,
    confirmation_text,
    describe_event,
    load,
    save,
)
from shared.storage.audit import AuditAction, AuditLog
from shared.storage.blob_store import (
    EXPORTS,
    INVOICES,
    ORDER_BLOB_CONTAINERS,
    export_blob_name,
    invoice_numbers_in,
)
from shared.storage.document_store import DocumentStore

FUNCTION = "handle_privacy_request"
OPS = "ops_cli"
QUEUED_TYPES = ("access", "delete", "amazon_delete", "restrict")
DELETE_TYPES = ("delete", "amazon_delete")
MIN_RSA_BITS = 2048
EXPORT_ALGORITHM = "RSA-OAEP-256+A256GCM"
_FIELDS = {"requestId", "type", "ref", "recipientKey"}


class PrivacyRequestInvalid(InvalidInput):
    """A request that can never succeed: the message is poisoned with this reason code."""

    code = "privacy_request_invalid"


class OrderBlobs(Protocol):
    def delete(self, container: str, name: str) -> bool: ...

    def delete_prefix(self, container: str, prefix: str) -> list[str]: ...

    def list_names(self, container: str, prefix: str) -> list[str]: ...

    def put(self, container: str, name: str, data: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class PrivacyRequest:
    request_id: str
    type: str
    ref: str
    recipient_key: rsa.RSAPublicKey | None = None


@dataclass(frozen=True, slots=True)
class PrivacyOutcome:
    """PII-free result for telemetry: `held` False means nothing was held for the reference."""

    request_id: str
    type: str
    ref: str
    held: bool
    export_blob: str | None = None
    fields_changed: tuple[str, ...] = ()


def _recipient_key(raw: object) -> rsa.RSAPublicKey:
    if not isinstance(raw, str):
        raise PrivacyRequestInvalid("access needs recipientKey", code="privacy_recipient_key_missing")
    try:
        key = serialization.load_der_public_key(base64.b64decode(raw, validate=True))
    except ValueError:
        raise PrivacyRequestInvalid("recipientKey unreadable", code="privacy_recipient_key_bad") from None
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < MIN_RSA_BITS:
        raise PrivacyRequestInvalid("recipientKey must be RSA-2048+", code="privacy_recipient_key_weak")
    return key


def parse_request(body: bytes | str) -> PrivacyRequest:
    """Validate a queue message; every failure is a `PrivacyRequestInvalid` with a reason code."""
    data = parse_json(body)
    if set(data) - _FIELDS:
        raise PrivacyRequestInvalid("unexpected fields", code="privacy_unexpected_fields")
    request_id = data.get("requestId")
    if not isinstance(request_id, str) or not is_request_id(request_id):
        raise PrivacyRequestInvalid("requestId missing or malformed", code="privacy_bad_request_id")
    kind = data.get("type")
    if kind == "correct":
        raise PrivacyRequestInvalid(
            "correct is an ops call, never a queue message", code="privacy_correct_not_queued"
        )
    if kind not in QUEUED_TYPES:
        raise PrivacyRequestInvalid("type unknown", code="privacy_bad_type")
    ref = checked_ref(data.get("ref"))
    if kind == "access":
        return PrivacyRequest(request_id, kind, ref, _recipient_key(data.get("recipientKey")))
    if "recipientKey" in data:
        raise PrivacyRequestInvalid("recipientKey only goes with access", code="privacy_unexpected_fields")
    return PrivacyRequest(request_id, str(kind), ref)


def encode_recipient_key(key: rsa.RSAPublicKey) -> str:
    """The `recipientKey` field for an access request (used by the ops CLI)."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


_OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def seal_export(data: Mapping[str, Any], recipient: rsa.RSAPublicKey, aad: str) -> bytes:
    key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(12)
    plain = json.dumps(data, separators=(",", ":")).encode()
    package = {
        "v": 1,
        "alg": EXPORT_ALGORITHM,
        "aad": aad,
        "wrappedKey": base64.b64encode(recipient.encrypt(key, _OAEP)).decode(),
        "nonce": base64.b64encode(nonce).decode(),
        "ciphertext": base64.b64encode(AESGCM(key).encrypt(nonce, plain, aad.encode())).decode(),
    }
    return json.dumps(package).encode()


def open_export(package: bytes, private_key: rsa.RSAPrivateKey) -> dict[str, Any]:
    """For the requester (or the ops CLI on their behalf): the exported data."""
    outer = json.loads(package)
    key = private_key.decrypt(base64.b64decode(outer["wrappedKey"]), _OAEP)
    plain = AESGCM(key).decrypt(
        base64.b64decode(outer["nonce"]), base64.b64decode(outer["ciphertext"]), outer["aad"].encode()
    )
    data: dict[str, Any] = json.loads(plain)
    return data


def _corrected(pii: OrderPii, changes: Mapping[str, Pii | None]) -> OrderPii:
    """`changes` applied; a None value removes the field (a wrong e-mail, say)."""
    unknown = set(changes) - CORRECTABLE
    if unknown:
        raise PrivacyRequestInvalid("a field cannot be corrected", code="privacy_bad_field")
    if not all(isinstance(v, Pii) or (v is None and k not in REQUIRED) for k, v in changes.items()):
        raise PrivacyRequestInvalid(
            "corrected values must be Pii, or None for a field that may be empty", code="privacy_bad_value"
        )
    if pii.ship_to is None and any(k.startswith("shipTo.") for k in changes):
        raise PrivacyRequestInvalid("the order has no address to correct", code="privacy_no_address")
    return applied(pii, changes)


def _order_facts(record: OrderRecord) -> dict[str, Any]:
    """The non-personal part of the order, as exported to the requester."""
    return {
        "stage": record.stage.value,
        "marketplaceId": record.marketplace_id,
        "createdAt": record.created_at.isoformat(),
        "shipCountry": record.ship_country,
        "items": [item_to_doc(i) for i in record.items],
        "shipment": dict(record.shipment) if record.shipment else None,
        "deliveredAt": record.delivered_at.isoformat() if record.delivered_at else None,
        "purgeAfter": record.purge_after.isoformat() if record.purge_after else None,
    }


def _held(record: OrderRecord) -> list[str]:
    """What the order document holds, by kind (never by content)."""
    held = ["order document"]
    if record.pii is not None:
        epoch = record.pii.get("epoch", "unknown")
        failed = record.attention == integrity.INTEGRITY_FAILURE
        unread = ", which had failed its integrity check and could not be read" if failed else ""
        held.append(f"encrypted buyer data (key epoch {epoch}{unread})")
    if record.items:
        held.append(f"order details ({len(record.items)} items)")
    if record.shipment:
        held.append("shipment record")
    if record.invoice:
        held.append("invoice record")
    return held


@dataclass(frozen=True, slots=True)
class _Erasure:
    """What an erasure found, kept on the order's shell until it is done (no contents)."""

    held: list[str]
    invoices: list[str]
    files: dict[str, int]

    def to_doc(self) -> dict[str, Any]:
        return {"held": self.held, "invoices": self.invoices, "files": self.files}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> _Erasure:
        files = doc.get("files") or {}
        return cls(
            list(doc.get("held") or []),
            list(doc.get("invoices") or []),
            {str(c): int(n) for c, n in files.items()},
        )


class KeptCopies(Protocol):
    """The legal archive's index (`shared.invoices.archive`): until when it keeps a document."""

    def kept_until(self, number_text: str) -> str | None: ...


class PrivacyService:
    """Implements `shared.app.runtime.Privacy`, plus the direct calls of the ops verbs."""

    def __init__(
        self,
        store: DocumentStore,
        *,
        cipher: PiiCipher,
        blobs: OrderBlobs,
        audit: AuditLog,
        policy: RetentionPolicy,
        blob_containers: Sequence[str] = ORDER_BLOB_CONTAINERS,
        export_container: str = EXPORTS,
        archive: KeptCopies | None = None,
        orders: OrderRepository | None = None,
    ) -> None:
        """`archive`: the seller's legal invoice archive, if it keeps one. `orders`: the app's
        one repository (a plain one over `store` when not given)."""
        self._archive = archive
        self._orders = orders or OrderRepository(store)
        self._audit = audit
        self._cipher = cipher
        self._blobs = blobs
        self._policy = policy
        self._containers = tuple(blob_containers)
        self._export_container = export_container

    def handle(self, body: bytes, now: datetime) -> None:
        self.process(body, now)

    def process(self, body: bytes, now: datetime) -> PrivacyOutcome:
        request = parse_request(body)
        if request.type in DELETE_TYPES:
            confirmation = self.delete(
                request.ref, request.request_id, now, request_type=request.type, by=FUNCTION
            )
            return PrivacyOutcome(request.request_id, request.type, request.ref, confirmation.held)
        if request.type == "restrict":
            return self.restrict(request.ref, request.request_id, now, by=FUNCTION)
        assert request.recipient_key is not None  # noqa: S101 - parse_request guarantees it
        return self.access(request.ref, request.request_id, request.recipient_key, now, by=FUNCTION)

    # --- access --------------------------------------------------------------------------

    def access(
        self, ref: str, request_id: str, recipient: rsa.RSAPublicKey, now: datetime, *, by: str = OPS
    ) -> PrivacyOutcome:
        record = self._orders.get(ref)
        if record is None:
            self._note(ref, AuditAction.ACCESS_EXPORTED, now, by, request_id, held=False)
            return PrivacyOutcome(request_id, "access", ref, held=False)
        answer: dict[str, Any] = {"ref": ref, "requestId": request_id, "exportedAt": now.isoformat()}
        try:
            pii = self._cipher.open(ref, record.pii) if record.pii is not None else None
            answer["buyer"] = pii.to_plain() if pii is not None else None
        except IntegrityFailure:
            record = integrity.flag(self._orders, ref) or record
            answer |= {"buyer": None, "buyerDataUnreadable": self._unreadable(record)}
        answer["order"] = _order_facts(record)
        name = export_blob_name(ref, request_id)
        package = seal_export(answer, recipient, aad=f"{ref}/{request_id}")
        # The order notes the package's name before it is written, so its purge deletes it by name.
        path = f"{self._export_container}/{name}"

        def note(current: OrderRecord) -> OrderRecord | None:
            noting = None if current.being_erased else noting_blob(current, path)
            return None if noting is None else refresh_ttl(noting, now, self._policy)

        noted = self._orders.update_from(record, note)
        if noted is not None and not noted.being_erased:
            self._blobs.put(self._export_container, name, package)
        facts = {"unreadable": True} if "buyerDataUnreadable" in answer else {}
        after = self._orders.get(ref)
        if after is None or after.being_erased:
            # Erased while the package was made: it must not outlive the erasure.
            self._blobs.delete(self._export_container, name)
            self._note(ref, AuditAction.ACCESS_EXPORTED, now, by, request_id, held=False)
            return PrivacyOutcome(request_id, "access", ref, held=False)
        self._note(ref, AuditAction.ACCESS_EXPORTED, now, by, request_id, held=True, blob=name, **facts)
        return PrivacyOutcome(request_id, "access", ref, held=True, export_blob=name)

    def _unreadable(self, record: OrderRecord) -> str:
        """The answer's statement for buyer data that failed its integrity check."""
        if record.purge_after is not None:
            when = f"by {record.purge_after.isoformat()}, its deadline"
        else:
            when = f"{self._policy.retention_days} days after its delivery, as every order's is"
        return (
            "The buyer data held for this order failed its integrity check and could not be "
            f"read, so none is exported. It stays encrypted and will be deleted on schedule, {when}."
        )

    # --- correct -------------------------------------------------------------------------

    def correct(
        self,
        ref: str,
        changes: Mapping[str, Pii | None],
        now: datetime,
        *,
        request_id: str | None = None,
        by: str = OPS,
    ) -> PrivacyOutcome:
        """Re-encrypt the order's buyer data with `changes` applied ("buyer.email",
        "shipTo.line1", ...: see `CORRECTABLE`; None removes an optional field), sealed under
        the current key epoch."""
        request_id = request_id or f"correct-{now.strftime('%Y%m%dT%H%M%S%f')}"
        if not changes:
            raise PrivacyRequestInvalid("no changes", code="privacy_no_changes")

        unreadable = False

        def change(current: OrderRecord) -> OrderRecord | None:
            nonlocal unreadable
            if current.pii is None:
                return None
            try:
                pii = self._cipher.open(ref, current.pii)
            except IntegrityFailure:
                unreadable = True  # nothing can be corrected: the order is flagged instead
                return integrity.flagged(current)
            unreadable = False
            sealed = self._cipher.seal(ref, _corrected(pii, changes), now)
            names = sorted(set(current.extra.get(CORRECTED) or ()) | set(changes))
            extra = {**current.extra, CORRECTED: names}
            return refresh_ttl(current.evolve(pii=sealed, extra=extra), now, self._policy)

        stored = self._orders.update(ref, change)
        held = stored is not None and stored.pii is not None
        names = tuple(sorted(changes)) if held and not unreadable else ()
        facts = {"unreadable": True} if unreadable else {}
        self._note(ref, AuditAction.CORRECTED, now, by, request_id, held=held, fields=list(names), **facts)
        return PrivacyOutcome(request_id, "correct", ref, held=held, fields_changed=names)

    # --- restrict ------------------------------------------------------------------------

    def restrict(self, ref: str, request_id: str, now: datetime, *, by: str = OPS) -> PrivacyOutcome:
        def change(current: OrderRecord) -> OrderRecord | None:
            if current.restricted:
                return None
            return refresh_ttl(current.evolve(restricted=True), now, self._policy)

        stored = self._orders.update(ref, change)
        self._note(ref, AuditAction.RESTRICTED, now, by, request_id, held=stored is not None)
        return PrivacyOutcome(request_id, "restrict", ref, held=stored is not None)

    # --- delete --------------------------------------------------------------------------

    def delete(
        self, ref: str, request_id: str, now: datetime, *, request_type: str = "delete", by: str = OPS
    ) -> DeletionConfirmation:
        """Delete everything held for `ref` at once and return the written confirmation.
        Safe to repeat: a redelivered request finishes the work and returns the first
        confirmation."""
        # What is stored under the reference is listed before anything is deleted, and the
        # shell remembers it with what the document held: a retry after a crash (the files
        # deleted already) still confirms all of it. A document stored and not yet recorded
        # (its upload may be under way) is accounted for too: its number is read from its
        # blob's name, and the shell remembers it with the recorded ones.
        listed = {c: self._blobs.list_names(c, f"{ref}/") for c in self._containers}
        erasure = self._empty_document(
            ref,
            request_id,
            invoice_numbers_in(listed.get(INVOICES, [])),
            {c: len(names) for c, names in listed.items()},
        )
        held, invoices = erasure.held, erasure.invoices
        deleted = {c: len(self._blobs.delete_prefix(c, f"{ref}/")) for c in self._containers}
        blobs = {c: max(erasure.files.get(c, 0), n) for c, n in deleted.items()}
        # A retry after a crash finds the first confirmation (the shell remembers what it held
        # and its invoice numbers) and finishes the steps after it.
        confirmation = load(self._audit, ref, request_id) or self._confirm(
            ref, request_id, request_type, held, blobs, self._kept(invoices), now
        )
        self._note(
            ref,
            AuditAction.ERASED,
            now,
            by,
            request_id,
            requestType=request_type,
            held=confirmation.held,
            invoices=invoices,
        )
        self._orders.delete(ref)
        return confirmation

    def _confirm(  # noqa: PLR0917 - the facts of one deletion
        self,
        ref: str,
        request_id: str,
        request_type: str,
        held: list[str],
        blobs: Mapping[str, int],
        kept: list[str],
        now: datetime,
    ) -> DeletionConfirmation:
        """Write the deletion confirmation (once per request id) and return what is stored."""
        deleted = held + [f"{n} file(s) in blob container '{c}'" for c, n in blobs.items() if n]
        found = bool(deleted)
        # Nothing is stored under the reference: say what the audit log knows of it instead
        # (a purge by retention, an earlier erasure), never that nothing was ever held.
        history = () if found else tuple(self._history(ref, request_id))
        return save(
            self._audit,
            DeletionConfirmation(
                request_id=request_id,
                request_type=request_type,
                ref=ref,
                held=found,
                deleted=tuple(deleted),
                method=METHOD if found else NOTHING_HELD_METHOD,
                requested_at=now,
                completed_at=now,
                recoverable_until=now + timedelta(days=self._policy.recoverability_days),
                recoverability_days=self._policy.recoverability_days,
                kept=tuple(kept),
                history=history,
            ),
        )

    def _history(self, ref: str, request_id: str) -> list[str]:
        """What the audit log records of `ref` (this request's own records aside), oldest first."""
        lines = []
        for event in self._audit.trail(ref):
            if event.details.get("requestId") == request_id:
                continue
            lines.append(describe_event(event))
        return lines

    def _kept(self, invoices: Sequence[str]) -> list[str]:
        """The archived copies of the order's invoices, which the seller's tax law keeps."""
        kept = []
        for number in invoices:
            until = self._archive.kept_until(number) if self._archive is not None else None
            if until is not None:
                kept.append(f"tax document {number}: archived copy, kept until {until} (tax law)")
        return kept

    def confirmation_text(self, ref: str, request_id: str) -> str | None:
        """Ops verb `deletion-confirmation <order id> <request id>` (the CLI computes `ref`)."""
        return confirmation_text(self._audit, ref, request_id)

    def _empty_document(
        self, ref: str, request_id: str, stored_invoices: set[str], files: Mapping[str, int]
    ) -> _Erasure:
        """Strip the document to a PII-free shell by compare-and-swap, remembering what it held,
        its invoice numbers (recorded, or `stored_invoices`: for the audit record) and the
        `files` under its reference, so a retry after a crash still confirms them all. What the
        first attempt remembered, on a retry; nothing held if there is no document."""
        remembered = _Erasure([], sorted(stored_invoices), dict(files))

        def change(current: OrderRecord) -> OrderRecord | None:
            nonlocal remembered
            erasure = current.extra.get(ERASURE)
            if isinstance(erasure, Mapping) and erasure.get("requestId") == request_id:
                remembered = _Erasure.from_doc(erasure)
                return None
            remembered = _Erasure(
                _held(current), sorted(set(current.invoice_numbers()) | stored_invoices), dict(files)
            )
            return current.evolve(
                pii=None,
                items=(),
                shipment=None,
                invoice=None,
                restricted=True,
                extra={ERASURE: {"requestId": request_id, **remembered.to_doc()}},
            )

        self._orders.update(ref, change)
        return remembered

    def _note(
        self, ref: str, action: AuditAction, now: datetime, by: str, request_id: str, **details: object
    ) -> None:
        self._audit.record(ref, action, now, by, {"requestId": request_id, **details}, once_key=request_id)
