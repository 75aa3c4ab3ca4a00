"""The privacy world: `PrivacyService` over a memory store and memory blobs, with the fake
cipher in its readable form, so `leaks` can tell where an order's synthetic buyer data is."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric import rsa

from shared.orders.deadlines import RetentionPolicy
from shared.orders.record import PiiCipher
from shared.privacy.service import PrivacyService
from shared.storage.document_store import AUDIT
from tests.builders import shipped_record, token
from tests.fakes import FakeCipher, MemoryBlobs, MemoryDocumentStore, audit_trail
from tests.worlds import order_repository

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
POLICY = RetentionPolicy(retention_days=7, delivery_grace_days=3, recoverability_days=28)
REF = "Rf0000000000000000000A"  # 22 base64url characters, as OrderReferencer makes
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


class World:
    """`scheduled` writes orders (the world's and the service's) under the app's retention
    schedule (`tests.worlds.order_repository`); it is off by default because it changes what
    a test sees: restricting an order then restarts its Cosmos `ttl`, where
    test_restrict_marks_the_order_and_keeps_its_expiry expects the expiry kept."""

    def __init__(self, *, scheduled: bool = False, cipher: PiiCipher | None = None) -> None:
        self.store = MemoryDocumentStore()
        self.orders = order_repository(self.store, (lambda: T0) if scheduled else None, POLICY)
        self.blobs = MemoryBlobs()
        self.cipher = cipher or FakeCipher(readable=True)
        self.audit = audit_trail(self.store)
        self.service = PrivacyService(
            self.store,
            cipher=self.cipher,
            blobs=self.blobs,
            policy=POLICY,
            orders=self.orders,
            audit=audit_trail(self.store),
        )

    def order(self, n: int = 1, ref: str = REF) -> str:
        self.orders.create(shipped_record(n, ref, T0, latest_delivery_at=None, cipher=self.cipher))
        self.blobs.put("labels", f"{ref}/label.pdf", token(n, "name").encode())
        return ref

    def leaks(self, n: int = 1) -> list[str]:
        """Where the synthetic tokens of order `n` still appear (documents and blobs)."""
        found = []
        for container in ("orders", AUDIT):
            text = json.dumps(list(self.store.scan(container)))
            found += [f"{container}:{t}" for t in ("name", "street", "mail") if token(n, t) in text]
        found += [f"blob:{k}" for k, v in self.blobs.blobs.items() if token(n, "name").encode() in v]
        return found
