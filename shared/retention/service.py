"""Retention: learn when each shipped order was delivered, then forget it `retention_days` later.

`track_deliveries` takes the shipped orders whose next check is due, asks Amazon
(`packageStatus` DELIVERED) and the carrier, and, when neither ever confirms, counts the order
as delivered at its latest delivery date plus a grace period: every order's retention is
bounded. A delivered order gets `purgeAfter = deliveredAt + retention_days`, `dueAt` = the same
instant, and a Cosmos `ttl`; a parcel its carrier reports sent back is `returned`, never
delivered, with its deadline counted from the return event. `purge_expired` is the belt to
TTL's braces: it deletes the label, invoice and export blobs (by the names the order knows,
no listing) and the document of every order past its deadline, writes one audit record per
order, and asks the key shredder to destroy key epochs no live order uses.

Both timers read only due work: one indexed range query on `dueAt`, narrowed by stage (see
docs/retention.md), so their cost grows with what is due, not with the orders stored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from shared.crypto.envelope import epoch_of
from shared.errors import TransientError
from shared.orders.deadlines import (
    SOURCE_AMAZON,
    SOURCE_BOUND,
    SOURCE_CARRIER,
    RetentionPolicy,
    delivery_bound,
)
from shared.orders.lifecycle import NOT_SHIPPED, delivered, returned
from shared.orders.record import ERASURE, OrderRecord, Stage
from shared.orders.repository import OrderRepository
from shared.storage.audit import AuditAction, AuditLog
from shared.storage.blob_store import (
    INVOICES,
    LABELS,
    ORDER_BLOB_CONTAINERS,
    invoice_blob_name,
    invoice_numbers_in,
    label_blob_name,
)
from shared.storage.document_store import DocumentStore, WriteConflict
from shared.telemetry.invocations import error_code

UNSHIPPED = frozenset(stage.value for stage in NOT_SHIPPED)
PURGEABLE_STAGES: tuple[Stage, ...] = (
    Stage.DELIVERED,
    Stage.RETURNED,
    Stage.CANCELLED,
    # Orders that never ship (pending forever, needing attention, stuck before shipping) are
    # bounded too: the lifecycle gives them a deadline from their latest delivery date.
    Stage.AWAITING,
    Stage.ATTENTION,
    Stage.READY,
)


class AmazonOrderStatus(Protocol):
    """When Amazon reports every package of the order DELIVERED (getOrder / the polls)."""

    def delivered_at(self, record: OrderRecord) -> datetime | None: ...


@dataclass(frozen=True, slots=True)
class JourneyEnd:
    """How a parcel's journey ended by its carrier's word: delivered to the buyer, or returned to
    the seller (never delivered), at `at`."""

    at: datetime
    returned: bool = False


class DeliveryTracker(Protocol):
    """How the carrier's tracking (OrderRecord.shipment) says the parcel's journey ended, if it has."""

    def journey_end(self, record: OrderRecord) -> JourneyEnd | None: ...


class BlobDeleter(Protocol):
    def delete(self, container: str, name: str) -> bool:
        """Delete the blob `name`; False when there was none."""
        ...

    def delete_prefix(self, container: str, prefix: str) -> list[str]:
        """Delete every blob whose name starts with `prefix` (a listing first); the names deleted."""
        ...


class KeyShredder(Protocol):
    def shred_unused(self, now: datetime, epoch_in_use: Callable[[str], bool]) -> list[str]:
        """Destroy every closed key epoch for which `epoch_in_use` is False; return their ids."""
        ...


class LegalArchive(Protocol):
    """The invoice archive (`shared.invoices.archive`), the one exception to the 7-day rule."""

    def purge_expired(self, now: datetime, limit: int = 500) -> int:
        """Delete the archived documents whose legal keeping ended; return how many."""
        ...


def blob_names(record: OrderRecord) -> list[tuple[str, str]]:
    """Every blob (container, name) the order may have under its reference: the label's fixed
    name, the recorded invoice and credit note, and the blobs noted before they were written."""
    names = [(LABELS, label_blob_name(record.ref))]
    names += [(INVOICES, invoice_blob_name(record.ref, number)) for number in record.invoice_numbers()]
    for path in record.noted_blobs:
        container, _, name = path.partition("/")
        names.append((container, name))
    return sorted(set(names))


def _invoice_numbers_known(record: OrderRecord) -> set[str]:
    """The invoice and credit-note numbers the order's document names: recorded on it, noted
    as blobs before they were written (a document stored and never recorded, its message
    poisoned), or remembered by an erasure that stripped it to a shell."""
    noted = invoice_numbers_in(
        name
        for container, _, name in (path.partition("/") for path in record.noted_blobs)
        if container == INVOICES
    )
    erasure = record.extra.get(ERASURE)
    remembered = erasure.get("invoices") if isinstance(erasure, Mapping) else None
    return set(record.invoice_numbers()) | noted | {str(n) for n in remembered or ()}


def _digest(numbers: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(numbers).encode()).hexdigest()[:16]


def _epoch(record: OrderRecord) -> str | None:
    return epoch_of(record.pii) if record.pii else None


@dataclass(frozen=True, slots=True)
class Delivery:
    ref: str
    delivered_at: datetime
    source: str
    purge_after: datetime


@dataclass(slots=True)
class TrackReport:
    delivered: list[Delivery] = field(default_factory=list)
    #: Orders whose parcel went back to the seller: their deadline runs from the return event.
    returned: list[Delivery] = field(default_factory=list)
    rescheduled: int = 0
    restricted: list[str] = field(default_factory=list)
    #: (ref, error code) of a delivery source that failed; the order is checked again later.
    source_errors: list[tuple[str, str]] = field(default_factory=list)
    #: (ref, error code) of an order whose check failed; it stays due for the next run.
    failed: list[tuple[str, str]] = field(default_factory=list)

    def raise_if_failed(self) -> None:
        _raise_if_failed(self.failed)


@dataclass(frozen=True, slots=True)
class Purged:
    ref: str
    stage: str
    purge_after: datetime
    lateness_seconds: float
    blobs_deleted: int
    delivery_source: str | None


@dataclass(slots=True)
class PurgeReport:
    purged: list[Purged] = field(default_factory=list)
    shredded_epochs: list[str] = field(default_factory=list)
    #: (ref, error code) of an order whose purge failed; it stays due for the next run.
    failed: list[tuple[str, str]] = field(default_factory=list)
    #: archived invoices whose legal keeping ended and that this run deleted
    archive_deleted: int = 0
    #: orders written while this run purged them (the document's delete, conditioned on the
    #: etag it was read with, found it changed): kept, and looked at again on the next run
    deferred: list[str] = field(default_factory=list)

    @property
    def unshipped(self) -> int:
        """Orders purged that never shipped nor were cancelled (the orders-not-shipping rule
        reads this)."""
        return sum(1 for p in self.purged if p.stage in UNSHIPPED)

    def raise_if_failed(self) -> None:
        _raise_if_failed(self.failed)


class RetentionIncomplete(TransientError):
    """Some orders of a run failed (the others were handled): the invocation reports failure
    so the operators' alerts see it; the failed orders stay due for the next run."""

    code = "retention_incomplete"


def _raise_if_failed(failed: Sequence[tuple[str, str]]) -> None:
    if failed:
        codes = sorted({code for _, code in failed})
        raise RetentionIncomplete(f"{len(failed)} order(s) failed: {', '.join(codes)}")


class RetentionService:
    """Implements `shared.app.runtime.Retention`; `track` and `purge` return the per-order detail
    the function shell puts in telemetry."""

    def __init__(
        self,
        store: DocumentStore,
        *,
        amazon: AmazonOrderStatus,
        carrier: DeliveryTracker,
        blobs: BlobDeleter,
        audit: AuditLog,
        shredder: KeyShredder,
        policy: RetentionPolicy,
        blob_containers: Sequence[str] = ORDER_BLOB_CONTAINERS,
        batch_size: int = 200,
        archive: LegalArchive | None = None,
        orders: OrderRepository | None = None,
    ) -> None:
        """`archive`: the invoice archive, when the seller keeps one (its documents are deleted
        when their legal keeping ends, by the same timer). `orders`: the app's one repository
        (a plain one over `store` when not given)."""
        self._archive = archive
        self._orders = orders or OrderRepository(store)
        self._audit = audit
        self._amazon = amazon
        self._carrier = carrier
        self._blobs = blobs
        self._shredder = shredder
        self._policy = policy
        self._containers = tuple(blob_containers)
        self._batch = batch_size

    # --- Retention protocol -------------------------------------------------------------

    def track_deliveries(self, now: datetime) -> int:
        return len(self.track(now).delivered)

    def purge_expired(self, now: datetime) -> int:
        return len(self.purge(now).purged)

    # --- delivery detection --------------------------------------------------------------

    def track(self, now: datetime) -> TrackReport:
        report = TrackReport()
        for record in self._due((Stage.SHIPPED,), now):
            try:
                self._track_one(record, now, report)
            except Exception as exc:
                report.failed.append((record.ref, error_code(exc)))
        return report

    def _track_one(self, record: OrderRecord, now: datetime, report: TrackReport) -> None:
        if record.restricted:
            # A restricted order is not sent to Amazon or a carrier; only the bound applies,
            # so its retention stays bounded without processing it.
            report.restricted.append(record.ref)
        found = self._detect(record, now, report)
        next_check = min(now + self._policy.recheck, delivery_bound(record, self._policy))

        def change(current: OrderRecord) -> OrderRecord | None:
            if current.stage is not Stage.SHIPPED:
                return None  # another writer moved it on
            if found is None:
                return current.evolve(due_at=next_check)
            at, source, back = found
            return (returned if back else delivered)(current, at, source, now, self._policy)

        # The due query returned the record with its etag: one write, a re-read only on conflict.
        stored = self._orders.update_from(record, change)
        if stored is None:
            return
        if found is None:
            if stored.stage is Stage.SHIPPED:
                report.rescheduled += 1
            return
        at, source, back = found
        if stored.stage is (Stage.RETURNED if back else Stage.DELIVERED) and stored.purge_after is not None:
            (report.returned if back else report.delivered).append(
                Delivery(stored.ref, at, source, stored.purge_after)
            )

    def _detect(
        self, record: OrderRecord, now: datetime, report: TrackReport
    ) -> tuple[datetime, str, bool] | None:
        """When and by whose word the journey ended, and whether it ended back at the seller."""
        if not record.restricted:
            try:
                at = self._amazon.delivered_at(record)
            except Exception as exc:
                # A library's own exception (karrio's, say) is as much a failed source as
                # ours: the order is asked again later and never misses its bound.
                report.source_errors.append((record.ref, error_code(exc)))
                at = None
            if at is not None:
                # A clock-skewed report from the future must not stretch the deadline.
                return min(at, now), SOURCE_AMAZON, False
            try:
                end = self._carrier.journey_end(record)
            except Exception as exc:
                report.source_errors.append((record.ref, error_code(exc)))
                end = None
            if end is not None:
                return min(end.at, now), SOURCE_CARRIER, end.returned
        bound = delivery_bound(record, self._policy)
        return (bound, SOURCE_BOUND, False) if now >= bound else None

    # --- purge -----------------------------------------------------------------------------

    def purge(self, now: datetime) -> PurgeReport:
        report = PurgeReport()
        for record in self._due(PURGEABLE_STAGES, now):
            if record.purge_after is not None and record.purge_after <= now:
                try:
                    report.purged.append(self._purge_one(record, now))
                except WriteConflict:
                    report.deferred.append(record.ref)
                except Exception as exc:
                    report.failed.append((record.ref, error_code(exc)))
        report.shredded_epochs.extend(self._shred(now))
        if self._archive is not None:
            report.archive_deleted = self._archive.purge_expired(now)
        return report

    def _purge_one(self, record: OrderRecord, now: datetime) -> Purged:
        assert record.purge_after is not None  # noqa: S101 - checked by the caller
        deleted = self._delete_blobs(record)
        blobs = sum(len(names) for names in deleted.values())
        # The numbers come from the document, which outlives a crash anywhere before its own
        # deletion; a blob deleted here adds only a number no document named.
        invoices = sorted(_invoice_numbers_known(record) | invoice_numbers_in(deleted.get(INVOICES, [])))
        lateness = (now - record.purge_after).total_seconds()
        # The audit record comes before the document's deletion: a crash in between leaves the
        # order due, and the next run finds the record already written (once_key) and finishes.
        # The key names the numbers listed: a purge that finds more (a document recorded while
        # its delete was deferred) writes a record listing them all.
        self._audit.record(
            record.ref,
            AuditAction.PURGED,
            now,
            "purge_expired",
            {
                "stage": record.stage.value,
                "deliveredAt": record.delivered_at.isoformat() if record.delivered_at else None,
                "deliverySource": record.delivery_source,
                "returnedAt": record.returned_at.isoformat() if record.returned_at else None,
                "purgeAfter": record.purge_after.isoformat(),
                "latenessSeconds": lateness,
                "blobsDeleted": blobs,
                "keyEpoch": _epoch(record),
                "hadBuyerData": record.pii is not None,
                "attention": record.attention,
                "invoices": invoices,
                "method": "logical_delete+crypto_erase",
            },
            once_key=f"order:{_digest(invoices)}",
        )
        # Only the document as it was read: a write since (an invoice recorded, a privacy
        # request) raises `WriteConflict`, and the next run reads the order again.
        self._orders.delete(record.ref, etag=record.etag)
        return Purged(
            record.ref, record.stage.value, record.purge_after, lateness, blobs, record.delivery_source
        )

    def _delete_blobs(self, record: OrderRecord) -> dict[str, list[str]]:
        """Delete the order's blobs by the names it knows (its label's, its recorded invoices',
        those noted before they were written); the names that existed, by container. A shell an
        erasure left unfinished is the one case that lists: the erasure removed its records and
        may have stopped before deleting the files (docs/retention.md)."""
        if record.being_erased:
            return {c: self._blobs.delete_prefix(c, f"{record.ref}/") for c in self._containers}
        deleted: dict[str, list[str]] = {}
        for container, name in blob_names(record):
            # Only the order's own blobs: a noted name elsewhere (the audit trail) is not its to delete.
            if container not in self._containers or not name.startswith(f"{record.ref}/"):
                continue
            if self._blobs.delete(container, name):
                deleted.setdefault(container, []).append(name)
        return deleted

    def _shred(self, now: datetime) -> list[str]:
        shredded = self._shredder.shred_unused(now, self._orders.epoch_in_use)
        for epoch in shredded:
            self._audit.record(
                f"key-epoch-{epoch}",
                AuditAction.EPOCH_SHREDDED,
                now,
                "purge_expired",
                {"epoch": epoch},
                once_key="epoch",
            )
        return shredded

    # --- due work --------------------------------------------------------------------------

    def _due(self, stages: Sequence[Stage], now: datetime) -> Iterator[OrderRecord]:
        """Every due order of these stages, batch by batch. The caller handles each order before
        the next batch is read; handling moves its `dueAt` forward or deletes it, so each batch
        is new work. An order that could not be moved (its write kept conflicting) is not
        offered twice in one run."""
        seen: set[str] = set()
        while True:
            batch = self._orders.due(now, self._batch, stages)
            fresh = [r for r in batch if r.ref not in seen]
            if not fresh:
                return
            seen.update(r.ref for r in fresh)
            yield from fresh
            if len(batch) < self._batch:
                return
