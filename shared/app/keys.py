"""The app's long-lived keys, made once at deployment and never by the app.

Two Key Vault secrets hold keys that must never change: the order-reference key
(`shared.orders.reference`: a second key would give one order two references, so it could be
shipped twice) and the invoice archive's key (`VaultKeySealer`: a second key would leave the
archived invoices unreadable). `python -m ops init-keys`, run once by the deployment steps
(docs/deploy.md), makes each one that is absent and leaves any that exists alone.

The app only checks: `require_keys` at start refuses to run without them (fail closed), and
the readers it builds (`app_key_readers`) never make a missing key either. Key Vault has no
create-if-absent, so `init_keys` is a read then a write: it is safe to run again, not to run
twice at the same moment; deployments run it from one step.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping

from shared.crypto.key_vault import SecretStore
from shared.crypto.secrets import VaultKeySealer
from shared.errors import SettingsError
from shared.orders.reference import KEY_BYTES, ORDER_REF_SECRET, OrderReferencer

ARCHIVE_KEY_SECRET = "invoice-archive-key"  # noqa: S105 - a secret name, not a value  # pragma: allowlist secret
#: Every key init-keys makes; the app needs each one.
APP_KEYS = (ORDER_REF_SECRET, ARCHIVE_KEY_SECRET)
ARCHIVE_KEY_BYTES = 32  # AES-256-GCM


def init_keys(store: SecretStore) -> Mapping[str, str]:
    """Make each absent key; never overwrite one. Returns name -> "created" or "exists"
    (names only, never a value)."""
    sizes = {ORDER_REF_SECRET: KEY_BYTES, ARCHIVE_KEY_SECRET: ARCHIVE_KEY_BYTES}
    outcome: dict[str, str] = {}
    for name in APP_KEYS:
        if store.get(name) is not None:
            outcome[name] = "exists"
            continue
        store.set(name, base64.b64encode(secrets.token_bytes(sizes[name])).decode("ascii"))
        outcome[name] = "created"
    return outcome


def missing_keys(store: SecretStore) -> list[str]:
    return [name for name in APP_KEYS if store.get(name) is None]


def require_keys(store: SecretStore) -> None:
    """Refuse to start without the keys, naming them (never a value)."""
    missing = missing_keys(store)
    if missing:
        raise SettingsError(
            f"Key Vault secret {', '.join(missing)} is missing: run python -m ops init-keys once"
        )


def app_key_readers(store: SecretStore) -> tuple[OrderReferencer, VaultKeySealer]:
    """The app's readers of the keys, after checking they exist; neither ever makes a key."""
    require_keys(store)
    return (
        OrderReferencer(store, create_missing=False),
        VaultKeySealer(store, ARCHIVE_KEY_SECRET, create_missing=False),
    )
