"""MFA and just-in-time privileged access for the fulfilment app's operators, in Microsoft Entra ID.

Run by an administrator, once after the first deployment and again whenever the operators change.
It brings the tenant to this state, changing only what differs, so a second run changes nothing:

1. A Conditional Access policy "<prefix>: require MFA for fulfilment operators" that requires
   multifactor authentication of every member of the operators' group for every cloud app, the
   break-glass accounts excluded. It is created in report-only mode
   (enabledForReportingButNotEnforced): read its results in the sign-in logs, then run again with
   --enforce-mfa. A policy someone already enforced is never put back to report-only.
2. One role-assignable security group per privileged role that docs/security.md makes eligible,
   never permanent ("<prefix>-pim-rg-owner", "-rg-contributor", "-kv-secrets-officer",
   "-cosmos-data-contributor"). infra/modules/operator-access.bicep grants each group its role;
   the script prints the groups' object ids for the privilegedAccessGroups parameter.
3. Privileged Identity Management for Groups: every user in the operators' group (transitively)
   is an *eligible* member of each of those groups for a year (renewed when less than 14 days are
   left, when PIM allows extending); eligibilities of people who left the operators' group are
   removed. Activation lasts at most 4 hours and requires MFA and a justification (the group's PIM
   policy rules).

The roles themselves are Azure roles (Owner, Contributor, Key Vault Secrets Officer) and a Cosmos DB
data-plane role, which PIM cannot make eligible directly in one place: PIM for Azure resources does
not cover Cosmos DB's own role assignments. PIM for Groups does, for all four, through one API.

Permissions. Before any call the script reads the permissions its access token carries (the `scp`
claim for a signed-in administrator, `roles` for an app) and refuses to run without them:
--what-if needs the read permissions, a real run the write permissions as well (REQUIRED below).
The signed-in administrator also needs the Entra roles Conditional Access Administrator and
Privileged Role Administrator (role-assignable groups and their PIM settings), activated in PIM.

    python infra/identity/setup_access.py --prefix acmefulfil --operators-group <object id> \\
        --exclude-user <break-glass object id> --exclude-user <...> --what-if

Sign-in (--auth): "browser" (default) and "device-code" sign in as the administrator with the
client id of Microsoft's "Microsoft Graph Command Line Tools" public client, asking for exactly the
permissions below; "cli" uses the Azure CLI's token, whose Graph permissions usually do not
include Conditional Access, so the script will most likely refuse it.

Why Graph's REST API and not the Microsoft Graph SDK for Python (msgraph-sdk): the SDK and the
Kiota packages it pulls in (microsoft-kiota-*, std-uritemplate, and their own httpx/OpenTelemetry
pins) would be a large addition to the hash-pinned development lock for one administrator script
of a dozen calls, and its async client adds nothing here. azure-identity (already in the
locks) signs in; requests (already installed with azure-core) sends the calls. The calls are
the documented v1.0 endpoints, one function each, so moving to the SDK later is mechanical.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TextIO
from urllib.parse import quote, urlsplit

import requests

GRAPH = "https://graph.microsoft.com"
# "Microsoft Graph Command Line Tools", Microsoft's public client (the one Connect-MgGraph uses).
GRAPH_CLI_TOOLS_CLIENT_ID = "14d82eec-204b-4c2f-b7e8-296a70dab67e"
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
TIMEOUT_S = 30

REPORT_ONLY = "enabledForReportingButNotEnforced"
ENABLED = "enabled"
ACTIVATION_MAX = "PT4H"
ACTIVATION_REQUIRES = ("MultiFactorAuthentication", "Justification")
ELIGIBLE_FOR = timedelta(days=365)
RENEW_WITHIN = timedelta(days=14)  # PIM offers "extend" in the last 14 days

# What each step needs, as a permission and the broader ones that include it.
READ: dict[str, set[str]] = {
    "Policy.Read.All": {"Policy.Read.All", "Policy.ReadWrite.ConditionalAccess"},
    "GroupMember.Read.All": {
        "GroupMember.Read.All",
        "Group.Read.All",
        "Group.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    },
    "PrivilegedEligibilitySchedule.Read.AzureADGroup": {
        "PrivilegedEligibilitySchedule.Read.AzureADGroup",
        "PrivilegedEligibilitySchedule.ReadWrite.AzureADGroup",
        "PrivilegedAccess.Read.AzureADGroup",
        "PrivilegedAccess.ReadWrite.AzureADGroup",
    },
    "RoleManagementPolicy.Read.AzureADGroup": {
        "RoleManagementPolicy.Read.AzureADGroup",
        "RoleManagementPolicy.ReadWrite.AzureADGroup",
    },
}
WRITE: dict[str, set[str]] = {
    "Policy.ReadWrite.ConditionalAccess": {"Policy.ReadWrite.ConditionalAccess"},
    "Group.Create": {"Group.Create", "Group.ReadWrite.All", "Directory.ReadWrite.All"},
    # Creating a role-assignable group needs this as well as Group.Create.
    "RoleManagement.ReadWrite.Directory": {"RoleManagement.ReadWrite.Directory"},
    "PrivilegedEligibilitySchedule.ReadWrite.AzureADGroup": {
        "PrivilegedEligibilitySchedule.ReadWrite.AzureADGroup",
        "PrivilegedAccess.ReadWrite.AzureADGroup",
    },
    "RoleManagementPolicy.ReadWrite.AzureADGroup": {"RoleManagementPolicy.ReadWrite.AzureADGroup"},
}
REQUIRED = {**READ, **WRITE}


@dataclass(frozen=True)
class PrivilegedRole:
    key: str  # infra/modules/operator-access.bicep privilegedAccessGroups key
    slug: str
    grants: str


ROLES = (
    PrivilegedRole("resourceGroupOwner", "rg-owner", "Owner on the fulfilment resource group"),
    PrivilegedRole(
        "resourceGroupContributor", "rg-contributor", "Contributor on the fulfilment resource group"
    ),
    PrivilegedRole("keyVaultSecretsOfficer", "kv-secrets-officer", "Key Vault Secrets Officer on the vault"),
    PrivilegedRole(
        "cosmosDataContributor",
        "cosmos-data-contributor",
        "Cosmos DB Built-in Data Contributor on the fulfilment database",
    ),
)


class Refused(Exception):
    """The script will not run: missing permissions or a state it must not change."""


class GraphError(Exception):
    def __init__(self, status: int, method: str, path: str, body: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {body[:500]}")
        self.status = status


def token_permissions(token: str) -> set[str]:
    """The delegated (`scp`) and application (`roles`) permissions an access token carries. The
    token is only read, not verified: Graph verifies it; this is a pre-flight check."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError) as exc:
        raise Refused("the access token is not a JWT; cannot read its permissions") from exc
    scopes = set(str(claims.get("scp", "")).split())
    roles = {str(r) for r in claims.get("roles", [])}
    return scopes | roles


def missing_permissions(granted: set[str], needed: Mapping[str, set[str]]) -> list[str]:
    return sorted(name for name, satisfied_by in needed.items() if not granted & satisfied_by)


def check_endpoint(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK):
        return url.rstrip("/")
    raise Refused(f"Graph endpoint must be https (or http on loopback for tests): {url}")


class Graph:
    """Microsoft Graph v1.0 over HTTPS with a bearer token; raises GraphError on any non-2xx."""

    def __init__(self, endpoint: str, token: str, session: requests.Session | None = None) -> None:
        self.base = check_endpoint(endpoint) + "/v1.0"
        self._host = urlsplit(self.base).netloc
        self._session = session or requests.Session()
        self._session.headers.update({"Authorization": f"Bearer {token}", "Content-Type": "application/json"})

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        url = path if path.startswith(("http://", "https://")) else self.base + path
        if urlsplit(url).netloc != self._host:
            raise Refused(f"refusing to follow a link off the Graph endpoint: {url}")
        response = self._session.request(method, url, json=body, timeout=TIMEOUT_S)
        if response.status_code >= 300:
            raise GraphError(response.status_code, method, path, response.text)
        return response.json() if response.content else None

    def get(self, path: str) -> Any:
        return self._call("GET", path)

    def get_all(self, path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        next_link: str | None = path
        while next_link:
            page = self._call("GET", next_link)
            items.extend(page.get("value", []))
            next_link = page.get("@odata.nextLink")
        return items

    def post(self, path: str, body: Mapping[str, Any]) -> Any:
        return self._call("POST", path, body)

    def patch(self, path: str, body: Mapping[str, Any]) -> Any:
        return self._call("PATCH", path, body)


def _filter(expression: str) -> str:
    """A $filter query option, URL-encoded."""
    return "$filter=" + quote(expression, safe="")


def _odata_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass
class Settings:
    prefix: str
    operators_group: str
    excluded_users: list[str]
    enforce_mfa: bool = False
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def policy_name(self) -> str:
        return f"{self.prefix}: require MFA for fulfilment operators"

    def group_nickname(self, role: PrivilegedRole) -> str:
        return f"{self.prefix}-pim-{role.slug}"


@dataclass
class Reconciler:
    """Compares the tenant with Settings and, unless what_if, changes what differs. Every change
    (made or, with what_if, intended) is written to `out` and kept in `changes`."""

    graph: Graph
    settings: Settings
    what_if: bool
    out: TextIO
    changes: list[str] = field(default_factory=list)
    group_ids: dict[str, str] = field(default_factory=dict)

    def _change(self, description: str, act: Callable[[], Any]) -> Any:
        self.changes.append(description)
        self.out.write(("would " if self.what_if else "") + description + "\n")
        return None if self.what_if else act()

    def _note(self, text: str) -> None:
        self.out.write(f"  {text}\n")

    # --- Conditional Access ------------------------------------------------------------------

    def desired_policy(self) -> dict[str, Any]:
        s = self.settings
        return {
            "displayName": s.policy_name,
            "conditions": {
                "users": {"includeGroups": [s.operators_group], "excludeUsers": sorted(s.excluded_users)},
                "applications": {"includeApplications": ["All"]},
                "clientAppTypes": ["all"],
            },
            "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
        }

    def conditional_access(self) -> None:
        want = self.desired_policy()
        name = want["displayName"]
        found = [
            p
            for p in self.graph.get_all("/identity/conditionalAccess/policies")
            if p.get("displayName") == name
        ]
        if len(found) > 1:
            raise Refused(
                f"{len(found)} Conditional Access policies are named {name!r}; keep one and run again"
            )
        if not found:
            state = ENABLED if self.settings.enforce_mfa else REPORT_ONLY
            self._change(
                f"create Conditional Access policy {name!r} ({state}): MFA for group "
                f"{self.settings.operators_group}, excluding "
                f"{len(self.settings.excluded_users)} break-glass account(s)",
                lambda: self.graph.post("/identity/conditionalAccess/policies", {**want, "state": state}),
            )
            return
        policy = found[0]
        path = f"/identity/conditionalAccess/policies/{policy['id']}"
        if not _policy_matches(policy, want):
            self._change(
                f"update Conditional Access policy {name!r}: users, applications and grant controls",
                lambda: self.graph.patch(path, {k: want[k] for k in ("conditions", "grantControls")}),
            )
        if self.settings.enforce_mfa and policy.get("state") != ENABLED:
            self._change(
                f"enforce Conditional Access policy {name!r} (was {policy.get('state')})",
                lambda: self.graph.patch(path, {"state": ENABLED}),
            )
        elif not self.settings.enforce_mfa and policy.get("state") == ENABLED:
            self._note(f"{name!r} is already enforced; left enforced")

    # --- Privileged access groups ------------------------------------------------------------

    def groups(self) -> None:
        for role in ROLES:
            nickname = self.settings.group_nickname(role)
            found = self.graph.get_all(
                f"/groups?{_filter(f'mailNickname eq {_odata_string(nickname)}')}"
                "&$select=id,displayName,isAssignableToRole"
            )
            if len(found) > 1:
                raise Refused(f"{len(found)} groups have the mail nickname {nickname!r}")
            if found:
                group = found[0]
                if not group.get("isAssignableToRole"):
                    raise Refused(
                        f"group {nickname!r} exists but is not role-assignable; only a role-assignable group "
                        "keeps its membership out of reach of group owners and Groups Administrators. "
                        "Delete or rename it and run again."
                    )
                self.group_ids[role.key] = group["id"]
                continue
            body = {
                "displayName": nickname,
                "description": (
                    f"PIM for Groups: just-in-time {role.grants} (infra/modules/operator-access.bicep)."
                ),
                "mailNickname": nickname,
                "mailEnabled": False,
                "securityEnabled": True,
                "isAssignableToRole": True,
            }
            created = self._change(
                f"create role-assignable group {nickname!r} ({role.grants})",
                partial(self.graph.post, "/groups", body),
            )
            if created is not None:
                self.group_ids[role.key] = created["id"]

    # --- PIM for Groups: eligibility and activation rules -------------------------------------

    def operators(self) -> dict[str, str]:
        users = self.graph.get_all(
            f"/groups/{self.settings.operators_group}/transitiveMembers/microsoft.graph.user"
            "?$select=id,userPrincipalName"
        )
        return {u["id"]: u.get("userPrincipalName") or u["id"] for u in users}

    def eligibility(self, operators: Mapping[str, str]) -> None:
        now = self.settings.now
        for role in ROLES:
            nickname = self.settings.group_nickname(role)
            group_id = self.group_ids.get(role.key)
            if group_id is None:  # --what-if, group not created yet
                for user in sorted(operators.values()):
                    self.changes.append(f"make {user} eligible for {nickname!r}")
                    self.out.write(f"would make {user} eligible member of {nickname!r} for 365 days\n")
                continue
            schedules = self.graph.get_all(
                "/identityGovernance/privilegedAccess/group/eligibilitySchedules?"
                + _filter(f"groupId eq {_odata_string(group_id)}")
            )
            current = {s["principalId"]: s for s in schedules if s.get("accessId") == "member"}
            for user_id, user in sorted(operators.items(), key=lambda kv: kv[1]):
                schedule = current.get(user_id)
                if schedule is None:
                    self._change(
                        f"make {user} eligible member of {nickname!r} for 365 days",
                        partial(self._request_eligibility, group_id, user_id, "adminAssign"),
                    )
                elif (end := _end_of(schedule)) is not None and end - now < RENEW_WITHIN:
                    self._change(
                        f"renew {user}'s eligibility for {nickname!r} (ends {end:%Y-%m-%d})",
                        partial(self._request_eligibility, group_id, user_id, "adminExtend"),
                    )
            for principal_id in sorted(set(current) - set(operators)):
                self._change(
                    f"remove eligibility of {principal_id} (no longer an operator) from {nickname!r}",
                    partial(self._request_eligibility, group_id, principal_id, "adminRemove"),
                )

    def _request_eligibility(self, group_id: str, principal_id: str, action: str) -> Any:
        body: dict[str, Any] = {
            "accessId": "member",
            "principalId": principal_id,
            "groupId": group_id,
            "action": action,
            "justification": "infra/identity/setup_access.py: fulfilment operators, docs/security.md",
        }
        if action != "adminRemove":
            body["scheduleInfo"] = {
                "startDateTime": self.settings.now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "expiration": {
                    "type": "afterDateTime",
                    "endDateTime": _iso(self.settings.now + ELIGIBLE_FOR),
                },
            }
        return self.graph.post("/identityGovernance/privilegedAccess/group/eligibilityScheduleRequests", body)

    def activation_rules(self) -> None:
        for role in ROLES:
            nickname = self.settings.group_nickname(role)
            group_id = self.group_ids.get(role.key)
            if group_id is None:
                self.changes.append(f"set activation rules of {nickname!r}")
                self.out.write(
                    f"would set activation of {nickname!r}: at most {ACTIVATION_MAX}, "
                    f"requiring {' and '.join(ACTIVATION_REQUIRES)}\n"
                )
                continue
            assignments = self.graph.get_all(
                "/policies/roleManagementPolicyAssignments?"
                + _filter(
                    f"scopeId eq {_odata_string(group_id)} and scopeType eq 'Group'"
                    " and roleDefinitionId eq 'member'"
                )
            )
            if not assignments:
                # PIM governs a group from its first eligibility on; a what-if run, or a run that
                # has just made the first one, may not see the policy yet.
                self._note(f"{nickname!r} has no PIM policy yet; run again to set its activation rules")
                continue
            rules = f"/policies/roleManagementPolicies/{assignments[0]['policyId']}/rules"
            expiration = self.graph.get(f"{rules}/Expiration_EndUser_Assignment")
            if expiration.get("maximumDuration") != ACTIVATION_MAX or not expiration.get(
                "isExpirationRequired"
            ):
                body = {
                    **_rule_base(expiration),
                    "isExpirationRequired": True,
                    "maximumDuration": ACTIVATION_MAX,
                }
                self._change(
                    f"limit activation of {nickname!r} to {ACTIVATION_MAX} "
                    f"(was {expiration.get('maximumDuration')})",
                    partial(self.graph.patch, f"{rules}/Expiration_EndUser_Assignment", body),
                )
            enablement = self.graph.get(f"{rules}/Enablement_EndUser_Assignment")
            enabled = set(enablement.get("enabledRules") or [])
            if not set(ACTIVATION_REQUIRES) <= enabled:
                body = {**_rule_base(enablement), "enabledRules": sorted(enabled | set(ACTIVATION_REQUIRES))}
                self._change(
                    f"require {' and '.join(ACTIVATION_REQUIRES)} to activate {nickname!r}",
                    partial(self.graph.patch, f"{rules}/Enablement_EndUser_Assignment", body),
                )

    def run(self) -> None:
        self.conditional_access()
        self.groups()
        operators = self.operators()
        if not operators:
            self._note(f"group {self.settings.operators_group} has no users: nobody is made eligible")
        self.eligibility(operators)
        self.activation_rules()


def _policy_matches(policy: Mapping[str, Any], want: Mapping[str, Any]) -> bool:
    conditions = policy.get("conditions") or {}
    users = conditions.get("users") or {}
    grant = policy.get("grantControls") or {}
    want_users = want["conditions"]["users"]
    return (
        sorted(users.get("includeGroups") or []) == want_users["includeGroups"]
        and sorted(users.get("excludeUsers") or []) == want_users["excludeUsers"]
        and (conditions.get("applications") or {}).get("includeApplications") == ["All"]
        and conditions.get("clientAppTypes") == ["all"]
        and grant.get("operator") == "OR"
        and sorted(grant.get("builtInControls") or []) == ["mfa"]
    )


def _rule_base(rule: Mapping[str, Any]) -> dict[str, Any]:
    return {k: rule[k] for k in ("@odata.type", "id", "target") if k in rule}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _end_of(schedule: Mapping[str, Any]) -> datetime | None:
    expiration = (schedule.get("scheduleInfo") or {}).get("expiration") or {}
    end = expiration.get("endDateTime")
    if not end or expiration.get("type") == "noExpiration":
        return None
    return datetime.fromisoformat(str(end).replace("Z", "+00:00"))


def run(graph: Graph, token: str, settings: Settings, *, what_if: bool, out: TextIO) -> Reconciler:
    """Checks the token's permissions, then reconciles. Raises Refused before any Graph call when
    a permission is missing."""
    missing = missing_permissions(token_permissions(token), READ if what_if else REQUIRED)
    if missing:
        raise Refused(
            "the access token lacks the Microsoft Graph permission(s) "
            + ", ".join(missing)
            + ("" if what_if else " (a real run needs the write permissions too; --what-if only reads)")
        )
    reconciler = Reconciler(graph, settings, what_if, out)
    try:
        reconciler.run()
    except GraphError as exc:
        if exc.status in (401, 403):
            raise Refused(
                f"Microsoft Graph refused a call ({exc}). The signed-in account needs the Entra roles "
                "Conditional Access Administrator and Privileged Role Administrator (activated)."
            ) from exc
        raise
    return reconciler


def _token(auth: str, tenant_id: str | None, endpoint: str) -> str:
    from azure.identity import AzureCliCredential, DeviceCodeCredential, InteractiveBrowserCredential

    if auth == "cli":
        credential: Any = AzureCliCredential(tenant_id=tenant_id or "")
        scopes = [f"{endpoint}/.default"]
    else:
        kind = InteractiveBrowserCredential if auth == "browser" else DeviceCodeCredential
        credential = kind(client_id=GRAPH_CLI_TOOLS_CLIENT_ID, tenant_id=tenant_id or "organizations")
        scopes = [f"{endpoint}/{name}" for name in REQUIRED]
    return str(credential.get_token(*scopes).token)


def _guid(value: str) -> str:
    return str(uuid.UUID(value))


def parse_args(argv: Iterable[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--prefix", required=True, help="the Bicep prefix parameter (names the groups and the policy)"
    )
    parser.add_argument(
        "--operators-group", required=True, type=_guid, help="object id of the operators' group"
    )
    parser.add_argument(
        "--exclude-user",
        action="append",
        default=[],
        type=_guid,
        help="object id of a break-glass account, excluded from the policy (repeat for each)",
    )
    parser.add_argument("--enforce-mfa", action="store_true", help="switch the policy from report-only to on")
    parser.add_argument("--what-if", action="store_true", help="print the changes; change nothing")
    parser.add_argument("--auth", choices=("browser", "device-code", "cli"), default="browser")
    parser.add_argument("--tenant-id", default=None)
    parser.add_argument("--graph-endpoint", default=GRAPH, help=argparse.SUPPRESS)
    return parser.parse_args(list(argv) if argv is not None else None)


def main(
    argv: Iterable[str] | None = None,
    out: TextIO = sys.stdout,
    get_token: Callable[[str, str | None, str], str] = _token,
) -> int:
    args = parse_args(argv)
    settings = Settings(args.prefix, args.operators_group, args.exclude_user, enforce_mfa=args.enforce_mfa)
    try:
        endpoint = check_endpoint(args.graph_endpoint)
        token = get_token(args.auth, args.tenant_id, endpoint)
        reconciler = run(Graph(endpoint, token), token, settings, what_if=args.what_if, out=out)
    except Refused as exc:
        out.write(f"refused: {exc}\n")
        return 2
    if not reconciler.changes:
        out.write("no changes: the tenant already matches\n")
    ids = {role.key: reconciler.group_ids[role.key] for role in ROLES if role.key in reconciler.group_ids}
    if ids:
        out.write(
            "privilegedAccessGroups (infra/main.bicep parameter): " + json.dumps(ids, sort_keys=True) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
