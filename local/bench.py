"""`make bench`: every performance figure the issues name, one JSON object a line.

Each area keeps its measurements in `local/bench_<area>.py` (a `run()` yielding metric dicts);
this module runs them all, adds the app-wide import figures, and prints one line per metric:
`{"metric": NAME, "value": NUMBER, "unit": UNIT, ...}`. Figures are printed, never asserted.
"""

from __future__ import annotations

import importlib
import json
import statistics
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AREAS = ("crypto", "telemetry", "ingest", "shipping", "invoices", "counter", "retention", "pipeline", "bill")
REPEATS = 5

OWN_PACKAGES = {"function_app", "functions", "shared", "local", "tests"}
# Every module (at any depth) that importing function_app brings in from outside the stdlib.
LIST_THIRD_PARTY = (
    "import sys, function_app; "
    "print(','.join(sorted(m for m in sys.modules "
    "if m.split('.')[0] not in sys.stdlib_module_names and getattr(sys.modules[m], '__file__', None))))"
)


def _import_seconds(statement: str) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    samples = []
    for _ in range(REPEATS):
        out = subprocess.run(  # noqa: S603 - runs this interpreter on a fixed statement
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
        )
        samples.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


def _third_party_imported_by_function_app() -> list[str]:
    out = subprocess.run(  # noqa: S603 - this interpreter, fixed statement
        [sys.executable, "-c", LIST_THIRD_PARTY], cwd=ROOT, capture_output=True, text=True, check=True
    )
    names = out.stdout.strip().splitlines()[-1].split(",")
    return [n for n in names if n and n.split(".")[0] not in OWN_PACKAGES and not n.startswith("_")]


def import_metrics() -> Iterator[dict[str, object]]:
    deps_list = _third_party_imported_by_function_app()
    cold = _import_seconds("import function_app")
    deps = _import_seconds("import importlib; [importlib.import_module(m) for m in " + repr(deps_list) + "]")
    yield {"metric": "cold_import_s", "value": round(cold, 4), "unit": "s", "module": "function_app"}
    yield {"metric": "deps_import_s", "value": round(deps, 4), "unit": "s", "modules": len(deps_list)}
    yield {"metric": "cold_import_ratio", "value": round(cold / deps, 3), "unit": "x", "target": 1.15}


def main() -> int:
    # The Cosmos emulator's self-signed certificate is accepted on purpose (local only).
    warnings.filterwarnings("ignore", message="Unverified HTTPS request")
    for metric in import_metrics():
        sys.stdout.write(json.dumps(metric) + "\n")
        sys.stdout.flush()
    for area in AREAS:
        module = importlib.import_module(f"local.bench_{area}")
        for metric in module.run():
            sys.stdout.write(json.dumps(metric) + "\n")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
