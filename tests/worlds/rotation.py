"""The LWA secret rotation over the wire: the Key Vault stand-in through the SDK, Amazon's
SP-API and Application Management stand-ins, and the settings and credentials the app reads
them with (tests/integration/test_lwa_rotation*.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sp_api.auth import access_token_client

from local.keyvault_server import KeyVaultServer, start
from local.sample_orders import generate
from local.spapi_application import ApplicationStandIn
from local.spapi_server import SimClock, SpApiStandIn
from shared.crypto.key_vault import AzureSecretStore
from shared.crypto.secrets import SecretValues
from shared.ingestion.spapi_gateway import SpApiGateway
from shared.settings import Settings
from tests.builders import amazon_seller_settings

START = datetime(2026, 11, 1, tzinfo=UTC)
DE = "A1PA6795UKMFR9"
CLIENT_ID = "amzn1.application-oa2-client.rotation"
OLD_SECRET = "amzn1.oa2-cs.v1.old"  # pragma: allowlist secret


@contextmanager
def vault_stand_in(folder: Path) -> Iterator[tuple[KeyVaultServer, AzureSecretStore]]:
    """Key Vault's stand-in holding the LWA client id and secret and one seller's token."""
    server = start(folder)
    store = AzureSecretStore.connect(
        server.url,
        server.credential(),
        verify_challenge_resource=False,
        connection_verify=str(server.ca_path),
    )
    store.set("lwa-client-id", CLIENT_ID)
    store.set("lwa-client-secret", OLD_SECRET)
    store.set("rt-s1", "Atzr|seller")
    try:
        yield server, store
    finally:
        server.stop()


@contextmanager
def amazon_stand_in(
    monkeypatch: pytest.MonkeyPatch, orders: int, seed: int
) -> Iterator[tuple[SpApiStandIn, ApplicationStandIn, list[str]]]:
    """SP-API with `orders` German orders and Application Management; the list receives what
    Amazon sends to the application's queue registered in the Developer Console."""
    sample = generate(orders, seed=seed, start=START - timedelta(days=5), marketplaces=(DE,), afn_share=0.0)
    spapi = SpApiStandIn(sample, clock=SimClock(START), lwa_clients={CLIENT_ID: OLD_SECRET})
    queue: list[str] = []
    application = ApplicationStandIn(spapi, CLIENT_ID, OLD_SECRET, deliver=queue.append)
    spapi.start(handlers=[application])
    monkeypatch.setenv("SSL_CERT_FILE", spapi.ca_file)  # httpx trusts the stand-in's CA
    access_token_client.cache.clear()
    access_token_client.grantless_cache.clear()
    try:
        yield spapi, application, queue
    finally:
        spapi.stop()
        access_token_client.cache.clear()
        access_token_client.grantless_cache.clear()


def rotation_settings(spapi: SpApiStandIn, **extra: str) -> Settings:
    return amazon_seller_settings(
        DE, SPAPI_ENDPOINT=spapi.url, LWA_ENDPOINT=spapi.url + "/auth/o2/token", **extra
    )


def seller_credentials(values: SecretValues) -> Callable[[str], dict[str, str]]:
    """The seller's SP-API credentials, read from Key Vault at each call."""

    def credentials(_seller: str) -> dict[str, str]:
        return {
            "lwa_app_id": values("lwa-client-id"),
            "lwa_client_secret": values("lwa-client-secret"),
            "refresh_token": values("rt-s1"),
        }

    return credentials


def orders_found(gateway: SpApiGateway) -> int:
    return len(gateway.search_orders("S1", [DE], last_updated_after=START - timedelta(days=30)).orders)
