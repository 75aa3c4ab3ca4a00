"""IngestionService against an in-process SP-API stand-in (no sockets) and an in-memory store
(the world: tests/worlds/ingestion.py)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta

import pytest
from azure.functions.queue import QueueMessage

from local.spapi_server import Plan
from shared.ingestion.notifications import NotificationRejected
from shared.ingestion.rate_budget import GET_ORDER, SEARCH_ORDERS
from shared.ingestion.service import (
    CURSOR_HEARTBEAT,
    NOT_FOUND_RETRIES,
    IngestThrottled,
    OrderNotFound,
    OrderNotYetVisible,
    OrderWithoutAddress,
    UnknownMarketplace,
    UnknownSeller,
)
from shared.orders.messages import ORDER_NOTIFICATIONS, ShipOrder
from shared.orders.record import Stage
from shared.storage.document_store import STATE
from shared.telemetry.message_failures import MAX_DEQUEUE_COUNT, MessageFailures
from tests.fakes import FakeSender
from tests.worlds.ingestion import DE, FR, SELLER, START, World, notification, one_order, orders_in

# ---- polling ---------------------------------------------------------------------------------


def test_backfill_stores_each_merchant_order_once_and_enqueues_ready_ones_once() -> None:
    orders = orders_in(250)
    world = World(orders)
    ready = world.poll()
    mfn = [o for o in orders if o["fulfillment"]["fulfilledBy"] == "MERCHANT"]
    stored = world.stored()
    assert set(stored) == {world.ref(o["orderId"]) for o in mfn}
    assert len(world.store.order_writes) == len(mfn)
    shippable = {world.ref(o["orderId"]) for o in mfn if o["fulfillment"]["fulfillmentStatus"] == "UNSHIPPED"}
    assert sorted(m.ref for m in ready) == sorted(shippable)
    assert all(stored[r]["stage"] == Stage.READY for r in shippable)
    cancelled = [world.ref(o["orderId"]) for o in mfn if o["fulfillment"]["fulfillmentStatus"] == "CANCELLED"]
    assert cancelled and all(stored[r]["pii"] is None for r in cancelled)
    assert world.stand_in.calls[SEARCH_ORDERS] == 3 and world.service.last_poll.pages == 3

    world.clock.advance(300)
    assert world.poll() == []
    assert len(world.store.order_writes) == len(mfn)
    assert world.stand_in.throttled[SEARCH_ORDERS] == 0


def test_watermark_moves_to_amazons_bound_and_later_changes_are_picked_up() -> None:
    orders = orders_in(30, afn_share=0.0)
    world = World(orders)
    world.poll()
    cursor = world.store.read(STATE, f"seller|{SELLER}", "orders-cursor")
    assert cursor is not None and cursor["cycle"] is None
    assert cursor["watermark"] == (START - timedelta(minutes=2)).isoformat()

    pending = next(o for o in orders if o["fulfillment"]["fulfillmentStatus"] == "PENDING")
    world.clock.advance(600)
    world.stand_in.set_fulfillment_status(pending["orderId"], "UNSHIPPED")
    world.clock.advance(300)
    assert world.poll() == [ShipOrder(world.ref(pending["orderId"]))]
    world.clock.advance(300)
    assert world.poll() == []  # the overlap re-reads it, unchanged: nothing written or sent


def test_a_backfill_larger_than_the_burst_continues_from_the_saved_page() -> None:
    orders = orders_in(2300, afn_share=0.0)
    world = World(orders)
    ready = world.poll()
    assert world.service.last_poll.pages == 20  # the burst
    cursor = world.store.read(STATE, f"seller|{SELLER}", "orders-cursor")
    assert cursor is not None and cursor["cycle"]["token"]
    polls = 0
    while world.store.read(STATE, f"seller|{SELLER}", "orders-cursor")["cycle"]:  # type: ignore[index]
        world.clock.advance(60)
        ready += world.poll()
        polls += 1
    assert len(world.stored()) == 2300 and len(world.store.order_writes) == 2300
    assert len(ready) == len({m.ref for m in ready})
    assert world.stand_in.calls[SEARCH_ORDERS] == 23 and world.stand_in.throttled[SEARCH_ORDERS] == 0
    # Three more pages at 0.0056/s: about 3 x 179 s, polled each minute.
    assert 8 <= polls <= 10


def test_a_throttled_page_stops_the_poll_and_the_next_poll_retries_it() -> None:
    world = World(orders_in(150, afn_share=0.0))
    world.stand_in.fail_next(SEARCH_ORDERS, 429)
    assert world.poll() == [] and world.service.last_poll.throttled == 1
    assert world.stored() == {}
    # The 429 emptied our budget: it refills at Amazon's rate, one page per ~179 s.
    world.clock.advance(200)
    assert world.poll() and len(world.stored()) == 100
    world.clock.advance(180)
    world.poll()
    assert len(world.stored()) == 150 and world.stand_in.throttled[SEARCH_ORDERS] == 0


def test_an_outage_keeps_the_cursor_and_the_next_poll_finishes() -> None:
    world = World(orders_in(150, afn_share=0.0))
    world.poll()
    assert len(world.stored()) == 150
    world.clock.advance(60)
    new = one_order("UNSHIPPED", seed=99)
    new["lastUpdatedTime"] = world.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    world.stand_in.add_orders([new])
    world.clock.advance(300)
    world.stand_in.fail_next(SEARCH_ORDERS, 500)
    assert world.poll() == [] and world.service.last_poll.skipped == {"spapi_unavailable": 1}
    world.clock.advance(300)
    assert world.poll() == [ShipOrder(world.ref(new["orderId"]))]


def test_a_poll_that_finds_nothing_writes_nothing_until_the_heartbeat() -> None:
    world = World(orders_in(30, afn_share=0.0))
    world.poll()
    # One write per page, cursor and searchOrders budget together; no budget document.
    assert world.store.state_writes == ["orders-cursor"]
    cursor = world.store.read(STATE, f"seller|{SELLER}", "orders-cursor")
    assert cursor is not None and cursor["budget"]["tokens"] == 19.0
    searches = world.stand_in.calls[SEARCH_ORDERS]
    for _ in range(12):
        world.clock.advance(300)
        assert world.poll() == []
    assert world.stand_in.calls[SEARCH_ORDERS] == searches + 12  # it did poll, every time
    assert world.store.state_writes == ["orders-cursor"]
    world.clock.advance(CURSOR_HEARTBEAT.total_seconds())
    world.poll()
    assert world.store.state_writes == ["orders-cursor"] * 2
    # A change found is written at once, with the watermark moved past it.
    pending = next(
        o for o in orders_in(30, afn_share=0.0) if o["fulfillment"]["fulfillmentStatus"] == "PENDING"
    )
    world.stand_in.set_fulfillment_status(pending["orderId"], "UNSHIPPED")
    world.clock.advance(300)
    assert world.poll() == [ShipOrder(world.ref(pending["orderId"]))]
    assert world.store.state_writes == ["orders-cursor"] * 3


def test_polls_faster_than_the_budget_refills_record_every_token() -> None:
    world = World(orders_in(5, afn_share=0.0), poll_interval=timedelta(minutes=1))
    for _ in range(25):
        world.poll()
        world.clock.advance(60)
    # A token refills in 179 s: unrecorded tokens would overdraw Amazon's bucket.
    assert world.store.state_writes == ["orders-cursor"] * 25
    assert world.stand_in.throttled[SEARCH_ORDERS] == 0


@pytest.mark.parametrize("stopped", [timedelta(minutes=15), timedelta(hours=3)])
def test_with_no_poll_seen_lately_a_notification_is_fetched_not_left_to_the_poll(stopped: timedelta) -> None:
    first, later = one_order("UNSHIPPED", seed=1), one_order("PENDING", seed=2)
    world = World([first, later])
    world.poll()
    world.clock.advance(stopped.total_seconds())  # the timer stopped, or its polls were quiet
    world.stand_in.set_fulfillment_status(later["orderId"], "UNSHIPPED")
    changed = world.stand_in.order(later["orderId"])["lastUpdatedTime"]
    assert world.service.handle_notification(notification(later, change_time=changed), 1, world.now())
    assert world.stand_in.calls[GET_ORDER] == 1


def test_a_slower_rate_from_amazon_is_recorded_and_every_token_counted_from_then_on() -> None:
    world = World(orders_in(5, afn_share=0.0))
    world.poll()
    world.stand_in.plans[SEARCH_ORDERS] = Plan(0.001, 20)  # one token in 1,000 s: slower than the timer
    for _ in range(3):
        world.clock.advance(300)
        world.poll()
    assert world.store.state_writes == ["orders-cursor"] * 4
    cursor = world.store.read(STATE, f"seller|{SELLER}", "orders-cursor")
    assert cursor is not None and cursor["budget"]["rate"] == 0.001


def test_stage_transitions_and_orders_past_ready_keep_their_stage() -> None:
    order = one_order("PENDING")
    world = World([order])
    assert world.poll() == []
    ref = world.ref(order["orderId"])
    assert world.stored()[ref]["stage"] == Stage.AWAITING and world.stored()[ref]["pii"]

    world.clock.advance(300)
    world.stand_in.set_fulfillment_status(order["orderId"], "UNSHIPPED")
    world.clock.advance(300)
    assert world.poll() == [ShipOrder(ref)]

    # The shipping stage moves it on; later Amazon changes update facts only.
    record = world.repo.get(ref)
    assert record is not None
    world.repo.replace(record.evolve(stage=Stage.SHIPPED))
    world.clock.advance(300)
    world.stand_in.set_fulfillment_status(order["orderId"], "SHIPPED")
    world.stand_in.add_orders(
        [
            {
                **world.stand_in.order(order["orderId"]),
                "packages": [
                    {
                        "packageReferenceId": "1",
                        "packageStatus": {"status": "DELIVERED"},
                        "trackingNumber": "T1",
                    }
                ],
            }
        ]
    )
    world.clock.advance(300)
    assert world.poll() == []
    doc = world.stored()[ref]
    assert doc["stage"] == Stage.SHIPPED and doc["amazonStatus"] == "SHIPPED"
    assert doc["extra"]["packages"][0]["status"] == "DELIVERED" and doc["pii"]


def test_cancelling_a_ready_order_stops_it_and_deletes_its_pii() -> None:
    order = one_order("UNSHIPPED")
    world = World([order])
    ref = world.ref(order["orderId"])
    assert world.poll() == [ShipOrder(ref)]
    world.clock.advance(300)
    world.stand_in.set_fulfillment_status(order["orderId"], "CANCELLED")
    world.clock.advance(300)
    assert world.poll() == []
    doc = world.stored()[ref]
    assert doc["stage"] == Stage.CANCELLED and doc["pii"] is None


def test_a_ready_order_without_address_needs_attention_and_is_not_enqueued() -> None:
    order = one_order("UNSHIPPED")
    del order["recipient"]
    world = World([order])
    assert world.poll() == []
    doc = world.stored()[world.ref(order["orderId"])]
    assert doc["stage"] == Stage.ATTENTION and doc["attention"] == "order_without_address"


def test_unmappable_orders_are_skipped_with_a_reason_and_do_not_block_the_rest() -> None:
    good, bad = one_order("UNSHIPPED", seed=1), one_order("UNSHIPPED", seed=2)
    bad["fulfillment"]["fulfillmentStatus"] = "SOMETHING_NEW"
    world = World([good, bad])
    world.stand_in._orders[bad["orderId"]]["fulfillment"]["fulfillmentStatus"] = "SOMETHING_NEW"
    assert world.poll() == [ShipOrder(world.ref(good["orderId"]))]
    assert world.service.last_poll.skipped == {"order_unmappable": 1}


# ---- notifications ---------------------------------------------------------------------------


def test_a_notification_fetches_stores_and_enqueues_once() -> None:
    order = one_order("UNSHIPPED")
    world = World([order])
    ref = world.ref(order["orderId"])
    first = notification(order, change_time=order["lastUpdatedTime"])
    second = notification(order, notification_id="n-2", change_time=order["lastUpdatedTime"])
    assert world.service.handle_notification(first, 1, world.now()) == [ShipOrder(ref)]
    assert world.service.handle_notification(first, 1, world.now()) == []
    assert world.service.handle_notification(second, 1, world.now()) == []
    assert world.stand_in.calls[GET_ORDER] == 1  # n-1 deduplicated; n-2's change is stored already
    assert len(world.store.order_writes) == 1
    assert world.poll() == [] and len(world.store.order_writes) == 1


def test_a_notification_the_next_poll_covers_costs_no_get_order() -> None:
    first, later = one_order("UNSHIPPED", seed=1), one_order("PENDING", seed=2)
    world = World([first, later])
    world.poll()
    world.clock.advance(60)
    world.stand_in.set_fulfillment_status(later["orderId"], "UNSHIPPED")
    changed = world.stand_in.order(later["orderId"])["lastUpdatedTime"]
    body = notification(later, change_time=changed)
    assert world.service.handle_notification(body, 1, world.now()) == []
    assert world.stand_in.calls[GET_ORDER] == 0
    world.clock.advance(240)
    assert world.poll() == [ShipOrder(world.ref(later["orderId"]))]


def test_without_a_change_time_or_with_the_poll_far_away_get_order_is_used() -> None:
    order = one_order("UNSHIPPED")
    world = World([order])
    body = notification(order, change_time=None)
    assert world.service.handle_notification(body, 1, world.now()) == [ShipOrder(world.ref(order["orderId"]))]
    assert world.stand_in.calls[GET_ORDER] == 1


def test_ignored_and_rejected_notifications() -> None:
    order = one_order("UNSHIPPED")
    world = World([order], marketplaces=(DE, FR))
    handle = world.service.handle_notification
    assert handle(notification(order, fulfillment="AFN"), 1, world.now()) == []
    with pytest.raises(UnknownSeller) as unknown:
        handle(notification(order, seller="SOMEONE"), 1, world.now())
    with pytest.raises(UnknownMarketplace):
        handle(notification(order, marketplace="ATVPDKIKX0DER"), 1, world.now())
    with pytest.raises(NotificationRejected) as large:
        handle(b" " * (64 * 1024 + 1), 1, world.now())
    with pytest.raises(NotificationRejected) as not_json:
        handle(b"{nope", 1, world.now())
    broken = json.loads(notification(order))
    del broken["Payload"]["OrderChangeNotification"]["Summary"]["FulfillmentType"]
    with pytest.raises(NotificationRejected) as missing:
        handle(json.dumps(broken).encode(), 1, world.now())
    assert (unknown.value.code, large.value.code, not_json.value.code, missing.value.code) == (
        "unknown_seller",
        "notification_too_large",
        "notification_not_json",
        "notification_malformed",
    )
    assert "FulfillmentType" in str(missing.value) and order["orderId"] not in str(missing.value)
    assert world.stand_in.calls[GET_ORDER] == 0 and world.stored() == {}


def test_a_fetched_order_without_address_is_poisoned_with_its_reason() -> None:
    order = one_order("UNSHIPPED")
    del order["recipient"]
    world = World([order])
    with pytest.raises(OrderWithoutAddress) as err:
        world.service.handle_notification(notification(order, change_time=None), 1, world.now())
    assert err.value.code == "order_without_address"
    assert order["orderId"] not in str(err.value) and order["orderId"] not in repr(err.value)


def test_throttling_raises_with_a_delay_instead_of_sleeping() -> None:
    order = one_order("UNSHIPPED")
    world = World([order])
    world.stand_in.fail_next(GET_ORDER, 429)
    with pytest.raises(IngestThrottled) as err:
        world.service.handle_notification(notification(order, change_time=None), 1, world.now())
    assert err.value.transient and err.value.retry_after_s == pytest.approx(2.0)
    # The budget is now empty: a retry before the delay does not even call Amazon.
    calls = world.stand_in.calls[GET_ORDER]
    with pytest.raises(IngestThrottled):
        world.service.handle_notification(notification(order, change_time=None), 2, world.now())
    assert world.stand_in.calls[GET_ORDER] == calls
    world.clock.advance(err.value.retry_after_s)
    assert world.service.handle_notification(notification(order, change_time=None), 3, world.now())


def test_an_order_getorder_does_not_know_yet_is_retried_then_poisoned() -> None:
    order = one_order("UNSHIPPED")
    world = World([])
    with pytest.raises(OrderNotYetVisible):
        world.service.handle_notification(notification(order, change_time=None), 1, world.now())
    with pytest.raises(OrderNotFound):
        world.service.handle_notification(
            notification(order, change_time=None), NOT_FOUND_RETRIES, world.now()
        )


def test_a_notification_for_an_order_amazon_never_knows_ends_in_the_poison_queue() -> None:
    """Through the queue guard, as the host runs it: a re-raised failure comes back as the
    same message with its dequeue count up, so the not-found retries end."""
    world = World([])
    sender = FakeSender()
    failures = MessageFailures(sender)
    body = notification(one_order("UNSHIPPED"), change_time=None)
    for dequeue_count in range(1, MAX_DEQUEUE_COUNT + 1):
        message = QueueMessage(id="m-1", body=body, dequeue_count=dequeue_count)
        try:
            with failures.guard(ORDER_NOTIFICATIONS, message):
                world.service.handle_notification(body, dequeue_count, world.now())
            break
        except OrderNotYetVisible:
            world.clock.advance(30)  # host.json's visibility timeout
    assert [queue for queue, _, _ in sender.sent] == [f"{ORDER_NOTIFICATIONS}-poison"]
    assert json.loads(sender.sent[0][1])["reason"] == "order_not_found"
    assert world.stand_in.calls[GET_ORDER] == NOT_FOUND_RETRIES


def test_pii_is_sealed_before_the_first_write() -> None:
    order = one_order("UNSHIPPED")
    world = World([order])
    world.poll()
    doc = world.stored()[world.ref(order["orderId"])]
    opened = world.cipher.open(doc["id"], doc["pii"])
    assert opened.order_id == order["orderId"]
    assert opened.ship_to is not None
    assert opened.ship_to.name.reveal() == order["recipient"]["deliveryAddress"]["name"]
    plain = {k: v for k, v in doc.items() if k != "pii"}
    for secret in (
        order["orderId"],
        order["buyer"]["buyerName"],
        order["recipient"]["deliveryAddress"]["city"],
    ):
        assert secret not in json.dumps(plain)
    assert Counter(s for _, _, s in world.store.order_writes) == Counter({"ready_to_ship": 1})


def test_a_full_replay_from_an_empty_cursor_stores_and_sends_nothing() -> None:
    world = World(orders_in(120))
    first = world.poll()
    writes = len(world.store.order_writes)
    world.store.delete(STATE, f"seller|{SELLER}", "orders-cursor")
    world.clock.advance(3600)
    assert first and world.poll() == [] and len(world.store.order_writes) == writes


def test_a_ready_order_whose_message_was_lost_is_sent_again_until_its_ship_by_date() -> None:
    """Sent again every RESEND_AFTER while it has not begun shipping; past Amazon's ship-by
    date (two days after these orders were placed) it goes to a person (`ship_by_passed`)."""
    from local.sample_orders import generate
    from shared.orders.lifecycle import RESEND_AFTER, SHIP_BY_PASSED, ship_by

    fresh = generate(
        3, seed=3, start=START - timedelta(hours=14), span=timedelta(hours=1), marketplaces=(DE, FR),
        statuses={"UNSHIPPED": 1.0}, afn_share=0.0,
    )  # fmt: skip
    world = World(fresh)
    first = world.poll()  # the host dies before sending these: they are lost
    assert first and world.poll() == []  # nothing new to Amazon, and not yet overdue
    refs = {m.ref for m in first}
    deadline = min(ship_by(r) for r in (world.repo.get(ref) for ref in refs) if r is not None)
    resends = 0
    while world.now() + RESEND_AFTER < deadline:
        world.clock.advance(RESEND_AFTER.total_seconds() + 60)
        assert {m.ref for m in world.poll()} == refs
        resends += 1
    world.clock.advance(RESEND_AFTER.total_seconds() + 60)
    assert world.now() >= deadline and world.poll() == []
    stored = [doc for doc in world.stored().values() if doc["id"] in refs]
    assert resends >= 5  # over 33 hours of the window left, one send every 6 hours and a minute
    assert {(doc["stage"], doc["attention"]) for doc in stored} == {(Stage.ATTENTION.value, SHIP_BY_PASSED)}
    assert all("readyAt" not in doc["extra"] for doc in stored)
    assert world.service.past_ship_by(world.now()) == len(refs)


def test_a_lost_message_of_an_order_already_past_its_ship_by_date_goes_to_a_person() -> None:
    """A backfill finds orders placed weeks ago: each is sent to shipping once; if that is
    lost, the redrive hands it to a person rather than trying again."""
    from shared.orders.lifecycle import RESEND_AFTER, SHIP_BY_PASSED

    world = World(orders_in(3, afn_share=0.0))
    first = world.poll()
    world.clock.advance(RESEND_AFTER.total_seconds() + 60)
    assert first and world.poll() == []
    attention = {world.stored()[m.ref]["attention"] for m in first}
    assert attention == {SHIP_BY_PASSED}


def _fresh_world() -> World:
    from local.sample_orders import generate

    return World(
        generate(
            2, seed=4, start=START - timedelta(hours=14), span=timedelta(hours=1), marketplaces=(DE, FR),
            statuses={"UNSHIPPED": 1.0}, afn_share=0.0,
        )
    )  # fmt: skip


def test_an_order_whose_shipping_started_is_not_sent_again_while_its_purchase_can_run() -> None:
    """Writing the intent (as shipping does) moves the order's next send RESEND_AFTER ahead: a
    purchase under way never gets a second message; one whose deliveries all died is sent
    again then, and shipping's replay decides."""
    from shared.orders.lifecycle import RESEND_AFTER, purchase_started

    world = _fresh_world()
    sent = world.poll()
    for message in sent:
        world.repo.update(
            message.ref, lambda r: purchase_started(r, {"state": "intent", "intentId": "i-1"}, world.now())
        )
    world.clock.advance(3600)
    assert sent and world.poll() == []
    world.clock.advance(RESEND_AFTER.total_seconds())
    assert {m.ref for m in world.poll()} == {m.ref for m in sent}
    assert {world.stored()[m.ref]["shipment"]["intentId"] for m in sent} == {"i-1"}


def test_an_order_whose_purchase_timed_out_is_sent_again_when_its_retry_is_due() -> None:
    """Shipping keeps the intent of a purchase whose outcome is unknown and puts the order back
    in the index with the back-off: the redrive sends it, and shipping's replay decides."""
    from shared.orders.lifecycle import SHIP_RETRY_FIRST, purchase_started, shipping_failed

    world = _fresh_world()
    sent = world.poll()
    for message in sent:
        world.repo.update(
            message.ref, lambda r: purchase_started(r, {"state": "intent", "intentId": "i-1"}, world.now())
        )
        world.repo.update(message.ref, lambda r: shipping_failed(r, world.now()))
    world.clock.advance(SHIP_RETRY_FIRST.total_seconds())
    assert sent and {m.ref for m in world.poll()} == {m.ref for m in sent}
    assert {world.stored()[m.ref]["shipment"]["intentId"] for m in sent} == {"i-1"}
