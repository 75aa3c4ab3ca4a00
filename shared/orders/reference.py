"""Pseudonymous order references: what logs, telemetry, queue messages and document ids carry.

A reference is the keyed HMAC-SHA256 of the Amazon order id, truncated to 132 bits and written
in base64url (22 characters). Without the key nobody can link a reference to an order id, even
by trying every possible id (their space is small); with it an operator turns an order id into
its reference (the ops command) to find the trail in Log Analytics.

The key is the Key Vault secret `order-ref-key`, made once by `python -m ops init-keys` at
deployment (`shared.app.keys`). The app never makes it: it refuses to start without it
(`create_missing=False`), because two instances making it at once could make two keys and give
one order two references. Documents are stored by reference, so the key must never be rotated:
a new key would orphan every stored order.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading

from shared.crypto.key_vault import SecretStore
from shared.errors import AppError
from shared.orders.messages import REF_LENGTH

# pragma: allowlist nextline secret
ORDER_REF_SECRET = "order-ref-key"  # noqa: S105 - the secret's name, not its value
# REF_LENGTH (22 base64url characters: 132 bits, collisions negligible for any seller) lives
# with the messages that carry references, which validate their exact shape.
__all__ = ["ORDER_REF_SECRET", "REF_LENGTH", "OrderReferencer", "ReferenceKeyCorrupt"]
KEY_BYTES = 32
_DOMAIN = b"mfn-order-ref:v1:"


class ReferenceKeyCorrupt(AppError):
    code = "order_ref_key_corrupt"


class ReferenceKeyMissing(AppError):
    """The key has not been made: run `python -m ops init-keys` (the app never makes it)."""

    code = "order_ref_key_missing"


class OrderReferencer:
    """Implements `shared.orders.record.ReferenceMaker`. `create_missing=False` (the app, the
    operators' CLI) fails closed without the key; True is for tests and the local tools."""

    def __init__(
        self, store: SecretStore, *, secret_name: str = ORDER_REF_SECRET, create_missing: bool = True
    ) -> None:
        self._store = store
        self._secret_name = secret_name
        self._create_missing = create_missing
        self._key: bytes | None = None
        self._lock = threading.Lock()

    def ref(self, order_id: str) -> str:
        if not order_id:
            raise ValueError("order id is empty")
        digest = hmac.new(self._loaded_key(), _DOMAIN + order_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode("ascii")[:REF_LENGTH]

    def ensure_key(self) -> None:
        """Create the key now (deployment, ops) rather than racing at the first order."""
        self._loaded_key()

    def _loaded_key(self) -> bytes:
        # Held for the life of the instance: the key never changes (see the module note).
        if self._key is None:
            with self._lock:
                if self._key is None:
                    self._key = self._fetch_or_create()
        return self._key

    def _fetch_or_create(self) -> bytes:
        secret = self._store.get(self._secret_name)
        if secret is None and not self._create_missing:
            raise ReferenceKeyMissing(f"Key Vault secret {self._secret_name} is missing: run ops init-keys")
        if secret is None:
            value = base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")
            self._store.set(self._secret_name, value)
            # Re-read rather than use our own value: two instances starting at the same moment
            # then agree unless both read before either wrote. `ensure_key()` at deployment
            # (one caller) removes even that window.
            secret = self._store.get(self._secret_name)
            if secret is None:
                raise ReferenceKeyCorrupt("order reference key vanished after creation")
        try:
            key = base64.b64decode(secret.value, validate=True)
        except (binascii.Error, ValueError):
            raise ReferenceKeyCorrupt("order reference key is not base64") from None
        if len(key) < 16:
            raise ReferenceKeyCorrupt("order reference key is too short")
        return key
