"""Orders in the document store: read, create once, and change by compare-and-swap."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from shared.orders.lifecycle import NOT_SHIPPED, ship_by
from shared.orders.record import READY_AT, OrderRecord, Stage, stored_time
from shared.storage.document_store import ORDERS, Document, DocumentStore, WriteConflict

MAX_CAS_ATTEMPTS = 5
# Where an order records the key epochs its sealed data depends on: its buyer data, its label
# (sealed when shipped, perhaps in a later epoch) and its invoice and credit note. An epoch is
# shredded only when no stored order names it in any of them.
EPOCH_FIELDS = ("pii.epoch", "shipment.labelEpoch", "invoice.invoice.epoch", "invoice.creditNote.epoch")
# The field every write of an unshipped order carries: its effective ship-by date
# (`lifecycle.ship_by`: Amazon's, or the fallback after its creation), which the
# orders-not-shipping gauge queries. `latestShipAt` alone misses orders Amazon gave none.
SHIP_BY = "shipBy"


class OrderRepository:
    """`schedule` (the retention schedule in the app) is applied to every record written, so
    each order always carries its deadline whichever stage wrote it."""

    def __init__(
        self, store: DocumentStore, schedule: Callable[[OrderRecord], OrderRecord] | None = None
    ) -> None:
        self._store = store
        self._schedule = schedule or (lambda record: record)

    def get(self, ref: str) -> OrderRecord | None:
        doc = self._store.read(ORDERS, ref, ref)
        return OrderRecord.from_doc(doc) if doc else None

    def create(self, record: OrderRecord) -> OrderRecord:
        """Raises `WriteConflict` when the order already exists."""
        return OrderRecord.from_doc(self._store.create(ORDERS, self._doc(record)))

    def replace(self, record: OrderRecord) -> OrderRecord:
        """Write `record` if nobody changed it since it was read; else `WriteConflict`."""
        if record.etag is None:
            raise ValueError("replace needs the etag the record was read with")
        return OrderRecord.from_doc(self._store.replace(ORDERS, self._doc(record), record.etag))

    def _doc(self, record: OrderRecord) -> Document:
        """The document written for `record`: scheduled, and stamped with its `SHIP_BY` while
        it has not shipped."""
        scheduled = self._schedule(record)
        doc = scheduled.to_doc()
        if scheduled.stage in NOT_SHIPPED:
            doc[SHIP_BY] = stored_time(ship_by(scheduled))
        return doc

    def update(self, ref: str, change: Callable[[OrderRecord], OrderRecord | None]) -> OrderRecord | None:
        """Re-read and re-apply `change` until the write wins. `change` returns None to leave
        the order as it is; the result is the stored record (None if the order is gone)."""
        for _ in range(MAX_CAS_ATTEMPTS):
            current = self.get(ref)
            if current is None:
                return None
            try:
                return self._apply(current, change)
            except WriteConflict:
                continue
        raise WriteConflict("order kept changing")

    def update_from(
        self, record: OrderRecord, change: Callable[[OrderRecord], OrderRecord | None]
    ) -> OrderRecord | None:
        """`update`, starting from `record` as the caller already read it (with its etag): the
        common case costs one write and no read; only a conflict re-reads."""
        try:
            return self._apply(record, change)
        except WriteConflict:
            return self.update(record.ref, change)

    def _apply(
        self, current: OrderRecord, change: Callable[[OrderRecord], OrderRecord | None]
    ) -> OrderRecord:
        """`change` written over `current` (`WriteConflict` if it moved on); `current` if None."""
        changed = change(current)
        return current if changed is None else self.replace(changed)

    def delete(self, ref: str, etag: str | None = None) -> bool:
        """False when the order is gone already; with `etag` (the one it was read with),
        `WriteConflict` when it changed since."""
        return self._store.delete(ORDERS, ref, ref, etag)

    def due(
        self, now: datetime, limit: int = 500, stages: Sequence[Stage] | None = None
    ) -> list[OrderRecord]:
        """Orders (of these stages) whose next time-based action (delivery check, purge) is due:
        one indexed range query on `dueAt`."""
        if stages is None:
            docs = self._store.due(ORDERS, "dueAt", now.isoformat(), limit)
        else:
            values = [stage.value for stage in stages]
            docs = self._store.due_in(ORDERS, "dueAt", now.isoformat(), limit, key="stage", values=values)
        return [OrderRecord.from_doc(d) for d in docs]

    def due_to_send(self, now: datetime, limit: int = 100) -> list[OrderRecord]:
        """Ready orders whose shipping has not begun and whose time to be sent to shipping (the
        redrive's index, `extra.readyAt`) is `now` or earlier."""
        docs = self._store.due_in(
            ORDERS, f"extra.{READY_AT}", now.isoformat(), limit, key="stage", values=[Stage.READY.value]
        )
        return [OrderRecord.from_doc(d) for d in docs]

    def past_ship_by(self, now: datetime, limit: int = 100) -> int:
        """How many orders still to ship (ready, or with a person) have passed their ship-by
        date (`SHIP_BY`), counted up to `limit`: one indexed query."""
        values = [Stage.READY.value, Stage.ATTENTION.value]
        docs = self._store.due_in(ORDERS, SHIP_BY, now.isoformat(), limit, key="stage", values=values)
        return len(docs)

    def epoch_in_use(self, epoch: str) -> bool:
        """Whether any stored order's sealed data depends on key epoch `epoch`."""
        return any(self._store.exists_where(ORDERS, field, epoch) for field in EPOCH_FIELDS)
