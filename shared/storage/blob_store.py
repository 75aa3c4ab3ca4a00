"""Blob storage for shipping labels: Azure Blob Storage in Azure and Azurite.

A label prints the buyer's name and address, so it is personal data: it is sealed by a
`BlobCipher` (envelope encryption under the order's key material) before it leaves memory,
and stored as container "labels", blob "<ref>/label.pdf". The purge deletes it by name with the
order (`delete`: a Delete Blob is free, a listing is a billed list-class call), so labels
follow the order's retention.

A blob may carry metadata (plain text beside it, never personal data): a label carries its
purchase (carrier, service, tracking number, intent id), so the blob written right after the
carrier's answer is the purchase's record, and no order write is needed for it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from shared.errors import AppError, TransientError

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

LABELS = "labels"
INVOICES = "invoices"
EXPORTS = "exports"
#: The immutable audit trail (`shared.storage.audit`): create-only, never in ORDER_BLOB_CONTAINERS.
AUDIT_BLOBS = "audit"
#: Every blob container whose names start with "<ref>/": purged and erased with the order.
ORDER_BLOB_CONTAINERS: tuple[str, ...] = (LABELS, INVOICES, EXPORTS)


def export_blob_name(ref: str, request_id: str) -> str:
    """Blob names of an order start with its reference, so purge and erasure sweep them."""
    return f"{ref}/{request_id}.bin"


LABEL_PURPOSE = "shipping-label"
PURCHASE_METADATA = "purchase"


def label_blob_name(ref: str) -> str:
    return f"{ref}/label.pdf"


def invoice_blob_name(ref: str, number_text: str) -> str:
    """In container `invoices`: one blob per document, named by its number."""
    return f"{ref}/{number_text}.pdf"


_INVOICE_BLOB = re.compile(r"^[^/]+/([A-Za-z0-9_]+-\d{6})\.pdf$")


def invoice_numbers_in(names: Iterable[str]) -> set[str]:
    """The document numbers of `invoices` blob names (`invoice_blob_name`); other names are
    not documents and are left out."""
    return {m.group(1) for m in map(_INVOICE_BLOB.match, names) if m}


class BlobUnavailable(TransientError):
    code = "blob_unavailable"


class BlobCipher(Protocol):
    """Seals bytes of one order for one purpose; `shared.crypto.envelope.EnvelopeCipher` implements it.

    `seal_bytes` returns a JSON-able envelope (epoch KEK id, wrapped fresh data key, nonce,
    AES-256-GCM ciphertext bound to ref and purpose); `open_bytes` reverses it while the
    epoch's KEK exists and fails once the epoch is shredded."""

    def seal_bytes(self, ref: str, purpose: str, plaintext: bytes, now: datetime) -> Mapping[str, Any]: ...

    def open_bytes(self, ref: str, purpose: str, envelope: Mapping[str, Any]) -> bytes: ...


class BlobStore(Protocol):
    def put(self, container: str, name: str, data: bytes, metadata: Mapping[str, str] | None = None) -> None:
        """Create or overwrite (a replayed shipment writes the same label again)."""
        ...

    def create(self, container: str, name: str, data: bytes, metadata: Mapping[str, str]) -> bool:
        """Create only if no such blob exists; False if one does (nothing is written)."""
        ...

    def get(self, container: str, name: str) -> bytes | None: ...

    def metadata(self, container: str, name: str) -> Mapping[str, str] | None:
        """The blob's metadata, or None when there is no such blob."""
        ...

    def delete(self, container: str, name: str) -> bool:
        """Delete the blob `name` (no listing); False when there is no such blob or container."""
        ...

    def delete_prefix(self, container: str, prefix: str) -> list[str]:
        """Delete every blob whose name starts with `prefix` (a listing first); the names deleted."""
        ...

    def list_names(self, container: str, prefix: str) -> list[str]:
        """The names of the blobs whose name starts with `prefix` ([] if no such container)."""
        ...


class AzureBlobStore:
    """Over `azure.storage.blob.BlobServiceClient` (managed identity in Azure, the Azurite
    connection string locally). The container is created by Bicep in Azure."""

    def __init__(self, service: BlobServiceClient) -> None:
        self._service = service

    def _guard(self, exc: Exception) -> AppError:
        status = getattr(exc, "status_code", None)
        if status is None or status in (408, 429) or status >= 500:
            return BlobUnavailable(f"blob status {status}")
        return AppError(f"blob status {status}", code="blob_error")

    def put(self, container: str, name: str, data: bytes, metadata: Mapping[str, str] | None = None) -> None:
        from azure.core.exceptions import AzureError

        try:
            self._service.get_blob_client(container, name).upload_blob(
                data, overwrite=True, metadata=dict(metadata or {})
            )
        except AzureError as exc:
            raise self._guard(exc) from None

    def create(self, container: str, name: str, data: bytes, metadata: Mapping[str, str]) -> bool:
        from azure.core.exceptions import AzureError, ResourceExistsError

        try:
            # overwrite=False sends If-None-Match: *, so the service decides between racers.
            self._service.get_blob_client(container, name).upload_blob(
                data, overwrite=False, metadata=dict(metadata)
            )
        except ResourceExistsError:
            return False
        except AzureError as exc:
            raise self._guard(exc) from None
        return True

    def get(self, container: str, name: str) -> bytes | None:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            return self._service.get_blob_client(container, name).download_blob().readall()
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise self._guard(exc) from None

    def metadata(self, container: str, name: str) -> Mapping[str, str] | None:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            return dict(self._service.get_blob_client(container, name).get_blob_properties().metadata)
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise self._guard(exc) from None

    def list_names(self, container: str, prefix: str) -> list[str]:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        client = self._service.get_container_client(container)
        try:
            return [str(blob.name) for blob in client.list_blobs(name_starts_with=prefix)]
        except ResourceNotFoundError:
            return []
        except AzureError as exc:
            raise self._guard(exc) from None

    def delete(self, container: str, name: str) -> bool:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            self._service.get_blob_client(container, name).delete_blob(delete_snapshots="include")
        except ResourceNotFoundError:
            return False  # never written, or deleted already: the goal is reached
        except AzureError as exc:
            raise self._guard(exc) from None
        return True

    def delete_prefix(self, container: str, prefix: str) -> list[str]:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        client = self._service.get_container_client(container)
        deleted: list[str] = []
        for name in self.list_names(container, prefix):  # [] when there is no such container
            try:
                client.delete_blob(name, delete_snapshots="include")
                deleted.append(name)
            except ResourceNotFoundError:
                continue  # deleted concurrently: the goal is reached
            except AzureError as exc:
                raise self._guard(exc) from None
        return deleted


# The purchase's field naming the key epoch its label is sealed under.
LABEL_EPOCH = "labelEpoch"


class LabelStore:
    """Labels sealed before they are stored, opened only when someone needs to print one."""

    def __init__(self, blobs: BlobStore, cipher: BlobCipher) -> None:
        self._blobs = blobs
        self._cipher = cipher

    def put(self, ref: str, document: bytes, purchase: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        """Store the label sealed, with its `purchase` (no personal data) as metadata; returns
        the purchase as stored, with the key epoch that seals the label (`labelEpoch`), which
        the order keeps so the epoch is not shredded while the label is needed."""
        envelope = self._cipher.seal_bytes(ref, LABEL_PURPOSE, document, now)
        stored = {**purchase, LABEL_EPOCH: envelope["epoch"]}
        self._blobs.put(
            LABELS,
            label_blob_name(ref),
            json.dumps(envelope, separators=(",", ":")).encode(),
            {PURCHASE_METADATA: json.dumps(stored, separators=(",", ":"))},
        )
        return stored

    def purchase(self, ref: str) -> Mapping[str, Any] | None:
        """The purchase stored with the order's label, if a label is stored."""
        metadata = self._blobs.metadata(LABELS, label_blob_name(ref))
        text = (metadata or {}).get(PURCHASE_METADATA)
        return json.loads(text) if text else None

    def get(self, ref: str) -> bytes | None:
        sealed = self._blobs.get(LABELS, label_blob_name(ref))
        if sealed is None:
            return None
        return self._cipher.open_bytes(ref, LABEL_PURPOSE, json.loads(sealed))

    def delete(self, ref: str) -> int:
        return int(self._blobs.delete(LABELS, label_blob_name(ref)))


class PathBlobs:
    """A name-addressed blob store whose names start with their container ("invoices/<ref>/...")."""

    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs

    @staticmethod
    def _split(name: str) -> tuple[str, str]:
        container, _, rest = name.partition("/")
        if not rest:
            raise AppError("blob name has no container", code="blob_name_invalid")
        return container, rest

    def put(self, name: str, data: bytes) -> None:
        self._blobs.put(*self._split(name), data)

    def create(self, name: str, data: bytes, metadata: Mapping[str, str]) -> bool:
        return self._blobs.create(*self._split(name), data, metadata)

    def get(self, name: str) -> bytes | None:
        return self._blobs.get(*self._split(name))

    def metadata(self, name: str) -> Mapping[str, str] | None:
        return self._blobs.metadata(*self._split(name))

    def delete(self, name: str) -> bool:
        return self._blobs.delete(*self._split(name))
