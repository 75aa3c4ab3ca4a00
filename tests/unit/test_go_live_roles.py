"""The go-live checklist (docs/deploy.md) names a role for every SP-API operation the app calls.

The operations the app calls are those of Amazon's models (beside the repository) that the code
in shared/ and ops/ names: by operationId in quotes, or by python-amazon-sp-api's snake_case
method (`.search_orders`). Each must be a row of the checklist's roles table, with a role."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import AMAZON_MODELS

ROOT = Path(__file__).resolve().parents[2]
STEP = "**The roles, and why.**"


def _snake(operation_id: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation_id).lower()


def _operations_called() -> set[str]:
    source = "\n".join(
        p.read_text() for folder in ("shared", "ops") for p in sorted((ROOT / folder).rglob("*.py"))
    )
    called = set()
    for model in sorted(AMAZON_MODELS.glob("*.json")):
        for methods in json.loads(model.read_text()).get("paths", {}).values():
            for operation in methods.values():
                name = operation.get("operationId") if isinstance(operation, dict) else None
                if name and (
                    re.search(rf"\.{_snake(name)}\b", source) or re.search(rf"[\"']{name}[\"']", source)
                ):
                    called.add(name)
    return called


def _roles_table() -> dict[str, str]:
    """operationId -> the role cell, from the rows of the checklist's roles table."""
    text = (ROOT / "docs" / "deploy.md").read_text()
    lines = text[text.index(STEP) :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("|"))
    end = next(i for i in range(start, len(lines)) if not lines[i].strip().startswith("|"))
    table = {}
    for row in lines[start + 2 : end]:  # after the header and its rule
        operations, _what, role = (cell.strip() for cell in row.strip().strip("|").split("|"))
        for name in re.findall(r"`([a-z][A-Za-z]+)`", operations.split("(")[0]):
            table[name] = role
    return table


def test_the_scan_finds_the_calls_the_app_is_known_to_make() -> None:
    if not AMAZON_MODELS.exists():
        pytest.skip("Amazon's models are not beside the repository")
    assert {"searchOrders", "confirmShipment", "purchaseShipment", "createFeed", "getSubscription"} <= (
        _operations_called()
    )


def test_every_operation_the_app_calls_has_a_role_in_the_checklist() -> None:
    if not AMAZON_MODELS.exists():
        pytest.skip("Amazon's models are not beside the repository")
    table = _roles_table()
    missing = sorted(_operations_called() - set(table))
    assert missing == [], f"docs/deploy.md's roles table lacks {missing}"
    assert all(role for role in table.values())


def test_the_checklist_asks_for_the_restricted_roles_the_data_needs() -> None:
    roles = " ".join(_roles_table().values())
    for role in (
        "Direct-to-Consumer Delivery (Restricted)",
        "Direct-to-Consumer Shipping (Restricted)",
        "Tax Invoicing (Restricted)",
    ):
        assert role in roles
