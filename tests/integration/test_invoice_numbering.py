"""50 concurrent invoice requests in one series against the Cosmos wire protocol get 1..50."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from shared.invoices.numbering import ClaimVerdict, InvoiceCounter
from shared.invoices.profile import parse_profile
from shared.invoices.render import ReportlabRenderer
from shared.invoices.service import InvoicingService
from shared.orders.messages import IssueInvoice
from shared.orders.repository import OrderRepository
from shared.storage.blob_store import PathBlobs
from shared.storage.document_store import CosmosDocumentStore
from tests.fakes import LocalByteSealer, MemoryBlobStore, audit_trail
from tests.worlds.invoices import DE, NOW, PROFILE, World, de_consumer

pytestmark = pytest.mark.integration
REQUESTS = 50
INSTANCES = 5


@pytest.fixture(scope="module")
def cosmos_store(fresh_cosmos_store: Callable[[str], CosmosDocumentStore]) -> CosmosDocumentStore:
    return fresh_cosmos_store("invoices")


def test_fifty_concurrent_requests_get_one_to_fifty(cosmos_store: CosmosDocumentStore) -> None:
    world = World()  # builds orders with the fake cipher; they are copied into Cosmos below
    orders = OrderRepository(cosmos_store)
    refs = [f"ref-concurrent-{i:03d}" for i in range(REQUESTS)]
    for ref in refs:
        de_consumer(world, ref)
        record = world.orders.get(ref)
        assert record is not None
        orders.create(record.evolve(etag=None))
    profile = dict(PROFILE, series={"invoice": f"T{uuid.uuid4().hex[:6]}-"})
    # Five service instances stand for five worker processes: each has its own counter (and so
    # its own process-local lock), and only the Cosmos etag arbitrates between them.
    services = [
        InvoicingService(
            orders=orders,
            counter=InvoiceCounter(cosmos_store),
            cipher=world.cipher,
            sealer=LocalByteSealer(),
            blobs=PathBlobs(MemoryBlobStore()),
            renderer=ReportlabRenderer(),
            profile=parse_profile(profile),
            invoice_marketplaces=(DE,),  # invoice required; no uploader, so nothing is sent
            uploader=None,
            audit=audit_trail(cosmos_store),
        )
        for _ in range(INSTANCES)
    ]
    # Some orders are requested twice (a redelivery racing its original): one number each.
    requests = [IssueInvoice(ref=ref) for ref in refs + refs[:5]]
    with ThreadPoolExecutor(max_workers=REQUESTS) as pool:
        jobs = [pool.submit(services[i % INSTANCES].issue, r, NOW) for i, r in enumerate(requests)]
        for job in jobs:
            job.result()

    numbers = []
    for ref in refs:
        record = orders.get(ref)
        assert record is not None and record.invoice is not None, ref
        assert "invoice" in record.invoice, (ref, record.invoice)
        numbers.append(record.invoice["invoice"]["number"])
    assert sorted(numbers) == list(range(1, REQUESTS + 1))
    series = f"{profile['series']['invoice']}{NOW.year}"
    state = InvoiceCounter(cosmos_store).peek(series)
    assert state is not None and state["next"] == REQUESTS + 1
    assert sorted(number for number, _ in state["claims"].values()) == list(range(1, REQUESTS + 1))


def never_settled(series: str, claim: str, number: int) -> ClaimVerdict:
    return ClaimVerdict.KEEP


def test_a_claim_keeps_its_number_across_clients(cosmos_store: CosmosDocumentStore) -> None:
    series = f"S{uuid.uuid4().hex[:8]}"
    first, second = InvoiceCounter(cosmos_store), InvoiceCounter(cosmos_store)
    a = first.allocate(series, "ref-a:invoice", NOW, never_settled)
    again = second.allocate(series, "ref-a:invoice", NOW, never_settled)
    b = second.allocate(series, "ref-b:invoice", NOW, never_settled)
    assert (a.number, again.number, again.reused, b.number) == (1, 1, True, 2)
    # A week later ref-a's order holds its number: the next allocation drops its claim.
    later = NOW + timedelta(days=8)

    def verdict(series: str, claim: str, number: int) -> ClaimVerdict:
        return ClaimVerdict.DROP if claim == "ref-a:invoice" else ClaimVerdict.KEEP

    c = first.allocate(series, "ref-c:invoice", later, verdict)
    state = second.peek(series)
    assert state is not None and c.number == 3
    assert state["claims"] == {
        "ref-b:invoice": [2, NOW.isoformat(), later.isoformat()],  # checked, kept, stamped
        "ref-c:invoice": [3, later.isoformat()],
    }
    assert second.allocate(series, "ref-b:invoice", later, never_settled).number == 2
