"""Property: duplicated, reordered and replayed notifications, interleaved with polls and
throttling, never store an order version twice and never enqueue an order twice."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.ingestion.service import IngestThrottled
from shared.orders.messages import ShipOrder
from shared.orders.record import Stage
from tests.worlds.ingestion import World, notification, one_order

STATUSES = ("PENDING", "UNSHIPPED", "PARTIALLY_SHIPPED", "SHIPPED", "CANCELLED")
ORDERS = 3

step = st.one_of(
    st.tuples(st.just("change"), st.integers(0, ORDERS - 1), st.sampled_from(STATUSES)),
    st.tuples(st.just("deliver"), st.integers(0, 10_000), st.just("")),
    st.tuples(st.just("poll"), st.just(0), st.just("")),
    st.tuples(st.just("wait"), st.integers(1, 900), st.just("")),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=1, max_size=40), throttle_every=st.integers(0, 5))
def test_notifications_never_double_store_or_double_enqueue(
    steps: list[tuple[str, int, str]], throttle_every: int
) -> None:
    orders = [one_order("PENDING", seed=100 + i) for i in range(ORDERS)]
    world = World(orders)
    world.poll()
    outbox: list[bytes] = []  # every notification Amazon sent; deliveries pick any, any number of times
    sent: list[ShipOrder] = []
    deliveries = 0

    def deliver(body: bytes) -> None:
        nonlocal deliveries
        deliveries += 1
        if throttle_every and deliveries % throttle_every == 0:
            world.stand_in.fail_next("getOrder", 429)
        try:
            sent.extend(world.service.handle_notification(body, 1, world.now()))
        except IngestThrottled as exc:
            assert exc.retry_after_s > 0
            outbox.append(body)  # re-queued with a delay: it comes back later

    for kind, number, status in steps:
        world.clock.advance(20)
        if kind == "change":
            order_id = orders[number]["orderId"]
            world.stand_in.set_fulfillment_status(order_id, status)
            current = world.stand_in.order(order_id)
            outbox.append(
                notification(
                    current, notification_id=f"n{len(outbox)}", change_time=current["lastUpdatedTime"]
                )
            )
        elif kind == "deliver" and outbox:
            deliver(outbox[number % len(outbox)])
        elif kind == "poll":
            sent.extend(world.poll())
        elif kind == "wait":
            world.clock.advance(number)

    # Everything is eventually delivered (some twice), and the timer keeps running.
    world.clock.advance(3600)
    for body in list(outbox):
        deliver(body)
    for _ in range(3):
        world.clock.advance(300)
        sent.extend(world.poll())

    writes = Counter((ref, version) for ref, version, _ in world.store.order_writes)
    assert all(n == 1 for n in writes.values()), "an order version was stored twice"
    per_ref = Counter(m.ref for m in sent)
    assert all(n == 1 for n in per_ref.values()), "an order was enqueued twice"
    stored = world.stored()
    for order in orders:
        ref = world.ref(order["orderId"])
        amazon = world.stand_in.order(order["orderId"])
        if stored[ref]["stage"] not in (Stage.SHIPPED, Stage.DELIVERED):
            # Past shipping only delivery matters; Amazon's bookkeeping is not written.
            assert stored[ref]["amazonStatus"] == amazon["fulfillment"]["fulfillmentStatus"]
        if stored[ref]["stage"] == Stage.READY:
            assert per_ref[ref] == 1
        if stored[ref]["stage"] == Stage.CANCELLED:
            assert stored[ref]["pii"] is None
    assert world.stand_in.throttled["searchOrders"] == 0
