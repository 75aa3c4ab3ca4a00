"""A poll that fails part-way still hands on the orders it stored (found by fault injection:
tests/integration/test_fault_injection.py). A stored order is never "new" to a later poll, so
a dropped ShipOrder would leave it ready to ship and never shipped."""

from __future__ import annotations

import pytest

from shared.storage.document_store import ORDERS, Document, StoreUnavailable
from tests.fakes import audit_trail
from tests.worlds.ingestion import World, orders_in


def test_messages_of_stored_orders_survive_a_store_failure_later_in_the_poll() -> None:
    world = World(orders_in(30, statuses={"UNSHIPPED": 1.0}, afn_share=0.0))
    creates = world.store.create
    failing = {"on": True}

    def create(container: str, doc: Document) -> Document:
        if failing["on"] and container == ORDERS and len(world.stored()) == 12:
            raise StoreUnavailable("cosmos status 429")
        return creates(container, doc)

    world.store.create = create  # type: ignore[method-assign]
    first = world.poll()
    failing["on"] = False
    world.clock.advance(600)
    later = world.poll()

    ready = {d["id"] for d in world.stored().values() if d["stage"] == "ready_to_ship"}
    assert len(ready) == 30
    assert len(first) == 12
    assert {m.ref for m in first} | {m.ref for m in later} == ready


@pytest.mark.parametrize(
    ("action", "once_key", "by"),
    [("purged", "order", "purge_expired"), ("erased", "req-00000001", "handle_privacy_request")],
)
def test_a_forgotten_order_is_not_stored_again_when_amazon_changes_it(
    action: str, once_key: str, by: str
) -> None:
    from shared.storage.audit import AuditAction

    order = orders_in(1, statuses={"UNSHIPPED": 1.0}, afn_share=0.0)[0]
    world = World([order])
    world.poll()
    ref = world.ref(order["orderId"])
    # What retention (purge) or a privacy erasure leaves: its audit record, no document.
    audit_trail(world.store).record(ref, AuditAction(action), world.now(), by, once_key=once_key)
    world.repo.delete(ref)
    world.clock.advance(3600)
    world.stand_in.set_fulfillment_status(order["orderId"], "SHIPPED")
    world.clock.advance(600)

    assert world.poll() == []
    assert world.stored() == {}


def test_a_restrict_request_for_an_order_not_yet_seen_holds_it_restricted() -> None:
    """Not forgotten (the order is stored), but held as restricted: nothing is sent to
    shipping, now or by the redrive."""
    from shared.orders.lifecycle import RESEND_AFTER
    from shared.storage.audit import AuditAction

    order = orders_in(1, statuses={"UNSHIPPED": 1.0}, afn_share=0.0)[0]
    world = World([order])
    ref = world.ref(order["orderId"])
    audit_trail(world.store).record(ref, AuditAction.RESTRICTED, world.now(), "ops", once_key="req-00000002")
    assert world.poll() == [] and world.stored()[ref]["restricted"] is True
    world.clock.advance(RESEND_AFTER.total_seconds() + 60)
    assert world.poll() == []


def test_a_notification_whose_marker_write_fails_still_sends_its_order_on() -> None:
    from shared.orders.messages import ShipOrder
    from shared.storage.document_store import STATE
    from tests.worlds.ingestion import notification, one_order

    order = one_order("UNSHIPPED")
    world = World([order])
    creates = world.store.create

    def create(container: str, doc: Document) -> Document:
        if container == STATE and str(doc["id"]).startswith("notification|"):
            raise StoreUnavailable("cosmos status 429")
        return creates(container, doc)

    world.store.create = create  # type: ignore[method-assign]
    body = notification(order, change_time=order["lastUpdatedTime"])
    sent = list(world.service.handle_notification(body, 1, world.now()))

    assert sent == [ShipOrder(world.ref(order["orderId"]))]
