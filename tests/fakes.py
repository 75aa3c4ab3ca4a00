"""The test doubles, in one place: the memory stores (local/memory_stores.py, re-exported), one
fake PII cipher, the byte sealers, and the fakes of what the services talk to (delivery
signals, the epoch shredder, queue sender, carriers, Amazon's confirmation and feeds)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from local.memory_stores import MemoryBlobStore, MemoryDocumentStore, MemorySecretStore
from shared.errors import AppError, TransientError
from shared.invoices.feeds import FeedReceipt
from shared.orders.record import OrderPii, OrderRecord
from shared.retention.service import JourneyEnd
from shared.shipping.carriers import Label, LabelRequest, ShipmentRef, TrackingInfo
from shared.storage.audit import AuditLog
from shared.storage.document_store import DocumentStore

__all__ = [
    "EPOCH0",
    "EPOCH_LENGTH",
    "FakeCarrier",
    "FakeCipher",
    "FakeConfirmer",
    "FakeSecretCheck",
    "FakeSender",
    "FakeShredder",
    "FakeSignal",
    "FakeUploader",
    "KeyShredded",
    "LocalByteSealer",
    "MemoryBlobStore",
    "MemoryBlobs",
    "MemoryDocumentStore",
    "MemorySecretStore",
    "NoNewSecrets",
    "XorBlobCipher",
    "audit_trail",
    "epoch_closes",
    "epoch_of",
    "stored",
]

# ---- key epochs: weekly, numbered from a Monday ---------------------------------------------

EPOCH0 = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
EPOCH_LENGTH = timedelta(days=7)


def epoch_of(at: datetime) -> str:
    return f"e{(at - EPOCH0) // EPOCH_LENGTH}"


def epoch_closes(epoch: str) -> datetime:
    return EPOCH0 + EPOCH_LENGTH * (int(epoch[1:]) + 1)


# ---- the PII cipher --------------------------------------------------------------------------

_HIDDEN = str.maketrans("0123456789abcdef", "ghijklmnopqrstuv")
_SHOWN = str.maketrans("ghijklmnopqrstuv", "0123456789abcdef")


class FakeCipher:
    """The `PiiCipher` double of every test. The envelope carries the PII itself under the
    weekly epoch id of `now` (so any instance, or a document read back from Cosmos, opens it),
    and `open` checks the envelope belongs to the order.

    By default the PII is hidden in the envelope, as a real cipher's ciphertext is (its JSON as
    hex, written in the letters g-v, which spell none of the names, addresses or numbers a test
    looks for), so a test can prove that nothing else the order stores holds it. With
    `readable=True` the envelope holds the PII as plain JSON, so a test can prove where it went
    and that it is gone. `sealed` and `opened` count the calls."""

    def __init__(self, *, readable: bool = False) -> None:
        self.readable = readable
        self.sealed = 0
        self.opened = 0

    def seal(self, ref: str, pii: OrderPii, now: datetime) -> dict[str, Any]:
        self.sealed += 1
        plain = pii.to_plain()
        if self.readable:
            return {"epoch": epoch_of(now), "ref": ref, "plain": plain}
        hidden = json.dumps(plain).encode().hex().translate(_HIDDEN)
        return {"epoch": epoch_of(now), "ref": ref, "hidden": hidden}

    def open(self, ref: str, envelope: Mapping[str, Any]) -> OrderPii:
        self.opened += 1
        assert envelope["ref"] == ref
        if "plain" in envelope:
            return OrderPii.from_plain(envelope["plain"])
        return OrderPii.from_plain(json.loads(bytes.fromhex(envelope["hidden"].translate(_SHOWN))))


# ---- byte sealers (invoices, labels) ---------------------------------------------------------

NONCE_BYTES = 12


class KeyShredded(AppError):
    code = "key_shredded"


class LocalByteSealer:
    """The invoicing tests' sealer: real AES-256-GCM with one random key per ref held in memory;
    `shred` destroys a ref's key, which is what crypto-shredding does to an order's blobs."""

    def __init__(self) -> None:
        self._keys: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def _key(self, ref: str, create: bool) -> bytes:
        with self._lock:
            if ref not in self._keys:
                if not create:
                    raise KeyShredded("no key for this reference")
                self._keys[ref] = AESGCM.generate_key(bit_length=256)
            return self._keys[ref]

    def seal_bytes(self, ref: str, data: bytes, now: datetime) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(self._key(ref, create=True)).encrypt(nonce, data, ref.encode())

    def epoch_of(self, sealed: bytes) -> str | None:
        return None  # one key per reference, no epochs

    def open_bytes(self, ref: str, sealed: bytes) -> bytes:
        key = self._key(ref, create=False)
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], ref.encode())

    def shred(self, ref: str) -> None:
        with self._lock:
            self._keys.pop(ref, None)


class XorBlobCipher:
    """The labels' `BlobCipher` double: XOR, under a daily epoch id."""

    def seal_bytes(self, ref: str, purpose: str, plaintext: bytes, now: datetime) -> dict[str, Any]:
        ct = bytes(b ^ 0x5A for b in plaintext).hex()
        return {"epoch": f"epoch-{now.date()}", "ref": ref, "purpose": purpose, "ct": ct}

    def open_bytes(self, ref: str, purpose: str, envelope: Mapping[str, Any]) -> bytes:
        assert (envelope["ref"], envelope["purpose"]) == (ref, purpose)
        return bytes(b ^ 0x5A for b in bytes.fromhex(envelope["ct"]))


# ---- memory stores with test switches --------------------------------------------------------


def stored(memory: MemoryBlobStore) -> dict[str, bytes]:
    """The blobs by the names `PathBlobs` gives them ("<container>/<name>")."""
    return {f"{container}/{name}": data for (container, name), data in memory.blobs.items()}


class MemoryBlobs(MemoryBlobStore):
    """The memory blob store with a switch that fails the next delete, and a finder by name."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_next_delete = False

    def delete_prefix(self, container: str, prefix: str) -> list[str]:
        if self.fail_next_delete:
            self.fail_next_delete = False
            raise TransientError("blob service down", code="blob_unavailable")
        return super().delete_prefix(container, prefix)

    def delete(self, container: str, name: str) -> bool:
        if self.fail_next_delete:
            self.fail_next_delete = False
            raise TransientError("blob service down", code="blob_unavailable")
        return super().delete(container, name)

    def names(self, prefix: str) -> list[tuple[str, str]]:
        return [k for k in self.blobs if k[1].startswith(prefix)]


# ---- what the services talk to ---------------------------------------------------------------


class FakeSignal:
    """Amazon's DELIVERED status or a carrier's tracking: reports a delivery (or, as a carrier, a
    return to the seller) once it happened."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self.deliveries: dict[str, datetime] = {}
        self.returns: dict[str, datetime] = {}
        self.failing: set[str] = set()
        self.asked: list[str] = []

    def delivered_at(self, record: OrderRecord) -> datetime | None:
        self.asked.append(record.ref)
        if record.ref in self.failing:
            raise TransientError("tracking down", code="tracking_unavailable")
        at = self.deliveries.get(record.ref)
        return at if at is not None and at <= self.clock() else None

    def journey_end(self, record: OrderRecord) -> JourneyEnd | None:
        at = self.delivered_at(record)
        if at is not None:
            return JourneyEnd(at)
        back = self.returns.get(record.ref)
        return JourneyEnd(back, returned=True) if back is not None and back <= self.clock() else None


class FakeShredder:
    """Shreds a closed epoch once `epoch_in_use` says no order uses it."""

    def __init__(self) -> None:
        self.epochs: set[str] = set()
        self.shredded: dict[str, datetime] = {}
        self.asked: list[str] = []

    def shred_unused(self, now: datetime, epoch_in_use: Callable[[str], bool]) -> list[str]:
        done = []
        for epoch in sorted(self.epochs - set(self.shredded)):
            if epoch_closes(epoch) > now:
                continue
            self.asked.append(epoch)
            if not epoch_in_use(epoch):
                self.shredded[epoch] = now
                done.append(epoch)
        return done


class FakeSender:
    """A queue sender that keeps (queue, body, visibility timeout) of every message, and the
    time-to-live each was sent with (None: the queue's default) in `ttls`."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, int]] = []
        self.ttls: list[int | None] = []

    def send(
        self, queue: str, body: str, visibility_timeout_s: int = 0, time_to_live_s: int | None = None
    ) -> None:
        self.sent.append((queue, body, visibility_timeout_s))
        self.ttls.append(time_to_live_s)


class FakeSecretCheck:
    """LWA asked whether it takes a client secret: yes for those in `valid`; `failure` raised
    instead when set (LWA not answering). Keeps every (client id, secret) it was asked about."""

    def __init__(self, *valid: str, failure: AppError | None = None) -> None:
        self.valid = set(valid)
        self.failure = failure
        self.asked: list[tuple[str, str]] = []

    def accepts(self, client_id: str, secret: str) -> bool:
        self.asked.append((client_id, secret))
        if self.failure is not None:
            raise self.failure
        return secret in self.valid


class NoNewSecrets:
    """The LWA secret rotation of a drain whose queues carry no new secret: one reaching it
    fails the test."""

    def handle(self, body: str, now: datetime) -> Any:
        raise AssertionError("a new LWA secret reached a drain that expects none")


@dataclass
class FakeCarrier:
    """A carrier that sells one label per idempotency key (unless not `replay_safe`)."""

    name: str
    replay_safe: bool = True
    requires_phone: bool = False
    confirmed: bool = False
    labels: dict[str, Label] = field(default_factory=dict)
    requests: list[LabelRequest] = field(default_factory=list)
    purchases: int = 0
    fail: list[Exception] = field(default_factory=list)

    def create_label(self, request: LabelRequest) -> Label:
        self.requests.append(request)
        if self.fail:
            raise self.fail.pop(0)
        if request.idempotency_key in self.labels and self.replay_safe:
            return self.labels[request.idempotency_key]
        self.purchases += 1
        label = Label(
            self.name,
            self.name.upper(),
            request.service,
            f"TN{self.purchases:04d}",
            f"S{self.purchases}",
            b"%PDF label",
            confirmed_by_carrier=self.confirmed,
        )
        self.labels[request.idempotency_key] = label
        return label

    def cancel_label(self, shipment: ShipmentRef) -> bool:
        return True

    def track(self, shipment: ShipmentRef) -> TrackingInfo:
        return TrackingInfo(shipment.tracking_number, "unknown")


@dataclass
class FakeConfirmer:
    """Amazon's shipment confirmation: keeps the arguments of every call."""

    calls: list[dict[str, Any]] = field(default_factory=list)

    def confirm_shipment(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)


class FakeUploader:
    """Amazon's invoice feed: keeps every upload; `errors` are raised first, one per call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, bytes, dict[str, str]]] = []
        self.errors: list[Exception] = []

    def upload(
        self, seller_id: str, marketplace_id: str, pdf: bytes, options: Mapping[str, str]
    ) -> FeedReceipt:
        if self.errors:
            raise self.errors.pop(0)
        self.calls.append((seller_id, marketplace_id, pdf, dict(options)))
        return FeedReceipt(f"feed-{len(self.calls)}", "IN_QUEUE")


def audit_trail(store: DocumentStore, blobs: MemoryBlobStore | None = None) -> AuditLog:
    """The audit log over `store`, its immutable copies in `blobs` (a store of their own unless
    the test looks at them)."""
    return AuditLog(store, blobs if blobs is not None else MemoryBlobStore())
