"""The review's case over the wire (issue 20): the app may only read the LWA secret (Secrets
User, `lwaSecretWriter=false`). Before, Amazon's expiry warning made the app rotate, and the new
secret could not be stored: lost. Now, in manual mode the warning reaches a person and Amazon is
never asked; in auto mode without the write role, the app finds out before asking. Either way
Amazon's secret and the one in Key Vault stay the same, and SP-API calls keep working."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sp_api.auth import access_token_client

from local.keyvault_server import KeyVaultServer
from local.memory_stores import MemoryDocumentStore
from local.spapi_application import ApplicationStandIn
from local.spapi_server import SpApiStandIn
from shared.app.composition import lwa_rotation
from shared.crypto.key_vault import AzureSecretStore
from shared.crypto.secrets import SecretValues
from shared.ingestion.lwa_rotation import AUDIT_REF, SecretNotWritable
from shared.ingestion.spapi_gateway import SpApiGateway
from tests.fakes import audit_trail
from tests.worlds.rotation import (
    OLD_SECRET,
    amazon_stand_in,
    orders_found,
    rotation_settings,
    seller_credentials,
    vault_stand_in,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[tuple[KeyVaultServer, AzureSecretStore]]:
    """The Key Vault stand-in through the SDK, the LWA secret readable but not writable."""
    with vault_stand_in(tmp_path / "kv") as (server, store):
        server.read_only("lwa-client-secret")
        yield server, store


@pytest.fixture
def amazon(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SpApiStandIn, ApplicationStandIn, list[str]]]:
    with amazon_stand_in(monkeypatch, orders=10, seed=5) as stand_ins:
        yield stand_ins


@pytest.mark.parametrize("mode", ["manual", "auto"])
def test_without_the_write_role_amazon_is_never_asked_and_no_secret_is_lost(
    mode: str,
    vault: tuple[KeyVaultServer, AzureSecretStore],
    amazon: tuple[SpApiStandIn, ApplicationStandIn, list[str]],
) -> None:
    server, store = vault
    spapi, application, queue = amazon
    settings = rotation_settings(spapi, LWA_ROTATION=mode)
    values = SecretValues(store)
    audit_store = MemoryDocumentStore()
    rotation = lwa_rotation(settings, store, values, audit_trail(audit_store))
    found = orders_found(SpApiGateway(settings, seller_credentials(values)))
    before = store.get("lwa-client-secret")

    application.warn_expiry()
    warning = queue.pop(0)
    if mode == "manual":
        outcome = rotation.handle(warning, spapi.now())
        assert (outcome.requested, outcome.manual, outcome.days_left) == (0, 1, 180)
        assert [e.action for e in audit_trail(audit_store).trail(AUDIT_REF)] == ["lwa_rotation_manual"]
    else:
        with pytest.raises(SecretNotWritable) as refused:
            rotation.handle(warning, spapi.now())
        assert refused.value.code == "lwa_secret_not_writable" and not refused.value.transient
        assert ("PUT", "/secrets/lwa-client-secret", True) in server.vault.requests  # type: ignore[union-attr]

    assert application.rotations == 0 and queue == []  # no new secret on its way
    assert application.secret == OLD_SECRET
    after = store.get("lwa-client-secret")
    assert before is not None and after == before
    access_token_client.cache.clear()
    assert orders_found(SpApiGateway(settings, seller_credentials(values))) == found
