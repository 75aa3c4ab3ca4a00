"""The invoicing tests' sealer, and a view of what a memory blob store holds.

`LocalByteSealer` is real AES-256-GCM with one random key per ref held in memory; `shred`
destroys a ref's key, which is what crypto-shredding does to an order's blobs in Azure.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.errors import AppError
from shared.storage.blob_store import MemoryBlobStore

NONCE_BYTES = 12


class KeyShredded(AppError):
    code = "key_shredded"


class LocalByteSealer:
    def __init__(self) -> None:
        self._keys: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def _key(self, ref: str, create: bool) -> bytes:
        with self._lock:
            if ref not in self._keys:
                if not create:
                    raise KeyShredded("no key for this reference")
                self._keys[ref] = AESGCM.generate_key(bit_length=256)
            return self._keys[ref]

    def seal_bytes(self, ref: str, data: bytes, now: datetime) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(self._key(ref, create=True)).encrypt(nonce, data, ref.encode())

    def epoch_of(self, sealed: bytes) -> str | None:
        return None  # one key per reference, no epochs

    def open_bytes(self, ref: str, sealed: bytes) -> bytes:
        key = self._key(ref, create=False)
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], ref.encode())

    def shred(self, ref: str) -> None:
        with self._lock:
            self._keys.pop(ref, None)


def stored(memory: MemoryBlobStore) -> dict[str, bytes]:
    """The blobs by the names `PathBlobs` gives them ("<container>/<name>")."""
    return {f"{container}/{name}": data for (container, name), data in memory.blobs.items()}
