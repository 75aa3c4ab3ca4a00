"""Least privilege in Key Vault (issue 20): the app identity writes only where it must.

The key epochs' KEKs, which the app makes and destroys, live in a vault of their own (`-kek`),
where the identity is Secrets Officer; in the credentials vault it only reads (Secrets User),
except one custom role scoped to the LWA client secret, the one secret it writes: read it and
set a new version, nothing else (no delete, backup, restore or purge). The app reaches the
two vaults through KEY_VAULT_URL and KEY_EPOCH_VAULT_URL."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken

from shared.app import composition
from shared.app.composition import LocalOverrides, connect
from shared.settings import load_settings
from tests.bicep import parse_bicep
from tests.builders import BASE_SETTINGS

INFRA = Path(__file__).resolve().parents[2] / "infra"
OFFICER = "keyVaultSecretsOfficer"
USER = "keyVaultSecretsUser"


@cache
def _parse(path: str) -> dict[str, Any]:
    return parse_bicep(INFRA / path)


def _vault_grants() -> dict[str, tuple[str, str, str | None]]:
    """The identity's Key Vault role assignments: name -> (scope, role, condition); the role is
    a built-in role's key in `roles`, or the name of a role definition of rbac.bicep."""
    grants = {}
    for name, resource in _parse("modules/rbac.bicep")["resources"].items():
        if resource["type"] != "Microsoft.Authorization/roleAssignments":
            continue
        outer = resource["config"]
        config = outer.get("config", outer)
        if config["scope"] not in ("vault", "epochVault", "lwaClientSecret"):
            continue
        role = config["properties"]["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
        operands = role["operator"]["operands"] if isinstance(role, dict) else {}
        custom = operands.get("operand_2") == "name"  # <definition>.name: a role defined here
        key = operands["operand_1"] if custom else operands.get("operand_2", role)
        grants[name] = (config["scope"], key, outer.get("condition"))
    return grants


def test_the_identity_writes_keks_in_their_own_vault_and_only_reads_the_credentials() -> None:
    assert sorted(_vault_grants().values(), key=str) == sorted(
        [
            ("epochVault", OFFICER, None),
            ("vault", USER, None),
            ("lwaClientSecret", "lwaSecretWriterDefinition", "lwaSecretWriter"),
        ],
        key=str,
    )


def test_the_writer_role_is_scoped_to_the_lwa_client_secret_alone() -> None:
    resources = _parse("modules/rbac.bicep")["resources"]
    secret = resources["lwaClientSecret"]
    assert secret["type"] == "Microsoft.KeyVault/vaults/secrets" and secret["existing"] is True
    assert secret["config"] == {"parent": "vault", "name": "lwaClientSecretSecretName"}
    params = _parse("main.bicep")["modules"]["rbac"]["config"]["params"]
    assert params["lwaClientSecretSecretName"] == "lwaClientSecretSecretName"  # pragma: allowlist secret
    assert params["lwaSecretWriter"] == "lwaSecretWriter"  # pragma: allowlist secret


def test_the_writer_role_may_only_read_the_secret_and_set_a_new_version() -> None:
    definition = _parse("modules/rbac.bicep")["resources"]["lwaSecretWriterDefinition"]
    assert definition["type"] == "Microsoft.Authorization/roleDefinitions"
    assert definition["config"]["condition"] == "lwaSecretWriter"
    properties = definition["config"]["config"]["properties"]
    assert properties["type"] == "CustomRole"
    [permissions] = properties["permissions"]
    assert permissions["actions"] == [] and permissions["notDataActions"] == []
    assert sorted(permissions["dataActions"]) == [
        "Microsoft.KeyVault/vaults/secrets/getSecret/action",
        "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
        "Microsoft.KeyVault/vaults/secrets/setSecret/action",  # pragma: allowlist secret
    ]


def test_main_deploys_the_two_vaults_and_gives_the_app_both_urls() -> None:
    main = _parse("main.bicep")["modules"]
    assert (
        main["keyEpochVault"]["detail"]["path"]
        == main["keyVault"]["detail"]["path"]
        == "modules/keyvault.bicep"
    )
    assert "name" not in main["keyVault"]["config"]["params"]  # the default, <prefix>-kv
    assert main["keyEpochVault"]["config"]["params"]["name"] != main["keyVault"]["config"]["params"].get(
        "name"
    )
    rbac = main["rbac"]["config"]["params"]
    assert rbac["keyVaultName"] != rbac["keyEpochVaultName"]
    app = _parse("modules/functionapp.bicep")["variables"]["platformSettings"]["value"]
    assert app["KEY_VAULT_URL"] == "keyVaultUri" and app["KEY_EPOCH_VAULT_URL"] == "keyEpochVaultUri"


class _Credential:
    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("t", 0)


def _vault_url(store: Any) -> str:
    return str(store._client.vault_url)


def test_the_app_keeps_its_keks_in_the_key_epoch_vault_when_one_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Cosmos answers at construction; this test is about the vaults only.
    monkeypatch.setattr(composition, "CosmosClient", lambda *args, **kwargs: None)
    monkeypatch.setattr(composition, "CosmosDocumentStore", lambda *args: None)
    env = {
        **BASE_SETTINGS,
        "KEY_VAULT_URL": "https://creds.example/",
        "KEY_EPOCH_VAULT_URL": "https://kek.example/",
    }
    clients = connect(load_settings(env), _Credential(), LocalOverrides())  # type: ignore[arg-type]
    assert _vault_url(clients.secrets) == "https://creds.example"
    assert _vault_url(clients.epoch_secrets) == "https://kek.example"
    alone = connect(load_settings({**env, "KEY_EPOCH_VAULT_URL": ""}), _Credential(), LocalOverrides())  # type: ignore[arg-type]
    assert alone.epoch_secrets is alone.secrets
