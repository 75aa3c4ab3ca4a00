"""The order repository against the Cosmos DB wire protocol (cosmosdb-server over HTTPS)."""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from shared.orders.record import OrderRecord, Stage
from shared.orders.repository import OrderRepository
from shared.storage.document_store import STATE, BatchOp, CosmosDocumentStore, DocumentStore, WriteConflict
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


def test_a_delete_with_the_etag_it_read_refuses_an_order_written_since(repo: OrderRepository) -> None:
    ref = uuid.uuid4().hex[:16]
    read = repo.create(_record(ref))
    written = repo.replace(read.evolve(attention="x"))
    with pytest.raises(WriteConflict):
        repo.delete(ref, etag=read.etag)
    assert repo.get(ref) is not None
    assert repo.delete(ref, etag=written.etag) and repo.get(ref) is None
    assert not repo.delete(ref, etag=written.etag)  # gone already


def test_the_gauge_counts_an_order_past_its_fallback_ship_by_over_the_wire(repo: OrderRepository) -> None:
    """`shipBy`, stamped on every write of an unshipped order, answers the gauge's range query
    in Cosmos as in memory, for an order without Amazon's ship-by date."""
    from shared.orders.lifecycle import SHIP_BY_FALLBACK

    created = NOW - timedelta(days=3000)  # before any other test's orders in this container
    before = repo.past_ship_by(created + SHIP_BY_FALLBACK - timedelta(seconds=1))
    repo.create(order_record(at=created, ref=uuid.uuid4().hex[:16], latest_ship_at=None))
    assert repo.past_ship_by(created + SHIP_BY_FALLBACK - timedelta(seconds=1)) == before
    assert repo.past_ship_by(created + SHIP_BY_FALLBACK) == before + 1


def test_due_finds_only_due_orders(repo: OrderRepository) -> None:
    early, late = uuid.uuid4().hex[:16], uuid.uuid4().hex[:16]
    repo.create(_record(early, NOW - timedelta(days=400)))
    repo.create(_record(late, NOW + timedelta(days=400)))
    due = {r.ref for r in repo.due(NOW)}
    assert early in due and late not in due


@pytest.fixture(params=["cosmos", "memory"])
def store(request: pytest.FixtureRequest, cosmos_store: CosmosDocumentStore) -> DocumentStore:
    return cosmos_store if request.param == "cosmos" else MemoryDocumentStore()


def test_a_batch_writes_its_documents_together(store: DocumentStore) -> None:
    pk = f"batch-{uuid.uuid4().hex[:8]}"
    store.write_batch(
        STATE, pk, [BatchOp("create", {"id": pk, "pk": pk, "n": 1}), BatchOp("create", {"id": "a", "pk": pk})]
    )
    head, a = store.read(STATE, pk, pk), store.read(STATE, pk, "a")
    assert head is not None and a is not None
    store.write_batch(
        STATE,
        pk,
        [BatchOp("replace", {"id": pk, "pk": pk, "n": 2}, head["_etag"]), BatchOp("delete", a, a["_etag"])],
    )
    assert store.read(STATE, pk, pk)["n"] == 2 and store.read(STATE, pk, "a") is None  # type: ignore[index]


def test_a_batch_whose_first_write_is_stale_writes_nothing(store: DocumentStore) -> None:
    """Only a failure of the first write is compared: the stand-in applies the writes before a
    failed one (it is not atomic; local/cosmosdb-server.js), so a later failure proves nothing."""
    pk = f"batch-{uuid.uuid4().hex[:8]}"
    head = store.create(STATE, {"id": pk, "pk": pk, "n": 1})
    store.replace(STATE, {"id": pk, "pk": pk, "n": 2}, head["_etag"])
    stale = [
        BatchOp("replace", {"id": pk, "pk": pk, "n": 3}, head["_etag"]),
        BatchOp("create", {"id": "b", "pk": pk}),
    ]
    with pytest.raises(WriteConflict):
        store.write_batch(STATE, pk, stale)
    assert store.read(STATE, pk, pk)["n"] == 2 and store.read(STATE, pk, "b") is None  # type: ignore[index]
    with pytest.raises(WriteConflict):  # a document to create that exists
        store.write_batch(STATE, pk, [BatchOp("create", {"id": pk, "pk": pk})])
