"""A 1,000-order backfill across the wire: python-amazon-sp-api -> HTTPS stand-in, orders and
state in the Cosmos emulator, PII sealed by the real envelope cipher, refs by the real HMAC."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from local.sample_orders import generate, pii_values
from local.spapi_server import SimClock, SpApiStandIn
from shared.crypto.envelope import EnvelopeCipher
from shared.crypto.key_epochs import KeyEpochs
from shared.ingestion.rate_budget import SEARCH_ORDERS, RateBudget
from shared.ingestion.service import IngestionService
from shared.ingestion.spapi_gateway import SpApiGateway
from shared.orders.record import OrderRecord
from shared.orders.reference import OrderReferencer
from shared.orders.repository import OrderRepository
from shared.settings import load_settings
from shared.storage.document_store import ORDERS, CosmosDocumentStore, CountingStore
from tests.fakes import MemorySecretStore

pytestmark = pytest.mark.integration
START = datetime(2026, 11, 1, tzinfo=UTC)
MARKETPLACES = ("A1PA6795UKMFR9", "A13V1IB3VIYZZH", "APJ6JRA9NG5V4", "A1F83G8C2ARO7P")
SELLER = "A1SELLER"


@pytest.fixture(scope="module")
def cosmos(fresh_cosmos_store: Callable[[str], CosmosDocumentStore]) -> CosmosDocumentStore:
    return fresh_cosmos_store("ingest")


@pytest.fixture
def orders() -> list[dict[str, Any]]:
    return generate(1000, seed=11, start=START - timedelta(days=25), marketplaces=MARKETPLACES, afn_share=0.1)


@pytest.fixture
def stand_in(orders: list[dict[str, Any]]) -> Iterator[SpApiStandIn]:
    server = SpApiStandIn(orders, clock=SimClock(START))
    server.start()
    yield server
    server.stop()


def test_one_backfill_cycle_stores_each_order_once_sealed_and_a_second_stores_nothing(
    cosmos: CosmosDocumentStore, stand_in: SpApiStandIn, orders: list[dict[str, Any]]
) -> None:
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
        "lwa_app_id": "app",
        "lwa_client_secret": "secret",
        "refresh_token": f"Atzr|{uuid.uuid4()}",
    }
    store = CountingStore(cosmos)
    secrets = MemorySecretStore()
    clock = stand_in.clock
    refs = OrderReferencer(secrets)
    service = IngestionService(
        settings,
        repository=OrderRepository(store),
        store=store,
        cipher=EnvelopeCipher(KeyEpochs(secrets, clock)),
        refs=refs,
        gateway=SpApiGateway(settings, lambda _seller: credentials, verify=stand_in.ca_file),
        budget=RateBudget(store),
        backfill=timedelta(days=30),
    )

    ready = service.poll(clock())

    mfn = [o for o in orders if o["fulfillment"]["fulfilledBy"] == "MERCHANT"]
    refs_expected = {refs.ref(o["orderId"]): o for o in mfn}
    docs = {d["id"]: d for d in cosmos.scan(ORDERS) if d["id"] in refs_expected}
    assert set(docs) == set(refs_expected)
    assert store.counts["orders.write"] == len(mfn)  # each stored exactly once
    shippable = {
        r
        for r, o in refs_expected.items()
        if o["fulfillment"]["fulfillmentStatus"] == "UNSHIPPED"  # partially shipped: a person
    }
    assert sorted(m.ref for m in ready) == sorted(shippable)
    assert stand_in.calls[SEARCH_ORDERS] == -(-len(mfn) // 100) and stand_in.throttled[SEARCH_ORDERS] == 0
    for ref, doc in docs.items():
        order = refs_expected[ref]
        text = json.dumps(doc)
        assert not any(t in text for t in pii_values(order)), "plain PII in a stored document"
        record = OrderRecord.from_doc(doc)
        if order["fulfillment"]["fulfillmentStatus"] in ("CANCELLED", "UNFULFILLABLE"):
            assert record.pii is None
        else:
            assert record.pii, "sealed envelope missing"
            opened = EnvelopeCipher(KeyEpochs(secrets, clock)).open(ref, record.pii)
            assert opened.order_id == order["orderId"]

    writes_before = store.counts["orders.write"]
    stand_in.advance(300)
    assert service.poll(clock()) == []
    assert store.counts["orders.write"] == writes_before
