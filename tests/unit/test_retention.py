"""Delivery detection and purge against the in-memory store, with a simulated clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from shared.orders.deadlines import RetentionPolicy, delivery_bound, expiry_ttl, ttl_seconds
from shared.orders.lifecycle import cancelled_now
from shared.orders.record import ERASURE, OrderRecord, Stage, noting_blob
from shared.retention.service import RetentionIncomplete
from shared.storage.audit import AuditAction
from shared.storage.blob_store import BlobUnavailable, invoice_blob_name
from shared.storage.document_store import ORDERS, StoreUnavailable
from tests.fakes import audit_trail, epoch_of
from tests.worlds.retention import POLICY, T0, World, purge_summary


@pytest.fixture
def world() -> World:
    return World()


def test_amazon_delivery_sets_deadline_ttl_and_due(world: World) -> None:
    ref = world.ship(1)
    delivered = T0 + timedelta(days=2)
    world.amazon.deliveries[ref] = delivered
    world.now = T0 + timedelta(days=2, hours=5)
    report = world.service.track(world.now)
    rec = world.orders.get(ref)
    assert rec is not None and rec.stage is Stage.DELIVERED
    assert (rec.delivered_at, rec.delivery_source) == (delivered, "amazon")
    assert rec.purge_after == delivered + timedelta(days=7) == rec.due_at
    # TTL counts from the write (at `now`) and fires two purge intervals after the deadline.
    assert rec.ttl == int((rec.purge_after + 2 * POLICY.purge_interval - world.now).total_seconds())
    assert [d.ref for d in report.delivered] == [ref] and world.carrier.asked == []


def test_carrier_is_asked_when_amazon_is_silent_or_failing(world: World) -> None:
    quiet, failing = world.ship(1), world.ship(2)
    world.amazon.failing.add(failing)
    world.carrier.deliveries = {quiet: T0 + timedelta(days=1), failing: T0 + timedelta(days=1)}
    world.now = T0 + timedelta(days=1, hours=1)
    report = world.service.track(world.now)
    assert {d.ref: d.source for d in report.delivered} == {quiet: "carrier", failing: "carrier"}
    assert report.source_errors == [(failing, "tracking_unavailable")]


def test_a_parcel_returned_to_the_seller_is_not_delivered_and_is_purged_from_the_return(world: World) -> None:
    ref = world.ship(1)
    back = T0 + timedelta(days=2)
    world.carrier.returns[ref] = back
    world.now = T0 + timedelta(days=3)
    report = world.service.track(world.now)
    rec = world.orders.get(ref)
    assert rec is not None and rec.stage is Stage.RETURNED
    assert (rec.delivered_at, rec.returned_at, rec.delivery_source) == (None, back, "carrier")
    assert rec.purge_after == back + timedelta(days=7) == rec.due_at
    assert report.delivered == [] and [(d.ref, d.delivered_at) for d in report.returned] == [(ref, back)]
    assert world.service.track(world.now + timedelta(days=1)).rescheduled == 0  # no longer tracked

    world.now = back + timedelta(days=7) - timedelta(minutes=1)
    assert world.service.purge(world.now).purged == []
    world.now = back + timedelta(days=7)
    assert [(p.ref, p.stage) for p in world.service.purge(world.now).purged] == [(ref, "returned")]
    assert world.orders.get(ref) is None
    [purged] = [e for e in audit_trail(world.store).trail(ref) if e.action is AuditAction.PURGED]
    assert purged.details["returnedAt"] == back.isoformat() and purged.details["deliveredAt"] is None


def test_undelivered_order_comes_back_at_the_next_check_never_after_its_bound(world: World) -> None:
    ref = world.ship(1, latest_delivery_days=1)  # bound: T0 + 1 day + 3 days grace
    world.now = T0 + timedelta(days=3, hours=20)
    assert world.service.track(world.now).rescheduled == 1
    rec = world.orders.get(ref)
    assert rec is not None and rec.stage is Stage.SHIPPED
    assert rec.due_at == T0 + timedelta(days=4)  # the bound, sooner than now + 12 h
    assert world.service.track(world.now).rescheduled == 0  # not due again before then


def test_never_confirmed_counts_as_delivered_at_its_bound(world: World) -> None:
    with_date, without = world.ship(1, latest_delivery_days=5), world.ship(2, latest_delivery_days=None)
    world.now = T0 + timedelta(days=30)
    world.service.track(world.now)
    a, b = world.orders.get(with_date), world.orders.get(without)
    assert a is not None and b is not None
    assert (a.delivery_source, a.delivered_at) == ("bound", T0 + timedelta(days=5 + 3))
    assert (b.delivery_source, b.delivered_at) == ("bound", T0 + timedelta(days=14 + 3))
    assert delivery_bound(b, POLICY) == b.delivered_at


def test_restricted_order_is_not_sent_to_amazon_or_carrier(world: World) -> None:
    ref = world.ship(1)
    world.orders.update(ref, lambda r: r.evolve(restricted=True))
    world.amazon.deliveries[ref] = T0
    world.now = T0 + timedelta(days=9)
    report = world.service.track(world.now)
    assert report.restricted == [ref] and world.amazon.asked == [] and world.carrier.asked == []
    rec = world.orders.get(ref)
    assert rec is not None and rec.delivery_source == "bound"


def test_a_delivery_reported_in_the_future_is_clamped_to_now(world: World) -> None:
    ref = world.ship(1)
    world.now = T0 + timedelta(days=1)
    world.amazon.clock = lambda: T0 + timedelta(days=400)  # Amazon's clock runs ahead
    world.amazon.deliveries[ref] = T0 + timedelta(days=3)
    world.service.track(world.now)
    rec = world.orders.get(ref)
    assert rec is not None and rec.delivered_at == world.now


def test_purge_deletes_document_blobs_audits_and_shreds(world: World) -> None:
    ref, later = world.ship(1), world.ship(2)
    invoice = {"invoice": {"series": "INV2026", "number": 7, "numberText": "INV2026-000007"}, "skipped": {}}
    world.orders.update(ref, lambda r: r.evolve(invoice=invoice))
    # A credit note stored and never recorded (its message poisoned): the order noted its blob
    # before it was written, so the purge deletes it by name and keeps its number too.
    world.orders.update(ref, lambda r: noting_blob(r, f"invoices/{ref}/CRN2026-000002.pdf"))
    world.blobs.put("invoices", f"{ref}/CRN2026-000002.pdf", b"sealed")
    world.amazon.deliveries = {ref: T0 + timedelta(days=1), later: T0 + timedelta(days=3)}
    world.now = T0 + timedelta(days=3)
    world.service.track(world.now)
    world.now = T0 + timedelta(days=8, minutes=30)
    report = world.service.purge(world.now)
    assert [p.ref for p in report.purged] == [ref]
    assert report.purged[0].lateness_seconds == 30 * 60 and report.purged[0].blobs_deleted == 2
    assert world.orders.get(ref) is None and world.blobs.names(f"{ref}/") == []
    assert world.orders.get(later) is not None and world.blobs.names(f"{later}/")
    assert report.shredded_epochs == []  # `later` still uses the epoch
    (event,) = audit_trail(world.store).trail(ref)
    assert event.action == AuditAction.PURGED and event.function == "purge_expired"
    assert event.details["deliverySource"] == "amazon" and event.details["latenessSeconds"] == 1800
    assert event.details["invoices"] == ["CRN2026-000002", "INV2026-000007"]  # the register stays whole
    world.now = T0 + timedelta(days=10, minutes=30)
    final = world.service.purge(world.now)
    assert [p.ref for p in final.purged] == [later] and final.shredded_epochs == [epoch_of(T0)]
    assert purge_summary(final) == {
        "purged": 1,
        "blobsDeleted": 1,
        "epochsShredded": 1,
        "maxLatenessSeconds": 1800.0,
    }


def test_purge_retried_after_its_delete_failed_writes_one_audit_record(world: World) -> None:
    ref = world.ship(1)
    world.deliver_and_pass_deadline(ref)
    delete = world.orders.delete

    def store_down(doc_ref: str, etag: str | None = None) -> bool:
        raise StoreUnavailable("Cosmos 503")

    world.service._orders.delete = store_down  # type: ignore[method-assign]
    assert world.service.purge(world.now).failed == [(ref, "store_unavailable")]
    world.service._orders.delete = delete  # type: ignore[method-assign]
    assert [p.ref for p in world.service.purge(world.now).purged] == [ref]
    assert len(audit_trail(world.store).trail(ref)) == 1 and world.orders.get(ref) is None


def test_a_purge_that_crashes_after_deleting_an_unrecorded_invoice_still_audits_its_number(
    world: World,
) -> None:
    """An invoice stored and never recorded is known by the name noted on the order before it
    was written: when the purge dies after deleting that blob (here the label's delete fails),
    the next run finds no blob, and its audit record still lists the number."""
    ref = world.ship(1)
    world.orders.update(ref, lambda r: noting_blob(r, f"invoices/{ref}/INV2026-000042.pdf"))
    world.blobs.put("invoices", f"{ref}/INV2026-000042.pdf", b"sealed")
    world.deliver_and_pass_deadline(ref)
    delete_blob = world.blobs.delete

    def label_store_down(container: str, name: str) -> bool:
        if container == "labels":
            raise BlobUnavailable("storage 503")
        return delete_blob(container, name)

    world.blobs.delete = label_store_down  # type: ignore[method-assign]
    assert world.service.purge(world.now).failed == [(ref, "blob_unavailable")]
    assert world.blobs.names(f"{ref}/") == [("labels", f"{ref}/label.pdf")]  # the invoice's is gone
    assert audit_trail(world.store).trail(ref) == []
    world.blobs.delete = delete_blob  # type: ignore[method-assign]
    assert [p.ref for p in world.service.purge(world.now).purged] == [ref]

    (event,) = audit_trail(world.store).trail(ref)
    assert event.details["invoices"] == ["INV2026-000042"]


def test_an_order_written_between_the_purges_read_and_its_delete_is_kept_and_purged_next_run(
    world: World,
) -> None:
    """The document's delete is conditioned on the etag the purge read: a credit note recorded
    in between is not lost with the order; the next run reads the order again and purges it."""
    ref = world.ship(1)
    world.deliver_and_pass_deadline(ref)
    delete = world.orders.delete

    credit_note = {"creditNote": {"numberText": "CRN2026-000001"}}

    def credit_note_recorded_first(doc_ref: str, etag: str | None = None) -> bool:
        world.orders.update(doc_ref, lambda r: r.evolve(invoice=credit_note))
        return delete(doc_ref, etag)

    world.service._orders.delete = credit_note_recorded_first  # type: ignore[method-assign]
    raced = world.service.purge(world.now)

    assert raced.deferred == [ref] and raced.failed == []
    kept = world.orders.get(ref)
    assert kept is not None and kept.invoice_numbers() == ["CRN2026-000001"]
    world.service._orders.delete = delete  # type: ignore[method-assign]
    world.now += timedelta(hours=1)
    after = world.service.purge(world.now)
    assert [p.ref for p in after.purged] == [ref] and after.deferred == []
    assert world.orders.get(ref) is None
    # The first run's record listed no number; the second lists the credit note.
    listed = [e.details["invoices"] for e in audit_trail(world.store).trail(ref)]
    assert listed == [[], ["CRN2026-000001"]]


def test_every_due_order_is_handled_across_batches_and_kinds_do_not_starve() -> None:
    world = World(batch_size=3)
    refs = [world.ship(n) for n in range(10)]
    for ref in refs[:7]:
        world.amazon.deliveries[ref] = T0
    world.now = T0 + timedelta(hours=1)
    assert world.service.track_deliveries(world.now) == 7
    # Seven orders are now past their deadline and waiting for purge; the three still
    # shipped must still be checked even though the batch holds only three.
    world.now = T0 + timedelta(days=7, hours=2)
    report = world.service.track(world.now)
    assert report.rescheduled == 3
    assert world.service.purge_expired(world.now) == 7


def test_cancelled_order_loses_pii_at_once_and_is_purged_at_its_deadline(world: World) -> None:
    ref = world.ship(1)
    world.orders.update(ref, lambda r: cancelled_now(r, T0, POLICY))
    rec = world.orders.get(ref)
    assert rec is not None and rec.pii is None and rec.purge_after == T0 + timedelta(days=7)
    world.now = T0 + timedelta(days=7)
    assert [p.stage for p in world.service.purge(world.now).purged] == ["cancelled"]


def test_purge_cost_is_independent_of_stored_orders(world: World) -> None:
    for n in range(50):
        world.ship(n, latest_delivery_days=60)
    world.store.counts.clear()
    world.now = T0 + timedelta(days=1)
    world.service.purge(world.now)
    assert world.store.counts[f"{ORDERS}.query"] == 1  # one due query, nothing read per order


def test_ttl_never_outlives_its_instant_and_is_positive() -> None:
    assert ttl_seconds(T0 + timedelta(seconds=10, milliseconds=900), T0) == 10
    assert ttl_seconds(T0 - timedelta(days=1), T0) == 1
    assert expiry_ttl(T0, T0, POLICY) == 7200  # two purge intervals after the deadline


def test_recheck_never_exceeds_the_retention_period() -> None:
    assert RetentionPolicy(7, 3, 28, check_interval=timedelta(days=10)).recheck == timedelta(days=7)
    assert RetentionPolicy(7, 3, 28).recheck == timedelta(days=3)


def test_a_delivery_time_in_a_carriers_local_offset_is_stored_in_utc_and_purged_on_time() -> None:
    """Due queries compare stored times as text: a "+09:00" deadline would sort 9 hours late."""
    world = World()
    ref = world.ship(1)
    delivered = datetime(2026, 3, 3, 20, 0, tzinfo=timezone(timedelta(hours=9)))  # 11:00 UTC
    world.carrier.deliveries[ref] = delivered
    world.now = T0 + timedelta(days=2)
    world.service.track(world.now)
    record = world.orders.get(ref)
    assert record is not None and record.purge_after == delivered + timedelta(days=7)
    assert record.to_doc()["dueAt"] == "2026-03-10T11:00:00+00:00"

    world.now = datetime(2026, 3, 10, 11, 0, tzinfo=UTC) + POLICY.purge_interval
    world.service.purge(world.now)
    assert world.orders.get(ref) is None


class _LibraryError(Exception):
    """What a carrier library may raise that is not one of the app's errors (karrio's own)."""


def test_a_source_raising_its_own_exception_is_a_source_error_and_the_bound_still_applies() -> None:
    world = World()
    ref = world.ship(1, latest_delivery_days=1)  # bound: T0 + 1 day + 3 days grace

    def breaks(record: OrderRecord) -> None:
        raise _LibraryError("SOAP fault for Zq Recipient, 1 Secret Road")

    world.carrier.delivered_at = breaks  # type: ignore[method-assign]
    world.now = T0 + timedelta(days=5)
    report = world.service.track(world.now)

    assert report.source_errors == [(ref, "_LibraryError")] and report.failed == []
    record = world.orders.get(ref)
    assert record is not None and record.delivery_source == "bound"


def test_one_order_failing_does_not_stop_the_run_and_the_run_reports_it() -> None:
    world = World()
    broken, fine = world.ship(1), world.ship(2)
    for ref in (broken, fine):
        world.amazon.deliveries[ref] = T0
    world.now = T0 + timedelta(hours=1)
    write = world.orders.update_from

    def fails_for_one(record: OrderRecord, change: Any) -> OrderRecord | None:
        if record.ref == broken:
            raise StoreUnavailable("Cosmos 503")
        return write(record, change)

    world.service._orders.update_from = fails_for_one  # type: ignore[method-assign]
    report = world.service.track(world.now)

    assert [d.ref for d in report.delivered] == [fine]
    assert report.failed == [(broken, "store_unavailable")]
    with pytest.raises(RetentionIncomplete, match=r"1 order\(s\) failed: store_unavailable$"):
        report.raise_if_failed()


def test_an_order_never_shipped_is_counted_past_its_ship_by_for_days_then_purged_as_unshipped(
    world: World,
) -> None:
    """The orders-not-shipping rule sees an unshipped order from its ship-by date on (the poll's
    gauge) and again when the purge deletes it (`unshipped`): the purge comes at least the
    retention period after the ship-by date, whatever stage held the order."""
    from shared.orders.lifecycle import SHIP_BY_PASSED, needs_attention
    from tests.builders import order_record

    ship_by = T0 + timedelta(days=2)
    for n, stage in enumerate((Stage.READY, Stage.ATTENTION)):
        record = order_record(
            at=T0, ref=f"held{n:07d}", latest_ship_at=ship_by, latest_delivery_at=T0 + timedelta(days=5)
        )
        world.orders.create(needs_attention(record, SHIP_BY_PASSED) if stage is Stage.ATTENTION else record)
    world.ship(9)
    world.orders.update("ref0000009", lambda r: cancelled_now(r, T0, POLICY))

    assert world.orders.past_ship_by(ship_by - timedelta(minutes=1)) == 0
    assert world.orders.past_ship_by(ship_by) == 2
    deadlines = {r.purge_after for r in map(world.orders.get, ["held0000000", "held0000001"]) if r}
    assert deadlines and min(d for d in deadlines if d) >= ship_by + timedelta(days=POLICY.retention_days)

    world.now = max(d for d in deadlines if d)
    report = world.service.purge(world.now)
    assert sorted(p.stage for p in report.purged) == ["cancelled", "needs_attention", "ready_to_ship"]
    assert report.unshipped == 2


def test_an_order_amazon_gave_no_ship_by_date_is_counted_past_its_fallback_ship_by(world: World) -> None:
    """Without `latestShipAt` the lifecycle's ship-by is SHIP_BY_FALLBACK after creation: the
    gauge counts the order from then on, ready or with a person, as it counts Amazon's dates."""
    from shared.orders.lifecycle import SHIP_BY_FALLBACK, SHIP_BY_PASSED, needs_attention
    from tests.builders import order_record

    ready = order_record(at=T0, ref="undated00", latest_ship_at=None)
    world.orders.create(ready)
    world.orders.create(needs_attention(order_record(at=T0, ref="undated01"), SHIP_BY_PASSED))

    assert world.orders.past_ship_by(T0 + SHIP_BY_FALLBACK - timedelta(minutes=1)) == 0
    assert world.orders.past_ship_by(T0 + SHIP_BY_FALLBACK) == 2
    world.orders.update("undated00", lambda r: r.evolve(extra={"touched": True}))
    assert world.orders.past_ship_by(T0 + SHIP_BY_FALLBACK) == 2  # every write keeps it counted


def test_a_document_written_before_it_carried_its_ship_by_is_counted_from_its_next_write(
    world: World,
) -> None:
    from tests.builders import order_record

    legacy = order_record(at=T0, ref="legacy000", latest_ship_at=T0 + timedelta(days=1)).to_doc()
    world.store.create(ORDERS, legacy)
    assert world.orders.past_ship_by(T0 + timedelta(days=1)) == 0

    world.orders.update("legacy000", lambda r: r.evolve(extra={"touched": True}))
    assert world.orders.past_ship_by(T0 + timedelta(days=1)) == 1


def test_a_shipped_order_carries_no_ship_by_and_is_not_counted(world: World) -> None:
    ref = world.ship(1)
    stored = world.store.read(ORDERS, ref, ref)
    assert stored is not None and "shipBy" not in stored
    assert world.orders.past_ship_by(T0 + timedelta(days=30)) == 0


def test_a_purge_of_ordinary_orders_deletes_their_blobs_by_name_and_lists_nothing(world: World) -> None:
    refs = [world.ship(n) for n in range(20)]
    for n, ref in enumerate(refs):
        number = f"INV2026-{n:06d}"
        world.orders.update(ref, lambda r, num=number: r.evolve(invoice={"invoice": {"numberText": num}}))
        world.blobs.put("invoices", invoice_blob_name(ref, number), b"sealed")
        world.amazon.deliveries[ref] = T0
    world.now = T0 + timedelta(hours=1)
    world.service.track(world.now)
    world.blobs.lists = 0
    world.now = T0 + timedelta(days=7, hours=2)
    report = world.service.purge(world.now)
    assert len(report.purged) == 20 and world.blobs.lists == 0  # a List Blobs is a billed call
    assert world.blobs.blobs == {} and all(p.blobs_deleted == 2 for p in report.purged)


def test_a_noted_export_and_an_unrecorded_invoice_go_by_name_with_the_order(world: World) -> None:
    ref = world.ship(1)
    for path in (f"exports/{ref}/req-00000001.bin", f"invoices/{ref}/INV2026-000003.pdf"):
        world.orders.update(ref, lambda r, p=path: noting_blob(r, p))
        container, _, name = path.partition("/")
        world.blobs.put(container, name, b"sealed")
    world.orders.update(ref, lambda r: noting_blob(r, f"exports/{ref}/req-00000002.bin"))  # never written
    world.amazon.deliveries[ref] = T0
    world.now = T0 + timedelta(hours=1)
    world.service.track(world.now)
    world.blobs.lists = 0
    world.now = T0 + timedelta(days=7, hours=2)
    (purged,) = world.service.purge(world.now).purged
    assert purged.blobs_deleted == 3 and world.blobs.blobs == {} and world.blobs.lists == 0
    (event,) = audit_trail(world.store).trail(ref)
    assert event.details["invoices"] == ["INV2026-000003"]  # the register accounts for its number


def test_the_shell_of_an_unfinished_erasure_is_swept_by_listing(world: World) -> None:
    ref = world.ship(1)
    # An erasure stripped the order (its records gone) and stopped before deleting its files.
    world.blobs.put("invoices", f"{ref}/INV2026-000004.pdf", b"sealed")
    world.blobs.put("exports", f"{ref}/req-00000005.bin", b"sealed")
    world.orders.update(
        ref, lambda r: cancelled_now(r.evolve(extra={**r.extra, ERASURE: {"held": []}}), T0, POLICY)
    )
    world.now = T0 + timedelta(days=7, hours=1)
    (purged,) = world.service.purge(world.now).purged
    assert purged.blobs_deleted == 3 and world.blobs.blobs == {} and world.blobs.lists == 3
    (event,) = audit_trail(world.store).trail(ref)
    assert event.details["invoices"] == ["INV2026-000004"]


def test_a_noted_name_outside_the_orders_containers_and_reference_is_never_deleted(world: World) -> None:
    ref = world.ship(1)
    for path in ("audit/" + f"{ref}/purged:order.json", "exports/someone-else/req-00000006.bin"):
        world.orders.update(ref, lambda r, p=path: noting_blob(r, p))
        container, _, name = path.partition("/")
        world.blobs.put(container, name, b"kept")
    world.amazon.deliveries[ref] = T0
    world.now = T0 + timedelta(hours=1)
    world.service.track(world.now)
    world.now = T0 + timedelta(days=7, hours=2)
    (purged,) = world.service.purge(world.now).purged
    assert purged.blobs_deleted == 1  # the label
    assert sorted(world.blobs.blobs) == [
        ("audit", f"{ref}/purged:order.json"),
        ("exports", "someone-else/req-00000006.bin"),
    ]
