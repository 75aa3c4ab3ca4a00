"""The audit trail's blobs in Azurite: a record is written once under its name, and a second
write to that name is refused by the store itself, so the first record comes back unchanged.
(Azurite has no immutability policies; the policy on container `audit` is checked in the Bicep
by tests/unit/test_infra_audit.py.)"""

import contextlib
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient

from local.emulators import Emulators
from shared.storage.audit import AuditLog, audit_blob_name
from shared.storage.blob_store import AUDIT_BLOBS, AzureBlobStore
from tests.fakes import MemoryDocumentStore

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_a_second_write_to_an_audit_name_is_refused_and_the_first_record_returned(
    emulators: Emulators,
) -> None:
    service = BlobServiceClient.from_connection_string(emulators.storage_connection)
    with contextlib.suppress(ResourceExistsError):
        service.create_container(AUDIT_BLOBS)
    blobs = AzureBlobStore(service)
    ref = f"aud{uuid.uuid4().hex[:10]}"
    name = audit_blob_name(ref, "erased:req-00000001")

    first = AuditLog(MemoryDocumentStore(), blobs).record(
        ref, "erased", NOW, "handle_privacy_request", {"held": True}, once_key="req-00000001"
    )
    stored = blobs.get(AUDIT_BLOBS, name)
    assert stored is not None

    # A retry whose index write never happened (a fresh index) writes the same name again.
    again = AuditLog(MemoryDocumentStore(), blobs).record(
        ref, "erased", NOW + timedelta(hours=1), "other", {"held": False}, once_key="req-00000001"
    )
    assert again == first
    assert not blobs.create(AUDIT_BLOBS, name, b'{"tampered":true}', {})  # refused by Azurite
    with pytest.raises(ResourceExistsError):
        service.get_blob_client(AUDIT_BLOBS, name).upload_blob(b"{}", overwrite=False)
    assert blobs.get(AUDIT_BLOBS, name) == stored
    assert blobs.list_names(AUDIT_BLOBS, f"{ref}/") == [name]
