"""AzureSecretStore through the real azure-keyvault-secrets SDK, against the local stand-in over
HTTPS with Key Vault's challenge-based authentication."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.keyvault.secrets import SecretClient

from local.keyvault_server import RESOURCE, KeyVaultServer, StaticTokenCredential, start
from shared.crypto.envelope import EnvelopeCipher, EnvelopeShredded
from shared.crypto.key_epochs import KeyEpochs
from shared.crypto.key_vault import AzureSecretStore, Destroyed, SecretStoreDenied
from shared.crypto.pii import Pii
from shared.orders.domain import Address, Buyer
from shared.orders.record import OrderPii
from shared.orders.reference import OrderReferencer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent.parent
NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[KeyVaultServer]:
    running = start(tmp_path / "kv")
    yield running
    running.stop()


def _store(server: KeyVaultServer, credential: StaticTokenCredential | None = None) -> AzureSecretStore:
    return AzureSecretStore.connect(
        server.url,
        credential or server.credential(),
        verify_challenge_resource=False,
        connection_verify=str(server.ca_path),
    )


def test_secret_lifecycle_through_the_sdk(server: KeyVaultServer) -> None:
    credential = server.credential()
    store = _store(server, credential)
    first = store.set("kek-2026-03-02P7D", "Zmlyc3Q=")
    second = store.set("kek-2026-03-02P7D", "c2Vjb25k")
    store.set("order-ref-key", "a2V5")
    assert first.version != second.version
    assert store.get("kek-2026-03-02P7D") == second
    assert store.get("kek-2026-03-02P7D", first.version) == first
    assert store.get("kek-2026-03-02P7D", "0" * 32) is None
    assert store.get("missing") is None
    assert store.names("kek-") == ["kek-2026-03-02P7D"]
    assert store.names() == ["kek-2026-03-02P7D", "order-ref-key"]

    assert store.destroy("kek-2026-03-02P7D") is Destroyed.PURGED
    assert store.get("kek-2026-03-02P7D") is None
    assert store.get("kek-2026-03-02P7D", first.version) is None
    assert store.destroy("kek-2026-03-02P7D") is Destroyed.ABSENT
    assert store.set("kek-2026-03-02P7D", "bmV3").value == "bmV3"  # the name is free again

    # The challenge flow: the first request went without a token and got 401, then the SDK
    # asked the credential for a Key Vault token and retried with it.
    assert server.vault is not None
    assert server.vault.requests[0] == ("PUT", "/secrets/kek-2026-03-02P7D", False)
    assert all(had_token for _, _, had_token in server.vault.requests[1:])
    assert credential.scopes[0] == (f"{RESOURCE}/.default",)


def test_destroy_under_purge_protection_leaves_a_soft_deleted_secret(tmp_path: Path) -> None:
    running = start(tmp_path / "kv", purge_protection=True)
    try:
        store = _store(running)
        store.set("kek-2026-03-02P7D", "Zmlyc3Q=")
        assert store.destroy("kek-2026-03-02P7D") is Destroyed.SOFT_DELETED
        assert store.get("kek-2026-03-02P7D") is None
        assert store.destroy("kek-2026-03-02P7D") is Destroyed.SOFT_DELETED  # still refused, no error
    finally:
        running.stop()


def test_a_wrong_token_is_refused(server: KeyVaultServer) -> None:
    store = _store(server, StaticTokenCredential("not-the-token"))
    with pytest.raises(SecretStoreDenied) as caught:
        store.set("kek-2026-03-02P7D", "c2VjcmV0LXZhbHVl")
    assert "c2VjcmV0LXZhbHVl" not in str(caught.value)


def test_the_sdk_checks_the_challenge_resource_unless_told_not_to(server: KeyVaultServer) -> None:
    """Against Azure the check stays on: a vault host outside *.vault.azure.net gets no token."""
    client = SecretClient(server.url, server.credential(), connection_verify=str(server.ca_path))
    with pytest.raises(ValueError, match="does not match the requested domain"):
        client.get_secret("order-ref-key")


def test_envelopes_and_shredding_against_the_vault(server: KeyVaultServer) -> None:
    store = _store(server)
    clock_now = [NOW]
    epochs = KeyEpochs(store, lambda: clock_now[0])
    cipher = EnvelopeCipher(epochs)
    ref = OrderReferencer(store).ref("303-1234567-7654321")
    pii = OrderPii(
        "303-1234567-7654321",
        Buyer(name=Pii("Zoë")),
        Address(Pii("Zoë"), Pii("Hauptstraße 1"), Pii("Köln"), Pii("50667"), "DE"),
    )
    envelope = cipher.seal(ref, pii, NOW)
    assert EnvelopeCipher(KeyEpochs(store, lambda: NOW)).open(ref, envelope) == pii
    assert sorted(store.names()) == ["kek-2026-03-02P7D", "order-ref-key"]

    later = NOW + timedelta(days=14)
    clock_now[0] = later
    assert epochs.shred_unused(later, lambda _: False) == {"2026-03-02P7D": Destroyed.PURGED}
    with pytest.raises(EnvelopeShredded):
        EnvelopeCipher(KeyEpochs(store, lambda: later)).open(ref, envelope)
    assert OrderReferencer(store).ref("303-1234567-7654321") == ref  # the reference key stays


def test_command_line_prints_url_and_ca(tmp_path: Path) -> None:
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, fixed arguments
        [sys.executable, "-m", "local.keyvault_server", "--port", "0", "--cert-dir", str(tmp_path / "kv")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        info = json.loads(process.stdout.readline())
        store = AzureSecretStore.connect(
            info["url"],
            StaticTokenCredential(info["token"]),
            verify_challenge_resource=False,
            connection_verify=info["ca"],
        )
        store.set("order-ref-key", "a2V5")
        assert store.names() == ["order-ref-key"]
    finally:
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(timeout=10) == 0
