"""A token bucket per seller and SP-API operation, shared by every function instance.

Design notes: docs/ingestion.md ("Design notes: `shared.ingestion.rate_budget`")."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.storage.document_store import STATE, Document, DocumentStore, WriteConflict

SEARCH_ORDERS = "searchOrders"
GET_ORDER = "getOrder"
CONFIRM_SHIPMENT = "confirmShipment"
MAX_CAS_ATTEMPTS = 5
CONTENDED_WAIT_S = 1.0  # when other instances keep winning the CAS, try again shortly


@dataclass(frozen=True, slots=True)
class Plan:
    rate: float  # requests per second
    burst: int


# Amazon's default usage plans (orders_2026-01-01.json, ordersV0.json).
DEFAULT_PLANS: Mapping[str, Plan] = {
    SEARCH_ORDERS: Plan(0.0056, 20),
    GET_ORDER: Plan(0.5, 30),
    CONFIRM_SHIPMENT: Plan(2.0, 10),
}


@dataclass(frozen=True, slots=True)
class Acquired:
    """`granted`, or else `wait_s` seconds until a token is expected."""

    granted: bool
    wait_s: float = 0.0


def seller_partition(seller_id: str) -> str:
    return f"seller|{seller_id}"


@dataclass(frozen=True, slots=True)
class Bucket:
    """One token bucket's state as of `at`; stored as `to_doc()` inside a state document."""

    tokens: float
    at: datetime
    rate: float
    burst: int

    @classmethod
    def full(cls, plan: Plan, now: datetime) -> Bucket:
        return cls(float(plan.burst), now, plan.rate, plan.burst)

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Bucket:
        return cls(
            float(doc["tokens"]), datetime.fromisoformat(doc["at"]), float(doc["rate"]), int(doc["burst"])
        )

    def to_doc(self) -> dict[str, object]:
        return {"tokens": self.tokens, "at": self.at.isoformat(), "rate": self.rate, "burst": self.burst}

    def refilled(self, now: datetime) -> Bucket:
        elapsed = max(0.0, (now - self.at).total_seconds())
        tokens = min(float(self.burst), self.tokens + elapsed * self.rate)
        return Bucket(tokens, max(self.at, now), self.rate, self.burst)

    def wait_for_one(self) -> float:
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate

    @property
    def is_full(self) -> bool:
        return self.tokens >= self.burst

    def taken(self) -> Bucket:
        return Bucket(self.tokens - 1.0, self.at, self.rate, self.burst)

    def emptied(self, rate: float | None) -> Bucket:
        """After a 429: nothing left, and Amazon's live rate when it sent one."""
        return Bucket(0.0, self.at, rate if rate is not None and rate > 0 else self.rate, self.burst)

    def observed(self, rate: float | None) -> Bucket:
        """Amazon's live rate from `x-amzn-RateLimit-Limit`, when it sent one."""
        if rate is None or rate <= 0 or rate == self.rate:
            return self
        return Bucket(self.tokens, self.at, rate, self.burst)


class RateBudget:
    def __init__(self, store: DocumentStore, plans: Mapping[str, Plan] = DEFAULT_PLANS) -> None:
        self._store = store
        self._plans = dict(plans)

    def plan(self, operation: str) -> Plan:
        return self._plans[operation]

    def try_acquire(self, seller_id: str, operation: str, now: datetime) -> Acquired:
        """Take one token if there is one; never waits."""
        for _ in range(MAX_CAS_ATTEMPTS):
            doc, bucket = self._load(seller_id, operation, now)
            if bucket.tokens < 1.0:
                return Acquired(False, bucket.wait_for_one())
            try:
                self._save(doc, bucket.taken())
            except WriteConflict:
                continue
            return Acquired(True)
        return Acquired(False, CONTENDED_WAIT_S)

    def observe(self, seller_id: str, operation: str, now: datetime, rate: float | None) -> None:
        """Adopt the live rate Amazon reported in `x-amzn-RateLimit-Limit` (no-op if unchanged)."""
        if rate is None or rate <= 0:
            return
        self._change(seller_id, operation, now, lambda b: None if b.rate == rate else b.observed(rate))

    def throttled(self, seller_id: str, operation: str, now: datetime, rate: float | None) -> float:
        """Amazon answered 429: empty the bucket (and adopt `rate`); returns the wait in seconds."""
        bucket = self._change(seller_id, operation, now, lambda b: b.emptied(rate))
        return 1.0 / bucket.rate

    def _change(
        self, seller_id: str, operation: str, now: datetime, fn: Callable[[Bucket], Bucket | None]
    ) -> Bucket:
        for _ in range(MAX_CAS_ATTEMPTS):
            doc, bucket = self._load(seller_id, operation, now)
            changed = fn(bucket)
            if changed is None:
                return bucket
            try:
                self._save(doc, changed)
            except WriteConflict:
                continue
            return changed
        raise WriteConflict("rate budget kept changing")

    def _load(self, seller_id: str, operation: str, now: datetime) -> tuple[Document, Bucket]:
        partition = seller_partition(seller_id)
        doc_id = f"budget|{operation}"
        doc = self._store.read(STATE, partition, doc_id)
        if doc is None:
            return {"id": doc_id, "pk": partition}, Bucket.full(self._plans[operation], now)
        return doc, Bucket.from_doc(doc).refilled(now)

    def _save(self, doc: Document, bucket: Bucket) -> None:
        body = {"id": doc["id"], "pk": doc["pk"], **bucket.to_doc()}
        etag = doc.get("_etag")
        if etag is None:
            self._store.create(STATE, body)
        else:
            self._store.replace(STATE, body, etag)
