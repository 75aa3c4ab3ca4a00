"""The tamper-proof audit trail, read from the Bicep (pycep; there is no Bicep compiler here, and
Azurite implements neither immutability policies nor Azure RBAC, so no emulator can show it): the
data account's `audit` container carries a time-based immutability policy for the retention the
docs state for audit records (12 months), and the app's identity may add and read blobs there but
holds no role that overwrites or deletes them."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

from tests.bicep import parse_bicep

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MODULES = INFRA / "modules"
BLOB = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs"
APPEND_ONLY = {f"{BLOB}/add/action", f"{BLOB}/read"}
# Built-in roles that may overwrite or delete blobs (Storage Blob Data Owner, Contributor).
BLOB_WRITERS = {"b7e6dc6d-f1e8-4753-8033-0f276bb0955b", "ba92f5b4-2d11-453d-a403-e96b0029c9fe"}


@cache
def _parse(name: str) -> dict[str, Any]:
    path = INFRA / name if name == "main.bicep" else MODULES / name
    return parse_bicep(path)  # once per session, for every infra test


def _ref(expression: Any) -> tuple[Any, Any]:
    operands = expression["operator"]["operands"]
    return operands["operand_1"], operands["operand_2"]


def _days_of_retention_in_docs() -> int:
    text = (ROOT / "docs" / "retention.md").read_text(encoding="utf-8")
    match = re.search(r"\| `audit` \|[^\n]*at least (\d+) months", text)
    assert match, "docs/retention.md no longer states how long audit records are kept"
    return int(match.group(1)) * 365 // 12


def test_the_audit_container_has_a_time_based_immutability_policy() -> None:
    storage = _parse("storage.bicep")
    resources = storage["resources"]
    container = resources["auditContainerResource"]
    assert container["type"] == "Microsoft.Storage/storageAccounts/blobServices/containers"
    policy = resources["auditImmutability"]
    assert policy["type"] == f"{container['type']}/immutabilityPolicies"
    body = policy["config"]["config"]
    assert body["parent"] == "auditContainerResource" and body["name"] == "default"
    properties = body["properties"]
    assert properties["immutabilityPeriodSinceCreationInDays"] == "auditRetentionDays"
    assert properties["allowProtectedAppendWrites"] is False
    assert properties["allowProtectedAppendWritesAll"] is False
    # Declared whenever there is an audit container, until the policy is locked (then only
    # extensible, so Bicep must leave it alone).
    condition = policy["config"]["condition"]["operator"]
    assert condition["type"] == "and"
    first, second = condition["operands"]["operand_1"], condition["operands"]["operand_2"]
    assert first["operator"]["operands"]["bool_value"]["function"]["parameters"]["item_to_test"] == (
        "auditContainer"
    )
    assert second["operator"]["operands"]["bool_value"] == "auditPolicyLocked"
    assert storage["parameters"]["auditPolicyLocked"]["default"] is False


def test_retention_is_at_least_what_the_docs_state_for_audit_records() -> None:
    days = _days_of_retention_in_docs()
    assert days == 365
    main = _parse("main.bicep")
    assert main["parameters"]["auditRetentionDays"]["default"] >= days
    for module in (main, _parse("storage.bicep")):
        minimum = [
            d for d in module["parameters"]["auditRetentionDays"]["decorators"] if d["type"] == "min_value"
        ]
        assert minimum and minimum[0]["argument"] >= days
    params = main["modules"]["dataStorage"]["config"]["params"]
    assert params["auditContainer"] == "auditContainer"
    assert params["auditRetentionDays"] == "auditRetentionDays"
    assert main["variables"]["auditContainer"]["value"] == "audit"
    assert "auditContainer" not in main["modules"]["hostStorage"]["config"]["params"]


def test_the_audit_container_is_neither_writable_by_the_app_nor_expiring() -> None:
    main = _parse("main.bicep")
    containers = main["variables"]["dataContainers"]["value"]
    assert "audit" not in containers  # so it gets no Storage Blob Data Contributor
    expiring = main["modules"]["dataStorage"]["config"]["params"]["expiringPrefixes"]
    assert not any(prefix.startswith("audit") for prefix in expiring)
    assert main["modules"]["rbac"]["config"]["params"]["auditContainer"] == "auditContainer"


def test_the_app_may_add_and_read_audit_blobs_and_nothing_else() -> None:
    rbac = _parse("rbac.bicep")
    resources = rbac["resources"]
    role = resources["auditAppenderRole"]["config"]
    assert resources["auditAppenderRole"]["type"] == "Microsoft.Authorization/roleDefinitions"
    [permissions] = role["properties"]["permissions"]
    assert set(permissions["dataActions"]) == APPEND_ONLY
    assert permissions["actions"] == [] and permissions["notDataActions"] == []
    assignment = resources["auditAppender"]["config"]
    assert assignment["scope"] == "auditContainerResource"
    assert assignment["properties"]["principalId"] == "principalId"
    role_id = assignment["properties"]["roleDefinitionId"]["function"]
    assert role_id["type"] == "subscription_resource_id"
    assert _ref(role_id["parameters"]["resource_name_1"]) == ("auditAppenderRole", "name")
    assert resources["auditContainerResource"]["existing"] is True
    assert resources["auditContainerResource"]["config"]["name"] == "auditContainer"


def test_no_other_grant_reaches_the_audit_container_with_write_or_delete() -> None:
    """The identity's blob writers sit on the runtime account (Owner) and on the named data
    containers (Contributor), never on the data account as a whole."""
    rbac = _parse("rbac.bicep")
    roles = rbac["variables"]["roles"]["value"]
    writers = {key for key, role_id in roles.items() if role_id in BLOB_WRITERS}
    assert writers == {"storageBlobDataOwner", "storageBlobDataContributor"}
    checked = 0
    for name, resource in rbac["resources"].items():
        if resource["type"] != "Microsoft.Authorization/roleAssignments" or name == "auditAppender":
            continue
        config = resource["config"].get("config", resource["config"])
        role = config["properties"]["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
        if _ref(role)[0] == "roles" and _ref(role)[1] in writers:
            checked += 1
            scope = config["scope"]
            assert scope == "hostStorage" or _ref(scope)[0] == "dataContainerResources", (name, scope)
    assert checked == 2
