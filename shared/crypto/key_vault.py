"""The one boundary to Key Vault secrets: a small `SecretStore` and its implementation.

The app keeps only secrets in Key Vault: the key-encryption keys of the key epochs
(`shared.crypto.key_epochs`), the order-reference key (`shared.orders.reference`) and the seller
credentials. `AzureSecretStore` wraps `azure.keyvault.secrets.SecretClient` (an in-memory
store for tests and benchmarks is in local/memory_stores.py). Secret values never appear in a
repr, a log record or an exception text: the errors name the operation and the HTTP status,
never the value (names are not secret).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.keyvault.secrets import SecretClient

from shared.errors import AppError


class SecretStoreError(AppError):
    """Key Vault could not be reached or answered with an error: retrying may succeed."""

    code = "key_vault_unavailable"
    transient = True


class SecretStoreDenied(AppError):
    """The identity may not do this in the vault (RBAC, firewall): a person must act."""

    code = "key_vault_denied"


@dataclass(frozen=True, slots=True)
class Secret:
    name: str
    version: str
    value: str = field(repr=False)


class Destroyed(StrEnum):
    """What `SecretStore.destroy` achieved."""

    PURGED = "purged"  # deleted and purged: no copy is left in the vault
    SOFT_DELETED = "soft_deleted"  # purge refused (purge protection): gone after soft-delete days
    ABSENT = "absent"  # nothing by that name, live or deleted


class SecretStore(Protocol):
    def get(self, name: str, version: str | None = None) -> Secret | None:
        """The latest (or the given) enabled version; None when there is none."""
        ...

    def set(self, name: str, value: str) -> Secret:
        """Store a new version; the result names it."""
        ...

    def names(self, prefix: str = "") -> list[str]:
        """Names of the live secrets starting with `prefix`, sorted."""
        ...

    def destroy(self, name: str) -> Destroyed:
        """Delete every version and purge the deleted secret, so no copy stays recoverable."""
        ...


def _failure(operation: str, name: str, error: Exception) -> AppError:
    """A typed error naming the operation and status only; the SDK's text is dropped."""
    status = getattr(error, "status_code", None)
    detail = f"{operation} {name}: HTTP {status}" if status else f"{operation} {name}: {type(error).__name__}"
    if isinstance(error, ClientAuthenticationError) or status == 403:
        return SecretStoreDenied(detail)
    return SecretStoreError(detail)


_SDK_ERRORS = (HttpResponseError, ServiceRequestError, ServiceResponseError)


class AzureSecretStore:
    """Secrets in Azure Key Vault through the SDK's `SecretClient`.

    Never build the client with `logging_enable=True`: the SDK would then log request bodies,
    which carry secret values.
    """

    def __init__(
        self,
        client: SecretClient,
        *,
        purge_attempts: int = 10,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._purge_attempts = purge_attempts
        self._sleep = sleep

    @classmethod
    def connect(
        cls,
        vault_url: str,
        credential: TokenCredential,
        *,
        verify_challenge_resource: bool = True,
        **client_options: Any,
    ) -> AzureSecretStore:
        """`verify_challenge_resource` stays True against Azure: the SDK then refuses to send a
        token to a host outside the challenge's resource domain (*.vault.azure.net). Only a
        loopback stand-in, which has no such host name, is reached with it off."""
        client = SecretClient(
            vault_url,
            credential,
            verify_challenge_resource=verify_challenge_resource,
            **client_options,
        )
        return cls(client)

    def get(self, name: str, version: str | None = None) -> Secret | None:
        try:
            secret = self._client.get_secret(name, version)
        except ResourceNotFoundError:
            return None
        except _SDK_ERRORS as error:
            raise _failure("get", name, error) from None
        if secret.value is None or secret.properties.version is None:
            return None
        return Secret(name, secret.properties.version, secret.value)

    def set(self, name: str, value: str) -> Secret:
        try:
            secret = self._client.set_secret(name, value, content_type="application/octet-stream;base64")
        except _SDK_ERRORS as error:
            raise _failure("set", name, error) from None
        return Secret(name, secret.properties.version or "", value)

    def names(self, prefix: str = "") -> list[str]:
        try:
            found = [p.name for p in self._client.list_properties_of_secrets() if p.name]
        except _SDK_ERRORS as error:
            raise _failure("list", prefix or "*", error) from None
        return sorted(n for n in found if n.startswith(prefix))

    def destroy(self, name: str) -> Destroyed:
        deleted = self._delete(name)
        if not deleted and not self._is_soft_deleted(name):
            return Destroyed.ABSENT
        return self._purge(name)

    def _delete(self, name: str) -> bool:
        try:
            # wait(): Key Vault lists the secret as deleted a moment after the DELETE returns,
            # and refuses to purge it before.
            self._client.begin_delete_secret(name).wait()
        except ResourceNotFoundError:
            return False
        except _SDK_ERRORS as error:
            raise _failure("delete", name, error) from None
        return True

    def _is_soft_deleted(self, name: str) -> bool:
        try:
            self._client.get_deleted_secret(name)
        except ResourceNotFoundError:
            return False
        except _SDK_ERRORS as error:
            raise _failure("get deleted", name, error) from None
        return True

    def _purge(self, name: str) -> Destroyed:
        for attempt in range(self._purge_attempts):
            try:
                self._client.purge_deleted_secret(name)
            except ResourceNotFoundError:
                return Destroyed.PURGED
            except HttpResponseError as error:
                if error.status_code == 403:
                    # Purge protection: the vault keeps it for its soft-delete days, a term of
                    # the recoverability bound.
                    return Destroyed.SOFT_DELETED
                if error.status_code != 409 or attempt == self._purge_attempts - 1:
                    raise _failure("purge", name, error) from None
                self._sleep(1.0)  # 409: the deletion is still in progress
            except _SDK_ERRORS as error:
                raise _failure("purge", name, error) from None
            else:
                return Destroyed.PURGED
        raise SecretStoreError(f"purge {name}: still in progress")
