"""In-process implementations of the ports, for unit tests, benchmarks and the local run.

`LocalByteSealer` is real AES-256-GCM with one random key per ref held in memory; `shred`
destroys a ref's key, which is what crypto-shredding does to an order's blobs in Azure.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from datetime import datetime

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.errors import AppError

NONCE_BYTES = 12


class KeyShredded(AppError):
    code = "key_shredded"


class MemoryBlobStore:
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.metadata_of: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    def put(self, name: str, data: bytes) -> None:
        with self._lock:
            self.blobs[name] = bytes(data)
            self.metadata_of[name] = {}

    def create(self, name: str, data: bytes, metadata: Mapping[str, str]) -> bool:
        with self._lock:
            if name in self.blobs:
                return False
            self.blobs[name] = bytes(data)
            self.metadata_of[name] = dict(metadata)
            return True

    def get(self, name: str) -> bytes | None:
        with self._lock:
            return self.blobs.get(name)

    def metadata(self, name: str) -> Mapping[str, str] | None:
        with self._lock:
            return self.metadata_of.get(name) if name in self.blobs else None

    def delete(self, name: str) -> bool:
        with self._lock:
            self.metadata_of.pop(name, None)
            return self.blobs.pop(name, None) is not None


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

    def open_bytes(self, ref: str, sealed: bytes) -> bytes:
        key = self._key(ref, create=False)
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], ref.encode())

    def shred(self, ref: str) -> None:
        with self._lock:
            self._keys.pop(ref, None)
