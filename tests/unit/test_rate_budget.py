"""The shared token bucket: burst, refill, live rate, 429 back-off, and CAS between instances."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.ingestion.rate_budget import CONFIRM_SHIPMENT, GET_ORDER, SEARCH_ORDERS, RateBudget
from shared.storage.document_store import STATE
from tests.fakes import MemoryDocumentStore

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def test_burst_then_one_token_per_interval_without_sleeping() -> None:
    budget = RateBudget(MemoryDocumentStore())
    assert all(budget.try_acquire("S", SEARCH_ORDERS, NOW).granted for _ in range(20))
    denied = budget.try_acquire("S", SEARCH_ORDERS, NOW)
    assert not denied.granted and denied.wait_s == pytest.approx(1 / 0.0056)
    assert not budget.try_acquire("S", SEARCH_ORDERS, NOW + timedelta(seconds=170)).granted
    assert budget.try_acquire("S", SEARCH_ORDERS, NOW + timedelta(seconds=179)).granted


def test_operations_and_sellers_have_separate_buckets() -> None:
    budget = RateBudget(MemoryDocumentStore())
    for _ in range(10):
        assert budget.try_acquire("S", CONFIRM_SHIPMENT, NOW).granted
    assert not budget.try_acquire("S", CONFIRM_SHIPMENT, NOW).granted
    assert budget.try_acquire("T", CONFIRM_SHIPMENT, NOW).granted
    assert budget.try_acquire("S", GET_ORDER, NOW).granted


def test_instances_share_the_bucket_through_the_store() -> None:
    store = MemoryDocumentStore()
    one, two = RateBudget(store), RateBudget(store)
    granted = sum(b.try_acquire("S", GET_ORDER, NOW).granted for _ in range(20) for b in (one, two))
    assert granted == 30  # the burst, not 2 x 30


def test_a_concurrent_writer_makes_the_loser_reread() -> None:
    store = MemoryDocumentStore()
    budget = RateBudget(store)
    budget.try_acquire("S", GET_ORDER, NOW)
    real_replace = store.replace
    raced = []

    def racing_replace(container: str, doc: dict, etag: str) -> dict:  # type: ignore[type-arg]
        if not raced:  # another instance takes a token between our read and our write
            raced.append(True)
            current = store.read(STATE, doc["pk"], doc["id"])
            assert current is not None
            real_replace(container, {**current, "tokens": current["tokens"] - 1}, current["_etag"])
        return real_replace(container, doc, etag)

    store.replace = racing_replace  # type: ignore[method-assign]
    assert budget.try_acquire("S", GET_ORDER, NOW).granted
    doc = store.read(STATE, "seller|S", "budget|getOrder")
    assert doc is not None and doc["tokens"] == pytest.approx(27)


def test_live_rate_and_throttling() -> None:
    budget = RateBudget(MemoryDocumentStore())
    budget.observe("S", GET_ORDER, NOW, 2.0)
    assert budget.plan(GET_ORDER).rate == 0.5  # the default plan is unchanged; the bucket adapts
    wait = budget.throttled("S", GET_ORDER, NOW, None)
    assert wait == pytest.approx(0.5)  # the live rate, 2/s
    assert not budget.try_acquire("S", GET_ORDER, NOW).granted
    assert not budget.try_acquire("S", GET_ORDER, NOW + timedelta(seconds=0.4)).granted
    assert budget.try_acquire("S", GET_ORDER, NOW + timedelta(seconds=0.5)).granted
