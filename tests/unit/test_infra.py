"""The Bicep in infra/: it parses (pycep, the parser checkov uses), every Sentinel query file is
used by a rule (the telemetry dimensions the queries read: test_telemetry_dimensions.py), the app
settings match the app's, the retention numbers add up to Amazon's bound, the function identity
holds exactly the data-plane roles docs/security.md lists (and, on the audit container, only the
add-and-read custom role: test_infra_audit.py), and every rule whose incidents group
by entities maps an entity its query projects (test_kusto_analysis.py checks the same mappings
against the result columns Microsoft's Kusto analyzer computes)."""

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from shared.invoices.numbering import CHECKED_AT
from shared.settings import MAX_RECOVERABLE_DAYS
from tests.bicep import parse_bicep

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
RULES = INFRA / "rules"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))
LOAD_TEXT = re.compile(r"loadTextContent\('([^']+)'\)")
SKIP = re.compile(r"//\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?")

# Settings only the local run uses (emulator keys, stand-in endpoints, TLS overrides).
LOCAL_ONLY = {
    "STORAGE",
    "AzureWebJobsStorage",
    "FUNCTIONS_WORKER_RUNTIME",
    "COSMOS_KEY",
    "COSMOS_VERIFY_TLS",
    "SPAPI_ENDPOINT",
    "LWA_ENDPOINT",
    "SPAPI_VERIFY_TLS",
    "CARRIER_ENDPOINTS",
    "AWS_ENDPOINT",
}
# Settings the platform reads (identity-based connections, Entra ID telemetry).
PLATFORM = {
    "AzureWebJobsStorage__accountName",
    "STORAGE__blobServiceUri",
    "STORAGE__queueServiceUri",
    "STORAGE__credential",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
}
ROLE_IDS = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
}
# Microsoft Sentinel entity types and the identifiers an analytics rule can map for them
# (learn.microsoft.com/azure/sentinel/entities-reference, "Entity types and identifiers").
ENTITY_IDENTIFIERS = {
    "Account": {
        "Name",
        "FullName",
        "NTDomain",
        "DnsDomain",
        "UPNSuffix",
        "Sid",
        "AadTenantId",
        "AadUserId",
        "PUID",
        "IsDomainJoined",
        "DisplayName",
        "ObjectGuid",
    },
    "AzureResource": {"ResourceId"},
    "CloudApplication": {"AppId", "Name", "InstanceName"},
    "IP": {"Address", "AddressScope"},
    "URL": {"Url"},
}
MATCHING_METHODS = {"AllEntities", "AnyAlert", "Selected"}
CONTROL_PLANE_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",  # Owner
    "b24988ac-6180-42a0-ab88-20f7382dd24c",  # Contributor
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",  # User Access Administrator
}


@cache
def _parse(path: Path) -> dict[str, Any]:
    return parse_bicep(path)  # once per session, for every infra test


def _main() -> dict[str, Any]:
    return _parse(INFRA / "main.bicep")


def _kql_files() -> set[Path]:
    return set(RULES.glob("*.kql"))


def _loaded_files() -> set[Path]:
    found = set()
    for bicep in BICEP_FILES:
        for rel in LOAD_TEXT.findall(bicep.read_text(encoding="utf-8")):
            found.add((bicep.parent / rel).resolve())
    return found


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: str(p.relative_to(INFRA)))
def test_every_bicep_file_parses(path: Path) -> None:
    parsed = _parse(path)
    assert parsed.get("resources") or parsed.get("modules")


def test_every_module_is_deployed_by_main() -> None:
    modules = {m["detail"]["path"] for m in _main()["modules"].values()}
    on_disk = {str(p.relative_to(INFRA)) for p in (INFRA / "modules").glob("*.bicep")}
    assert modules == on_disk


def test_every_kql_file_is_used_by_a_rule_and_every_loaded_file_exists() -> None:
    kql = {p.resolve() for p in _kql_files()}
    loaded = _loaded_files()
    assert len(kql) >= 8
    assert kql <= loaded, f"unused queries: {sorted(p.name for p in kql - loaded)}"
    assert all(p.exists() for p in loaded)


def test_rules_carry_severity_tactics_and_a_runbook() -> None:
    sentinel = (INFRA / "modules" / "sentinel.bicep").read_text(encoding="utf-8")
    runbooks = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    for kql in _kql_files():
        rule_id = kql.stem
        block = sentinel.split(f"id: '{rule_id}'", 1)
        assert len(block) == 2, f"no rule for {kql.name}"
        body = block[1].split("query:", 1)[0]
        assert re.search(r"severity: '(High|Medium|Low|Informational)'", body)
        assert re.search(r"tactics: \[\s*'\w+'", body)
        assert f"`{rule_id}`" in runbooks, f"no runbook for {rule_id} in docs/security.md"


def test_workbook_is_a_workbook_with_the_operator_views() -> None:
    workbook = json.loads((INFRA / "workbooks" / "operations.json").read_text(encoding="utf-8"))
    assert workbook["version"] == "Notebook/1.0"
    titles = {i["content"].get("title") for i in workbook["items"] if i["type"] == 3}
    for view in ("Orders by stage", "Throughput", "Failures", "SP-API throttling", "Privacy requests"):
        assert view in titles
    assert any(t and t.startswith("Retention lateness") for t in titles)


def _bicep_app_settings() -> set[str]:
    main = _main()
    app_settings = main["modules"]["functionApp"]["config"]["params"]["appSettings"]
    platform = _parse(INFRA / "modules" / "functionapp.bicep")["variables"]["platformSettings"]["value"]
    return set(app_settings) | set(platform)


def test_app_settings_match_the_apps_settings() -> None:
    sample = json.loads((ROOT / "local.settings.sample.json").read_text(encoding="utf-8"))["Values"]
    in_azure = set(sample) - LOCAL_ONLY
    bicep = _bicep_app_settings()
    assert in_azure <= bicep, f"missing in Bicep: {sorted(in_azure - bicep)}"
    assert bicep - in_azure <= PLATFORM, f"unknown settings: {sorted(bicep - in_azure - PLATFORM)}"


def test_retention_numbers_stay_inside_amazons_bound() -> None:
    main = _main()
    params = main["parameters"]
    days = (
        params["retentionDays"]["default"]
        + params["keyEpochDays"]["default"]
        + main["variables"]["cosmosBackupRetentionDays"]["value"]
        + params["keyVaultSoftDeleteDays"]["default"]
    )
    assert days <= MAX_RECOVERABLE_DAYS
    assert params["blobBackstopDays"]["default"] <= MAX_RECOVERABLE_DAYS
    assert params["logRetentionDays"]["default"] >= 365
    cosmos = (INFRA / "modules" / "cosmos.bicep").read_text(encoding="utf-8")
    assert "tier: 'Continuous7Days'" in cosmos
    assert main["variables"]["cosmosBackupRetentionDays"]["value"] == 7


def test_hardening_properties_are_set() -> None:
    text = {p.stem: p.read_text(encoding="utf-8") for p in (INFRA / "modules").glob("*.bicep")}
    for needle in (
        "allowSharedKeyAccess: false",
        "minimumTlsVersion: 'TLS1_2'",
        "allowBlobPublicAccess: false",
    ):
        assert needle in text["storage"]
    for needle in ("disableLocalAuth: true", "minimalTlsVersion: 'Tls12'", "defaultTtl: -1"):
        assert needle in text["cosmos"]
    for needle in ("enableRbacAuthorization: true", "enablePurgeProtection: true"):
        assert needle in text["keyvault"]
    # Private by default (tests/unit/test_infra_network.py reads the structure).
    for module in ("storage", "cosmos", "keyvault"):
        assert "publicNetworkAccess: publicNetworkAccess" in text[module], module
        assert "param publicNetworkAccess string = 'Disabled'" in text[module], module
    for needle in (
        "httpsOnly: true",
        "minTlsVersion: '1.2'",
        "ftpsState: 'Disabled'",
        "type: 'SystemAssigned'",
    ):
        assert needle in text["functionapp"]
    assert "name: 'python'" in text["functionapp"] and "version: '3.11'" in text["functionapp"]
    assert "DisableLocalAuth: true" in text["monitoring"]


# What each diagnostic setting may send, and the workspace table it fills (issue 21: only what a
# rule or the workbook reads). Site, Application Insights and account-level metrics send nothing:
# the app's telemetry is already in the workspace, and metrics stay in Azure Monitor Metrics.
DIAGNOSTIC_TABLES = {
    ("Microsoft.Storage/storageAccounts/blobServices", "StorageRead"): "StorageBlobLogs",
    ("Microsoft.Storage/storageAccounts/queueServices", "StorageWrite"): "StorageQueueLogs",
    ("Microsoft.DocumentDB/databaseAccounts", "DataPlaneRequests"): "CDBDataPlaneRequests",
    ("Microsoft.KeyVault/vaults", "audit"): "AZKVAuditLogs",
    ("Microsoft.OperationalInsights/workspaces", "audit"): "LAQueryLogs",
    ("Microsoft.Logic/workflows", "WorkflowRuntime"): "AzureDiagnostics",
}
# Read by no rule, kept for the reason docs/performance.md gives.
KEPT_UNREAD = {"LAQueryLogs"}


def test_diagnostic_settings_send_only_what_a_rule_or_the_workbook_reads() -> None:
    readers = "\n".join(
        [p.read_text(encoding="utf-8") for p in RULES.glob("*.kql")]
        + [p.read_text(encoding="utf-8") for p in (INFRA / "workbooks").glob("*.json")]
    )
    performance = (ROOT / "docs" / "performance.md").read_text(encoding="utf-8")
    diagnosed: set[str] = set()
    for module in ("storage", "cosmos", "keyvault", "functionapp", "monitoring", "playbook"):
        resources = _parse(INFRA / "modules" / f"{module}.bicep")["resources"]
        for r in resources.values():
            if r["type"] != "Microsoft.Insights/diagnosticSettings":
                continue
            config = r["config"]["config"] if "condition" in r["config"] else r["config"]
            properties = config["properties"]
            assert "metrics" not in properties, f"{module}: metrics go to Azure Monitor Metrics"
            scope_type = resources[config["scope"]]["type"]
            diagnosed.add(scope_type)
            for log in properties["logs"]:
                category = log.get("category") or log["categoryGroup"]
                table = DIAGNOSTIC_TABLES.get((scope_type, category))
                assert table, f"{module}: {category} is not a category a rule reads"
                assert table in readers or table in KEPT_UNREAD, table
                assert f"`{table}`" in performance, f"docs/performance.md does not say who reads {table}"
    assert {scope for scope, _ in DIAGNOSTIC_TABLES} <= diagnosed
    # The host's account (leases, timer state, the package) sends nothing; the data account does.
    modules = _parse(INFRA / "main.bicep")["modules"]
    assert modules["hostStorage"]["config"]["params"]["ruleLogs"] is False
    assert "ruleLogs" not in modules["dataStorage"]["config"]["params"]


def test_function_identity_holds_exactly_the_listed_data_plane_roles() -> None:
    rbac = (INFRA / "modules" / "rbac.bicep").read_text(encoding="utf-8")
    guids = set(re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", rbac))
    assert guids - {"00000000-0000-0000-0000-000000000002"} == set(ROLE_IDS)
    assert not guids & CONTROL_PLANE_ROLES
    security = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    for role in [*ROLE_IDS.values(), "Cosmos DB Built-in Data Contributor", "Fulfilment audit appender"]:
        assert role in security, f"docs/security.md does not explain {role}"


def test_every_checkov_skip_says_why() -> None:
    skips = []
    for bicep in BICEP_FILES:
        for line in bicep.read_text(encoding="utf-8").splitlines():
            match = SKIP.search(line)
            if match:
                skips.append(match.group(1))
                assert match.group(2) and len(match.group(2).strip()) > 20, f"{bicep.name}: {line.strip()}"
    assert skips, "expected the documented skips"


def _sentinel_rules() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    sentinel = _parse(INFRA / "modules" / "sentinel.bicep")
    properties = sentinel["resources"]["alertRules"]["config"]["config"]["properties"]
    rules: list[dict[str, Any]] = sentinel["variables"]["rules"]["value"]
    return properties, rules


def _rule_value(expression: Any, rule: dict[str, Any]) -> Any:
    """A literal, or `rule.<field>` read from the rule object."""
    if isinstance(expression, dict) and expression.get("operator", {}).get("type") == "property_accessor":
        operands = expression["operator"]["operands"]
        assert operands["operand_1"] == "rule", expression
        return rule[operands["operand_2"]]
    return expression


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        depth += char in "([{"
        depth -= char in ")]}"
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def _output_name(item: str) -> str:
    # `Name = expr`, a bare column, or bin(Column, ...) whose result keeps the column's name.
    assignment = re.match(r"(\w+)\s*=(?!=)", item)
    if assignment:
        return assignment.group(1)
    call = re.match(r"\w+\(\s*(\w+)", item)
    return call.group(1) if call else item


def _projected_columns(query: str) -> set[str]:
    """The columns the query's last project or summarize outputs, plus any column extended after
    it: a textual reading good enough for the rules here (the analyzer test is the exact one)."""
    text = re.sub(r"//[^\n]*", "", query)
    operators = list(re.finditer(r"\|\s*(project|summarize)\b", text))
    assert operators, "the query neither projects nor summarizes"
    last = operators[-1]
    rest = text[last.end() :]
    stage = re.split(r"\|", rest, maxsplit=1)[0].split(";", 1)[0]
    if last.group(1) == "summarize":
        aggregates, _, by = stage.partition(" by ")
        items = _split_top_level(aggregates) + _split_top_level(by)
    else:
        items = _split_top_level(stage)
    names = {_output_name(item) for item in items}
    names |= set(re.findall(r"\|\s*extend\s+(\w+)\s*=", rest))
    return names


def test_rules_grouped_by_entities_map_an_entity_their_query_projects() -> None:
    properties, rules = _sentinel_rules()
    method = properties["incidentConfiguration"]["groupingConfiguration"]["matchingMethod"]
    assert "entities" in json.dumps(properties["entityMappings"]), "entityMappings must come from the rule"
    grouped = 0
    for rule in rules:
        grouping = _rule_value(method, rule)
        assert grouping in MATCHING_METHODS, f"{rule['id']}: {grouping}"
        for entity in rule["entities"]:
            identifiers = ENTITY_IDENTIFIERS.get(entity["entityType"])
            assert identifiers, f"{rule['id']}: unknown entity type {entity['entityType']}"
            assert 1 <= len(entity["fieldMappings"]) <= 3
            for field in entity["fieldMappings"]:
                assert field["identifier"] in identifiers, (
                    f"{rule['id']}: {entity['entityType']}.{field['identifier']}"
                )
        if grouping == "AnyAlert":
            continue
        grouped += 1
        projected = _projected_columns((RULES / f"{rule['id']}.kql").read_text(encoding="utf-8"))
        mapped = [f["columnName"] for e in rule["entities"] for f in e["fieldMappings"]]
        assert mapped, f"{rule['id']}: incidents grouped by {grouping} but no entity mappings"
        assert set(mapped) <= projected, (
            f"{rule['id']}: maps {mapped}, the query projects {sorted(projected)}"
        )
    assert grouped >= 1


def test_an_invoice_number_claim_is_indexed_only_where_it_is_queried() -> None:
    """A claim item's body is never queried (shared/invoices/numbering.py reads claims by id and
    finds week-old ones by CHECKED_AT), so indexing it would only add to every allocation's cost."""
    containers = parse_bicep(INFRA / "modules" / "cosmos.bicep")["resources"]["containerResources"]
    policy = containers["config"]["config"]["properties"]["resource"]["indexingPolicy"]
    excluded = {p["path"] for p in policy["excludedPaths"]}
    assert "/claim/*" in excluded
    assert not any(path.startswith(f"/{CHECKED_AT}") for path in excluded)
    assert {p["path"] for p in policy["includedPaths"]} >= {"/*"}
