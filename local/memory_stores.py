"""The storage contracts in memory, for the benchmarks (local/bench_*.py) and the unit tests
(re-exported by tests/fakes.py): a document store with Cosmos's compare-and-swap, a blob store
and a Key Vault. None of them is used by the app."""

from __future__ import annotations

import copy
import itertools
import secrets
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from shared.crypto.key_vault import Destroyed, Secret, SecretStoreError
from shared.storage.document_store import CONTAINERS, BatchOp, Document, WriteConflict, partition_field


def _partition_of(container: str, doc: Document) -> str:
    return str(doc[partition_field(container)])


def _at_path(doc: Document, path: str) -> Any:
    """`a.b` reads doc["a"]["b"], as `c.a.b` does in a Cosmos query."""
    value: Any = doc
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


class MemoryDocumentStore:
    """Same contract as Cosmos (`shared.storage.document_store.DocumentStore`), in a dict."""

    def __init__(self) -> None:
        self._data: dict[str, dict[tuple[str, str], Document]] = {name: {} for name in CONTAINERS}
        self._ticks = itertools.count()
        self._batching = threading.Lock()

    def _key(self, container: str, doc: Document) -> tuple[str, str]:
        return (_partition_of(container, doc), str(doc["id"]))

    def _stamp(self, doc: Document) -> Document:
        stored = copy.deepcopy(doc)
        stored["_etag"] = str(uuid.uuid4())
        stored["_ts"] = next(self._ticks)
        return stored

    def read(self, container: str, partition: str, doc_id: str) -> Document | None:
        doc = self._data[container].get((partition, doc_id))
        return copy.deepcopy(doc) if doc is not None else None

    def create(self, container: str, doc: Document) -> Document:
        key = self._key(container, doc)
        if key in self._data[container]:
            raise WriteConflict("already exists")
        self._data[container][key] = self._stamp(doc)
        return copy.deepcopy(self._data[container][key])

    def replace(self, container: str, doc: Document, etag: str) -> Document:
        key = self._key(container, doc)
        current = self._data[container].get(key)
        if current is None or current["_etag"] != etag:
            raise WriteConflict("etag mismatch")
        self._data[container][key] = self._stamp(doc)
        return copy.deepcopy(self._data[container][key])

    def delete(self, container: str, partition: str, doc_id: str, etag: str | None = None) -> bool:
        current = self._data[container].get((partition, doc_id))
        if current is None:
            return False
        if etag is not None and current["_etag"] != etag:
            raise WriteConflict("etag mismatch")
        del self._data[container][(partition, doc_id)]
        return True

    def write_batch(self, container: str, partition: str, ops: Sequence[BatchOp]) -> None:
        with self._batching:
            docs = self._data[container]
            for op in ops:
                if _partition_of(container, op.doc) != partition:
                    raise ValueError("a batch writes one partition")
                current = docs.get((partition, str(op.doc["id"])))
                if (op.kind == "create") != (current is None):
                    raise WriteConflict("batch precondition failed")
                if current is not None and current["_etag"] != op.etag:
                    raise WriteConflict("batch precondition failed")
            for op in ops:
                key = (partition, str(op.doc["id"]))
                if op.kind == "delete":
                    del docs[key]
                else:
                    docs[key] = self._stamp(op.doc)

    def due(self, container: str, field: str, upto: str, limit: int) -> list[Document]:
        found = [
            copy.deepcopy(d)
            for d in self._data[container].values()
            if (value := _at_path(d, field)) is not None and str(value) <= upto
        ]
        return found[:limit]

    def due_in(
        self, container: str, field: str, upto: str, limit: int, *, key: str, values: Sequence[str]
    ) -> list[Document]:
        found = [
            d for d in self.due(container, field, upto, len(self._data[container])) if d.get(key) in values
        ]
        return found[:limit]

    def exists_where(self, container: str, field: str, value: str) -> bool:
        return any(_at_path(d, field) == value for d in self._data[container].values())

    def in_partition(self, container: str, partition: str) -> list[Document]:
        return [copy.deepcopy(d) for (pk, _), d in self._data[container].items() if pk == partition]

    def scan(self, container: str) -> Iterator[Document]:
        yield from (copy.deepcopy(d) for d in list(self._data[container].values()))


class MemoryBlobStore:
    """Same contract as `shared.storage.blob_store.AzureBlobStore`, in a dict."""

    def __init__(self) -> None:
        self.blobs: dict[tuple[str, str], bytes] = {}
        self.metadata_of: dict[tuple[str, str], dict[str, str]] = {}
        self.writes = 0
        self.lists = 0  # List Blobs calls: the purge's test counts them

    def put(self, container: str, name: str, data: bytes, metadata: Mapping[str, str] | None = None) -> None:
        self.blobs[(container, name)] = bytes(data)
        self.metadata_of[(container, name)] = dict(metadata or {})
        self.writes += 1

    def create(self, container: str, name: str, data: bytes, metadata: Mapping[str, str]) -> bool:
        if (container, name) in self.blobs:
            return False
        self.put(container, name, data, metadata)
        return True

    def get(self, container: str, name: str) -> bytes | None:
        return self.blobs.get((container, name))

    def metadata(self, container: str, name: str) -> Mapping[str, str] | None:
        return self.metadata_of.get((container, name)) if (container, name) in self.blobs else None

    def delete(self, container: str, name: str) -> bool:
        self.metadata_of.pop((container, name), None)
        return self.blobs.pop((container, name), None) is not None

    def list_names(self, container: str, prefix: str) -> list[str]:
        self.lists += 1
        return [name for c, name in self.blobs if c == container and name.startswith(prefix)]

    def delete_prefix(self, container: str, prefix: str) -> list[str]:
        doomed = self.list_names(container, prefix)
        for name in doomed:
            del self.blobs[(container, name)]
            self.metadata_of.pop((container, name), None)
        return doomed


class MemorySecretStore:
    """Same contract as `shared.crypto.key_vault.AzureSecretStore`, in a dict;
    `purge_protection` imitates a vault that refuses purges."""

    def __init__(self, *, purge_protection: bool = False) -> None:
        self._live: dict[str, list[Secret]] = {}
        self._deleted: dict[str, list[Secret]] = {}
        self._purge_protection = purge_protection
        self._lock = threading.Lock()
        self.calls: list[tuple[str, str]] = []  # (operation, name): lets tests count round trips

    def get(self, name: str, version: str | None = None) -> Secret | None:
        self.calls.append(("get", name))
        versions = self._live.get(name, [])
        if version is None:
            return versions[-1] if versions else None
        return next((s for s in versions if s.version == version), None)

    def set(self, name: str, value: str) -> Secret:
        self.calls.append(("set", name))
        with self._lock:
            if name in self._deleted:
                raise SecretStoreError(f"set {name}: a deleted secret by that name still exists")
            secret = Secret(name, secrets.token_hex(16), value)
            self._live.setdefault(name, []).append(secret)
            return secret

    def names(self, prefix: str = "") -> list[str]:
        self.calls.append(("names", prefix))
        return sorted(n for n in self._live if n.startswith(prefix))

    def destroy(self, name: str) -> Destroyed:
        self.calls.append(("destroy", name))
        with self._lock:
            versions = self._live.pop(name, None)
            if versions is None and name not in self._deleted:
                return Destroyed.ABSENT
            if self._purge_protection:
                self._deleted[name] = versions or self._deleted[name]
                return Destroyed.SOFT_DELETED
            self._deleted.pop(name, None)
            return Destroyed.PURGED
