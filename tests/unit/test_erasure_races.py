"""Races with a deletion request, and orders shipped outside this app: nothing with buyer data
outlives an erasure, and nothing is shipped or invoiced for an order this app did not ship."""

from __future__ import annotations

from typing import Any

import pytest

from shared.errors import TransientError
from shared.ingestion.service import SHIPPED_ELSEWHERE
from shared.orders.deadlines import RetentionPolicy
from shared.orders.messages import ShipOrder
from shared.orders.record import Stage
from shared.privacy.service import PrivacyService
from shared.storage.blob_store import LABELS
from tests.fakes import MemoryBlobs, audit_trail
from tests.worlds import privacy
from tests.worlds.ingestion import World as IngestWorld
from tests.worlds.ingestion import amazon_changes, one_order
from tests.worlds.shipping import NOW, REF, World

POLICY = RetentionPolicy(retention_days=7, delivery_grace_days=3, recoverability_days=28)


class _ErasingCarrier:
    """Delegates to a fake carrier; another worker's erasure runs while the label is bought."""

    def __init__(self, inner: Any, erase: Any) -> None:
        self._inner, self._erase = inner, erase

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def create_label(self, request: Any) -> Any:
        label = self._inner.create_label(request)
        if self._erase:
            erase, self._erase = self._erase, None
            erase()
        return label


class _FailingConfirmer:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def confirm_shipment(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)
        raise TransientError("SP-API 503", code="spapi_unavailable")


def _erased_while_buying(*, confirm_fails: bool) -> World:
    w = World()
    w.add(REF)
    privacy = PrivacyService(
        w.store, cipher=w.cipher, blobs=w.blobs, policy=POLICY, audit=audit_trail(w.store)
    )

    def erase() -> None:
        privacy.delete(REF, "req-00000021", NOW, request_type="amazon_delete")

    w.carriers = {k: _ErasingCarrier(c, erase) for k, c in w.carriers.items()}
    if confirm_fails:
        w.confirmer = _FailingConfirmer()  # type: ignore[assignment]
    return w


@pytest.mark.parametrize("confirm_fails", [False, True])
def test_a_label_bought_while_the_order_was_erased_does_not_outlive_it(confirm_fails: bool) -> None:
    """The label is stored after the erasure swept the order's files; shipping reads the order
    again before confirming, finds it gone, confirms nothing and deletes the label."""
    w = _erased_while_buying(confirm_fails=confirm_fails)
    assert w.service().ship(ShipOrder(REF), NOW) == []
    assert w.orders.get(REF) is None and w.confirmer.calls == []
    assert w.blobs.list_names(LABELS, f"{REF}/") == []
    w.service().ship(ShipOrder(REF), NOW)  # a copy of the message finds no order either
    assert w.blobs.list_names(LABELS, f"{REF}/") == []


class _ErasureDuringPut(MemoryBlobs):
    def __init__(self) -> None:
        super().__init__()
        self.hook: Any = None

    def put(self, container: str, name: str, data: bytes) -> None:
        if container == "exports" and self.hook:
            hook, self.hook = self.hook, None
            hook()
        super().put(container, name, data)


def test_an_export_of_a_cancelled_order_does_not_outlive_a_concurrent_erasure() -> None:
    world = privacy.World()
    world.blobs = _ErasureDuringPut()
    world.order()
    world.orders.update(privacy.REF, lambda r: r.evolve(stage=Stage.CANCELLED, pii=None))
    # The erasure strips the order and sweeps its files while the export is written; its last
    # step (deleting the shell) comes after the access has read the order again.
    eraser = PrivacyService(
        world.store, cipher=world.cipher, blobs=world.blobs, policy=POLICY, audit=audit_trail(world.store)
    )
    deferred: list[str] = []
    delete_order = eraser._orders.delete
    eraser._orders.delete = deferred.append  # type: ignore[method-assign]
    world.blobs.hook = lambda: eraser.delete(privacy.REF, "req-00000031", NOW, request_type="amazon_delete")
    accessor = PrivacyService(
        world.store, cipher=world.cipher, blobs=world.blobs, policy=POLICY, audit=audit_trail(world.store)
    )

    outcome = accessor.access(privacy.REF, "req-00000032", privacy.KEY.public_key(), NOW)
    for ref in deferred:
        delete_order(ref)

    assert not outcome.held and world.orders.get(privacy.REF) is None
    assert world.blobs.names(f"{privacy.REF}/") == []


def test_a_ready_order_amazon_puts_back_to_pending_stays_ready() -> None:
    order = one_order("UNSHIPPED")
    world = IngestWorld([order])
    assert world.poll()
    amazon_changes(world, order["orderId"], "PENDING")
    world.poll()
    doc = world.stored()[world.ref(order["orderId"])]
    assert doc["stage"] == Stage.READY.value and SHIPPED_ELSEWHERE not in doc["extra"]


def test_a_queued_ship_message_for_an_order_shipped_elsewhere_ships_and_invoices_nothing() -> None:
    order = one_order("UNSHIPPED")
    world = IngestWorld([order])
    assert world.poll()  # the ShipOrder is on the queue
    ref = world.ref(order["orderId"])
    amazon_changes(world, order["orderId"], "SHIPPED")  # the seller shipped it in Seller Central
    world.poll()
    assert world.stored()[ref]["extra"][SHIPPED_ELSEWHERE] is True

    shipping = World(store=world.store)
    assert shipping.service().ship(ShipOrder(ref), world.now()) == []
    assert shipping.carriers["usps"].purchases == 0
