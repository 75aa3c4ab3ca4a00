"""infra/identity/setup_access.py against a stub Microsoft Graph on loopback (a small http.server
in this file that keeps Conditional Access policies, groups, members, PIM for Groups eligibility
schedules and PIM policy rules in memory, answering the v1.0 calls the script makes with the
shapes Graph documents). The script is idempotent: a second run makes no write call. --what-if
makes none either. Without the Graph permissions it refuses before calling Graph at all, and it
stops with the same refusal when Graph answers 403."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "infra" / "identity" / "setup_access.py"
OPERATORS = "0d6f3a52-8c1e-4f0b-9a57-3e2a1c4b5d60"
BREAK_GLASS = "7e1c2d3b-4a5f-4c6d-8e7f-9a0b1c2d3e4f"
ALICE = "a1a1a1a1-0000-4000-8000-000000000001"
BOB = "b2b2b2b2-0000-4000-8000-000000000002"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("setup_access", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


setup_access = _load()


def _token(permissions: set[str], claim: str = "scp") -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    value: Any = " ".join(sorted(permissions)) if claim == "scp" else sorted(permissions)
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part({claim: value})}.unsigned"


ALL = set(setup_access.REQUIRED)
READ_ONLY = set(setup_access.READ)


class FakeGraph:
    """In-memory tenant. `requests` records (method, path) of every call."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.policies: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, dict[str, Any]] = {}
        self.members: dict[str, list[dict[str, str]]] = {
            OPERATORS: [
                {"id": ALICE, "userPrincipalName": "alice@example.test"},
                {"id": BOB, "userPrincipalName": "bob@example.test"},
            ]
        }
        self.schedules: list[dict[str, Any]] = []
        self.policy_of_group: dict[str, str] = {}
        self.rules: dict[tuple[str, str], dict[str, Any]] = {}
        self.forbid: tuple[str, str] | None = None  # (method, path prefix) answered 403
        self.page_size = 1  # members come one per page: the script must follow @odata.nextLink
        self.base = ""

    def writes(self) -> list[tuple[str, str]]:
        return [r for r in self.requests if r[0] != "GET"]

    # --- request handling --------------------------------------------------------------------

    def handle(self, method: str, url: str, body: Any) -> tuple[int, Any]:
        parts = urlsplit(url)
        path = unquote(parts.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        self.requests.append((method, path))
        if self.forbid and method == self.forbid[0] and path.startswith(self.forbid[1]):
            return 403, {
                "error": {"code": "Authorization_RequestDenied", "message": "Insufficient privileges"}
            }
        assert path.startswith("/v1.0/"), path
        route = path[len("/v1.0") :]
        handler = getattr(self, f"_{method.lower()}", None)
        assert handler, method
        status, answer = handler(route, query, body)
        return status, answer

    def _get(self, route: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        if route == "/identity/conditionalAccess/policies":
            return 200, {"value": list(self.policies.values())}
        if route == "/groups":
            nickname = _eq(query["$filter"], "mailNickname")
            return 200, {"value": [g for g in self.groups.values() if g["mailNickname"] == nickname]}
        if route.startswith("/groups/") and route.endswith("/transitiveMembers/microsoft.graph.user"):
            users = self.members.get(route.split("/")[2], [])
            start = int(query.get("$skiptoken", "0"))
            page: dict[str, Any] = {"value": users[start : start + self.page_size]}
            following = start + self.page_size
            if following < len(users):
                page["@odata.nextLink"] = f"{self.base}/v1.0{route}?$select=id&$skiptoken={following}"
            return 200, page
        if route == "/identityGovernance/privilegedAccess/group/eligibilitySchedules":
            group_id = _eq(query["$filter"], "groupId")
            return 200, {"value": [s for s in self.schedules if s["groupId"] == group_id]}
        if route == "/policies/roleManagementPolicyAssignments":
            group_id = _eq(query["$filter"], "scopeId")
            policy = self.policy_of_group.get(group_id)
            value = (
                [] if policy is None else [{"policyId": policy, "scopeId": group_id, "scopeType": "Group"}]
            )
            return 200, {"value": value}
        if route.startswith("/policies/roleManagementPolicies/"):
            _, _, _, policy, _, rule = route.split("/")
            return 200, self.rules[(policy, rule)]
        raise AssertionError(f"unexpected GET {route}")

    def _post(self, route: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        if route == "/identity/conditionalAccess/policies":
            policy = {**body, "id": str(uuid.uuid4())}
            self.policies[policy["id"]] = policy
            return 201, policy
        if route == "/groups":
            assert body["isAssignableToRole"] is True and body["securityEnabled"] is True
            group = {**body, "id": str(uuid.uuid4())}
            self.groups[group["id"]] = group
            return 201, group
        if route == "/identityGovernance/privilegedAccess/group/eligibilityScheduleRequests":
            group_id, principal = body["groupId"], body["principalId"]
            assert group_id in self.groups and body["accessId"] == "member"
            self.schedules = [
                s for s in self.schedules if not (s["groupId"] == group_id and s["principalId"] == principal)
            ]
            if body["action"] != "adminRemove":
                self.schedules.append(
                    {
                        "groupId": group_id,
                        "principalId": principal,
                        "accessId": "member",
                        "scheduleInfo": body["scheduleInfo"],
                    }
                )
            self._onboard(group_id)
            return 201, {**body, "id": str(uuid.uuid4()), "status": "Provisioned"}
        raise AssertionError(f"unexpected POST {route}")

    def _patch(self, route: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        if route.startswith("/identity/conditionalAccess/policies/"):
            policy = self.policies[route.rsplit("/", 1)[1]]
            policy.update(body)
            return 204, None
        if route.startswith("/policies/roleManagementPolicies/"):
            _, _, _, policy, _, rule = route.split("/")
            assert body["id"] == rule and "target" in body and "@odata.type" in body
            self.rules[(policy, rule)].update(body)
            return 204, None
        raise AssertionError(f"unexpected PATCH {route}")

    def _onboard(self, group_id: str) -> None:
        """PIM governs a group from its first eligibility on, with default rules."""
        if group_id in self.policy_of_group:
            return
        policy = f"Group_{group_id}_{uuid.uuid4()}"
        self.policy_of_group[group_id] = policy
        target = {"caller": "EndUser", "operations": ["All"], "level": "Assignment"}
        self.rules[(policy, "Expiration_EndUser_Assignment")] = {
            "@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyExpirationRule",
            "id": "Expiration_EndUser_Assignment",
            "isExpirationRequired": True,
            "maximumDuration": "PT8H",
            "target": target,
        }
        self.rules[(policy, "Enablement_EndUser_Assignment")] = {
            "@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyEnablementRule",
            "id": "Enablement_EndUser_Assignment",
            "enabledRules": [],
            "target": target,
        }


def _eq(expression: str, name: str) -> str:
    prefix = f"{name} eq '"
    start = expression.index(prefix) + len(prefix)
    return expression[start : expression.index("'", start)]


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    fake = FakeGraph()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            assert self.headers["Authorization"].startswith("Bearer ")
            status, answer = fake.handle(self.command, self.path, body)
            payload = b"" if answer is None else json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.base = f"http://127.0.0.1:{server.server_address[1]}"
    # A short poll: `shutdown` waits for the loop to look again (0.5 s by default, per test).
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


def _run(graph: FakeGraph, *extra: str, permissions: set[str] = ALL) -> tuple[int, str]:
    out = io.StringIO()
    argv = [
        "--prefix",
        "acme",
        "--operators-group",
        OPERATORS,
        "--exclude-user",
        BREAK_GLASS,
        "--graph-endpoint",
        graph.base,
        *extra,
    ]
    code = setup_access.main(argv, out=out, get_token=lambda auth, tenant, endpoint: _token(permissions))
    return code, out.getvalue()


def test_first_run_builds_everything_and_the_second_changes_nothing(graph: FakeGraph) -> None:
    code, out = _run(graph)
    assert code == 0, out
    [policy] = graph.policies.values()
    assert policy["state"] == "enabledForReportingButNotEnforced"  # report-only first
    assert policy["conditions"]["users"] == {"includeGroups": [OPERATORS], "excludeUsers": [BREAK_GLASS]}
    assert policy["grantControls"] == {"operator": "OR", "builtInControls": ["mfa"]}
    assert policy["conditions"]["applications"] == {"includeApplications": ["All"]}
    nicknames = sorted(g["mailNickname"] for g in graph.groups.values())
    assert nicknames == [
        "acme-pim-cosmos-data-contributor",
        "acme-pim-kv-secrets-officer",
        "acme-pim-rg-contributor",
        "acme-pim-rg-owner",
    ]
    assert all(g["isAssignableToRole"] for g in graph.groups.values())
    # Both operators eligible (not active) members of every group, for a year.
    assert {(s["groupId"], s["principalId"]) for s in graph.schedules} == {
        (g, u) for g in graph.groups for u in (ALICE, BOB)
    }
    assert all(s["scheduleInfo"]["expiration"]["type"] == "afterDateTime" for s in graph.schedules)
    for policy_id in graph.policy_of_group.values():
        assert graph.rules[(policy_id, "Expiration_EndUser_Assignment")]["maximumDuration"] == "PT4H"
        enabled = graph.rules[(policy_id, "Enablement_EndUser_Assignment")]["enabledRules"]
        assert set(enabled) == {"MultiFactorAuthentication", "Justification"}
    assert "privilegedAccessGroups" in out
    printed = json.loads(out.split("privilegedAccessGroups (infra/main.bicep parameter): ")[1])
    assert set(printed) == {"resourceGroupOwner", "resourceGroupContributor", "keyVaultSecretsOfficer",
                            "cosmosDataContributor"}  # fmt: skip
    assert set(printed.values()) == set(graph.groups)
    first_writes = len(graph.writes())
    assert first_writes == 1 + 4 + 8 + 8  # policy, groups, eligibilities, two rules per group

    graph.requests.clear()
    code, out = _run(graph)
    assert code == 0, out
    assert graph.writes() == []
    assert "no changes" in out
    assert set(json.loads(out.split("parameter): ")[1]).values()) == set(graph.groups)


def test_what_if_prints_the_plan_and_writes_nothing(graph: FakeGraph) -> None:
    code, out = _run(graph, "--what-if")
    assert code == 0, out
    assert graph.writes() == []
    assert "would create Conditional Access policy 'acme: require MFA for fulfilment operators'" in out
    assert out.count("would create role-assignable group") == 4
    assert out.count("would make alice@example.test eligible member") == 4
    assert out.count("would set activation of") == 4

    _run(graph)
    graph.requests.clear()
    code, out = _run(graph, "--what-if")
    assert code == 0 and graph.writes() == [] and "no changes" in out


def test_refuses_without_the_graph_permissions_before_calling_graph(graph: FakeGraph) -> None:
    code, out = _run(graph, permissions=ALL - {"Policy.ReadWrite.ConditionalAccess"})
    assert code == 2
    assert "refused" in out and "Policy.ReadWrite.ConditionalAccess" in out
    assert graph.requests == []

    code, out = _run(graph, permissions=READ_ONLY)  # a real run needs the write permissions
    assert code == 2 and "RoleManagementPolicy.ReadWrite.AzureADGroup" in out
    assert graph.requests == []

    code, out = _run(graph, "--what-if", permissions=READ_ONLY)  # reading is enough to plan
    assert code == 0, out
    assert graph.requests and graph.writes() == []


def test_application_permissions_count_and_broader_ones_satisfy() -> None:
    broad = {
        "Policy.ReadWrite.ConditionalAccess",
        "Directory.ReadWrite.All",
        "RoleManagement.ReadWrite.Directory",
        "PrivilegedAccess.ReadWrite.AzureADGroup",
        "RoleManagementPolicy.ReadWrite.AzureADGroup",
    }
    granted = setup_access.token_permissions(_token(broad, claim="roles"))
    assert granted == broad
    assert setup_access.missing_permissions(granted, setup_access.REQUIRED) == []


def test_refuses_when_graph_answers_forbidden(graph: FakeGraph) -> None:
    graph.forbid = ("POST", "/v1.0/groups")
    code, out = _run(graph)
    assert code == 2
    assert "refused" in out and "Privileged Role Administrator" in out
    assert graph.groups == {}


def test_enforcing_mfa_is_explicit_and_never_undone(graph: FakeGraph) -> None:
    _run(graph)
    graph.requests.clear()
    code, out = _run(graph, "--enforce-mfa")
    assert code == 0, out
    [policy] = graph.policies.values()
    assert policy["state"] == "enabled"
    assert [m for m, _ in graph.writes()] == ["PATCH"]

    graph.requests.clear()
    code, out = _run(graph)  # without --enforce-mfa: left enforced
    assert code == 0 and graph.writes() == [] and "left enforced" in out
    assert policy["state"] == "enabled"


def test_policy_drift_is_corrected(graph: FakeGraph) -> None:
    _run(graph)
    [policy] = graph.policies.values()
    policy["conditions"]["users"]["excludeUsers"] = []
    policy["grantControls"]["builtInControls"] = ["compliantDevice"]
    graph.requests.clear()
    _run(graph)
    assert policy["conditions"]["users"]["excludeUsers"] == [BREAK_GLASS]
    assert policy["grantControls"]["builtInControls"] == ["mfa"]
    assert policy["state"] == "enabledForReportingButNotEnforced"
    assert len(graph.writes()) == 1


def test_an_operator_who_leaves_loses_eligibility_and_a_new_one_gains_it(graph: FakeGraph) -> None:
    _run(graph)
    carol = "c3c3c3c3-0000-4000-8000-000000000003"
    graph.members[OPERATORS] = [
        {"id": ALICE, "userPrincipalName": "alice@example.test"},
        {"id": carol, "userPrincipalName": "carol@example.test"},
    ]
    graph.requests.clear()
    code, out = _run(graph)
    assert code == 0, out
    assert out.count("make carol@example.test eligible member") == 4
    assert out.count(f"remove eligibility of {BOB}") == 4
    assert {s["principalId"] for s in graph.schedules} == {ALICE, carol}


def test_an_existing_group_that_is_not_role_assignable_is_refused(graph: FakeGraph) -> None:
    group_id = str(uuid.uuid4())
    graph.groups[group_id] = {
        "id": group_id,
        "mailNickname": "acme-pim-rg-owner",
        "isAssignableToRole": False,
    }
    code, out = _run(graph)
    assert code == 2 and "not role-assignable" in out


def test_only_https_or_loopback_endpoints() -> None:
    with pytest.raises(setup_access.Refused):
        setup_access.check_endpoint("http://graph.example.test")
    assert setup_access.check_endpoint("https://graph.microsoft.com/") == "https://graph.microsoft.com"
    assert setup_access.check_endpoint("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
