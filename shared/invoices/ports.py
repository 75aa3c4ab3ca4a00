"""The small interfaces the invoicing service needs from storage and crypto.

`BlobStore` is `shared.storage.blob_store.PathBlobs` (Azure Blob Storage, or its
in-memory store in unit tests); `ByteSealer` is `shared.crypto.secrets.OrderBytesSealer` over
`shared.crypto.envelope` (unit tests use `tests.fakes.LocalByteSealer`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol


class BlobStore(Protocol):
    def put(self, name: str, data: bytes) -> None: ...

    def create(self, name: str, data: bytes, metadata: Mapping[str, str]) -> bool:
        """Store only if no blob has the name; False (nothing written) if one has."""
        ...

    def get(self, name: str) -> bytes | None: ...

    def metadata(self, name: str) -> Mapping[str, str] | None:
        """The blob's metadata, or None when there is no such blob."""
        ...

    def delete(self, name: str) -> bool: ...


class ByteSealer(Protocol):
    """Encrypts bytes under the key that `ref` names (an order's data key, or the archive key)."""

    def seal_bytes(self, ref: str, data: bytes, now: datetime) -> bytes: ...

    def open_bytes(self, ref: str, sealed: bytes) -> bytes: ...

    def epoch_of(self, sealed: bytes) -> str | None:
        """The key epoch `sealed` depends on (None for a key that epochs do not govern): the
        order records it, so the epoch is not shredded while the document is needed."""
        ...
