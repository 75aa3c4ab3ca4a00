"""Ingestion benchmarks: SP-API calls per order, and a 10,000-order backfill on simulated time.

Both drive the real stack the timer runs (IngestionService -> SpApiGateway ->
python-amazon-sp-api -> HTTPS -> the SP-API stand-in, whose token buckets refill on a
simulated clock), with the real envelope cipher and order references over an in-memory
secret store, and the in-memory document store (Cosmos speed is not what is measured).

- `ingest_spapi_calls_per_order`: SP-API requests (every operation) per order stored, for a
  1,000-order backfill. LWA token requests are not SP-API calls and are reported apart.
- `backfill_10k_simulated_hours`: simulated time from the first poll until the poll that
  stored the last of 10,000 orders, with the timer firing every `TIMER_S` seconds, beside
  `backfill_10k_limit_hours`, the least Amazon's default plan allows: 100 pages, the first 20
  from the burst, then one every 1/0.0056 s.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from local.memory_stores import MemoryDocumentStore, MemorySecretStore
from local.sample_orders import generate
from local.spapi_server import SEARCH_ORDERS, SimClock, SpApiStandIn
from shared.crypto.envelope import EnvelopeCipher
from shared.crypto.key_epochs import KeyEpochs
from shared.ingestion.rate_budget import DEFAULT_PLANS, RateBudget
from shared.ingestion.service import IngestionService
from shared.ingestion.spapi_gateway import SpApiGateway
from shared.orders.reference import OrderReferencer
from shared.orders.repository import OrderRepository
from shared.settings import load_settings
from shared.storage.document_store import ORDERS, STATE, CountingStore

START = datetime(2026, 11, 1, tzinfo=UTC)
SELLER = "A1SELLER"
MARKETPLACES = ("A1PA6795UKMFR9", "A13V1IB3VIYZZH", "APJ6JRA9NG5V4", "A1RKKUPIHCS9HS", "A1F83G8C2ARO7P")
TIMER_S = 60  # POLL_ORDERS_SCHEDULE "0 */1 * * * *"
PAGE = 100


def _service(stand_in: SpApiStandIn, store: CountingStore) -> IngestionService:
    settings = load_settings(
        {
            "STORAGE": "UseDevelopmentStorage=true",
            "COSMOS_ENDPOINT": "https://127.0.0.1:1",
            "KEY_VAULT_URL": "https://127.0.0.1:1",
            "SELLERS": json.dumps(
                [{"sellerId": SELLER, "marketplaceIds": list(MARKETPLACES), "refreshTokenSecret": "rt"}]
            ),
            "SPAPI_ENDPOINT": stand_in.url,
            "LWA_ENDPOINT": stand_in.url + "/auth/o2/token",
        }
    )
    credentials = {
        "lwa_app_id": "bench",
        "lwa_client_secret": "bench",
        "refresh_token": f"Atzr|{uuid.uuid4()}",
    }
    secrets = MemorySecretStore()
    return IngestionService(
        settings,
        repository=OrderRepository(store),
        store=store,
        cipher=EnvelopeCipher(KeyEpochs(secrets, stand_in.clock)),
        refs=OrderReferencer(secrets),
        gateway=SpApiGateway(settings, lambda _seller: credentials, verify=stand_in.ca_file),
        budget=RateBudget(store),
        poll_interval=timedelta(seconds=TIMER_S),
        backfill=timedelta(days=30),
    )


def _orders(count: int) -> list[dict[str, Any]]:
    return generate(
        count, seed=2026, start=START - timedelta(days=25), marketplaces=MARKETPLACES, afn_share=0.0
    )


def _cycle_running(store: CountingStore) -> bool:
    cursor = store.read(STATE, f"seller|{SELLER}", "orders-cursor")
    return bool(cursor and cursor.get("cycle"))


def calls_per_order() -> Iterator[dict[str, object]]:
    clock = SimClock(START)
    with SpApiStandIn(_orders(1000), clock=clock) as stand_in:
        store = CountingStore(MemoryDocumentStore())
        service = _service(stand_in, store)
        ready = service.poll(clock())
        stored = sum(1 for _ in store.scan(ORDERS))
        calls = sum(stand_in.calls.values())
    yield {
        "metric": "ingest_spapi_calls_per_order",
        "value": round(calls / stored, 4),
        "unit": "calls/order",
        "target": 0.012,
        "orders": stored,
        "spapi_calls": calls,
        "lwa_token_requests": stand_in.token_requests,
        "ready_to_ship": len(ready),
    }


def backfill_10k() -> Iterator[dict[str, object]]:
    plan = DEFAULT_PLANS[SEARCH_ORDERS]
    count = 10_000
    pages = -(-count // PAGE)
    limit_s = max(0, pages - plan.burst) / plan.rate
    clock = SimClock(START)
    with SpApiStandIn(_orders(count), clock=clock) as stand_in:
        store = CountingStore(MemoryDocumentStore())
        service = _service(stand_in, store)
        polls = 0
        while True:
            service.poll(clock())
            polls += 1
            if not _cycle_running(store) or polls > 10 * limit_s / TIMER_S:
                break
            clock.advance(TIMER_S)
        elapsed_s = (clock() - START).total_seconds()
        stored = sum(1 for _ in store.scan(ORDERS))
    yield {
        "metric": "backfill_10k_simulated_hours",
        "value": round(elapsed_s / 3600, 3),
        "unit": "h",
        "limit_h": round(limit_s / 3600, 3),
        "within_limit_pct": round(100 * (elapsed_s - limit_s) / limit_s, 2),
        "orders_stored": stored,
        "search_calls": stand_in.calls[SEARCH_ORDERS],
        "unhandled_429": stand_in.throttled[SEARCH_ORDERS],
        "timer_s": TIMER_S,
        "polls": polls,
    }
    yield {"metric": "backfill_10k_limit_hours", "value": round(limit_s / 3600, 3), "unit": "h"}


def run() -> Iterator[dict[str, object]]:
    yield from calls_per_order()
    yield from backfill_10k()


if __name__ == "__main__":
    for row in run():
        print(json.dumps(row))
