"""What Amazon's later updates may and may not change on a stored order: a restriction, an
erasure under way, a cancellation before shipping, a shipment made outside this app."""

from __future__ import annotations

import json

import pytest

from shared.crypto.pii import Pii
from shared.errors import TransientError
from shared.ingestion.amazon_orders import order_from_api
from shared.ingestion.rate_budget import GET_ORDER
from shared.ingestion.service import SHIPPED_ELSEWHERE
from shared.orders.deadlines import RetentionPolicy, first_delivery_check
from shared.orders.domain import Buyer
from shared.orders.lifecycle import PARTIALLY_SHIPPED, RESEND_AFTER, SHIP_BY_PASSED, Settle
from shared.orders.messages import ShipOrder
from shared.orders.record import OrderPii, Stage
from shared.privacy.service import PrivacyService
from shared.storage.document_store import StoreUnavailable
from tests.fakes import MemoryBlobs, audit_trail
from tests.worlds.ingestion import SELLER, World, amazon_changes, notification, one_order

POLICY = RetentionPolicy(retention_days=7, delivery_grace_days=3, recoverability_days=28)


def test_a_restriction_survives_the_order_becoming_shippable_and_nothing_is_shipped() -> None:
    order = one_order("PENDING")
    world = World([order])
    world.poll()
    ref = world.ref(order["orderId"])
    PrivacyService(
        world.store, cipher=world.cipher, blobs=MemoryBlobs(), policy=POLICY, audit=audit_trail(world.store)
    ).restrict(ref, "req-00000001", world.now())
    sealed = world.stored()[ref]["pii"]

    amazon_changes(world, order["orderId"], "UNSHIPPED")
    sent = world.poll()

    doc = world.stored()[ref]
    assert doc["restricted"] is True and doc["stage"] == Stage.AWAITING.value
    assert doc["amazonStatus"] == "UNSHIPPED" and doc["pii"] == sealed  # nothing re-learnt
    assert sent == []


class _BlobsDown(MemoryBlobs):
    def delete_prefix(self, container: str, prefix: str) -> list[str]:
        raise StoreUnavailable("blob service down")


def test_an_order_being_erased_does_not_get_its_buyer_data_back_from_a_poll() -> None:
    order = one_order("UNSHIPPED")
    world = World([order])
    world.poll()
    ref = world.ref(order["orderId"])
    privacy = PrivacyService(
        world.store, cipher=world.cipher, blobs=_BlobsDown(), policy=POLICY, audit=audit_trail(world.store)
    )
    with pytest.raises(TransientError):
        privacy.delete(ref, "req-00000009", world.now())  # the shell is written, the blobs fail
    assert world.stored()[ref]["pii"] is None

    amazon_changes(world, order["orderId"], "UNSHIPPED")
    assert world.poll() == []

    shell = world.stored()[ref]
    assert shell["pii"] is None and shell["items"] == [] and "erasure" in shell["extra"]


def test_a_cancellation_takes_the_buyer_data_of_an_order_waiting_for_a_person() -> None:
    order = one_order("UNSHIPPED")
    world = World([order])
    world.poll()
    ref = world.ref(order["orderId"])
    world.repo.update(ref, lambda r: r.evolve(stage=Stage.ATTENTION, attention=SHIP_BY_PASSED))

    amazon_changes(world, order["orderId"], "CANCELLED")
    world.poll()

    doc = world.stored()[ref]
    assert (doc["stage"], doc["pii"], doc["attention"]) == (Stage.CANCELLED.value, None, None)


def test_an_order_shipped_outside_the_app_is_never_sent_to_shipping_again() -> None:
    order = one_order("UNSHIPPED")
    world = World([order])
    assert world.poll()  # its ShipOrder is lost, say: the redrive would send it again
    ref = world.ref(order["orderId"])

    amazon_changes(world, order["orderId"], "SHIPPED")  # the seller shipped it by hand
    world.poll()
    world.clock.advance(RESEND_AFTER.total_seconds() + 60)
    assert world.poll() == []

    record = world.repo.get(ref)
    assert record is not None and record.stage is Stage.SHIPPED and record.shipment is None
    assert record.extra[SHIPPED_ELSEWHERE] is True
    # Its unshipped deadline is dropped, so the app's retention schedule (which this test's
    # repository does not apply) tracks it as a shipped order: a first delivery check.
    assert (record.purge_after, record.due_at) == (None, None)
    scheduled = Settle(POLICY, world.now)(record)
    assert scheduled.due_at == first_delivery_check(record, world.now(), POLICY)


def test_a_cancellation_notification_is_fetched_at_once_not_left_to_the_next_poll() -> None:
    first, order = one_order("UNSHIPPED", seed=1), one_order("UNSHIPPED", seed=2)
    world = World([first, order])
    world.poll()  # the timer runs, so other notifications are left to its next poll
    ref = world.ref(order["orderId"])
    world.clock.advance(60)
    world.stand_in.set_fulfillment_status(order["orderId"], "CANCELLED")
    changed = world.stand_in.order(order["orderId"])["lastUpdatedTime"]
    body = json.loads(notification(order, change_time=changed))
    body["Payload"]["OrderChangeNotification"]["Summary"]["OrderStatus"] = "Canceled"

    world.service.handle_notification(json.dumps(body).encode(), 1, world.now())

    doc = world.stored()[ref]
    assert (doc["stage"], doc["pii"]) == (Stage.CANCELLED.value, None)
    assert world.stand_in.calls[GET_ORDER] == 1


@pytest.mark.parametrize("first", ["UNSHIPPED", "PENDING"])
def test_a_correction_survives_amazons_next_update_and_the_rest_follows_amazon(first: str) -> None:
    order = one_order(first)
    world = World([order])
    world.poll()
    ref = world.ref(order["orderId"])
    privacy = PrivacyService(
        world.store, cipher=world.cipher, blobs=MemoryBlobs(), policy=POLICY, audit=audit_trail(world.store)
    )
    privacy.correct(ref, {"shipTo.line1": Pii("Corrected Street 1"), "buyer.email": None}, world.now())

    amazon_changes(world, order["orderId"], "UNSHIPPED")  # any update of Amazon's
    world.poll()

    record = world.repo.get(ref)
    assert record is not None and record.pii is not None and record.stage is Stage.READY
    pii = world.cipher.open(ref, record.pii)
    amazon = world.cipher.open(
        ref, world.cipher.seal(ref, OrderPii.of(order_from_api(order, SELLER)), world.now())
    )
    assert pii.ship_to is not None and amazon.ship_to is not None
    assert pii.ship_to.line1 == Pii("Corrected Street 1") and pii.buyer.email is None
    assert pii.ship_to.city == amazon.ship_to.city and pii.buyer.name == amazon.buyer.name


def test_an_order_that_cannot_be_read_is_held_for_a_person_and_read_again_when_it_changes() -> None:
    order = one_order("UNSHIPPED")
    city = order["recipient"]["deliveryAddress"].pop("city")  # Amazon's model requires none
    world = World([order])
    assert world.poll() == []
    ref = world.ref(order["orderId"])

    held = world.repo.get(ref)
    assert held is not None and held.stage is Stage.ATTENTION and held.attention == "order_unmappable"
    assert held.items == () and held.ship_country is None and held.pii is not None
    assert world.cipher.open(ref, held.pii) == OrderPii(order["orderId"], Buyer(), None)  # the id only
    assert world.service.last_poll.skipped == {"order_unmappable": 1}

    world.clock.advance(300)
    fixed = world.stand_in.order(order["orderId"])
    fixed["recipient"]["deliveryAddress"]["city"] = city
    fixed["lastUpdatedTime"] = world.now().isoformat().replace("+00:00", "Z")
    world.stand_in.add_orders([fixed])
    world.clock.advance(300)

    assert world.poll() == [ShipOrder(ref)]
    record = world.repo.get(ref)
    assert record is not None and record.stage is Stage.READY and record.attention is None


def test_a_partially_shipped_order_goes_to_a_person_not_to_shipping() -> None:
    """Some units left outside this app: labelling and confirming the whole order again would
    ship them twice."""
    arrives_partial, becomes_partial = one_order("PARTIALLY_SHIPPED", seed=1), one_order("UNSHIPPED", seed=2)
    world = World([arrives_partial, becomes_partial])
    assert world.poll() == [ShipOrder(world.ref(becomes_partial["orderId"]))]
    amazon_changes(world, becomes_partial["orderId"], "PARTIALLY_SHIPPED")
    world.poll()
    world.clock.advance(RESEND_AFTER.total_seconds() + 60)
    assert world.poll() == []  # nothing redriven either
    for order in (arrives_partial, becomes_partial):
        doc = world.stored()[world.ref(order["orderId"])]
        assert (doc["stage"], doc["attention"]) == (Stage.ATTENTION.value, PARTIALLY_SHIPPED)
