"""Tampered buyer data (one byte flipped, two orders' envelopes swapped), sealed with the real
envelope cipher: every service that opens it flags the order and is not retried, a privacy
request gets a written answer, and retention still purges the order on time."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from azure.functions.queue import QueueMessage

from local.sample_orders import generate
from shared.crypto.envelope import EnvelopeCipher, EnvelopeTampered
from shared.crypto.key_epochs import KeyEpochs
from shared.errors import ends_in_poison
from shared.orders.integrity import INTEGRITY_FAILURE
from shared.orders.messages import SHIPMENTS, ShipOrder
from shared.orders.record import OrderRecord, Stage
from shared.orders.repository import OrderRepository
from shared.privacy.service import encode_recipient_key, open_export
from shared.retention.service import RetentionService
from shared.storage.audit import AuditAction
from shared.storage.blob_store import EXPORTS
from shared.telemetry.invocations import AppTelemetry
from shared.telemetry.message_failures import MessageFailures
from tests.builders import flipped
from tests.fakes import FakeSender, FakeShredder, FakeSignal, MemoryBlobs, MemorySecretStore, audit_trail
from tests.worlds import ingestion, invoices, privacy, shipping

OTHER = "ref-00000002"


def real_cipher() -> EnvelopeCipher:
    return EnvelopeCipher(KeyEpochs(MemorySecretStore(), lambda: shipping.NOW))


def tamper(world: shipping.World, ref: str) -> None:
    """Flip one byte of the stored envelope, as a write outside the app would."""
    world.orders.update(ref, lambda r: r.evolve(pii=flipped(r.pii or {})))


def swap(orders: OrderRepository, first: str, second: str) -> None:
    """Exchange two orders' envelopes, each a valid envelope of the other order."""
    mine, theirs = orders.get(first), orders.get(second)
    assert mine is not None and theirs is not None
    orders.update(first, lambda r: r.evolve(pii=theirs.pii))
    orders.update(second, lambda r: r.evolve(pii=mine.pii))


def shipping_world() -> shipping.World:
    return shipping.World(cipher=real_cipher())  # type: ignore[arg-type]


# --- shipping -------------------------------------------------------------------------------


def test_a_flipped_byte_stops_shipping_and_flags_the_order_without_a_retry() -> None:
    w = shipping_world()
    w.add(shipping.REF)
    tamper(w, shipping.REF)
    assert w.service().ship(ShipOrder(shipping.REF), shipping.NOW) == []  # completes: no retry
    record = w.get(shipping.REF)
    assert (record.stage, record.attention) == (Stage.ATTENTION, INTEGRITY_FAILURE)
    assert "readyAt" not in record.extra  # out of the redrive's index
    assert w.carriers["usps"].purchases == 0 and w.confirmer.calls == []
    # Its deadline stands: an order needing attention is purged like any other.
    assert record.purge_after is not None and record.due_at == record.purge_after


def test_two_swapped_envelopes_flag_both_orders() -> None:
    w = shipping_world()
    w.add(shipping.REF)
    w.add(OTHER)
    swap(w.orders, shipping.REF, OTHER)
    for ref in (shipping.REF, OTHER):
        w.service().ship(ShipOrder(ref), shipping.NOW)
        assert w.get(ref).attention == INTEGRITY_FAILURE
    assert w.carriers["usps"].purchases == 0


def test_the_shipping_invocation_records_the_integrity_failure_as_its_stage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    w = shipping_world()
    w.add(shipping.REF)
    tamper(w, shipping.REF)
    telemetry = AppTelemetry()
    with caplog.at_level(logging.INFO, logger="fulfilment.telemetry"), telemetry.invocation("ship_order"):
        w.service().ship(ShipOrder(shipping.REF), shipping.NOW)
    [emitted] = [r for r in caplog.records if r.name == "fulfilment.telemetry"]
    dims = emitted.custom_dimensions  # type: ignore[attr-defined]
    assert dims["stage"] == INTEGRITY_FAILURE and dims["outcome"] == "success"


def test_a_tampered_order_is_purged_on_its_deadline() -> None:
    w = shipping_world()
    w.add(shipping.REF)
    tamper(w, shipping.REF)
    w.service().ship(ShipOrder(shipping.REF), shipping.NOW)
    deadline = w.get(shipping.REF).purge_after
    assert deadline is not None
    retention = RetentionService(
        w.store,
        amazon=FakeSignal(lambda: deadline),
        carrier=FakeSignal(lambda: deadline),
        blobs=MemoryBlobs(),
        audit=audit_trail(w.store),
        shredder=FakeShredder(),
        policy=privacy.POLICY,
        orders=w.orders,
    )
    assert retention.purge(deadline - timedelta(seconds=1)).purged == []
    [purged] = retention.purge(deadline).purged
    assert purged.ref == shipping.REF and purged.lateness_seconds == 0
    assert w.orders.get(shipping.REF) is None


# --- the message guard: sealed data that fails elsewhere is poisoned at once ----------------


def test_an_integrity_failure_nobody_handles_is_poisoned_on_its_first_delivery() -> None:
    assert ends_in_poison(EnvelopeTampered("ciphertext failed authentication"), 1, 5)
    sender = FakeSender()
    msg = QueueMessage(id="m1", body=b'{"ref":"ref-00000001"}', dequeue_count=1)
    with MessageFailures(sender).guard(SHIPMENTS, msg):
        raise EnvelopeTampered("ciphertext failed authentication")
    [(queue, body, _delay)] = sender.sent
    assert queue == f"{SHIPMENTS}-poison" and '"reason":"envelope_tampered"' in body


# --- invoicing ------------------------------------------------------------------------------


def test_invoicing_a_tampered_order_flags_it_keeps_it_shipped_and_takes_no_number() -> None:
    w = invoices.World(cipher=real_cipher())
    invoices.de_consumer(w, "ref-de-1")
    w.orders.update("ref-de-1", lambda r: r.evolve(pii=flipped(r.pii or {})))
    assert w.issue("ref-de-1") == {}
    record = w.orders.get("ref-de-1")
    assert record is not None
    assert (record.stage, record.attention) == (Stage.SHIPPED, INTEGRITY_FAILURE)
    assert w.counter.peek("INV2026") is None and w.uploader.calls == []


# --- privacy --------------------------------------------------------------------------------


def tampered_privacy_world() -> privacy.World:
    w = privacy.World(cipher=real_cipher(), scheduled=True)
    w.order(1)
    w.orders.update(privacy.REF, lambda r: r.evolve(pii=flipped(r.pii or {})))
    return w


def stored_order(w: privacy.World) -> OrderRecord:
    record = w.orders.get(privacy.REF)
    assert record is not None
    return record


def test_an_access_request_on_a_tampered_order_is_answered_in_writing() -> None:
    w = tampered_privacy_world()
    outcome = w.service.access(privacy.REF, "req-access-1", privacy.KEY.public_key(), privacy.T0)
    assert outcome.held and outcome.export_blob is not None
    answer = open_export(w.blobs.blobs[(EXPORTS, outcome.export_blob)], privacy.KEY)
    assert answer["buyer"] is None
    statement = answer["buyerDataUnreadable"]
    assert "failed its integrity check" in statement and "deleted on schedule" in statement
    assert answer["order"]["stage"] == Stage.SHIPPED.value
    assert stored_order(w).attention == INTEGRITY_FAILURE
    [event] = [e for e in w.audit.trail(privacy.REF) if e.action is AuditAction.ACCESS_EXPORTED]
    assert event.details["unreadable"] is True and event.details["held"] is True


def test_a_queued_access_request_on_a_tampered_order_completes_on_its_first_delivery() -> None:
    w = tampered_privacy_world()
    body = privacy_access_body("req-access-2")
    w.service.handle(body, privacy.T0)  # no exception: the host has nothing to retry
    assert stored_order(w).attention == INTEGRITY_FAILURE


def test_a_deletion_request_on_a_flagged_order_says_its_data_could_not_be_read() -> None:
    w = tampered_privacy_world()
    w.service.access(privacy.REF, "req-access-3", privacy.KEY.public_key(), privacy.T0)
    confirmation = w.service.delete(privacy.REF, "req-delete-1", privacy.T0)
    assert confirmation.held
    assert any("could not be read" in line for line in confirmation.deleted)
    assert w.orders.get(privacy.REF) is None


def test_a_correction_of_a_tampered_order_changes_nothing_and_flags_it() -> None:
    w = tampered_privacy_world()
    before = stored_order(w).pii
    outcome = w.service.correct(privacy.REF, {"buyer.email": None}, privacy.T0)
    assert outcome.held and outcome.fields_changed == ()
    record = stored_order(w)
    assert record.pii == before and record.attention == INTEGRITY_FAILURE


def privacy_access_body(request_id: str) -> bytes:
    return json.dumps(
        {
            "requestId": request_id,
            "type": "access",
            "ref": privacy.REF,
            "recipientKey": encode_recipient_key(privacy.KEY.public_key()),
        }
    ).encode()


def test_a_corrected_ready_order_that_fails_its_check_is_flagged_and_the_poll_goes_on() -> None:
    orders = generate(
        1,
        seed=3,
        start=ingestion.START - timedelta(hours=14),
        span=timedelta(hours=1),
        marketplaces=(ingestion.DE, ingestion.FR),
        statuses={"PENDING": 1.0},
        afn_share=0.0,
    )
    world = ingestion.World(orders[:1])
    world.poll()
    tampered = orders[0]["orderId"]
    world.clock.advance(300)
    world.stand_in.set_fulfillment_status(tampered, "UNSHIPPED")
    world.clock.advance(300)
    world.poll()
    ref = world.ref(tampered)
    ready = world.repo.get(ref)
    assert ready is not None and ready.stage is Stage.READY
    world.repo.replace(ready.evolve(extra={**ready.extra, "corrected": ["shipTo.line1"]}))

    def refuses(*_: object, **__: object) -> object:
        raise EnvelopeTampered("authentication failed")

    world.cipher.open = refuses  # type: ignore[method-assign]
    world.stand_in.set_fulfillment_status(tampered, "PENDING_AVAILABILITY")
    for _ in range(3):
        world.clock.advance(600)
        world.poll()

    flagged = world.repo.get(ref)
    assert flagged is not None and flagged.attention == INTEGRITY_FAILURE
    assert flagged.stage is Stage.ATTENTION
    assert world.service.last_poll.skipped == {}  # the seller's poll is not stopped by it
