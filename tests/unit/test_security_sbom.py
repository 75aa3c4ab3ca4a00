"""sbom.cdx.json is current: its components are exactly the packages and versions pinned in
requirements.txt (timestamps, serials and bom-refs are ignored). Regenerate with `make sbom`."""

import json
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.gate

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)", re.MULTILINE)


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned(requirements: str) -> set[tuple[str, str]]:
    return {(_normal(name), version) for name, version in PIN.findall(requirements)}


def in_sbom(sbom: dict[str, object]) -> set[tuple[str, str]]:
    components = sbom.get("components", [])
    assert isinstance(components, list)
    return {(_normal(c["name"]), c["version"]) for c in components}


def test_sbom_is_cyclonedx_of_the_app() -> None:
    sbom = json.loads((ROOT / "sbom.cdx.json").read_text(encoding="utf-8"))
    assert sbom["bomFormat"] == "CycloneDX"
    assert sbom["metadata"]["component"]["name"] == "mfn-fulfilment"


def test_sbom_matches_requirements_txt() -> None:
    sbom = json.loads((ROOT / "sbom.cdx.json").read_text(encoding="utf-8"))
    expected = pinned((ROOT / "requirements.txt").read_text(encoding="utf-8"))
    found = in_sbom(sbom)
    assert found == expected, (
        f"sbom.cdx.json is stale, run `make sbom`: missing {sorted(expected - found)[:10]}, "
        f"extra {sorted(found - expected)[:10]}"
    )


def test_staleness_is_detected() -> None:
    sbom = {"components": [{"name": "azure_core", "version": "1.0"}]}
    assert in_sbom(sbom) == pinned("azure-core==1.0 \\\n    --hash=sha256:ab\n")
    assert in_sbom(sbom) != pinned("azure-core==1.1 \\\n    --hash=sha256:ab\n")
