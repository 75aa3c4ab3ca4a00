"""host.json is judged by the official host.json schema (SchemaStore's; tests/schemas/README.md)."""

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.gate


def _errors(host: dict[str, Any]) -> list[str]:
    schema = json.loads((ROOT / "tests" / "schemas" / "host.schema.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(host)]


def test_host_json_conforms_to_the_official_schema(judged: Any) -> None:
    assert _errors(json.loads((ROOT / "host.json").read_text())) == []
    judged("host.json schema (SchemaStore)", "host.json valid")


def test_the_schema_refuses_a_malformed_host_json() -> None:
    host = json.loads((ROOT / "host.json").read_text())
    host["functionTimeout"] = "five minutes"
    assert _errors(host) != []
