"""Telemetry cost per invocation, in CPU milliseconds, for each exporter.

Each invocation opens the taint set, creates a few Pii values, logs two library lines that the
redaction filter rewrites, and emits its telemetry record; the exporter then sends everything to
the local ingestion stand-in. `time.process_time()` counts every thread of the process, so the
exporters' background threads (batching, JSON, gzip, HTTP) are included; the batches are flushed
before the clock stops. `none` is the floor: record and redaction without export.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

from local.appinsights_server import start as start_ingestion
from shared.crypto.pii import Pii
from shared.telemetry.invocations import EXPORTER_CALLS_HOME_OFF, AppTelemetry, configure_telemetry

INVOCATIONS = 400
WARMUP = 20
EXPORTERS = ("none", "opentelemetry", "opencensus")


def _invoke(telemetry: AppTelemetry, i: int) -> None:
    with telemetry.invocation("ship_order") as record:
        record.order(f"Qk3v_9aZ-01bcdEF{i:06d}")
        name = Pii(f"Benchmark O'Buyer {i}")
        Pii(f"{i} Example Street")
        logging.getLogger("karrio.bench").warning("label for %s", name.reveal())
        logging.getLogger("sp_api.bench").warning("rate limited on getOrder")
        record.count("labels", 1)


def _measure(exporter: str, connection: str) -> float:
    settings = SimpleNamespace(telemetry_exporter=exporter, appinsights_connection_string=connection)
    export = configure_telemetry(settings, offline_storage=False, export_interval_s=1.0)  # type: ignore[arg-type]
    telemetry = AppTelemetry()
    try:
        for i in range(WARMUP):
            _invoke(telemetry, i)
        export.flush()
        started = time.process_time()
        for i in range(INVOCATIONS):
            _invoke(telemetry, i)
        export.flush()
        return (time.process_time() - started) * 1000.0 / INVOCATIONS
    finally:
        export.shutdown()


def run() -> Iterator[dict[str, object]]:
    # The exporters' own statistics and remote configuration would call Microsoft endpoints.
    for name, value in EXPORTER_CALLS_HOME_OFF.items():
        os.environ.setdefault(name, value)
    # Stands for the Functions worker's own root handler (it forwards records to the host), so
    # nothing falls through to stderr and its redaction cost is counted too.
    worker_handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115 - closed below
    logging.getLogger().addHandler(worker_handler)
    with tempfile.TemporaryDirectory() as tmp:
        server = start_ingestion(Path(tmp) / "telemetry.jsonl")
        try:
            for exporter in EXPORTERS:
                yield {
                    "metric": "telemetry_cpu_ms_per_invocation",
                    "value": round(_measure(exporter, server.connection_string), 4),
                    "unit": "ms",
                    "exporter": exporter,
                    "invocations": INVOCATIONS,
                    "records_per_invocation": 3,
                }
        finally:
            server.stop()
            logging.getLogger().removeHandler(worker_handler)
            worker_handler.close()
            worker_handler.stream.close()


if __name__ == "__main__":
    import json

    for metric in run():
        print(json.dumps(metric))
