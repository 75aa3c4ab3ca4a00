"""The order repository against the Cosmos DB wire protocol (cosmosdb-server over HTTPS)."""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from shared.orders.record import OrderRecord, Stage
from shared.orders.repository import OrderRepository
from shared.storage.document_store import CosmosDocumentStore, WriteConflict
from tests.builders import order_record
from tests.fakes import MemoryDocumentStore

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def cosmos_store(fresh_cosmos_store: Callable[[str], CosmosDocumentStore]) -> CosmosDocumentStore:
    return fresh_cosmos_store("test")


def _record(ref: str, due: datetime | None = None) -> OrderRecord:
    return order_record(at=NOW, ref=ref, due_at=due)


@pytest.fixture(params=["cosmos", "memory"])
def repo(request: pytest.FixtureRequest, cosmos_store: CosmosDocumentStore) -> OrderRepository:
    return OrderRepository(cosmos_store if request.param == "cosmos" else MemoryDocumentStore())


def test_create_once_then_compare_and_swap(repo: OrderRepository) -> None:
    ref = uuid.uuid4().hex[:16]
    stored = repo.create(_record(ref))
    with pytest.raises(WriteConflict):
        repo.create(_record(ref))
    moved = repo.replace(stored.evolve(stage=Stage.SHIPPED))
    assert moved.stage is Stage.SHIPPED and moved.etag != stored.etag
    with pytest.raises(WriteConflict):  # a stale writer loses
        repo.replace(stored.evolve(stage=Stage.CANCELLED))
    assert repo.get(ref).stage is Stage.SHIPPED  # type: ignore[union-attr]
    assert repo.delete(ref) and repo.get(ref) is None and not repo.delete(ref)


def test_update_retries_on_conflict(repo: OrderRepository) -> None:
    ref = uuid.uuid4().hex[:16]
    repo.create(_record(ref))
    calls = []

    def change(rec: OrderRecord) -> OrderRecord:
        calls.append(rec.etag)
        if len(calls) == 1:  # someone else writes in between
            repo.replace(rec.evolve(attention="x"))
        return rec.evolve(stage=Stage.DELIVERED)

    result = repo.update(ref, change)
    assert result is not None and result.stage is Stage.DELIVERED and result.attention == "x"
    assert len(calls) == 2


def test_a_write_over_an_order_deleted_meanwhile_finds_it_gone(repo: OrderRepository) -> None:
    """Cosmos answers 404 to a replace of a deleted document: a conflict, so `update_from`
    re-reads and reports the order gone (an erasure racing a writer), as the memory store does."""
    ref = uuid.uuid4().hex[:16]
    stored = repo.create(_record(ref))
    assert repo.delete(ref)
    with pytest.raises(WriteConflict):
        repo.replace(stored.evolve(stage=Stage.SHIPPED))
    assert repo.update_from(stored, lambda r: r.evolve(stage=Stage.SHIPPED)) is None


def test_due_finds_only_due_orders(repo: OrderRepository) -> None:
    early, late = uuid.uuid4().hex[:16], uuid.uuid4().hex[:16]
    repo.create(_record(early, NOW - timedelta(days=400)))
    repo.create(_record(late, NOW + timedelta(days=400)))
    due = {r.ref for r in repo.due(NOW)}
    assert early in due and late not in due
