"""Response to incidents, read from the Bicep (pycep, the parser checkov uses; there is no Bicep
compiler here) and the playbook's workflow definition: every incident-creating Sentinel rule has an
automation rule that gives its incidents an owner, labels and the runbook's tasks; the rules whose
incidents may involve personal data run the PII playbook; the playbook (managed identity, Sentinel
incident trigger) drafts the report, records the 24-hour deadline and reminds at 12 h and 20 h
until the incident is tagged notified-amazon; the labels it and the automation rules add are the
ones the log alerts turn into e-mails through the two action groups; and the signals the new rules
need (subscription Activity log, Key Vault's resource-specific table, the break-glass watchlist)
are wired."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from tests.bicep import parse_bicep

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MODULES = INFRA / "modules"
WORKFLOW = INFRA / "playbooks" / "pii-incident.workflow.json"
SECURITY_MD = ROOT / "docs" / "security.md"

PERSONAL_DATA_RULES = {"pii-in-traces", "unusual-data-read", "unexpected-principal"}
OPERATIONAL_RULES = {
    "pipeline-silent",
    "purge-lateness",
    "poison-queue-growth",
    "privacy-request-overdue",
    "orders-not-shipping",
}
SENTINEL_RESPONDER = "3e150937-b8fe-4cfb-8069-0eaf05ecd056"
SENTINEL_AUTOMATION_CONTRIBUTOR = "f4c81013-99ee-4d62-a7ee-b3f1f648599a"
PLAYBOOK_MARK = "[pii-playbook]"


@cache
def _parse(name: str) -> dict[str, Any]:
    path = INFRA / name if name == "main.bicep" else MODULES / name
    return parse_bicep(path)  # once per session, for every infra test


def _accessor(expression: Any) -> tuple[Any, Any]:
    operands = expression["operator"]["operands"]
    return operands["operand_1"], operands["operand_2"]


def _rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = _parse("sentinel.bicep")["variables"]["rules"]["value"]
    return rules


def _workflow() -> dict[str, Any]:
    workflow: dict[str, Any] = json.loads(WORKFLOW.read_text(encoding="utf-8"))
    return workflow


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _actions(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every action of the workflow, nested ones (loops, conditions) included, by name."""
    found: dict[str, dict[str, Any]] = {}

    def collect(actions: dict[str, Any]) -> None:
        for name, action in actions.items():
            found[name] = action
            collect(action.get("actions", {}))
            collect(action.get("else", {}).get("actions", {}))

    collect(definition["actions"])
    return found


# --- automation rules ---------------------------------------------------------------------------


def test_every_incident_creating_rule_has_an_automation_rule() -> None:
    sentinel = _parse("sentinel.bicep")
    alert_rules = sentinel["resources"]["alertRules"]["config"]
    assert alert_rules["loop_type"]["detail"]["array_name"] == "rules"
    assert alert_rules["config"]["properties"]["incidentConfiguration"]["createIncident"] is True

    automation = sentinel["resources"]["automationRules"]
    assert automation["type"] == "Microsoft.SecurityInsights/automationRules"
    loop = automation["config"]["loop_type"]
    # One automation rule per element of the same `rules` list, paired by index.
    assert loop["type"] == "array_index" and loop["detail"]["array_name"] == "rules"
    index = loop["detail"]["index_name"]
    body = automation["config"]["config"]
    assert body["scope"] == "workspace"
    logic = body["properties"]["triggeringLogic"]
    assert logic == {
        "isEnabled": True,
        "triggersOn": "Incidents",
        "triggersWhen": "Created",
        "conditions": logic["conditions"],
    }
    [condition] = logic["conditions"]
    assert condition["conditionType"] == "Property"
    props = condition["conditionProperties"]
    assert props["propertyName"] == "IncidentRelatedAnalyticRuleIds" and props["operator"] == "Contains"
    [value] = props["propertyValues"]
    target, attribute = _accessor(value)
    assert attribute == "id" and _accessor(target) == ("alertRules", index)
    order = body["properties"]["order"]
    assert order["operator"]["type"] == "add"


def test_each_automation_rule_sets_owner_labels_tasks_and_the_playbook_where_personal_data() -> None:
    sentinel = _parse("sentinel.bicep")
    actions = sentinel["resources"]["automationRules"]["config"]["config"]["properties"]["actions"]
    args = actions["function"]["parameters"]
    assert actions["function"]["type"] == "concat"
    [owner] = args["arg_1"]
    assert _accessor(owner)[0] == "ownerActions"
    assert _accessor(args["arg_2"])[0] == "taskActions"
    playbook = args["arg_3"]["operator"]["operands"]
    assert _accessor(playbook["condition"]) == ("rule", "personalData")
    assert playbook["true_value"] == "playbookActions" and playbook["false_value"] == []
    [run_playbook] = sentinel["variables"]["playbookActions"]["value"]
    assert run_playbook["actionType"] == "RunPlaybook"
    assert run_playbook["actionConfiguration"]["logicAppResourceId"] == "playbookId"

    head = sentinel["variables"]["ownerActions"]["value"]
    assert head["loop_type"]["detail"]["array_name"] == "rules"
    config = head["config"]
    assert config["order"] == 1 and config["actionType"] == "ModifyProperties"
    owner_value = config["actionConfiguration"]["owner"]["operator"]["operands"]["false_value"]
    assert owner_value["ownerType"] == "User"
    labels = config["actionConfiguration"]["labels"]["operator"]["operands"]
    assert _accessor(labels["condition"]) == ("rule", "page")
    assert {label["labelName"] for label in labels["true_value"]} == {
        "rule:${rule.id}",
        "team:${rule.team}",
        "notify:${rule.team}",
    }
    assert "notify:${rule.team}" not in {label["labelName"] for label in labels["false_value"]}
    owners = sentinel["variables"]["owners"]["value"]
    assert owners == {"security": "securityOwnerObjectId", "operations": "operationsOwnerObjectId"}


def test_rules_say_who_owns_them_and_which_involve_personal_data() -> None:
    rules = {rule["id"]: rule for rule in _rules()}
    assert len(rules) == len(list((INFRA / "rules").glob("*.kql")))
    for rule in rules.values():
        assert rule["team"] in {"security", "operations"}, rule["id"]
        assert isinstance(rule["personalData"], bool) and isinstance(rule["page"], bool)
        if rule["personalData"]:
            assert rule["team"] == "security" and rule["page"], rule["id"]
    assert {r for r, rule in rules.items() if rule["personalData"]} == PERSONAL_DATA_RULES
    for rule_id in OPERATIONAL_RULES:
        assert rules[rule_id]["team"] == "operations" and rules[rule_id]["page"], rule_id
    for rule_id in ("break-glass-sign-in", "role-assignment-outside-deployment"):
        assert rules[rule_id]["team"] == "security" and rules[rule_id]["page"]


def _runbook(rule_id: str) -> str:
    text = SECURITY_MD.read_text(encoding="utf-8")
    start = text.index(f"### `{rule_id}`")
    end = text.find("\n### ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_tasks_come_from_each_rules_runbook() -> None:
    sentinel = _parse("sentinel.bicep")
    tasks: list[list[dict[str, Any]]] = sentinel["variables"]["taskActions"]["value"]
    rules = _rules()
    assert len(tasks) == len(rules)
    text = (MODULES / "sentinel.bicep").read_text(encoding="utf-8")
    # The lists carry a comment naming their rule, in the order of `rules`.
    named = re.findall(r"^  // ([\w-]+)\n  \[", text, flags=re.MULTILINE)
    assert named == [rule["id"] for rule in rules]
    for rule, actions in zip(rules, tasks, strict=True):
        assert actions, rule["id"]
        assert [a["order"] for a in actions] == list(range(2, 2 + len(actions)))
        for action in actions:
            assert action["actionType"] == "AddIncidentTask"
            config = action["actionConfiguration"]
            assert 10 < len(config["title"]) <= 150 and len(config["description"]) > 20
        _runbook(rule["id"])  # the runbook section exists
        titles = " ".join(a["actionConfiguration"]["title"] for a in actions)
        if rule["team"] == "security":
            assert "Decide within 4 h whether Amazon data may have been exposed" in titles, rule["id"]
        if rule["personalData"]:
            assert "Notify Amazon by the deadline" in titles, rule["id"]
            assert "notified-amazon" in titles


# --- the PII playbook ---------------------------------------------------------------------------


def test_the_playbook_has_a_managed_identity_and_the_sentinel_incident_trigger() -> None:
    playbook = _parse("playbook.bicep")["resources"]
    workflow = playbook["playbook"]
    assert workflow["type"] == "Microsoft.Logic/workflows"
    config = workflow["config"]
    assert config["identity"] == {"type": "SystemAssigned"}
    definition = config["properties"]["definition"]["function"]
    assert definition["type"] == "load_json_content"
    assert definition["parameters"]["file_path"] == "../playbooks/pii-incident.workflow.json"
    connection = config["properties"]["parameters"]["'$connections'"]["value"]["azuresentinel"]
    assert connection["connectionProperties"] == {"authentication": {"type": "ManagedServiceIdentity"}}
    assert playbook["sentinelConnection"]["config"]["properties"]["parameterValueType"] == "Alternative"

    [trigger] = _workflow()["triggers"].values()
    assert trigger["type"] == "ApiConnectionWebhook"
    assert trigger["inputs"]["path"] == "/incident-creation"
    assert "['azuresentinel']" in trigger["inputs"]["host"]["connection"]["name"]
    for action in _actions(_workflow()).values():
        if action["type"] == "Http":
            assert action["inputs"]["authentication"] == {
                "type": "ManagedServiceIdentity",
                "audience": "https://management.azure.com/",
            }
            assert action["inputs"]["uri"].startswith("@{concat('https://management.azure.com', ")


def test_the_playbook_identity_may_respond_and_sentinel_may_run_it() -> None:
    resources = _parse("playbook.bicep")["resources"]
    text = (MODULES / "playbook.bicep").read_text(encoding="utf-8")
    responder = resources["playbookResponder"]["config"]
    assert responder["scope"] == "workspace"
    assert _accessor(_accessor(responder["properties"]["principalId"])[1]) == ("identity", "principalId")
    runs = resources["sentinelRunsPlaybooks"]["config"]["properties"]
    assert runs["principalId"] == "sentinelAutomationPrincipalId"
    assert f"sentinelResponder = '{SENTINEL_RESPONDER}'" in text
    assert f"sentinelAutomationContributor = '{SENTINEL_AUTOMATION_CONTRIBUTOR}'" in text
    main = _parse("main.bicep")["modules"]
    assert (
        main["sentinel"]["config"]["params"]["playbookId"]["operator"]["operands"]["operand_1"] == "playbook"
    )
    assert (
        main["playbook"]["config"]["params"]["sentinelAutomationPrincipalId"]
        == "sentinelAutomationPrincipalId"
    )


def test_the_report_draft_follows_the_template_with_references_and_counts_only() -> None:
    actions = _actions(_workflow())
    report = actions["Report_draft"]["inputs"]
    template = SECURITY_MD.read_text(encoding="utf-8").split("### Report to Amazon (template)", 1)[1]
    items = re.findall(r"^(\d)\. (\w+)", template.split("```", 2)[1], flags=re.MULTILINE)
    assert len(items) == 8
    for number, word in items:
        assert f"{number}. {word}" in report, (number, word)
    # What the playbook puts in: incident, rule, resource references and counts, never entity names.
    inserted = set(re.findall(r"@\{([^}]*)\}", report))
    for expression in inserted:
        assert re.search(
            r"outputs\('Incident'\)\?\['(detectedUtc|rules|number|armId|title|severity|alerts|"
            r"firstActivityUtc|url|deadlineUtc)'\]|length\(body\('(Azure_resources|Accounts)'\)\)|"
            r"join\(body\('Azure_resources'\), ', '\)",
            expression,
        ), expression
    assert actions["Azure_resources"]["inputs"]["select"] == "@item()?['properties']?['resourceId']"
    post = actions["Post_report_draft"]
    assert post["inputs"]["method"] == "PUT" and "'/comments/'" in post["inputs"]["uri"]
    assert post["inputs"]["body"]["properties"]["message"] == "@{outputs('Report_draft')}"


def test_the_deadline_is_detection_plus_24_hours_and_is_recorded() -> None:
    actions = _actions(_workflow())
    incident = actions["Incident"]["inputs"]
    assert incident["detectedUtc"] == "@triggerBody()?['object']?['properties']?['createdTimeUtc']"
    assert incident["deadlineUtc"].startswith(
        "@addHours(triggerBody()?['object']?['properties']?['createdTimeUtc'], 24,"
    )
    assert "deadlineUtc" in actions["Report_draft"]["inputs"]
    labels = actions["Start_clock"]["inputs"]["body"]["properties"]["labels"]
    assert "amazon-clock:started" in labels and "amazon-deadline:" in labels
    assert actions["Start_clock"]["runAfter"] == {"Get_incident": ["Succeeded"]}


def test_reminders_at_12_and_20_hours_until_notified_amazon() -> None:
    definition = _workflow()
    checkpoints = definition["parameters"]["checkpoints"]["defaultValue"]
    hours = [c["hours"] for c in checkpoints]
    assert hours[:2] == [12, 20] and hours == sorted(hours) and max(hours) <= 24
    actions = _actions(definition)
    loop = actions["For_each_checkpoint"]
    assert loop["foreach"] == "@parameters('checkpoints')"
    assert loop["runtimeConfiguration"]["concurrency"]["repetitions"] == 1  # in order, one at a time
    wait = actions["Wait_for_checkpoint"]["inputs"]["until"]["timestamp"]
    assert "addHours(outputs('Incident')?['detectedUtc'], items('For_each_checkpoint')?['hours'])" in wait
    check = actions["Notified_or_closed"]
    assert "'\"notified-amazon\"'" in check["expression"]  # the tag
    assert "length(body('Notice_comments'))" in check["expression"]  # or a comment
    assert "'Closed'" in check["expression"]
    assert check["actions"] == {}  # notified: nothing more to say
    assert set(check["else"]["actions"]) == {"Post_reminder", "Label_reminder"}
    where = actions["Notice_comments"]["inputs"]["where"]
    assert "'notified amazon'" in where and PLAYBOOK_MARK in where


def test_the_playbook_never_mistakes_its_own_comments_for_the_notice() -> None:
    actions = _actions(_workflow())
    for name in ("Report_draft", "Post_reminder"):
        text = json.dumps(actions[name]["inputs"])
        assert PLAYBOOK_MARK in text, name
        assert "notified amazon" not in text.lower(), name


# --- notifications ------------------------------------------------------------------------------


def _alert_queries() -> dict[str, str]:
    resources = _parse("notifications.bicep")["resources"]
    return {
        name: r["config"]["properties"]["criteria"]["allOf"][0]["query"]
        for name, r in resources.items()
        if r["type"] == "Microsoft.Insights/scheduledQueryRules"
    }


def test_action_groups_mail_the_recipients_given_as_parameters() -> None:
    notifications = _parse("notifications.bicep")
    groups = {
        name: r["config"]
        for name, r in notifications["resources"].items()
        if r["type"] == "Microsoft.Insights/actionGroups"
    }
    assert set(groups) == {"securityGroup", "operationsGroup"}
    for name, param in (("securityGroup", "securityEmails"), ("operationsGroup", "operationsEmails")):
        receivers = groups[name]["properties"]["emailReceivers"]
        assert receivers["loop_type"]["detail"]["array_name"] == param
        assert receivers["config"]["emailAddress"] == "address"
        assert len(groups[name]["properties"]["groupShortName"]) <= 12
        assert notifications["parameters"][param]["type"] == "array"
    params = _parse("main.bicep")["modules"]["notifications"]["config"]["params"]
    assert params["securityEmails"] == "securityOnCallEmails"
    assert params["operationsEmails"] == "operationsOnCallEmails"
    main_params = _parse("main.bicep")["parameters"]
    for name in ("securityOnCallEmails", "operationsOnCallEmails"):
        assert main_params[name].get("default") is None  # required: someone must hear


def test_every_label_that_should_page_reaches_an_action_group() -> None:
    notifications = _parse("notifications.bicep")
    resources = notifications["resources"]
    queries = _alert_queries()
    playbook_labels = {"amazon-clock:started"} | {
        c["label"] for c in _workflow()["parameters"]["checkpoints"]["defaultValue"]
    }
    security = queries["securityNotice"]
    for label in playbook_labels | {"notify:security"}:
        assert f'"{label}"' in security, label
    assert '"notify:operations"' in queries["operationsNotice"]
    targets = {
        name: _accessor(resources[name]["config"]["properties"]["actions"]["actionGroups"][0])[0]
        for name in queries
    }
    assert targets == {"securityNotice": "securityGroup", "operationsNotice": "operationsGroup"}
    for name in queries:
        properties = resources[name]["config"]["properties"]
        assert properties["autoMitigate"] is True  # stateful: one notification per incident and label
        dimensions_ref = properties["criteria"]["allOf"][0]["dimensions"]
        dimensions = {d["name"] for d in notifications["variables"][dimensions_ref]["value"]}
        assert {"IncidentNumber", "Stage"} <= dimensions
        assert properties["scopes"] == ["workspaceId"]


# --- signals ------------------------------------------------------------------------------------


def test_the_subscription_activity_log_goes_to_the_workspace() -> None:
    activity = _parse("activitylog.bicep")
    assert activity["globals"]["scope"]["value"] == "subscription"
    [setting] = activity["resources"].values()
    assert setting["type"] == "Microsoft.Insights/diagnosticSettings"
    categories = {log["category"] for log in setting["config"]["properties"]["logs"]}
    assert "Administrative" in categories  # role assignments
    assert setting["config"]["properties"]["workspaceId"] == "workspaceId"
    module = _parse("main.bicep")["modules"]["activityLog"]["config"]
    assert module["condition"] == "deploySubscriptionActivityLog"
    assert module["config"]["scope"]["function"]["type"] == "subscription"


def test_key_vault_audit_goes_to_its_resource_specific_table() -> None:
    resources = _parse("keyvault.bicep")["resources"]
    properties = resources["diagnostics"]["config"]["properties"]
    assert properties["logAnalyticsDestinationType"] == "Dedicated"
    assert {"categoryGroup": "audit", "enabled": True} in properties["logs"]
    rule = (INFRA / "rules" / "unexpected-principal.kql").read_text(encoding="utf-8")
    assert "AZKVAuditLogs" in rule and "AzureDiagnostics" in rule


def test_the_break_glass_watchlist_is_the_one_the_rule_reads() -> None:
    watchlist = _parse("sentinel.bicep")["resources"]["breakGlassWatchlist"]["config"]
    alias = watchlist["config"]["properties"]["watchlistAlias"]
    assert watchlist["config"]["properties"]["itemsSearchKey"] == "ObjectId"
    rule = (INFRA / "rules" / "break-glass-sign-in.kql").read_text(encoding="utf-8")
    assert f'WatchlistAlias == "{alias}"' in rule and "SigninLogs" in rule
    rules = {r["id"]: r for r in _rules()}
    assert rules["break-glass-sign-in"]["period"] == "P14D"  # the watchlist refreshes every 12 days


def test_every_playbook_label_and_page_label_is_documented() -> None:
    text = SECURITY_MD.read_text(encoding="utf-8")
    labels = {"notified-amazon", "notify:security", "notify:operations", "amazon-clock:started"} | {
        c["label"] for c in _workflow()["parameters"]["checkpoints"]["defaultValue"]
    }
    for label in labels:
        assert f"`{label}`" in text, label
    for table in ("SigninLogs", "AuditLogs", "AzureActivity", "AZKVAuditLogs"):
        assert table in text
