"""The bill of `make bench` (issue 21): what the app would cost in Azure, from one local run.

One pipeline run (ingest to purge) under a `CallMeter`, then a day of idle timers. The app's
calls, counted by service and class, priced at docs/prices.json (`local/bill.py`), give
`usd_per_1000_orders` (the run minus the idle hours it contained), `usd_fixed_per_month` (idle
firings at the deployed schedules, the host's queue polling and locks) and
`blob_bytes_per_order`; `bill_month` adds them for 300, 3,000 and 30,000 orders a month.
`cpu_ratio_to_floor` divides the app's CPU by that of bare `http.client` sending the same
requests to the same stand-ins (`call_meter.replay`). The meter keeps every request's bytes:
runs of tens of orders. docs/performance.md explains each term.

    python -m local.bench_bill [--orders N]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from local import bill
from local.bench_pipeline import bench_orders
from local.call_meter import HOST, Call, CallMeter, replay
from local.pipeline import Pipeline
from shared.app.schedules import NCronTab

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ORDERS = 60
IDLE_HOURS = 24
MONTH = timedelta(days=30)
IN_REGION = ("cosmos", "blob", "queue", "keyvault")
OUT_OF_REGION = ("spapi", "carrier")
#: The Functions host's own blob leases (host.json `singleton` defaults): the primary host lock
#: (15 s lease) and one listener lock per timer function (60 s), renewed once per period.
#: Azurite's answer to a Get Messages that found none is an empty list of about 70 bytes.
EMPTY_RECEIVE_BYTES = 200
HOST_LOCK_PERIOD_S = 15
LISTENER_LOCK_PERIOD_S = 60


@cache
def deployed_schedules() -> dict[str, str]:
    """Timer function -> NCRONTAB, as infra/main.bicep deploys them."""
    text = (ROOT / "infra" / "main.bicep").read_text(encoding="utf-8")
    params = dict(re.findall(r"param (\w+Schedule) string = '([^']+)'", text))
    return {
        "poll_orders": params["pollOrdersSchedule"],
        "track_deliveries": params["trackDeliveriesSchedule"],
        "purge_expired": params["purgeExpiredSchedule"],
        "drain_notifications": params["drainNotificationsSchedule"],
    }


def firings_per_month(schedule: str) -> int:
    cron = NCronTab.parse(schedule)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    at, count = cron.next_after(start), 0
    while at < start + MONTH:
        count += 1
        at = cron.next_after(at)
    return count


def instance_memory_mb() -> int:
    text = (ROOT / "infra" / "modules" / "functionapp.bicep").read_text(encoding="utf-8")
    match = re.search(r"instanceMemoryMB: (\d+)", text)
    if match is None:
        raise RuntimeError("functionapp.bicep sets no instanceMemoryMB")
    return int(match.group(1))


def host_json_queues() -> dict[str, Any]:
    return dict(json.loads((ROOT / "host.json").read_text(encoding="utf-8"))["extensions"]["queues"])


def _seconds(span: str) -> float:
    hours, minutes, seconds = span.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


# ---- pricing the calls ---------------------------------------------------------------------


def cosmos_ru(call: Call, table: dict[str, Any]) -> float:
    """The emulator's `x-ms-request-charge` when it sends one, else Cosmos's documented model."""
    charged = call.response_headers.get("x-ms-request-charge")
    if charged:
        return float(charged)
    op = call.operation()
    if op == "read":
        return bill.ru("read", call.response_bytes, table)
    if op in ("create", "replace", "patch"):
        return bill.ru("write", max(call.body_bytes, call.response_bytes), table)
    if op == "delete":
        return bill.ru("write", 1024, table)
    if op == "query":
        items = int(call.response_headers.get("x-ms-item-count") or 0)
        return bill.ru("query", call.response_bytes // max(items, 1), table, items=items)
    if op == "batch":
        return sum(bill.ru("write", size, table) for size in _batch_item_sizes(call))
    return 0.0  # metadata reads (account, collection, partition key ranges) are not billed


def _batch_item_sizes(call: Call) -> list[int]:
    body = bytes(call.raw).split(b"\r\n\r\n", 1)[-1]
    try:
        operations = json.loads(body)
    except ValueError:
        return [1024]
    return [len(json.dumps(op.get("resourceBody") or {})) or 1024 for op in operations]


def diagnostic_records(call: Call) -> int:
    """Resource-log records the Bicep's diagnostic settings create for one call (see
    docs/performance.md, "What reaches the Sentinel workspace"): blob reads (StorageRead),
    queue writes (StorageWrite: poison moves), every Cosmos data-plane request, every Key Vault
    audit event."""
    op = call.operation()
    if call.service == "blob":
        return int(op in ("read", "list"))
    if call.service == "queue":
        return int(call.method in ("POST", "PUT"))
    if call.service == "cosmos":
        return int(op != "metadata")
    return int(call.service == "keyvault" and call.status != 401)


def usage_of(calls: Iterable[Call], table: dict[str, Any]) -> tuple[bill.Usage, Counter[str]]:
    """The metered usage of some calls (no executions or GB-s: those come from invocations),
    and the calls counted by service and operation."""
    usage = bill.Usage()
    by_service: Counter[str] = Counter()
    record_bytes = float(bill.value(table, "diagnostic_record_bytes"))
    for call in calls:
        by_service[f"{call.service}.{call.operation()}"] += 1
        op = call.operation()
        if call.service == "cosmos":
            usage.cosmos_ru += cosmos_ru(call, table)
        elif call.service == "blob":
            usage.blob_writes += op == "write"
            usage.blob_lists += op == "list"
            usage.blob_reads += op == "read"
            usage.blob_other += op == "other"
        elif call.service == "queue":
            if call.function == HOST and call.method == "GET" and call.response_bytes < EMPTY_RECEIVE_BYTES:
                continue  # an empty poll: the host's polling is in the fixed month
            usage.queue_class1 += op == "class1"
            usage.queue_class2 += op == "class2"
        elif call.service == "keyvault" and call.status != 401:  # a challenge is not billed
            usage.key_vault_ops += 1
        usage.workspace_bytes += diagnostic_records(call) * record_bytes
    return usage, by_service


def execution_usage(
    invocations: list[tuple[str, float]], calls: list[Call], table: dict[str, Any], memory_mb: int
) -> bill.Usage:
    """Executions and GB-s: each body's measured CPU plus the documented wait of each call it
    made (in-region or not), at the instance memory."""
    waiting = [c for c in calls if c.function not in ("telemetry_export", HOST)]
    in_region = sum(1 for c in waiting if c.service in IN_REGION)
    out_region = sum(1 for c in calls if c.service in OUT_OF_REGION)
    seconds = (
        sum(cpu for _, cpu in invocations)
        + in_region * float(bill.value(table, "in_region_call_latency_s"))
        + out_region * float(bill.value(table, "out_of_region_call_latency_s"))
    )
    return bill.Usage(executions=len(invocations), gb_seconds=seconds * memory_mb / 1024)


def envelope_bytes(envelopes: Iterable[dict[str, Any]]) -> int:
    return sum(len(json.dumps(e, separators=(",", ":"))) for e in envelopes)


# ---- the run -------------------------------------------------------------------------------


def measure(orders: int = DEFAULT_ORDERS) -> Iterator[dict[str, object]]:
    table = bill.load_prices()
    memory_mb = instance_memory_mb()
    generated = bench_orders(orders)
    with tempfile.TemporaryDirectory(prefix="bench-bill-") as out, Pipeline(generated, Path(out)) as p:
        meter = CallMeter(_services(p), lambda: p.host.invoking)
        with meter.installed():
            result = p.run(limit=timedelta(days=40))
            run_calls, run_invocations = list(meter.calls), list(p.host.stats.invocation_cpu_s)
            run_envelopes = _settled_envelopes(p)
            idle_from = p.clock()
            for _ in range(IDLE_HOURS):
                p.step()
            idle_hours = (p.clock() - idle_from) / timedelta(hours=1)
            idle_calls = meter.calls[len(run_calls) :]
            idle_invocations = p.host.stats.invocation_cpu_s[len(run_invocations) :]
            idle_envelopes = _settled_envelopes(p)[len(run_envelopes) :]
        floor_cpu_s, differing, failed = replay(c for c in run_calls if c.function != HOST)
        left = p.remaining_orders()
    run_hours = result.simulated / timedelta(hours=1)
    yield from _report(
        table,
        memory_mb,
        orders=orders,
        left=left,
        run=(run_calls, run_invocations, run_envelopes, run_hours),
        idle=(idle_calls, idle_invocations, idle_envelopes, idle_hours),
        cpu=(result.app_cpu_s, floor_cpu_s, differing, failed),
    )


def _settled_envelopes(p: Pipeline) -> list[dict[str, Any]]:
    """Every envelope the app has sent so far: flushed, then read until two reads a second
    apart agree (the exporter posts from its own thread; an envelope of the run counted in the
    idle day would be multiplied by the run's length when it is subtracted)."""
    p._flush_telemetry()
    before, after = -1, len(p.insights.envelopes())
    while before != after:
        time.sleep(1)
        before, after = after, len(p.insights.envelopes())
    return p.insights.envelopes()


def _services(p: Pipeline) -> dict[int, str]:
    ports = {
        p.emulators.blob_port: "blob",
        p.emulators.queue_port: "queue",
        p.emulators.cosmos_port: "cosmos",
        _port(p.vault.url): "keyvault",
        _port(p.spapi.url): "spapi",
        _port(p.insights.url): "insights",
    }
    ports.update({_port(url): "carrier" for url in p.carriers.endpoints().values()})
    return ports


def _port(url: str) -> int:
    port = urlsplit(url).port
    if port is None:
        raise ValueError("a stand-in URL without a port")
    return port


Window = tuple[list[Call], list[tuple[str, float]], list[dict[str, Any]], float]


def _window_usage(window: Window, table: dict[str, Any], memory_mb: int) -> tuple[bill.Usage, Counter[str]]:
    calls, invocations, _, _ = window
    usage, by_service = usage_of(calls, table)
    return usage + execution_usage(invocations, calls, table, memory_mb), by_service


def timer_of(envelope: dict[str, Any]) -> str | None:
    """The timer function an envelope belongs to (its invocation record or heartbeat), if any:
    the timers' telemetry is the fixed month's, every other envelope an order's. Attributed by
    content, not by when it arrived: the exporter posts from its own thread, on its own time."""
    properties = ((envelope.get("data") or {}).get("baseData") or {}).get("properties") or {}
    name = properties.get("source") if properties.get("event") == "heartbeat" else properties.get("operation")
    return str(name) if name in deployed_schedules() else None


def fixed_month(
    idle: Window, table: dict[str, Any], memory_mb: int, telemetry_per_firing: dict[str, float]
) -> dict[str, bill.Usage]:
    """A month with no orders, by source: each timer's idle firings (measured) times its
    deployed schedule, with its telemetry per firing; the host's queue polling at
    maxPollingInterval on each trigger queue; the host's lock renewals and timer status blobs."""
    calls, invocations, _, _ = idle
    firings = Counter(name for name, _ in invocations)
    parts: dict[str, bill.Usage] = {}
    for name, schedule in deployed_schedules().items():
        mine = [c for c in calls if c.function == name]
        usage, _ = usage_of(mine, table)
        usage = usage + execution_usage([i for i in invocations if i[0] == name], mine, table, memory_mb)
        monthly = firings_per_month(schedule)
        parts[f"timer:{name}"] = usage.scaled(monthly / max(firings[name], 1))
        parts[f"timer:{name}"].workspace_bytes += telemetry_per_firing.get(name, 0.0) * monthly
    month_s = MONTH.total_seconds()
    polling = host_json_queues()["maxPollingInterval"]
    trigger_queues = 4
    parts["host:queue_polling"] = bill.Usage(queue_class2=int(trigger_queues * month_s / _seconds(polling)))
    timer_firings = sum(firings_per_month(s) for s in deployed_schedules().values())
    parts["host:locks_and_timer_status"] = bill.Usage(
        blob_other=int(month_s / HOST_LOCK_PERIOD_S + 4 * month_s / LISTENER_LOCK_PERIOD_S),
        blob_writes=timer_firings,
        blob_reads=timer_firings,
    )  # in the host's storage account, which sends no logs to the workspace (`ruleLogs: false`)
    return parts


def _report(
    table: dict[str, Any],
    memory_mb: int,
    *,
    orders: int,
    left: int,
    run: Window,
    idle: Window,
    cpu: tuple[float, float, int, Counter[str]],
) -> Iterator[dict[str, object]]:
    run_usage, run_services = _window_usage(run, table, memory_mb)
    idle_usage, idle_services = _window_usage(idle, table, memory_mb)
    idle_share = run[3] / idle[3]
    calls_per_order = {
        k: round((run_services[k] - idle_services[k] * idle_share) / orders, 2) for k in sorted(run_services)
    }
    telemetry = Counter[str]()
    for envelope in run[2] + idle[2]:
        telemetry[timer_of(envelope) or "orders"] += envelope_bytes([envelope])
    all_firings = Counter(name for name, _ in run[1] + idle[1])
    per_firing = {
        name: telemetry[name] / all_firings[name] for name in deployed_schedules() if all_firings[name]
    }
    telemetry_per_order = sum(envelope_bytes([e]) for e in run[2] if timer_of(e) is None) / orders
    # The run's own idle hours (hourly timers locally) are not the orders' cost.
    per_order = (run_usage + idle_usage.scaled(-idle_share)).scaled(1 / orders)
    per_order.workspace_bytes += telemetry_per_order
    per_1000 = bill.cost(per_order.scaled(1000), table)
    fixed = fixed_month(idle, table, memory_mb, per_firing)
    fixed_cost = {name: bill.total(u, table) for name, u in fixed.items()}
    common = {"orders": orders, "ordersNotPurged": left, "instanceMemoryMB": memory_mb}
    yield {
        "metric": "usd_per_1000_orders",
        "value": round(sum(per_1000.values()), 4),
        "unit": "USD",
        "target": 0.10,
        "byLine": {k: round(v, 4) for k, v in per_1000.items()},
        "scope": "variable cost at list prices, no free grants: the run minus its idle hours",
        **common,
    }
    yield {
        "metric": "usd_fixed_per_month",
        "value": round(sum(fixed_cost.values()), 3),
        "unit": "USD",
        "target": 2,
        "bySource": {k: round(v, 3) for k, v in fixed_cost.items()},
        "byLine": {k: round(v, 3) for k, v in bill.cost(sum(fixed.values(), bill.Usage()), table).items()},
        "scope": "a month with no orders at the deployed schedules (infra/main.bicep), list prices",
        **common,
    }
    blob_bytes = sum(c.body_bytes for c in run[0] if c.service == "blob" and c.operation() == "write")
    yield {
        "metric": "blob_bytes_per_order",
        "value": round(blob_bytes / orders),
        "unit": "bytes",
        "target": 150_000,
        "scope": "bytes the app wrote to Blob Storage (labels, invoices, exports, audit)",
        **common,
    }
    fixed_total = sum(fixed_cost.values())
    variable_per_order = sum(per_1000.values()) / 1000
    for monthly in (300, 3_000, 30_000):
        yield {
            "metric": "bill_month",
            "value": round(fixed_total + variable_per_order * monthly, 2),
            "unit": "USD",
            "ordersPerMonth": monthly,
            "fixed": round(fixed_total, 2),
            "variable": round(variable_per_order * monthly, 2),
        }
    yield {
        "metric": "usage_per_order",
        "value": round(per_order.cosmos_ru, 1),
        "unit": "RU",
        "usage": {k: round(float(v), 3) for k, v in vars(per_order).items()},
        "callsPerOrder": calls_per_order,
        "appTelemetryBytesPerOrder": round(telemetry_per_order),
        "appTelemetryBytesPerTimerFiring": {k: round(v) for k, v in per_firing.items()},
        "diagnosticRecordBytesPerOrder": round(per_order.workspace_bytes - telemetry_per_order),
        **common,
    }
    app_cpu_s, floor_cpu_s, differing, failed = cpu
    yield {
        "metric": "cpu_ratio_to_floor",
        "value": round(app_cpu_s / floor_cpu_s, 2),
        "unit": "x",
        "appCpuMsPerOrder": round(app_cpu_s * 1000 / orders, 2),
        "floorCpuMsPerOrder": round(floor_cpu_s * 1000 / orders, 2),
        "callsReplayed": sum(1 for c in run[0] if c.function != HOST),
        "replayStatusDiffering": differing,
        "replayFailedByService": dict(failed),
        "scope": "the app's CPU (function bodies, telemetry export) over bare http.client sending "
        "the same request bytes to the same stand-ins after the run",
        **common,
    }


def run(orders: int = DEFAULT_ORDERS) -> Iterator[dict[str, Any]]:
    """In its own process, so its patched HTTP clients are its alone."""
    out = subprocess.run(  # noqa: S603 - this interpreter, this module
        [sys.executable, "-W", "ignore", "-m", "local.bench_bill", "--orders", str(orders)],
        capture_output=True,
        text=True,
        check=True,
    )
    for line in out.stdout.splitlines():
        yield json.loads(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=DEFAULT_ORDERS)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message="Unverified HTTPS request")
    for row in measure(args.orders):
        sys.stdout.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
