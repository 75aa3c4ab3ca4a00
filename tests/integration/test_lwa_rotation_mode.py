"""The review's case over the wire (issue 20): the app may only read the LWA secret (Secrets
User, `lwaSecretWriter=false`). Before, Amazon's expiry warning made the app rotate, and the new
secret could not be stored: lost. Now, in manual mode the warning reaches a person and Amazon is
never asked; in auto mode without the write role, the app finds out before asking. Either way
Amazon's secret and the one in Key Vault stay the same, and SP-API calls keep working."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sp_api.auth import access_token_client

from local.keyvault_server import KeyVaultServer, start
from local.memory_stores import MemoryDocumentStore
from local.sample_orders import generate
from local.spapi_application import ApplicationStandIn
from local.spapi_server import SimClock, SpApiStandIn
from shared.app.composition import lwa_rotation
from shared.crypto.key_vault import AzureSecretStore
from shared.crypto.secrets import SecretValues
from shared.ingestion.lwa_rotation import AUDIT_REF, SecretNotWritable
from shared.ingestion.spapi_gateway import SpApiGateway
from shared.settings import Settings, load_settings
from tests.fakes import audit_trail

pytestmark = pytest.mark.integration
START = datetime(2026, 11, 1, tzinfo=UTC)
DE = "A1PA6795UKMFR9"
CLIENT_ID = "amzn1.application-oa2-client.rotation"
OLD_SECRET = "amzn1.oa2-cs.v1.old"  # pragma: allowlist secret


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[tuple[KeyVaultServer, AzureSecretStore]]:
    """The Key Vault stand-in through the SDK, the LWA secret readable but not writable."""
    server = start(tmp_path / "kv")
    store = AzureSecretStore.connect(
        server.url,
        server.credential(),
        verify_challenge_resource=False,
        connection_verify=str(server.ca_path),
    )
    store.set("lwa-client-id", CLIENT_ID)
    store.set("lwa-client-secret", OLD_SECRET)
    store.set("rt-s1", "Atzr|seller")
    server.read_only("lwa-client-secret")
    yield server, store
    server.stop()


@pytest.fixture
def amazon(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SpApiStandIn, ApplicationStandIn, list[str]]]:
    orders = generate(10, seed=5, start=START - timedelta(days=5), marketplaces=(DE,), afn_share=0.0)
    spapi = SpApiStandIn(orders, clock=SimClock(START), lwa_clients={CLIENT_ID: OLD_SECRET})
    queue: list[str] = []  # the application's queue registered in the Developer Console
    application = ApplicationStandIn(spapi, CLIENT_ID, OLD_SECRET, deliver=queue.append)
    spapi.start(handlers=[application])
    monkeypatch.setenv("SSL_CERT_FILE", spapi.ca_file)
    access_token_client.cache.clear()
    access_token_client.grantless_cache.clear()
    yield spapi, application, queue
    spapi.stop()
    access_token_client.cache.clear()
    access_token_client.grantless_cache.clear()


def _settings(spapi: SpApiStandIn, mode: str) -> Settings:
    return load_settings(
        {
            "STORAGE": "UseDevelopmentStorage=true",
            "COSMOS_ENDPOINT": "https://127.0.0.1:1",
            "KEY_VAULT_URL": "https://127.0.0.1:1",
            "SELLERS": json.dumps(
                # pragma: allowlist nextline secret
                [{"sellerId": "S1", "marketplaceIds": [DE], "refreshTokenSecret": "rt-s1"}]
            ),
            "SPAPI_ENDPOINT": spapi.url,
            "LWA_ENDPOINT": spapi.url + "/auth/o2/token",
            "LWA_ROTATION": mode,
        }
    )


def _orders(settings: Settings, values: SecretValues) -> int:
    gateway = SpApiGateway(
        settings,
        lambda _seller: {
            "lwa_app_id": values("lwa-client-id"),
            "lwa_client_secret": values("lwa-client-secret"),
            "refresh_token": values("rt-s1"),
        },
    )
    return len(gateway.search_orders("S1", [DE], last_updated_after=START - timedelta(days=30)).orders)


@pytest.mark.parametrize("mode", ["manual", "auto"])
def test_without_the_write_role_amazon_is_never_asked_and_no_secret_is_lost(
    mode: str,
    vault: tuple[KeyVaultServer, AzureSecretStore],
    amazon: tuple[SpApiStandIn, ApplicationStandIn, list[str]],
) -> None:
    server, store = vault
    spapi, application, queue = amazon
    settings = _settings(spapi, mode)
    values = SecretValues(store)
    audit_store = MemoryDocumentStore()
    rotation = lwa_rotation(settings, store, values, audit_trail(audit_store))
    found = _orders(settings, values)
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
    assert _orders(settings, values) == found
