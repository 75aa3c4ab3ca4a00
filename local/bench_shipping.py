"""Shipping benchmarks.

`shipping_cpu_ms_per_order` (per carrier and overall): CPU time of this process per shipped
order, steady state (karrio loaded, OAuth tokens cached): rules, decrypting the address,
karrio building the request and parsing the answer, sealing the label, CAS writes. The carrier
stand-ins run in a child process so their CPU is not counted. UPS costs most: karrio turns the
image that UPS returns (made 1-bit first by the adapter) into a 1200x1800 PDF.
`karrio_first_use_s`: wall time of the first label in a fresh process's shipping path (karrio
import and plugin discovery), paid once per worker by ship_order only.
`cold_import_s` (per function module): median wall time of `python -c "import functions.<m>"`
in a fresh interpreter; `karrio_loaded` says whether that import pulled karrio in (it must not).
"""

from __future__ import annotations

import multiprocessing
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
ORDERS_PER_CARRIER = 20
IMPORT_REPEATS = 3
FUNCTION_MODULES = ("ingest", "shipping", "invoicing", "retention", "privacy")


def _serve_standins(conn: Connection) -> None:
    from local import carrier_servers

    servers = carrier_servers.start()
    conn.send(servers.endpoints())
    conn.recv()  # any message: stop
    carrier_servers.stop(servers)


def _shipping_run(endpoints: dict[str, str]) -> Iterator[dict[str, object]]:
    from local.memory_stores import MemoryBlobStore, MemoryDocumentStore, MemorySecretStore
    from shared.crypto.envelope import EnvelopeCipher
    from shared.crypto.key_epochs import KeyEpochs
    from shared.orders.messages import ShipOrder
    from shared.orders.repository import OrderRepository
    from shared.shipping.carriers.karrio_adapter import KarrioCarrier
    from shared.shipping.rules import ShippingRules
    from shared.shipping.service import ShippingService
    from shared.storage.blob_store import LabelStore
    from tests.fakes import FakeConfirmer
    from tests.worlds.handoff import CREDENTIALS, LEVELS, RULES, build

    store = MemoryDocumentStore()
    cipher = EnvelopeCipher(KeyEpochs(MemorySecretStore(), lambda: NOW))
    carriers = {
        n: KarrioCarrier(n, CREDENTIALS[n], base_url=url, replay_safe=True) for n, url in endpoints.items()
    }
    refs = build(store, cipher, 3 * (ORDERS_PER_CARRIER + 1))
    service = ShippingService(
        OrderRepository(store),
        cipher,
        ShippingRules(RULES),
        lambda seller: carriers,
        LabelStore(MemoryBlobStore(), cipher),
        FakeConfirmer(),
    )
    started = time.perf_counter()
    service.ship(ShipOrder(refs[0]), NOW)  # first label: karrio import, usps token
    yield {"metric": "karrio_first_use_s", "value": round(time.perf_counter() - started, 3), "unit": "s"}
    for ref in refs[1:3]:
        service.ship(ShipOrder(ref), NOW)  # fedex and ups tokens
    by_carrier: dict[str, list[float]] = {LEVELS[i]: [] for i in range(3)}
    names = {"Standard": "usps", "NextDay": "fedex", "SecondDay": "ups"}
    for index, ref in enumerate(refs[3:], start=3):
        before = time.process_time()
        service.ship(ShipOrder(ref), NOW)
        by_carrier[LEVELS[index % 3]].append((time.process_time() - before) * 1000)
    everything = [v for values in by_carrier.values() for v in values]
    for level, values in by_carrier.items():
        yield {
            "metric": "shipping_cpu_ms_per_order",
            "value": round(statistics.mean(values), 2),
            "unit": "ms",
            "carrier": names[level],
            "orders": len(values),
        }
    yield {
        "metric": "shipping_cpu_ms_per_order",
        "value": round(statistics.mean(everything), 2),
        "unit": "ms",
        "carrier": "all",
        "orders": len(everything),
    }


def _cold_import(module: str) -> tuple[float, bool]:
    probe = (
        "import sys, time; t = time.perf_counter(); "
        f"import {module}; "
        "print(time.perf_counter() - t, any(m == 'karrio' or m.startswith('karrio.') for m in sys.modules))"
    )
    times, loaded = [], False
    for _ in range(IMPORT_REPEATS):
        out = subprocess.run(  # noqa: S603 - fixed argv, module names from this file
            [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
        )
        seconds, karrio = out.stdout.split()
        times.append(float(seconds))
        loaded = loaded or karrio == "True"
    return statistics.median(times), loaded


def run() -> Iterator[dict[str, object]]:
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    standins = context.Process(target=_serve_standins, args=(child,), daemon=True)
    standins.start()
    try:
        endpoints: Any = parent.recv()
        yield from _shipping_run(endpoints)
    finally:
        parent.send("stop")
        standins.join(timeout=10)
    for name in FUNCTION_MODULES:
        seconds, karrio = _cold_import(f"functions.{name}")
        yield {
            "metric": "cold_import_s",
            "value": round(seconds, 3),
            "unit": "s",
            "module": f"functions.{name}",
            "karrio_loaded": karrio,
        }
    seconds, karrio = _cold_import("function_app")
    yield {
        "metric": "cold_import_s",
        "value": round(seconds, 3),
        "unit": "s",
        "module": "function_app",
        "karrio_loaded": karrio,
    }
    probe = (
        "shared.shipping.carriers.karrio_adapter as k; k._karrio(); "
        "[k._settings_class(c) for c in ('usps', 'fedex', 'ups')]"
    )
    seconds, karrio = _cold_import(probe)
    yield {
        "metric": "cold_import_s",
        "value": round(seconds, 3),
        "unit": "s",
        "module": "karrio (shipping path, on first label)",
        "karrio_loaded": karrio,
    }


if __name__ == "__main__":
    for row in run():
        print(row)
