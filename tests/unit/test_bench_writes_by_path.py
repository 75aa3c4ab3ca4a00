"""`make bench`'s per-path write figures count each order's own writes, grouped by how its
delivery was settled: checked here against the real retention service over a counting store."""

from __future__ import annotations

from datetime import timedelta

from local.bench_pipeline import writes_by_path
from shared.storage.document_store import AUDIT
from tests.worlds.retention import T0, World


def test_each_order_is_counted_on_the_path_its_purge_recorded() -> None:
    world = World()
    by_amazon, by_carrier = world.ship(1), world.ship(2)
    world.amazon.deliveries[by_amazon] = T0 + timedelta(days=1)
    world.carrier.deliveries[by_carrier] = T0 + timedelta(days=1)
    world.now = T0 + timedelta(days=1, hours=1)
    world.service.track(world.now)  # one write each: the delivery and its deadline
    world.now = T0 + timedelta(days=9)
    world.service.purge(world.now)  # one delete each, one audit record each

    figures = writes_by_path(world.store.scan(AUDIT), world.store.writes_by_partition)

    # create (by World.ship), delivered, delete; the purge's audit record.
    own = {"all": 4.0, "ordersContainer": 3.0, "auditContainer": 1.0, "ordersOnPath": 1}
    assert figures == {"amazon": own, "carrier": own}


def test_writes_to_documents_of_other_orders_or_none_are_not_counted() -> None:
    world = World()
    ref = world.ship(1)
    other = world.ship(2)
    world.store.writes_by_partition[("state", "cursor")] += 5
    world.amazon.deliveries[ref] = T0
    world.now = T0 + timedelta(hours=1)
    world.service.track(world.now)
    world.now = T0 + timedelta(days=8)
    world.service.purge(world.now)

    figures = writes_by_path(world.store.scan(AUDIT), world.store.writes_by_partition)

    assert figures == {
        "amazon": {"all": 4.0, "ordersContainer": 3.0, "auditContainer": 1.0, "ordersOnPath": 1}
    }
    # Written (created, re-checked) but not purged yet: on no path.
    assert world.store.writes_by_partition[("orders", other)] == 2
