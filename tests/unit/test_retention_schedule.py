"""Every order written through the repository carries a bounded deadline, whatever its stage."""

from datetime import UTC, datetime, timedelta

import pytest

from shared.orders.deadlines import RetentionPolicy
from shared.orders.lifecycle import Settle
from shared.orders.record import OrderRecord, Stage
from shared.orders.repository import OrderRepository
from tests.builders import order_record
from tests.fakes import MemoryDocumentStore

NOW = datetime(2026, 11, 2, 12, tzinfo=UTC)
POLICY = RetentionPolicy(retention_days=7, delivery_grace_days=3, recoverability_days=28)


def _record(stage: Stage, **extra: object) -> OrderRecord:
    fields: dict[str, object] = dict(
        stage=stage,
        amazon_status="X",
        latest_delivery_at=NOW + timedelta(days=5),
        pii={"epoch": "e"},
    )
    fields.update(extra)
    return order_record(at=NOW, **fields)


@pytest.fixture
def repo() -> OrderRepository:
    return OrderRepository(MemoryDocumentStore(), Settle(POLICY, lambda: NOW))


@pytest.mark.parametrize("stage", [Stage.AWAITING, Stage.READY, Stage.ATTENTION])
def test_unshipped_orders_get_the_delivery_bound_plus_retention(repo: OrderRepository, stage: Stage) -> None:
    stored = repo.create(_record(stage))
    assert stored.purge_after == NOW + timedelta(days=5 + 3 + 7)
    assert stored.due_at == stored.purge_after and stored.ttl is not None


def test_cancelled_orders_lose_pii_at_once(repo: OrderRepository) -> None:
    stored = repo.create(_record(Stage.CANCELLED))
    assert stored.pii is None and stored.purge_after == NOW + timedelta(days=7)


@pytest.mark.parametrize(
    ("latest_delivery", "first_check"),
    [
        (NOW + timedelta(days=2), NOW + timedelta(days=2)),  # on the promised delivery date
        (NOW + timedelta(days=5), NOW + timedelta(days=3)),  # but at most one recheck away
        (None, NOW + timedelta(days=3)),  # no promise: one recheck away
        (NOW - timedelta(days=1), NOW),  # promise already past: now
        (NOW - timedelta(days=4), NOW),  # even past the bound: now, the tracker applies it
    ],
)
def test_shipped_orders_are_first_checked_when_they_should_have_arrived(
    repo: OrderRepository, latest_delivery: datetime | None, first_check: datetime
) -> None:
    stored = repo.create(_record(Stage.SHIPPED, latest_delivery_at=latest_delivery))
    assert stored.due_at == first_check


def test_ttl_restarts_on_every_write(repo: OrderRepository) -> None:
    stored = repo.create(_record(Stage.READY))
    later = OrderRepository(MemoryDocumentStore(), Settle(POLICY, lambda: NOW + timedelta(days=1)))
    assert later.create(stored.evolve(etag=None)).ttl == stored.ttl - 86400  # type: ignore[operator]


def test_amazon_delivered_is_taken_in_the_same_write(repo: OrderRepository) -> None:
    delivered = NOW - timedelta(hours=5)
    record = _record(
        Stage.SHIPPED, amazon_updated_at=delivered, extra={"packages": [{"status": "DELIVERED"}]}
    )
    stored = repo.create(record)
    assert stored.stage is Stage.DELIVERED and stored.delivery_source == "amazon"
    assert stored.purge_after == delivered + timedelta(days=7)
