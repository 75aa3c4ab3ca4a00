"""Document storage with compare-and-swap: Cosmos DB in Azure (a dict in local/memory_stores.py).

Every change to an order is a read, a change in memory, and a replace conditioned on the
`_etag` that was read; a concurrent or redelivered writer gets `WriteConflict` and re-reads.
The Cosmos implementation passes the partition key on every point operation and every query
carries a partition-key predicate or is a deliberate, indexed cross-partition range query.
Writes to several documents of one partition that must happen together go in one
transactional batch (`write_batch`): all of them, or none.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from azure.core import MatchConditions
from azure.core.exceptions import AzureError
from azure.cosmos import ContainerProxy, CosmosClient
from azure.cosmos import exceptions as cosmos_errors

from shared.errors import AppError, TransientError

Document = dict[str, Any]

ORDERS = "orders"
STATE = "state"
AUDIT = "audit"
CONTAINERS: Mapping[str, str] = {ORDERS: "/id", STATE: "/pk", AUDIT: "/ref"}


def partition_field(container: str) -> str:
    return CONTAINERS[container].lstrip("/")


def _partition_of(container: str, doc: Document) -> str:
    return str(doc[partition_field(container)])


class WriteConflict(AppError):
    """The document changed (or appeared) since it was read: re-read and decide again."""

    code = "write_conflict"
    transient = True


@dataclass(frozen=True, slots=True)
class BatchOp:
    """One write of a transactional batch: `create` the document, or `replace` / `delete` it
    while its `_etag` is still `etag` (a delete needs only the `id` and the partition key)."""

    kind: Literal["create", "replace", "delete"]
    doc: Document
    etag: str = ""


class StoreUnavailable(TransientError):
    code = "store_unavailable"


class StoreThrottled(StoreUnavailable):
    """Cosmos still answers 429 after the SDK's own retries: a request to wait, not a failure.
    Carrying `retry_after_s`, the message is re-queued with that delay instead of spending one
    of its attempts (`shared.telemetry.message_failures`), as SP-API throttling is."""

    code = "store_throttled"

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"cosmos status 429, retry after {retry_after_s:.1f}s")
        self.retry_after_s = retry_after_s


def _retry_after_s(exc: cosmos_errors.CosmosHttpResponseError) -> float:
    headers = getattr(exc, "headers", None) or getattr(getattr(exc, "response", None), "headers", None) or {}
    try:
        return max(float(headers.get("x-ms-retry-after-ms", 1000)) / 1000, 0.1)
    except (TypeError, ValueError):
        return 1.0


def _mapped(exc: AzureError) -> AppError:
    """Throttling and outages are transient (the message is retried, or re-queued with the
    delay Cosmos asks for when throttled); the rest is not. A connection that failed or broke
    (azure-core's ServiceRequestError / ServiceResponseError) is an outage."""
    if not isinstance(exc, cosmos_errors.CosmosHttpResponseError):
        return StoreUnavailable("Cosmos DB not reachable")
    if exc.status_code == 429:
        return StoreThrottled(_retry_after_s(exc))
    if exc.status_code in (408, 449, 500, 503):
        return StoreUnavailable(f"cosmos status {exc.status_code}")
    return AppError(f"cosmos status {exc.status_code}", code="store_error")


class DocumentStore(Protocol):
    def read(self, container: str, partition: str, doc_id: str) -> Document | None: ...

    def create(self, container: str, doc: Document) -> Document: ...

    def replace(self, container: str, doc: Document, etag: str) -> Document: ...

    def delete(self, container: str, partition: str, doc_id: str, etag: str | None = None) -> bool:
        """Delete the document; False when there was none. With `etag`, only while its `_etag`
        is still that: `WriteConflict` when it changed since it was read."""
        ...

    def write_batch(self, container: str, partition: str, ops: Sequence[BatchOp]) -> None:
        """All of `ops` in `partition`, or none: `WriteConflict` when a document to create exists,
        or one to replace or delete changed or went since it was read."""
        ...

    def due(self, container: str, field: str, upto: str, limit: int) -> list[Document]:
        """Documents whose `field` is set and <= `upto` (ISO-8601 text sorts as time)."""
        ...

    def due_in(
        self, container: str, field: str, upto: str, limit: int, *, key: str, values: Sequence[str]
    ) -> list[Document]:
        """`due`, narrowed to documents whose `key` is one of `values` (composite index)."""
        ...

    def exists_where(self, container: str, field: str, value: str) -> bool:
        """Whether any document has `field` (a dotted path) equal to `value` (indexed)."""
        ...

    def in_partition(self, container: str, partition: str) -> list[Document]: ...

    def scan(self, container: str) -> Iterator[Document]:
        """Every document: for evidence and tests only, never on a function's path."""
        ...


class CosmosDocumentStore:
    def __init__(self, client: CosmosClient, database: str) -> None:
        db = client.get_database_client(database)
        self._containers: dict[str, ContainerProxy] = {
            name: db.get_container_client(name) for name in CONTAINERS
        }

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except cosmos_errors.CosmosAccessConditionFailedError:
            raise WriteConflict("etag mismatch") from None
        except cosmos_errors.CosmosResourceExistsError:
            raise WriteConflict("already exists") from None
        except AzureError as exc:
            raise _mapped(exc) from None

    def read(self, container: str, partition: str, doc_id: str) -> Document | None:
        try:
            doc: Document = self._containers[container].read_item(doc_id, partition_key=partition)
            return doc
        except cosmos_errors.CosmosResourceNotFoundError:
            return None
        except AzureError as exc:
            raise _mapped(exc) from None

    def create(self, container: str, doc: Document) -> Document:
        created: Document = self._call(self._containers[container].create_item, doc)
        return created

    def replace(self, container: str, doc: Document, etag: str) -> Document:
        try:
            replaced: Document = self._containers[container].replace_item(
                doc["id"], doc, etag=etag, match_condition=MatchConditions.IfNotModified
            )
        except (cosmos_errors.CosmosAccessConditionFailedError, cosmos_errors.CosmosResourceNotFoundError):
            # Changed or deleted since it was read (as in the memory store): the caller re-reads,
            # and finds it changed or gone, instead of failing.
            raise WriteConflict("etag mismatch or document gone") from None
        except AzureError as exc:
            raise _mapped(exc) from None
        return replaced

    def delete(self, container: str, partition: str, doc_id: str, etag: str | None = None) -> bool:
        match = MatchConditions.IfNotModified if etag else None
        try:
            self._containers[container].delete_item(
                doc_id, partition_key=partition, etag=etag, match_condition=match
            )
        except cosmos_errors.CosmosResourceNotFoundError:
            return False
        except cosmos_errors.CosmosAccessConditionFailedError:
            raise WriteConflict("etag mismatch") from None
        except AzureError as exc:
            raise _mapped(exc) from None
        return True

    def write_batch(self, container: str, partition: str, ops: Sequence[BatchOp]) -> None:
        try:
            self._containers[container].execute_item_batch(
                [_batch_operation(op) for op in ops], partition_key=partition
            )
        except (
            cosmos_errors.CosmosBatchOperationError,
            cosmos_errors.CosmosAccessConditionFailedError,
            cosmos_errors.CosmosResourceExistsError,
            cosmos_errors.CosmosResourceNotFoundError,
        ) as exc:
            if exc.status_code in (404, 409, 412):
                raise WriteConflict("batch precondition failed") from None
            raise _mapped(exc) from None
        except AzureError as exc:
            raise _mapped(exc) from None

    def due(self, container: str, field: str, upto: str, limit: int) -> list[Document]:
        # A range filter on an indexed field: Cosmos reads only the matching index range, so
        # the cost grows with the number of due documents, not with the container's size.
        # Field names come from this module's callers, never from input; values are parameters.
        where = f"IS_DEFINED(c.{field}) AND c.{field} != null AND c.{field} <= @upto"
        query = f"SELECT TOP {int(limit)} * FROM c WHERE {where}"  # noqa: S608 - identifiers are module constants, values bound parameters  # nosec B608
        items = self._call(
            self._containers[container].query_items,
            query,
            parameters=[{"name": "@upto", "value": upto}],
            enable_cross_partition_query=True,
        )
        return list(items)

    def due_in(
        self, container: str, field: str, upto: str, limit: int, *, key: str, values: Sequence[str]
    ) -> list[Document]:
        # The same range read as `due`, with an IN filter that a composite index (key, field)
        # serves: one kind of due work never hides behind another kind's backlog.
        names = [f"@v{i}" for i in range(len(values))]
        where = f"c.{field} != null AND c.{field} <= @upto AND c.{key} IN ({', '.join(names)})"
        query = f"SELECT TOP {int(limit)} * FROM c WHERE IS_DEFINED(c.{field}) AND {where}"  # noqa: S608 - identifiers are module constants, values bound parameters  # nosec B608
        params = [{"name": n, "value": v} for n, v in zip(names, values, strict=True)]
        items = self._call(
            self._containers[container].query_items,
            query,
            parameters=[{"name": "@upto", "value": upto}, *params],
            enable_cross_partition_query=True,
        )
        return list(items)

    def exists_where(self, container: str, field: str, value: str) -> bool:
        # TOP 1 on an indexed equality: one index lookup, whatever the container holds.
        query = f"SELECT TOP 1 c.id FROM c WHERE c.{field} = @value"  # noqa: S608 - field is a constant  # nosec B608
        items = self._call(
            self._containers[container].query_items,
            query,
            parameters=[{"name": "@value", "value": value}],
            enable_cross_partition_query=True,
        )
        return bool(list(items))

    def in_partition(self, container: str, partition: str) -> list[Document]:
        path = partition_field(container)
        items = self._call(
            self._containers[container].query_items,
            f"SELECT * FROM c WHERE c.{path} = @pk",  # noqa: S608 - path is a constant  # nosec B608
            parameters=[{"name": "@pk", "value": partition}],
            partition_key=partition,
        )
        return list(items)

    def scan(self, container: str) -> Iterator[Document]:
        yield from self._containers[container].read_all_items()


def _batch_operation(op: BatchOp) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    if op.kind == "create":
        return ("create", (op.doc,), {})
    if op.kind == "replace":
        return ("replace", (op.doc["id"], op.doc), {"if_match_etag": op.etag})
    return ("delete", (op.doc["id"],), {"if_match_etag": op.etag})


class CountingStore:
    """Wraps a store and counts operations by kind: the figures in `make run` and `make bench`.
    `writes_by_partition` counts writes by (container, partition key): an order's own writes
    (its document and its audit records), which `make bench` sums per delivery path."""

    def __init__(self, inner: DocumentStore) -> None:
        self.inner = inner
        self.counts: Counter[str] = Counter()
        self.writes_by_partition: Counter[tuple[str, str]] = Counter()

    def _wrote(self, container: str, partition: str) -> None:
        self.counts[f"{container}.write"] += 1
        self.writes_by_partition[(container, partition)] += 1

    def read(self, container: str, partition: str, doc_id: str) -> Document | None:
        self.counts[f"{container}.read"] += 1
        return self.inner.read(container, partition, doc_id)

    def create(self, container: str, doc: Document) -> Document:
        self._wrote(container, _partition_of(container, doc))
        return self.inner.create(container, doc)

    def replace(self, container: str, doc: Document, etag: str) -> Document:
        self._wrote(container, _partition_of(container, doc))
        return self.inner.replace(container, doc, etag)

    def delete(self, container: str, partition: str, doc_id: str, etag: str | None = None) -> bool:
        self._wrote(container, partition)
        return self.inner.delete(container, partition, doc_id, etag)

    def write_batch(self, container: str, partition: str, ops: Sequence[BatchOp]) -> None:
        self._wrote(container, partition)  # one request, however many documents it writes
        self.inner.write_batch(container, partition, ops)

    def due(self, container: str, field: str, upto: str, limit: int) -> list[Document]:
        self.counts[f"{container}.query"] += 1
        return self.inner.due(container, field, upto, limit)

    def due_in(
        self, container: str, field: str, upto: str, limit: int, *, key: str, values: Sequence[str]
    ) -> list[Document]:
        self.counts[f"{container}.query"] += 1
        return self.inner.due_in(container, field, upto, limit, key=key, values=values)

    def exists_where(self, container: str, field: str, value: str) -> bool:
        self.counts[f"{container}.query"] += 1
        return self.inner.exists_where(container, field, value)

    def in_partition(self, container: str, partition: str) -> list[Document]:
        self.counts[f"{container}.query"] += 1
        return self.inner.in_partition(container, partition)

    def scan(self, container: str) -> Iterator[Document]:
        return self.inner.scan(container)


def ensure_local_containers(client: CosmosClient, database: str) -> None:
    """Create the database and containers on the local emulator (Bicep does this in Azure)."""
    db = client.create_database_if_not_exists(database)
    from azure.cosmos import PartitionKey

    for name, path in CONTAINERS.items():
        db.create_container_if_not_exists(name, PartitionKey(path), default_ttl=-1)
