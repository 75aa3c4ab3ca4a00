"""Invoice numbers against the Cosmos wire protocol: 50 concurrent requests in one series get
1..50, and two issuers racing (two processes, each with its own counter) never hand out a
number twice, leave no gap and void a week-old claim once.

The stand-in runs a batch without interleaving but is not atomic (local/cosmosdb-server.js):
these races pass because every batch of the counter fails, if it fails, on its first write
(the counter's etag). What a partly failed batch leaves in Cosmos is not tested here."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from shared.invoices.numbering import (
    CHECKED_AT,
    ClaimCheck,
    ClaimVerdict,
    InvoiceCounter,
    claim_id,
    counter_id,
)
from shared.invoices.profile import parse_profile
from shared.invoices.render import ReportlabRenderer
from shared.invoices.service import InvoicingService
from shared.orders.messages import IssueInvoice
from shared.orders.repository import OrderRepository
from shared.storage.blob_store import PathBlobs
from shared.storage.document_store import STATE, CosmosDocumentStore
from tests.fakes import LocalByteSealer, MemoryBlobStore, audit_trail
from tests.worlds.invoices import DE, NOW, PROFILE, World, de_consumer, held_claims

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
    assert sorted(number for number, _ in held_claims(cosmos_store, series).values()) == list(
        range(1, REQUESTS + 1)
    )


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
    assert c.number == 3
    assert held_claims(cosmos_store, series) == {
        "ref-b:invoice": [2, NOW.isoformat()],
        "ref-c:invoice": [3, later.isoformat()],
    }
    kept = cosmos_store.read(STATE, counter_id(series), claim_id("ref-b:invoice"))
    assert kept is not None and kept[CHECKED_AT] == later.isoformat()  # checked, kept, stamped
    assert second.allocate(series, "ref-b:invoice", later, never_settled).number == 2


def _race(counters: list[InvoiceCounter], series: str, claims: list[str], check: ClaimCheck) -> None:
    """Every claim asked of every counter at once, `at` a week after NOW."""
    later = NOW + timedelta(days=8)
    with ThreadPoolExecutor(max_workers=2 * len(claims)) as pool:
        jobs = [pool.submit(c.allocate, series, claim, later, check) for claim in claims for c in counters]
        for job in jobs:
            job.result()


def test_two_issuers_racing_never_hand_out_a_number_twice(cosmos_store: CosmosDocumentStore) -> None:
    series = f"R{uuid.uuid4().hex[:8]}"
    issuers = [InvoiceCounter(cosmos_store), InvoiceCounter(cosmos_store)]
    claims = [f"ref-race-{n:02d}:invoice" for n in range(20)]
    _race(issuers, series, claims, never_settled)
    numbers = {claim: issuers[0].held(series, claim) for claim in claims}
    assert sorted(n for n in numbers.values() if n is not None) == list(range(1, 21))
    assert [issuers[1].held(series, claim) for claim in claims] == list(numbers.values())
    assert (issuers[0].peek(series) or {}).get("next") == 21


def test_two_issuers_racing_void_a_week_old_claim_once(cosmos_store: CosmosDocumentStore) -> None:
    series = f"V{uuid.uuid4().hex[:8]}"
    issuers = [InvoiceCounter(cosmos_store), InvoiceCounter(cosmos_store)]
    for n in range(5):  # numbers 1-5, claimed a week ago by orders that vanished since
        issuers[0].allocate(series, f"ref-gone-{n}:invoice", NOW, never_settled)
    _race(issuers, series, [f"ref-new-{n:02d}:invoice" for n in range(10)], lambda *_: ClaimVerdict.VOID)
    state = issuers[1].peek(series)
    assert state is not None and state["next"] == 16
    assert sorted(v["number"] for v in state["voided"]) == [1, 2, 3, 4, 5]
    assert sorted(n for n, _ in held_claims(cosmos_store, series).values()) == list(range(6, 16))
