"""Retention: learn when each shipped order was delivered, then forget it `retention_days` later.

`track_deliveries` takes the shipped orders whose next check is due, asks Amazon
(`packageStatus` DELIVERED) and the carrier, and, when neither ever confirms, counts the order
as delivered at its latest delivery date plus a grace period: every order's retention is
bounded. A delivered order gets `purgeAfter = deliveredAt + retention_days`, `dueAt` = the same
instant, and a Cosmos `ttl`. `purge_expired` is the belt to TTL's braces: it deletes the label,
invoice and export blobs and the document of every order past its deadline, writes one audit
record per order, and asks the key shredder to destroy key epochs no live order uses.

Both timers read only due work: one indexed range query on `dueAt`, narrowed by stage (see
docs/retention.md), so their cost grows with what is due, not with the orders stored.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from shared.crypto.envelope import epoch_of
from shared.errors import TransientError
from shared.orders.domain import PackageState
from shared.orders.record import OrderRecord, Stage
from shared.orders.repository import OrderRepository
from shared.settings import Settings
from shared.storage.audit import AuditAction, AuditLog
from shared.storage.blob_store import EXPORTS, INVOICES, LABELS, invoice_numbers_in
from shared.storage.document_store import ORDERS, DocumentStore
from shared.telemetry.invocations import error_code

#: Every blob container whose names start with "<ref>/": purged with the order.
ORDER_BLOB_CONTAINERS: tuple[str, ...] = (LABELS, INVOICES, EXPORTS)

# Where an order records the key epochs its sealed data depends on: its buyer data, its label
# (sealed when shipped, perhaps in a later epoch) and its invoice and credit note. An epoch is
# shredded only when no stored order names it in any of them.
EPOCH_FIELDS = ("pii.epoch", "shipment.labelEpoch", "invoice.invoice.epoch", "invoice.creditNote.epoch")
SOURCE_AMAZON = "amazon"
SOURCE_CARRIER = "carrier"
SOURCE_BOUND = "bound"

PURGEABLE_STAGES: tuple[str, ...] = (
    Stage.DELIVERED.value,
    Stage.CANCELLED.value,
    # Orders that never ship (pending forever, needing attention, stuck before shipping) are
    # bounded too: `RetentionSchedule` gives them a deadline from their latest delivery date.
    Stage.AWAITING.value,
    Stage.ATTENTION.value,
    Stage.READY.value,
)


_UNSHIPPED = (Stage.AWAITING, Stage.ATTENTION, Stage.READY)


class AmazonOrderStatus(Protocol):
    """When Amazon reports every package of the order DELIVERED (getOrder / the polls)."""

    def delivered_at(self, record: OrderRecord) -> datetime | None: ...


class DeliveryTracker(Protocol):
    """When the carrier's tracking (OrderRecord.shipment carrier + tracking number) shows delivery."""

    def delivered_at(self, record: OrderRecord) -> datetime | None: ...


class BlobDeleter(Protocol):
    def delete_prefix(self, container: str, prefix: str) -> list[str]:
        """Delete every blob whose name starts with `prefix`; the names deleted."""
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


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    retention_days: int
    delivery_grace_days: int
    recoverability_days: int
    #: Used when an order has no latest delivery date: shipped date + this, then + grace.
    default_transit_days: int = 14
    #: How long a shipped order waits before its delivery is checked again. The deadline is
    #: counted from the reported delivery time, not from when we learn it, so a sparse check
    #: costs no retention as long as it is shorter than the retention period (`recheck`).
    check_interval: timedelta = timedelta(days=3)
    #: The purge timer's period: the most a deadline can be overrun by the timer.
    purge_interval: timedelta = timedelta(hours=1)

    @property
    def recheck(self) -> timedelta:
        """The check interval, never longer than the retention period: a delivery is then
        always learnt before its deadline, so learning it late never delays the purge."""
        return min(self.check_interval, timedelta(days=self.retention_days))

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        check_interval: timedelta = timedelta(days=3),
        purge_interval: timedelta = timedelta(hours=1),
    ) -> RetentionPolicy:
        return cls(
            retention_days=settings.retention_days,
            delivery_grace_days=settings.delivery_grace_days,
            recoverability_days=settings.recoverability_days,
            check_interval=check_interval,
            purge_interval=purge_interval,
        )


def ttl_seconds(expire_at: datetime, now: datetime) -> int:
    """Cosmos `ttl` counts seconds from the item's last write (about `now`): floor, so the item
    never outlives `expire_at`; at least 1, since 0 is not a valid item ttl."""
    return max(1, math.floor((expire_at - now).total_seconds()))


def expiry_ttl(purge_after: datetime, now: datetime, policy: RetentionPolicy) -> int:
    """TTL for an order with a deadline. Cosmos hides an expired item from every read, so if
    TTL fired at `purge_after` the purge timer would never see the order, and its blobs (which
    have no TTL) and audit record would be left behind. The purge timer, which runs every
    interval, purges the order within one interval of its deadline; TTL fires two intervals
    after the deadline, so a timer run that starts late, or is missed once, still gets there
    first. TTL is the backstop for a purge that stopped altogether."""
    return ttl_seconds(purge_after + 2 * policy.purge_interval, now)


def refresh_ttl(record: OrderRecord, now: datetime, policy: RetentionPolicy) -> OrderRecord:
    """Every write restarts the TTL clock: a writer of an order that has a deadline must call
    this so the item still expires at its deadline, not `ttl` seconds after the later write."""
    if record.purge_after is None:
        return record
    return record.evolve(ttl=expiry_ttl(record.purge_after, now, policy))


def with_deadline(
    record: OrderRecord, purge_after: datetime, now: datetime, policy: RetentionPolicy
) -> OrderRecord:
    return record.evolve(
        purge_after=purge_after, due_at=purge_after, ttl=expiry_ttl(purge_after, now, policy)
    )


def mark_delivered(
    record: OrderRecord, delivered_at: datetime, source: str, now: datetime, policy: RetentionPolicy
) -> OrderRecord:
    delivered = record.evolve(stage=Stage.DELIVERED, delivered_at=delivered_at, delivery_source=source)
    return with_deadline(delivered, delivered_at + timedelta(days=policy.retention_days), now, policy)


def mark_cancelled(record: OrderRecord, now: datetime, policy: RetentionPolicy) -> OrderRecord:
    """For ingestion: a cancelled order loses its buyer data at once; the PII-free document
    stays until `retention_days` later (so a late notification cannot re-create it with PII),
    then is purged like any other."""
    cancelled = record.evolve(stage=Stage.CANCELLED, pii=None)
    return with_deadline(cancelled, now + timedelta(days=policy.retention_days), now, policy)


class AmazonPackageStatus:
    """Amazon's own delivery signal, as polls and notifications stored it on the order.

    Every package DELIVERED means delivered; Amazon gives no delivery time, so the time of the
    update that reported it stands in (never later than the truth by more than a poll)."""

    def delivered_at(self, record: OrderRecord) -> datetime | None:
        packages = record.extra.get("packages") or []
        if packages and all(p.get("status") == PackageState.DELIVERED.value for p in packages):
            return record.amazon_updated_at
        return None


class RetentionSchedule:
    """Applied by `OrderRepository` to every order it writes, so no stage can forget retention:
    a cancelled order loses its PII at once; an order without a deadline that has not shipped
    gets the bound (latest delivery date + grace + retention); a shipped order that Amazon
    reports delivered is marked so at once, otherwise it gets its first delivery check
    (`first_delivery_check`); and any order with a deadline has its Cosmos `ttl` restarted."""

    def __init__(self, policy: RetentionPolicy, clock: Callable[[], datetime]) -> None:
        self._policy = policy
        self._clock = clock
        self._amazon = AmazonPackageStatus()

    def __call__(self, record: OrderRecord) -> OrderRecord:
        now = self._clock()
        if record.stage is Stage.CANCELLED and record.purge_after is None:
            return mark_cancelled(record, now, self._policy)
        if record.stage in _UNSHIPPED and record.purge_after is None:
            bound = delivery_bound(record, self._policy) + timedelta(days=self._policy.retention_days)
            return with_deadline(record, max(bound, now), now, self._policy)
        if record.stage is Stage.SHIPPED:
            # Amazon's DELIVERED arrives with a poll: take it in the same write.
            delivered = self._amazon.delivered_at(record)
            if delivered is not None:
                return mark_delivered(record, min(delivered, now), SOURCE_AMAZON, now, self._policy)
            if record.due_at is None:
                first_check = first_delivery_check(record, now, self._policy)
                return refresh_ttl(record.evolve(due_at=first_check), now, self._policy)
        return refresh_ttl(record, now, self._policy)


def first_delivery_check(record: OrderRecord, now: datetime, policy: RetentionPolicy) -> datetime:
    """When `track_deliveries` first asks whether a just-shipped order arrived: on Amazon's
    latest delivery date (the date promised to the buyer, so most orders are found delivered at
    the first look: one write), never later than one `recheck` from now (a delivery is then
    always learnt before its deadline, which counts from the reported delivery time, not from
    the check) nor than the bound, and never in the past."""
    promised = record.latest_delivery_at or now + policy.recheck
    return max(now, min(promised, now + policy.recheck, delivery_bound(record, policy)))


def delivery_bound(record: OrderRecord, policy: RetentionPolicy) -> datetime:
    """The instant an order counts as delivered if no one ever confirms it."""
    latest = record.latest_delivery_at
    if latest is None:
        latest = _shipped_at(record) + timedelta(days=policy.default_transit_days)
    return latest + timedelta(days=policy.delivery_grace_days)


def _shipped_at(record: OrderRecord) -> datetime:
    raw = (record.shipment or {}).get("shippedAt")
    if isinstance(raw, str) and raw:
        return datetime.fromisoformat(raw)
    return record.latest_ship_at or record.created_at


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
        shredder: KeyShredder,
        policy: RetentionPolicy,
        blob_containers: Sequence[str] = ORDER_BLOB_CONTAINERS,
        batch_size: int = 200,
        archive: LegalArchive | None = None,
    ) -> None:
        """`archive`: the invoice archive, when the seller keeps one (its documents are deleted
        when their legal keeping ends, by the same timer)."""
        self._store = store
        self._archive = archive
        self._orders = OrderRepository(store)
        self._audit = AuditLog(store)
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
        for record in self._due((Stage.SHIPPED.value,), now):
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
            return mark_delivered(current, found[0], found[1], now, self._policy)

        # The due query returned the record with its etag: one write, a re-read only on conflict.
        stored = self._orders.update_from(record, change)
        if stored is None or stored.stage is not (Stage.DELIVERED if found else Stage.SHIPPED):
            return
        if found is None:
            report.rescheduled += 1
        elif stored.delivered_at is not None and stored.purge_after is not None:
            report.delivered.append(Delivery(stored.ref, stored.delivered_at, found[1], stored.purge_after))

    def _detect(self, record: OrderRecord, now: datetime, report: TrackReport) -> tuple[datetime, str] | None:
        if not record.restricted:
            sources: tuple[tuple[str, Callable[[OrderRecord], datetime | None]], ...] = (
                (SOURCE_AMAZON, self._amazon.delivered_at),
                (SOURCE_CARRIER, self._carrier.delivered_at),
            )
            for name, ask in sources:
                try:
                    at = ask(record)
                except Exception as exc:
                    # A library's own exception (karrio's, say) is as much a failed source as
                    # ours: the order is asked again later and never misses its bound.
                    report.source_errors.append((record.ref, error_code(exc)))
                    continue
                if at is not None:
                    # A clock-skewed report from the future must not stretch the deadline.
                    return min(at, now), name
        bound = delivery_bound(record, self._policy)
        return (bound, SOURCE_BOUND) if now >= bound else None

    # --- purge -----------------------------------------------------------------------------

    def purge(self, now: datetime) -> PurgeReport:
        report = PurgeReport()
        for record in self._due(PURGEABLE_STAGES, now):
            if record.purge_after is not None and record.purge_after <= now:
                try:
                    report.purged.append(self._purge_one(record, now))
                except Exception as exc:
                    report.failed.append((record.ref, error_code(exc)))
        report.shredded_epochs.extend(self._shred(now))
        if self._archive is not None:
            report.archive_deleted = self._archive.purge_expired(now)
        return report

    def _purge_one(self, record: OrderRecord, now: datetime) -> Purged:
        assert record.purge_after is not None  # noqa: S101 - checked by the caller
        swept = {c: self._blobs.delete_prefix(c, f"{record.ref}/") for c in self._containers}
        blobs = sum(len(names) for names in swept.values())
        # A document stored and never recorded (its message poisoned) is listed too, so the
        # invoice register accounts for its number after the order is gone. (A crash between
        # these deletions and the audit record loses such a number: the retry finds no blob.)
        invoices = sorted(set(record.invoice_numbers()) | invoice_numbers_in(swept.get(INVOICES, [])))
        lateness = (now - record.purge_after).total_seconds()
        # The audit record comes before the document's deletion: a crash in between leaves the
        # order due, the next run finds the record already written (once_key) and finishes.
        self._audit.record(
            record.ref,
            AuditAction.PURGED,
            now,
            "purge_expired",
            {
                "stage": record.stage.value,
                "deliveredAt": record.delivered_at.isoformat() if record.delivered_at else None,
                "deliverySource": record.delivery_source,
                "purgeAfter": record.purge_after.isoformat(),
                "latenessSeconds": lateness,
                "blobsDeleted": blobs,
                "keyEpoch": _epoch(record),
                "hadBuyerData": record.pii is not None,
                "invoices": invoices,
                "method": "logical_delete+crypto_erase",
            },
            once_key="order",
        )
        self._orders.delete(record.ref)
        return Purged(
            record.ref, record.stage.value, record.purge_after, lateness, blobs, record.delivery_source
        )

    def _shred(self, now: datetime) -> list[str]:
        def epoch_in_use(epoch: str) -> bool:
            return any(self._store.exists_where(ORDERS, field, epoch) for field in EPOCH_FIELDS)

        shredded = self._shredder.shred_unused(now, epoch_in_use)
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

    def _due(self, stages: Sequence[str], now: datetime) -> Iterator[OrderRecord]:
        """Every due order of these stages, batch by batch. The caller handles each order before
        the next batch is read; handling moves its `dueAt` forward or deletes it, so each batch
        is new work. An order that could not be moved (its write kept conflicting) is not
        offered twice in one run."""
        seen: set[str] = set()
        while True:
            docs = self._store.due_in(
                ORDERS, "dueAt", now.isoformat(), self._batch, key="stage", values=stages
            )
            fresh = [OrderRecord.from_doc(d) for d in docs if d["id"] not in seen]
            if not fresh:
                return
            seen.update(r.ref for r in fresh)
            yield from fresh
            if len(docs) < self._batch:
                return


def purge_summary(report: PurgeReport) -> dict[str, int | float]:
    """PII-free numbers for telemetry: counts and the worst lateness."""
    return {
        "purged": len(report.purged),
        "blobsDeleted": sum(p.blobs_deleted for p in report.purged),
        "epochsShredded": len(report.shredded_epochs),
        "maxLatenessSeconds": max((p.lateness_seconds for p in report.purged), default=0.0),
    }


def export_blob_name(ref: str, request_id: str) -> str:
    """Blob names of an order start with its reference, so purge and erasure sweep them."""
    return f"{ref}/{request_id}.bin"
