"""ShippingService with in-memory fakes: one label per order, attention codes, retries."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from local.memory_stores import MemoryBlobStore
from shared.crypto.pii import Pii
from shared.errors import TransientError
from shared.orders.deadlines import RetentionPolicy
from shared.orders.lifecycle import (
    RESEND_AFTER,
    SHIP_BY_FALLBACK,
    SHIP_BY_PASSED,
    SHIP_RETRY_FIRST,
    SHIP_TRIES,
    Settle,
    may_ship_again,
)
from shared.orders.messages import IssueInvoice, ShipOrder
from shared.orders.record import READY_AT, Stage
from shared.orders.repository import OrderRepository
from shared.shipping.carriers import (
    AddressProblem,
    CarrierError,
    CarrierTimeout,
    CarrierUnavailable,
    Label,
    LabelRequest,
)
from shared.shipping.rules import ShippingRules
from shared.shipping.service import ShippingService
from shared.storage.blob_store import LABELS, BlobUnavailable, LabelStore
from shared.storage.document_store import CountingStore, StoreUnavailable
from shared.telemetry.message_failures import MAX_DEQUEUE_COUNT
from tests.fakes import FakeCarrier, FakeConfirmer, XorBlobCipher
from tests.worlds.shipping import EMAIL, NOW, REF, RULES, World, address


class Crash(Exception):
    """Stands for the worker dying: not an AppError, nothing catches it."""


@dataclass
class CrashAfterPurchase:
    inner: FakeCarrier
    crashes: int = 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def create_label(self, request: LabelRequest) -> Label:
        label = self.inner.create_label(request)
        if self.crashes:
            self.crashes -= 1
            raise Crash
        return label


def test_ships_once_stores_sealed_label_and_confirms() -> None:
    w = World()
    w.add(REF)
    assert w.service().ship(ShipOrder(REF), NOW) == [IssueInvoice(REF)]
    record = w.get(REF)
    assert record.stage is Stage.SHIPPED
    shipment = dict(record.shipment or {})
    assert shipment["state"] == "shipped" and shipment["trackingNumber"] == "TN0001"
    assert shipment["labelBlob"] == f"{REF}/label.pdf" and shipment["shippedAt"] == NOW.isoformat()
    stored = w.blobs.get(LABELS, f"{REF}/label.pdf")
    assert stored is not None and b"%PDF" not in stored
    assert LabelStore(w.blobs, XorBlobCipher()).get(REF) == b"%PDF label"
    [call] = w.confirmer.calls
    assert call["order_id"] == "111-0000000-0000001" and call["carrier_code"] == "USPS"
    assert call["tracking_number"] == "TN0001" and call["items"] == [("OI-1", 2)]
    assert call["package_reference"] == "1"


def test_carrier_gets_label_minimum_and_no_email() -> None:
    w = World()
    w.add(REF)
    w.service().ship(ShipOrder(REF), NOW)
    [request] = w.carriers["usps"].requests
    assert request.recipient is not None
    assert request.recipient.name == Pii("Jane Doe")
    assert not hasattr(request.recipient, "email")
    assert EMAIL not in repr(request) and "Buyer Name" not in repr(request)


def test_crash_after_purchase_replays_with_same_key_and_buys_once() -> None:
    w = World()
    w.add(REF)
    usps = w.carriers["usps"]
    w.carriers["usps"] = CrashAfterPurchase(usps)
    with pytest.raises(Crash):
        w.service().ship(ShipOrder(REF), NOW)
    assert (w.get(REF).shipment or {})["state"] == "intent"
    assert w.service().ship(ShipOrder(REF), NOW) == [IssueInvoice(REF)]
    assert usps.purchases == 1
    assert len({r.idempotency_key for r in usps.requests}) == 1
    assert len(w.confirmer.calls) == 1
    # A third delivery finds the order shipped: nothing bought, invoicing asked again.
    assert w.service().ship(ShipOrder(REF), NOW) == [IssueInvoice(REF)]
    assert usps.purchases == 1 and len(w.confirmer.calls) == 1


class Killed(BaseException):
    """The worker process dies: no handler in the app runs."""


class DyingConfirmer(FakeConfirmer):
    def confirm_shipment(self, **kwargs: Any) -> None:
        super().confirm_shipment(**kwargs)
        raise Killed


@pytest.mark.parametrize("replay_safe", [True, False])
def test_a_crash_after_the_label_is_stored_confirms_again_and_buys_nothing(replay_safe: bool) -> None:
    w = World()
    w.add(REF)
    usps = FakeCarrier("usps", replay_safe=replay_safe)
    w.carriers["usps"] = usps
    w.confirmer = DyingConfirmer()
    with pytest.raises(Killed):
        w.service().ship(ShipOrder(REF), NOW)
    assert (w.get(REF).shipment or {})["state"] == "intent"  # nothing written after the intent
    w.confirmer = FakeConfirmer()
    assert w.service().ship(ShipOrder(REF), NOW) == [IssueInvoice(REF)]
    shipment = w.get(REF).shipment or {}
    assert shipment["state"] == "shipped" and shipment["trackingNumber"] == "TN0001"
    assert usps.purchases == 1 and len(w.confirmer.calls) == 1
    assert w.confirmer.calls[0]["package_reference"] == "1"  # as the first: an edit at Amazon


def test_a_label_left_by_an_earlier_intent_is_not_taken_for_the_current_one() -> None:
    w = World()
    w.add(REF)
    labels = LabelStore(w.blobs, XorBlobCipher())
    labels.put(REF, b"%PDF old", {"intentId": "earlier", "trackingNumber": "OLD"}, NOW)
    intent = {
        "state": "intent",
        "intentId": "current",
        "carrier": "usps",
        "service": "usps_ground_advantage",
        "rule": "r",
        "parcel": {"weightKg": "1", "lengthCm": "1", "widthCm": "1", "heightCm": "1"},
    }
    w.orders.update(REF, lambda r: r.evolve(shipment=intent))
    assert w.service().ship(ShipOrder(REF), NOW) == [IssueInvoice(REF)]
    assert [r.idempotency_key for r in w.carriers["usps"].requests] == ["current"]
    shipment = w.get(REF).shipment or {}
    assert (shipment["intentId"], shipment["trackingNumber"]) == ("current", "TN0001")
    assert (labels.purchase(REF) or {})["intentId"] == "current"


def test_unresolved_intent_on_non_replay_safe_carrier_goes_to_a_person() -> None:
    w = World()
    w.add(REF)
    usps = FakeCarrier("usps", replay_safe=False)
    w.carriers["usps"] = CrashAfterPurchase(usps)
    with pytest.raises(Crash):
        w.service().ship(ShipOrder(REF), NOW)
    assert w.service().ship(ShipOrder(REF), NOW) == []
    record = w.get(REF)
    assert (record.stage, record.attention) == (Stage.ATTENTION, "label_intent_unresolved")
    assert (record.shipment or {})["intentId"]  # kept so the person can find the label
    assert usps.purchases == 1 and not w.confirmer.calls


def test_address_rejected_marks_attention_without_retry() -> None:
    w = World()
    w.add(REF)
    w.carriers["usps"].fail.append(AddressProblem("rejected"))
    assert w.service().ship(ShipOrder(REF), NOW) == []
    record = w.get(REF)
    assert (record.stage, record.attention, record.shipment) == (Stage.ATTENTION, "address_rejected", None)
    assert w.service().ship(ShipOrder(REF), NOW) == []  # a redelivery does not try again
    assert len(w.carriers["usps"].requests) == 1


def test_phone_required_but_missing() -> None:
    w = World()
    w.add(REF, level="NextDay", addr=address(phone=None))
    assert w.service().ship(ShipOrder(REF), NOW) == []
    assert w.get(REF).attention == "phone_missing"
    assert not w.carriers["fedex"].requests


def test_unsupported_country() -> None:
    w = World()
    w.add(REF, addr=address(country="DE"))
    w.service().ship(ShipOrder(REF), NOW)
    assert w.get(REF).attention == "country_unsupported"


def test_a_carrier_outage_clears_the_intent_and_schedules_the_next_try_instead_of_raising() -> None:
    """Not an error for the host to retry and poison: the order waits in the redrive's index."""
    w = World()
    w.add(REF, ship_by=NOW + timedelta(days=2))
    w.carriers["usps"].fail.append(CarrierUnavailable("503"))
    assert w.service().ship(ShipOrder(REF), NOW) == []
    failed = w.get(REF)
    assert failed.shipment is None and failed.stage is Stage.READY
    assert failed.extra[READY_AT] == (NOW + SHIP_RETRY_FIRST).isoformat() and failed.extra[SHIP_TRIES] == 1
    assert w.service().ship(ShipOrder(REF), NOW + SHIP_RETRY_FIRST) == [IssueInvoice(REF)]
    assert w.carriers["usps"].purchases == 1


def test_each_try_in_an_outage_waits_twice_as_long_up_to_an_hour() -> None:
    w = World()
    w.add(REF, ship_by=NOW + timedelta(days=2))
    now, waits = NOW, []
    for _ in range(7):
        w.carriers["usps"].fail.append(CarrierUnavailable("503"))
        assert w.service().ship(ShipOrder(REF), now) == []
        next_try = datetime.fromisoformat(w.get(REF).extra[READY_AT])
        waits.append(next_try - now)
        now = next_try
    assert [int(wait.total_seconds() // 60) for wait in waits] == [5, 10, 20, 40, 60, 60, 60]
    assert w.service().ship(ShipOrder(REF), now) == [IssueInvoice(REF)]
    assert w.carriers["usps"].purchases == 1


def test_a_try_that_fails_past_the_ship_by_date_hands_the_order_to_a_person() -> None:
    w = World()
    w.add(REF, ship_by=NOW + timedelta(hours=1))
    w.carriers["usps"].fail.append(CarrierUnavailable("503"))
    assert w.service().ship(ShipOrder(REF), NOW) == []  # before it: tried again
    w.carriers["usps"].fail.append(CarrierUnavailable("503"))
    assert w.service().ship(ShipOrder(REF), NOW + timedelta(hours=1)) == []
    held = w.get(REF)
    assert (held.stage, held.attention, held.shipment) == (Stage.ATTENTION, SHIP_BY_PASSED, None)
    assert READY_AT not in held.extra  # out of the redrive's index


def test_without_amazons_ship_by_date_the_bound_is_days_after_the_order_was_placed() -> None:
    w = World()
    w.add(REF)  # placed at NOW, no shipByWindow
    for at in (NOW + SHIP_BY_FALLBACK - timedelta(minutes=1), NOW + SHIP_BY_FALLBACK):
        w.carriers["usps"].fail.append(CarrierUnavailable("503"))
        w.service().ship(ShipOrder(REF), at)
    assert w.get(REF).attention == SHIP_BY_PASSED


def test_amazon_unavailable_for_the_confirmation_keeps_the_label_and_tries_again() -> None:
    w = World()
    w.add(REF, ship_by=NOW + timedelta(days=2))

    class DownConfirmer(FakeConfirmer):
        def confirm_shipment(self, **kwargs: Any) -> None:
            super().confirm_shipment(**kwargs)
            if len(self.calls) <= 2:
                raise TransientError("amazon down", code="spapi_unavailable")

    w.confirmer = DownConfirmer()
    assert w.service().ship(ShipOrder(REF), NOW) == []
    assert w.service().ship(ShipOrder(REF), NOW + SHIP_RETRY_FIRST) == []
    waiting = w.get(REF)
    assert (waiting.shipment or {})["state"] == "purchased" and waiting.extra[SHIP_TRIES] == 2
    later = datetime.fromisoformat(waiting.extra[READY_AT])
    assert w.service().ship(ShipOrder(REF), later) == [IssueInvoice(REF)]
    assert w.carriers["usps"].purchases == 1 and len(w.confirmer.calls) == 3
    assert READY_AT not in w.get(REF).extra


def test_a_store_outage_while_scheduling_the_next_try_is_left_to_the_host() -> None:
    """The try cannot be recorded: the error goes to the host, whose redelivery (or the
    redrive, from the index the order is still in) tries again."""
    w = World()
    w.add(REF, ship_by=NOW + timedelta(days=2))
    w.orders.update(REF, lambda r: r.evolve(extra={**r.extra, READY_AT: NOW.isoformat()}))
    w.carriers["usps"].fail.append(CarrierUnavailable("503"))
    write = w.store.replace

    def down(container: str, doc: dict[str, Any], etag: str) -> dict[str, Any]:
        raise StoreUnavailable("cosmos status 503")

    w.store.replace = down  # type: ignore[method-assign]
    with pytest.raises(StoreUnavailable):
        w.service().ship(ShipOrder(REF), NOW)
    w.store.replace = write  # type: ignore[method-assign]
    assert w.get(REF).extra[READY_AT] == NOW.isoformat() and w.carriers["usps"].purchases == 0


def test_an_order_whose_shipping_started_is_not_due_in_the_redrive_index_while_it_runs() -> None:
    """Ingestion re-sends ShipOrder for ready orders whose time in the `readyAt` index has come;
    writing the intent moves that time RESEND_AFTER ahead, far beyond any purchase."""
    w = World()
    w.add(REF)
    w.orders.update(REF, lambda r: r.evolve(extra={**r.extra, READY_AT: NOW.isoformat()}))
    w.carriers["usps"].fail.append(CarrierUnavailable("503"))
    later = NOW + timedelta(minutes=5)
    write = w.store.replace
    intents: list[dict[str, Any]] = []

    def check_intent(container: str, doc: dict[str, Any], etag: str) -> dict[str, Any]:
        if (doc.get("shipment") or {}).get("state") == "intent":
            intents.append(doc)
            assert doc["extra"][READY_AT] > (later + timedelta(hours=5)).isoformat()
        return write(container, doc, etag)

    w.store.replace = check_intent  # type: ignore[method-assign]
    w.service().ship(ShipOrder(REF), later)  # the carrier fails: the intent is cleared
    retry_at = later + SHIP_RETRY_FIRST
    assert w.get(REF).shipment is None and w.get(REF).extra[READY_AT] == retry_at.isoformat()
    w.service().ship(ShipOrder(REF), retry_at)
    assert w.get(REF).stage is Stage.SHIPPED and READY_AT not in w.get(REF).extra
    assert len(intents) == 2  # the check above saw both purchases' intents


def test_a_shipped_order_drops_the_deadline_it_had_before_shipping() -> None:
    """The unshipped order's deadline (and its Cosmos TTL) may fall before the parcel arrives;
    the purge does not read shipped orders, so TTL would delete it with no audit record."""
    w = World()
    w.add(REF)
    w.orders.update(REF, lambda r: r.evolve(purge_after=NOW + timedelta(days=1), ttl=90_000))
    w.service().ship(ShipOrder(REF), NOW)
    shipped = w.get(REF)
    assert shipped.stage is Stage.SHIPPED and (shipped.purge_after, shipped.ttl) == (None, None)


def test_a_timeout_keeps_the_intent_and_schedules_a_replay_with_the_same_key() -> None:
    """The label may have been bought: not poisoned after the host's retries, and not cleared
    (a new key could buy a second label); the redrive sends it again after the back-off."""
    w = World()
    w.add(REF, ship_by=NOW + timedelta(days=2))
    w.carriers["usps"].fail.append(CarrierTimeout("slow"))
    assert w.service().ship(ShipOrder(REF), NOW) == []
    waiting = w.get(REF)
    intent = (waiting.shipment or {})["intentId"]
    assert (waiting.stage, (waiting.shipment or {})["state"]) == (Stage.READY, "intent")
    assert waiting.extra[READY_AT] == (NOW + SHIP_RETRY_FIRST).isoformat()
    assert [due.ref for due in w.orders.due_to_send(NOW + SHIP_RETRY_FIRST)] == [REF]
    assert may_ship_again(waiting)
    assert w.service().ship(ShipOrder(REF), NOW + SHIP_RETRY_FIRST) == [IssueInvoice(REF)]
    assert [r.idempotency_key for r in w.carriers["usps"].requests] == [intent, intent]


def test_an_outage_on_the_replay_after_a_timeout_still_never_changes_the_key() -> None:
    w = World()
    w.add(REF, ship_by=NOW + timedelta(days=2))
    w.carriers["usps"].fail.extend([CarrierTimeout("slow"), CarrierUnavailable("503")])
    _ship_as_the_redrive_sends(w, NOW, tries=3)
    keys = {r.idempotency_key for r in w.carriers["usps"].requests}
    assert len(w.carriers["usps"].requests) == 3 and len(keys) == 1
    assert w.get(REF).stage is Stage.SHIPPED and w.carriers["usps"].purchases == 1


def _ship_as_the_redrive_sends(w: World, now: datetime, tries: int) -> datetime:
    """Ships the order `tries` times, each time when the redrive's index says it is due (it
    must be due each time until it ships); returns the time of the last try."""
    for _ in range(tries):
        w.service().ship(ShipOrder(REF), now)
        if w.get(REF).stage is not Stage.READY:
            return now
        now = datetime.fromisoformat(w.get(REF).extra[READY_AT])
        assert [due.ref for due in w.orders.due_to_send(now)] == [REF]
    raise AssertionError(f"not shipped after {tries} tries")


def test_a_timeout_on_a_carrier_that_cannot_replay_goes_to_a_person_on_the_next_try() -> None:
    w = World()
    w.add(REF, ship_by=NOW + timedelta(days=2))
    w.carriers["usps"] = usps = FakeCarrier("usps", replay_safe=False)
    usps.fail.append(CarrierTimeout("slow"))
    w.service().ship(ShipOrder(REF), NOW)
    assert w.service().ship(ShipOrder(REF), NOW + SHIP_RETRY_FIRST) == []
    held = w.get(REF)
    assert (held.stage, held.attention) == (Stage.ATTENTION, "label_intent_unresolved")
    assert (held.shipment or {})["intentId"] and READY_AT not in held.extra
    assert usps.purchases == 0


def test_a_carrier_refusal_goes_to_a_person_with_its_code_and_is_not_tried_again() -> None:
    w = World()
    w.add(REF, ship_by=NOW + timedelta(days=2))
    w.carriers["usps"].fail.append(CarrierError("usps refused the request", code="carrier_refused_usps"))
    assert w.service().ship(ShipOrder(REF), NOW) == []
    held = w.get(REF)
    assert (held.stage, held.attention, held.shipment) == (Stage.ATTENTION, "carrier_refused_usps", None)
    assert READY_AT not in held.extra and not w.orders.due_to_send(NOW + timedelta(days=1))
    assert w.service().ship(ShipOrder(REF), NOW) == []  # a redelivery does not try again
    assert len(w.carriers["usps"].requests) == 1


def test_an_address_rejected_after_the_ship_by_date_keeps_its_own_code() -> None:
    w = World()
    w.add(REF, ship_by=NOW - timedelta(hours=1))
    w.carriers["usps"].fail.append(AddressProblem("rejected"))
    w.service().ship(ShipOrder(REF), NOW)
    assert w.get(REF).attention == "address_rejected"


def test_a_bought_label_is_confirmed_even_after_the_ship_by_date_passed() -> None:
    """Only the confirmation remains: the order is never handed to a person for it (the
    orders-not-shipping gauge counts it meanwhile)."""
    w = World()
    w.add(REF, ship_by=NOW + timedelta(minutes=10))

    class DownConfirmer(FakeConfirmer):
        def confirm_shipment(self, **kwargs: Any) -> None:
            super().confirm_shipment(**kwargs)
            if len(self.calls) <= 4:
                raise TransientError("amazon down", code="spapi_unavailable")

    w.confirmer = DownConfirmer()
    now = _ship_as_the_redrive_sends(w, NOW, tries=5)
    assert now > NOW + timedelta(minutes=10)
    assert w.get(REF).stage is Stage.SHIPPED and w.carriers["usps"].purchases == 1
    assert len(w.confirmer.calls) == 5


def test_buy_shipping_sends_no_address_and_skips_confirmation() -> None:
    w = World()
    w.add(REF, marketplace="A1F83G8C2ARO7P", addr=address(country="GB"))
    assert w.service().ship(ShipOrder(REF), NOW) == [IssueInvoice(REF)]
    [request] = w.carriers["amazon"].requests
    assert request.recipient is None and request.amazon_order_id == "111-0000000-0000001"
    assert [(i.order_item_id, i.quantity) for i in request.items] == [("OI-1", 2)]
    assert not w.confirmer.calls
    assert w.get(REF).stage is Stage.SHIPPED


@pytest.mark.parametrize(
    ("stage", "restricted"),
    [(Stage.CANCELLED, False), (Stage.AWAITING, False), (Stage.ATTENTION, False), (Stage.READY, True)],
)
def test_skips_orders_not_to_ship(stage: Stage, restricted: bool) -> None:
    w = World()
    w.add(REF, stage=stage, restricted=restricted)
    assert w.service().ship(ShipOrder(REF), NOW) == []
    assert not w.carriers["usps"].requests and w.cipher.opened == 0


def test_missing_order_is_skipped() -> None:
    assert World().service().ship(ShipOrder(REF), NOW) == []


def test_state_holds_no_pii() -> None:
    w = World()
    w.add(REF)
    w.service().ship(ShipOrder(REF), NOW)
    label_metadata = json.dumps(list(w.blobs.metadata_of.values()))
    assert "TN0001" in label_metadata  # the purchase is there, and nothing personal
    text = json.dumps(w.get(REF).to_doc()) + repr(w.confirmer.calls[0]["carrier_name"]) + label_metadata
    for secret in ("Jane Doe", "2 Main St", "Austin", "78701", "5125550100", EMAIL):
        assert secret not in text


@pytest.mark.parametrize("replay_safe", [True, False])
def test_the_purchase_is_recorded_beside_the_label_not_in_a_write_of_its_own(replay_safe: bool) -> None:
    """Intent, then shipped (label, tracking and confirmation in one write), on every kind of
    carrier: the label's blob holds the purchase in between."""
    w = World()
    w.add(REF)
    w.carriers["usps"] = FakeCarrier("usps", replay_safe=replay_safe)
    counting = CountingStore(w.store)
    service = ShippingService(
        OrderRepository(counting),
        w.cipher,
        ShippingRules(RULES),
        lambda seller: w.carriers,
        LabelStore(w.blobs, XorBlobCipher()),
        w.confirmer,
    )
    assert service.ship(ShipOrder(REF), NOW) == [IssueInvoice(REF)]
    assert counting.counts["orders.write"] == 2
    shipment = w.get(REF).shipment or {}
    assert shipment["state"] == "shipped" and shipment["labelBlob"] == f"{REF}/label.pdf"
    assert shipment["trackingNumber"] == "TN0001" and shipment["purchasedAt"] == NOW.isoformat()


def test_crash_between_purchase_record_and_confirmation_confirms_once_more_at_most() -> None:
    w = World()
    w.add(REF)

    class FailingConfirmer(FakeConfirmer):
        def confirm_shipment(self, **kwargs: Any) -> None:
            super().confirm_shipment(**kwargs)
            if len(self.calls) == 1:
                raise TransientError("throttled")

    w.confirmer = FailingConfirmer()
    assert w.service().ship(ShipOrder(REF), NOW) == []  # tried again after the back-off
    assert (w.get(REF).shipment or {})["state"] == "purchased"
    assert w.service().ship(ShipOrder(REF), NOW) == [IssueInvoice(REF)]
    assert w.carriers["usps"].purchases == 1
    # Same packageReferenceId both times: Amazon treats the second as an edit of the first.
    assert {c["package_reference"] for c in w.confirmer.calls} == {"1"}


def test_a_label_bought_for_an_order_cancelled_meanwhile_stays_on_record() -> None:
    """Replay-safe carrier: the label is not written before the shipped write; if that write
    finds the order cancelled, the label is still recorded (it exists at the carrier)."""
    w = World()
    w.add(REF)
    store = w.store

    class CancellingConfirmer(FakeConfirmer):
        def confirm_shipment(self, **kwargs: Any) -> None:
            super().confirm_shipment(**kwargs)
            OrderRepository(store).update(REF, lambda r: r.evolve(stage=Stage.CANCELLED))

    w.confirmer = CancellingConfirmer()
    assert w.service().ship(ShipOrder(REF), NOW) == []
    record = w.get(REF)
    assert record.stage is Stage.CANCELLED
    shipment = record.shipment or {}
    assert shipment["state"] == "purchased" and shipment["trackingNumber"] == "TN0001"


def test_through_the_retention_schedule_a_shipped_order_is_due_for_its_delivery_check() -> None:
    w = World()
    w.add(REF)
    policy = RetentionPolicy(retention_days=7, delivery_grace_days=3, recoverability_days=28)
    scheduled = OrderRepository(w.store, Settle(policy, lambda: NOW))
    service = ShippingService(
        scheduled,
        w.cipher,
        ShippingRules(RULES),
        lambda seller: w.carriers,
        LabelStore(w.blobs, XorBlobCipher()),
        w.confirmer,
    )
    service.ship(ShipOrder(REF), NOW)
    record = w.get(REF)
    assert record.stage is Stage.SHIPPED and record.due_at == NOW + policy.recheck


def test_a_throttled_confirmation_is_left_to_the_host_which_waits_as_told() -> None:
    """Throttling names its wait: the host re-queues the message with it (never poisoned), so
    the order is not made due in the redrive's index too (a second message could race the
    first)."""
    w = World()
    w.add(REF, ship_by=NOW + timedelta(days=2))

    class Throttled(TransientError):
        code = "spapi_throttled"
        retry_after_s = 2.0

    class ThrottledConfirmer(FakeConfirmer):
        def confirm_shipment(self, **kwargs: Any) -> None:
            super().confirm_shipment(**kwargs)
            if len(self.calls) == 1:
                raise Throttled("confirmShipment throttled")

    w.confirmer = ThrottledConfirmer()
    with pytest.raises(Throttled):
        w.service().ship(ShipOrder(REF), NOW)
    waiting = w.get(REF)
    assert (waiting.shipment or {})["state"] == "purchased"
    # Only the lost-message net the intent's write set: not due for hours.
    assert waiting.extra[READY_AT] == (NOW + RESEND_AFTER).isoformat()
    assert w.service().ship(ShipOrder(REF), NOW) == [IssueInvoice(REF)]


def test_a_refusal_on_the_replay_of_a_purchase_in_doubt_keeps_its_intent_for_the_person() -> None:
    """The first try timed out (a label may exist); the replay is refused: the person gets the
    carrier's code and the intent, to find and void a label bought by the first try."""
    w = World()
    w.add(REF, ship_by=NOW + timedelta(days=2))
    w.carriers["usps"].fail.extend([CarrierTimeout("slow"), AddressProblem("rejected")])
    w.service().ship(ShipOrder(REF), NOW)
    intent = (w.get(REF).shipment or {})["intentId"]
    w.service().ship(ShipOrder(REF), NOW + SHIP_RETRY_FIRST)
    held = w.get(REF)
    assert (held.stage, held.attention) == (Stage.ATTENTION, "address_rejected")
    assert (held.shipment or {}).get("intentId") == intent


class LabelsDown(MemoryBlobStore):
    """Blob storage that refuses `failures` writes, then works."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def put(self, container: str, name: str, data: bytes, metadata: Mapping[str, str] | None = None) -> None:
        if self.failures:
            self.failures -= 1
            raise BlobUnavailable("blob status 503")
        super().put(container, name, data, metadata)


def test_a_label_sold_while_storage_is_down_is_found_by_the_redrive_not_abandoned() -> None:
    """Every delivery of the message dies after the carrier sold the label (blob storage down):
    the order stays in the redrive's index from its intent's write, is sent again then, and the
    replay's same key ships it with the label bought first."""
    w = World(blobs=LabelsDown(failures=MAX_DEQUEUE_COUNT))
    w.add(REF, ship_by=NOW + timedelta(days=2))
    for _ in range(MAX_DEQUEUE_COUNT):  # the host's deliveries, then the poison queue
        with pytest.raises(BlobUnavailable):
            w.service().ship(ShipOrder(REF), NOW)
    stuck = w.get(REF)
    assert (stuck.stage, (stuck.shipment or {})["state"]) == (Stage.READY, "intent")
    assert [due.ref for due in w.orders.due_to_send(NOW + RESEND_AFTER)] == [REF]
    assert w.service().ship(ShipOrder(REF), NOW + RESEND_AFTER) == [IssueInvoice(REF)]
    assert w.carriers["usps"].purchases == 1 and len(w.confirmer.calls) == 1
