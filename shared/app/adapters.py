"""Small adapters between the services' ports and the shared clients they run on.

Each service names the narrow interface it needs (a byte sealer, a name-addressed blob store,
a delivery source); these classes fit the process-wide clients to those interfaces, so no
service depends on another service's internals.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.crypto.envelope import EnvelopeCipher, epoch_of
from shared.crypto.key_epochs import KeyEpochs
from shared.crypto.key_vault import SecretStore
from shared.errors import AppError, SettingsError
from shared.orders.record import OrderRecord
from shared.shipping.carriers import Carrier
from shared.storage.blob_store import BlobStore

INVOICE_PURPOSE = "tax-invoice"


class SecretValues:
    """Reads secret values by name from Key Vault, failing with the name (never the value)."""

    def __init__(self, store: SecretStore) -> None:
        self._store = store

    def __call__(self, name: str) -> str:
        secret = self._store.get(name)
        if secret is None:
            raise SettingsError(f"Key Vault secret {name} is missing")
        return secret.value


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


class PathBlobs:
    """A name-addressed blob store whose names start with their container ("invoices/<ref>/...")."""

    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs

    @staticmethod
    def _split(name: str) -> tuple[str, str]:
        container, _, rest = name.partition("/")
        if not rest:
            raise AppError("blob name has no container", code="blob_name_invalid")
        return container, rest

    def put(self, name: str, data: bytes) -> None:
        self._blobs.put(*self._split(name), data)

    def create(self, name: str, data: bytes, metadata: Mapping[str, str]) -> bool:
        return self._blobs.create(*self._split(name), data, metadata)

    def get(self, name: str) -> bytes | None:
        return self._blobs.get(*self._split(name))

    def metadata(self, name: str) -> Mapping[str, str] | None:
        return self._blobs.metadata(*self._split(name))

    def delete(self, name: str) -> bool:
        return bool(self._blobs.delete_prefix(*self._split(name)))


class EpochShredder:
    """The retention `KeyShredder` over `KeyEpochs`."""

    def __init__(self, epochs: KeyEpochs) -> None:
        self._epochs = epochs

    def shred_unused(self, now: datetime, epoch_in_use: Callable[[str], bool]) -> list[str]:
        return sorted(self._epochs.shred_unused(now, epoch_in_use))


class CarrierDeliveryTracker:
    """Carrier tracking for the order's shipment.

    When the carrier reports delivery without a time, the order counts as delivered at the
    earliest moment it could have been: the previous check (at most `recheck` ago) saw it in
    transit, and it cannot predate shipping. Erring early shortens retention, never lengthens
    it past the policy's 7 days."""

    def __init__(
        self,
        carriers: Callable[[str], Mapping[str, Carrier]],
        clock: Callable[[], datetime],
        recheck: timedelta,
    ) -> None:
        self._carriers = carriers
        self._clock = clock
        self._recheck = recheck

    def delivered_at(self, record: OrderRecord) -> datetime | None:
        shipment = record.shipment or {}
        carrier = self._carriers(record.seller_id).get(str(shipment.get("carrier")))
        tracking = shipment.get("trackingNumber")
        if carrier is None or not tracking:
            return None
        info = carrier.track(str(tracking))
        if info.status != "delivered":
            return None
        if info.delivered_at is not None:
            # Carriers often report local time without an offset: read it as UTC.
            at = info.delivered_at
            return at if at.tzinfo else at.replace(tzinfo=UTC)
        earliest = self._clock() - self._recheck
        shipped = shipment.get("shippedAt")
        return max(earliest, datetime.fromisoformat(str(shipped))) if shipped else earliest


class LazyCarriers:
    """Builds each seller's carriers on first use and keeps them for the process."""

    def __init__(self, build: Callable[[str], Mapping[str, Carrier]]) -> None:
        self._build = build
        self._built: dict[str, Mapping[str, Carrier]] = {}
        self._lock = threading.Lock()

    def __call__(self, seller_id: str) -> Mapping[str, Carrier]:
        with self._lock:
            if seller_id not in self._built:
                self._built[seller_id] = self._build(seller_id)
            return self._built[seller_id]


def json_secret(values: SecretValues, name: str) -> Mapping[str, Any]:
    raw = values(name)
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise SettingsError(f"Key Vault secret {name} must hold a JSON object") from None
    if not isinstance(parsed, dict):
        raise SettingsError(f"Key Vault secret {name} must hold a JSON object")
    return parsed


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
