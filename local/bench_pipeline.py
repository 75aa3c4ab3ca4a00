"""Whole-lifecycle figures of the local pipeline (issue 11): CPU and store writes per order,
and the peak memory of the run.

`pipeline_cpu_ms_per_order` is the app's CPU over `Pipeline.run()` (ingest to purge), divided
by the orders: the thread CPU time inside every function body (the Azure SDK calls they make
included) plus the OpenTelemetry export threads. `pipeline_process_cpu_ms_per_order` is all of
THIS process (`time.process_time()`): also the local host's queue polling and output sends (the
Functions host's work in Azure, not the Python worker's) and the in-process stand-ins (SP-API,
Key Vault, carriers, Application Insights). Neither counts Azurite and cosmosdb-server (node
subprocesses) or start-up. The timers fire hourly on the simulated clock, so part of each figure
is per-hour work (polls, due queries) shared by all orders: it falls as the order count grows,
and the marginal figure (two sizes) is the per-order work alone.

    python -m local.bench_pipeline [--orders N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from local import sample_orders
from local.pipeline import Pipeline
from shared.storage.audit import AuditAction
from shared.storage.document_store import AUDIT, ORDERS

MARKETPLACES = ["A1PA6795UKMFR9", "A13V1IB3VIYZZH", "APJ6JRA9NG5V4", "A1F83G8C2ARO7P"]
DEFAULT_ORDERS = 60  # ~60 s on the shared 2-core machine
SIZES = (60, 240)  # two sizes: the difference is the per-order (marginal) cost
ON_DISK = 1000


def _measured_in_own_process(*args: str) -> Iterator[dict[str, Any]]:
    out = subprocess.run(  # noqa: S603 - this interpreter, this module
        [sys.executable, "-W", "ignore", "-m", "local.bench_pipeline", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    for line in out.stdout.splitlines():
        yield json.loads(line)


def run(sizes: tuple[int, ...] = SIZES) -> Iterator[dict[str, object]]:
    """Each size in its own process, so peak memory is that run's alone; then the marginal CPU
    per order between the two sizes (per-hour timer work cancels out); then the store writes
    of the smaller size with carriers that replay a purchase (Amazon Buy Shipping's kind)."""
    cpu_ms: dict[str, float] = {}
    for orders in sizes:
        for row in _measured_in_own_process("--orders", str(orders)):
            if row["metric"] in ("pipeline_cpu_ms_per_order", "pipeline_process_cpu_ms_per_order"):
                cpu_ms[f"{row['metric']}:{orders}"] = float(row["value"]) * orders
            yield row
    small, large = min(sizes), max(sizes)
    if large > small:
        for metric, marginal, scope in (
            ("pipeline_cpu_ms_per_order", "pipeline_marginal_cpu_ms_per_order", "the app"),
            (
                "pipeline_process_cpu_ms_per_order",
                "pipeline_marginal_process_cpu_ms_per_order",
                "the whole process: app, local host, in-process stand-ins",
            ),
        ):
            yield {
                "metric": marginal,
                "value": round(
                    (cpu_ms[f"{metric}:{large}"] - cpu_ms[f"{metric}:{small}"]) / (large - small), 2
                ),
                "unit": "ms",
                "sizes": [small, large],
                "scope": f"difference of two runs, per-order work only: {scope}",
            }
    for row in _measured_in_own_process("--orders", str(small), "--replay-safe-carriers"):
        if row["metric"] == "store_writes_per_order":
            yield {**row, "metric": "store_writes_per_order_replay_safe_carriers"}


def bench_orders(orders: int) -> list[dict[str, Any]]:
    """The benches' orders: `orders` ready to ship, MFN, over MARKETPLACES in half a day."""
    return sample_orders.generate(
        orders,
        seed=2026,
        start=datetime(2026, 10, 1, tzinfo=UTC),
        span=timedelta(hours=12),
        marketplaces=MARKETPLACES,
        afn_share=0.0,
        statuses={"UNSHIPPED": 1.0},
    )


def measure(orders: int = DEFAULT_ORDERS, *, replay_safe: bool = False) -> Iterator[dict[str, object]]:
    generated = bench_orders(orders)
    # Above ON_DISK orders Azurite keeps blobs on disk: thousands of labels exceed memory.
    on_disk = orders >= ON_DISK
    with (
        tempfile.TemporaryDirectory(prefix="bench-pipeline-") as out,
        Pipeline(generated, Path(out), blobs_on_disk=on_disk, carriers_replay_safe=replay_safe) as p,
    ):
        result = p.run(limit=timedelta(days=40))
        by_container = {
            k.removesuffix(".write"): v for k, v in p.store.counts.items() if k.endswith(".write")
        }
        writes = sum(by_container.values())
        by_path = writes_by_path(p.documents(AUDIT), p.store.writes_by_partition)
        left = p.remaining_orders()
    peak_mb = _peak_rss_mb()
    common = {
        "orders": orders,
        "ordersNotPurged": left,
        "simulatedDays": result.simulated.days,
        "carriers": "replay_safe" if replay_safe else "cannot_replay (karrio: USPS, FedEx, UPS)",
    }
    yield {
        "metric": "pipeline_cpu_ms_per_order",
        "value": round(result.app_cpu_s * 1000 / orders, 2),
        "unit": "ms",
        "scope": "the app: function bodies (their SDK calls included) and telemetry export threads",
        **common,
    }
    yield {
        "metric": "pipeline_process_cpu_ms_per_order",
        "value": round(result.cpu_s * 1000 / orders, 2),
        "unit": "ms",
        "scope": "this process: app, local host, in-process stand-ins; excl. Azurite/cosmosdb-server",
        **common,
    }
    yield {
        "metric": "store_writes_per_order",
        "value": round(writes / orders, 2),
        "unit": "writes",
        "ordersContainerWritesPerOrder": round(by_container.get("orders", 0) / orders, 2),
        "perOrderByContainer": {k: round(v / orders, 2) for k, v in sorted(by_container.items())},
        "scope": "every Cosmos write of the run: state holds invoice numbering and the poll cursor "
        "(written by a poll that finds orders, else every 6 hours)",
        **common,
    }
    for path, figures in sorted(by_path.items()):
        yield {
            "metric": "store_writes_per_order_by_path",
            "value": figures["all"],
            "unit": "writes",
            "path": path,
            **figures,
            "scope": "an order's own writes (its document, its audit records) by how its delivery "
            "was settled, as its purge's audit record says; the state container's writes (the "
            "poll cursor, an invoice number per invoice) are not an order's own",
            **common,
        }
    yield {"metric": "pipeline_wall_s", "value": round(result.wall_s, 1), "unit": "s", **common}
    yield {
        "metric": "peak_memory_mb",
        "value": round(peak_mb, 1),
        "unit": "MB",
        "scope": "peak RSS of this process (Linux VmHWM): the app, the local host and the "
        "in-process stand-ins with all they record; excl. Azurite/cosmosdb-server",
        **common,
    }


def writes_by_path(
    audit: Iterable[Mapping[str, Any]], writes: Mapping[tuple[str, str], int]
) -> dict[str, dict[str, Any]]:
    """Mean writes per order to its own document and to its audit records, grouped by how the
    order's delivery was settled (amazon, carrier, bound) or `cancelled`, as its purge's audit
    record says: the per-path figures docs/performance.md explains."""
    refs: dict[str, list[str]] = defaultdict(list)
    for event in audit:
        if event.get("action") == AuditAction.PURGED:
            details = event["details"]
            refs[str(details.get("deliverySource") or details["stage"])].append(str(event["ref"]))
    figures: dict[str, dict[str, Any]] = {}
    for path, members in refs.items():
        own = {c: sum(writes.get((c, ref), 0) for ref in members) / len(members) for c in (ORDERS, AUDIT)}
        figures[path] = {
            "all": round(own[ORDERS] + own[AUDIT], 2),
            "ordersContainer": round(own[ORDERS], 2),
            "auditContainer": round(own[AUDIT], 2),
            "ordersOnPath": len(members),
        }
    return figures


def _peak_rss_mb() -> float:
    """This process's peak resident set size since it started this program. Not `ru_maxrss`:
    that survives `exec`, so a process started by a large parent reports the parent's size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=DEFAULT_ORDERS)
    parser.add_argument("--replay-safe-carriers", action="store_true")
    args = parser.parse_args(argv)
    # The Cosmos emulator's self-signed certificate is accepted on purpose (local only).
    warnings.filterwarnings("ignore", message="Unverified HTTPS request")
    for row in measure(args.orders, replay_safe=args.replay_safe_carriers):
        sys.stdout.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
