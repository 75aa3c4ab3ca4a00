"""karrio is paid for on the shipping path only: no function module imports it."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "module",
    [
        "function_app",
        "functions.shipping",
        "shared.shipping.carriers",
        "shared.shipping.carriers.karrio_adapter",
        "shared.shipping.service",
    ],
)
def test_importing_does_not_load_karrio(module: str) -> None:
    probe = f"import sys, {module}; print(any(m == 'karrio' or m.startswith('karrio.') for m in sys.modules))"
    out = subprocess.run(  # noqa: S603 - fixed argv, module names from this file
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "False"
