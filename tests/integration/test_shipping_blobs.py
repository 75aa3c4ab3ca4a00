"""Labels in Azurite through azure-storage-blob: sealed at rest, readable with the key,
deleted with the order's prefix."""

import contextlib
from datetime import UTC, datetime

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient

from local import carrier_servers
from local.emulators import Emulators
from shared.crypto.envelope import EnvelopeCipher
from shared.crypto.key_epochs import KeyEpochs
from shared.storage.blob_store import LABELS, AzureBlobStore, LabelStore, label_blob_name
from tests.fakes import MemorySecretStore

pytestmark = pytest.mark.integration

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def test_label_round_trip_in_azurite(emulators: Emulators) -> None:
    service = BlobServiceClient.from_connection_string(emulators.storage_connection)
    with contextlib.suppress(ResourceExistsError):
        service.create_container(LABELS)
    blobs = AzureBlobStore(service)
    labels = LabelStore(blobs, EnvelopeCipher(KeyEpochs(MemorySecretStore(), lambda: NOW)))
    pdf = carrier_servers.label_pdf("9400000000000001")

    purchase = {"intentId": "i-1", "trackingNumber": "9400000000000001", "carrier": "usps"}
    labels.put("ref-blob-0001", pdf, {"intentId": "i-0"}, NOW)
    stored = labels.put("ref-blob-0001", pdf, purchase, NOW)  # a replay overwrites, never duplicates
    assert stored == {**purchase, "labelEpoch": "2026-01-05P7D"}  # the epoch sealing the label

    name = label_blob_name("ref-blob-0001")
    assert name == "ref-blob-0001/label.pdf"
    raw = blobs.get(LABELS, name)
    assert raw is not None and b"%PDF" not in raw and b"9400000000000001" not in raw
    assert labels.get("ref-blob-0001") == pdf
    assert labels.purchase("ref-blob-0001") == stored  # the metadata, read back from Azurite
    assert labels.get("ref-blob-0002") is None and labels.purchase("ref-blob-0002") is None
    assert labels.delete("ref-blob-0001") == 1
    assert blobs.get(LABELS, name) is None


def test_create_writes_only_where_nothing_is(emulators: Emulators) -> None:
    service = BlobServiceClient.from_connection_string(emulators.storage_connection)
    with contextlib.suppress(ResourceExistsError):
        service.create_container(LABELS)
    blobs = AzureBlobStore(service)
    assert blobs.create(LABELS, "ref-blob-0003/x", b"first", {"mark": "1"})
    assert not blobs.create(LABELS, "ref-blob-0003/x", b"second", {"mark": "2"})
    assert blobs.get(LABELS, "ref-blob-0003/x") == b"first"
    assert blobs.metadata(LABELS, "ref-blob-0003/x") == {"mark": "1"}
    assert blobs.delete_prefix(LABELS, "ref-blob-0003/") == ["ref-blob-0003/x"]
