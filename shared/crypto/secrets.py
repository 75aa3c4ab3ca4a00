"""Secret values read from Key Vault by name, clients kept only as long as the credentials read
for them may be (`RenewedClients`), and the byte sealers over keys: the order's envelope cipher
for invoices, and the archive's own key for archived copies."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.crypto.envelope import EnvelopeCipher, epoch_of
from shared.crypto.key_vault import SecretStore
from shared.errors import SettingsError

INVOICE_PURPOSE = "tax-invoice"
#: How long a client made with credentials read from Key Vault is kept: under the hour an LWA
#: access token lives, so every token refresh runs on credentials read again (a rotated LWA
#: secret is used with no restart).
CREDENTIALS_MAX_AGE_S = 50 * 60

K = TypeVar("K", bound=Hashable)
C = TypeVar("C")


class SecretValues:
    """Reads secret values by name from Key Vault, failing with the name (never the value)."""

    def __init__(self, store: SecretStore) -> None:
        self._store = store

    def __call__(self, name: str) -> str:
        secret = self._store.get(name)
        if secret is None:
            raise SettingsError(f"Key Vault secret {name} is missing")
        return secret.value


class RenewedClients(Generic[K, C]):
    """`make(key)` builds a client with credentials it reads then; each is kept at most
    `max_age_s`, then made again, and `forget` drops some at once (after a refusal).
    `on_drop` closes a client that is replaced or dropped, once no `borrow` holds it (a client
    taken with a plain call is not counted: use `borrow` where `on_drop` closes). Thread-safe."""

    def __init__(
        self,
        make: Callable[[K], C],
        *,
        max_age_s: float = CREDENTIALS_MAX_AGE_S,
        monotonic: Callable[[], float] = time.monotonic,
        on_drop: Callable[[C], None] | None = None,
    ) -> None:
        self._make = make
        self._max_age_s = max_age_s
        self._monotonic = monotonic
        self._on_drop = on_drop
        self._kept: dict[K, tuple[C, float]] = {}
        #: Clients lent by `borrow` and how many borrowers hold each; a dropped one waits here.
        self._lent: list[_Lent[C]] = []
        self._lock = threading.Lock()

    def __call__(self, key: K) -> C:
        with self._lock:
            client, dropped = self._current(key)
        self._close(dropped)
        return client

    @contextmanager
    def borrow(self, key: K) -> Iterator[C]:
        """The key's client, held for the block: it is not closed while a borrower holds it."""
        with self._lock:
            client, dropped = self._current(key)
            lent = next((entry for entry in self._lent if entry.client is client), None)
            if lent is None:
                lent = _Lent(client)
                self._lent.append(lent)
            lent.borrowers += 1
        self._close(dropped)
        try:
            yield client
        finally:
            with self._lock:
                lent.borrowers -= 1
                done = lent.borrowers == 0
                if done:
                    self._lent.remove(lent)
            self._close([client] if done and lent.dropped else [])

    def forget(self, match: Callable[[K], bool] = lambda _key: True) -> None:
        """Drop the clients whose key matches (all by default): the next call makes them again."""
        with self._lock:
            dropped = [self._dropped(self._kept.pop(k)[0]) for k in [k for k in self._kept if match(k)]]
        self._close([c for c in dropped if c is not None])

    def _current(self, key: K) -> tuple[C, list[C]]:
        """The key's client, made again when too old, and the client it replaced if it may be
        closed now (called under the lock)."""
        now = self._monotonic()
        kept = self._kept.get(key)
        if kept is not None and now - kept[1] < self._max_age_s:
            return kept[0], []
        dropped = self._dropped(kept[0]) if kept is not None else None
        client = self._make(key)
        self._kept[key] = (client, now)
        return client, [dropped] if dropped is not None else []

    def _dropped(self, client: C) -> C | None:
        """`client` when no borrower holds it; else it is marked, and its last borrower closes it."""
        lent = next((entry for entry in self._lent if entry.client is client), None)
        if lent is None:
            return client
        lent.dropped = True
        return None

    def _close(self, clients: list[C]) -> None:
        if self._on_drop is not None:
            for client in clients:
                self._on_drop(client)


@dataclass(slots=True)
class _Lent(Generic[C]):
    client: C
    borrowers: int = 0
    dropped: bool = False


def json_secret(values: SecretValues, name: str) -> Mapping[str, Any]:
    raw = values(name)
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise SettingsError(f"Key Vault secret {name} must hold a JSON object") from None
    if not isinstance(parsed, dict):
        raise SettingsError(f"Key Vault secret {name} must hold a JSON object")
    return parsed


class OrderBytesSealer:
    """The invoicing `ByteSealer`: the order's envelope cipher, purpose `tax-invoice`, as bytes."""

    def __init__(self, cipher: EnvelopeCipher, purpose: str = INVOICE_PURPOSE) -> None:
        self._cipher = cipher
        self._purpose = purpose

    def seal_bytes(self, ref: str, data: bytes, now: datetime) -> bytes:
        envelope = self._cipher.seal_bytes(ref, self._purpose, data, now)
        return json.dumps(envelope, separators=(",", ":")).encode()

    def open_bytes(self, ref: str, sealed: bytes) -> bytes:
        return self._cipher.open_bytes(ref, self._purpose, json.loads(sealed))

    def epoch_of(self, sealed: bytes) -> str | None:
        return epoch_of(json.loads(sealed))


class VaultKeySealer:
    """AES-256-GCM under one long-lived key held as a Key Vault secret: the invoice archive's
    separate key (a separate vault and role in production, docs/invoices.md), never shredded
    with the weekly epochs because the law may require keeping invoices for years."""

    def __init__(self, store: SecretStore, secret_name: str, *, create_missing: bool = True) -> None:
        self._store = store
        self._name = secret_name
        self._key: bytes | None = None
        #: False in the app: the key is made once by `ops init-keys`, never on first use.
        self._create_missing = create_missing

    def _load(self) -> bytes:
        if self._key is None:
            secret = self._store.get(self._name)
            if secret is None and not self._create_missing:
                raise SettingsError(f"Key Vault secret {self._name} is missing: run ops init-keys")
            if secret is None:
                self._store.set(self._name, base64.b64encode(os.urandom(32)).decode())
                secret = self._store.get(self._name)
            if secret is None:
                raise SettingsError(f"Key Vault secret {self._name} could not be created")
            self._key = base64.b64decode(secret.value)
        return self._key

    def seal_bytes(self, ref: str, data: bytes, now: datetime) -> bytes:
        nonce = os.urandom(12)
        return nonce + AESGCM(self._load()).encrypt(nonce, data, ref.encode())

    def open_bytes(self, ref: str, sealed: bytes) -> bytes:
        return AESGCM(self._load()).decrypt(sealed[:12], sealed[12:], ref.encode())

    def epoch_of(self, sealed: bytes) -> str | None:
        return None  # the archive's own key: no epoch governs it
