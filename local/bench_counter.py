"""Invoice counter benchmark (issue 21): Cosmos request bytes per invoice as the claims pile up.

Allocates 120, then 1,000 numbers, each in a fresh series on the Cosmos stand-in, a minute
apart (so no claim is a week old and none is settled: every claim of the run stays, as in a
busy week), under `local.call_meter`. Prints `counter_request_bytes_per_invoice` (request
line, headers and body of every Cosmos call the counter makes) at each size, and their ratio:
a counter that does not grow prints the same figure twice. This is the counter's part of the
pipeline's Cosmos bytes per order; `bench_bill` measures the whole pipeline at tens of orders.

    python -m local.bench_counter
"""

from __future__ import annotations

import json
import sys
import uuid
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from azure.cosmos import CosmosClient

from local import emulators
from local.call_meter import CallMeter
from shared.invoices.numbering import ClaimVerdict, InvoiceCounter
from shared.storage.document_store import CosmosDocumentStore, ensure_local_containers

SIZES = (120, 1000)
START = datetime(2026, 3, 2, tzinfo=UTC)
BENCH = "bench_counter"


def _bytes_per_invoice(client: CosmosClient, port: int, invoices: int) -> float:
    database = f"counter-{uuid.uuid4().hex[:8]}"
    ensure_local_containers(client, database)
    counter = InvoiceCounter(CosmosDocumentStore(client, database))
    meter = CallMeter({port: "cosmos"}, lambda: BENCH)
    with meter.installed():
        for n in range(invoices):
            at = START + timedelta(minutes=n)
            counter.allocate("INV2026", f"{n:03d}-{n * 7919:07d}-{n * 104729:07d}:invoice", at, _kept)
    cosmos = [call for call in meter.calls if call.service == "cosmos"]
    return sum(len(call.raw) for call in cosmos) / invoices


def _kept(series: str, claim: str, number: int) -> ClaimVerdict:
    return ClaimVerdict.KEEP


def run() -> Iterator[dict[str, object]]:
    warnings.filterwarnings("ignore", message="Unverified HTTPS request")
    with emulators.running() as emu:
        client = CosmosClient(
            emu.cosmos_endpoint, credential=emulators.COSMOS_EMULATOR_KEY, connection_verify=False
        )
        measured = {size: _bytes_per_invoice(client, emu.cosmos_port, size) for size in SIZES}
    for size, value in measured.items():
        yield {
            "metric": "counter_request_bytes_per_invoice",
            "value": round(value),
            "unit": "B",
            "invoices": size,
        }
    small, large = measured[SIZES[0]], measured[SIZES[-1]]
    yield {
        "metric": "counter_request_bytes_growth",
        "value": round(large / small, 3),
        "unit": "x",
        "scope": f"bytes per invoice at {SIZES[-1]} over {SIZES[0]} invoices",
        "target": 1.10,
    }


if __name__ == "__main__":
    for row in run():
        sys.stdout.write(json.dumps(row) + "\n")
