"""The retention queries and blob sweeps over the wire: cosmosdb-server and Azurite."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient

from local.emulators import Emulators
from shared.errors import AppError
from shared.orders.deadlines import RetentionPolicy
from shared.orders.record import Stage
from shared.orders.repository import OrderRepository
from shared.privacy.service import PrivacyService
from shared.storage.blob_store import AzureBlobStore
from shared.storage.document_store import AUDIT, ORDERS, CosmosDocumentStore
from tests.builders import shipped_record, token
from tests.fakes import FakeCipher, audit_trail

pytestmark = pytest.mark.integration
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def cosmos(fresh_cosmos_store: Callable[[str], CosmosDocumentStore]) -> CosmosDocumentStore:
    return fresh_cosmos_store("retstore")


@pytest.fixture(scope="module")
def service(emulators: Emulators) -> BlobServiceClient:
    service = BlobServiceClient.from_connection_string(emulators.storage_connection)
    for name in ("labels", "invoices", "exports"):  # Bicep creates these in Azure
        with contextlib.suppress(ResourceExistsError):
            service.create_container(name)
    return service


@pytest.fixture(scope="module")
def blobs(service: BlobServiceClient) -> AzureBlobStore:
    return AzureBlobStore(service)


def test_due_in_filters_by_stage_and_time_and_exists_where_finds_epochs(cosmos: CosmosDocumentStore) -> None:
    repo = OrderRepository(cosmos)
    run = uuid.uuid4().hex[:8]
    shipped = repo.create(shipped_record(1, f"{run}a", T0, latest_delivery_at=None))
    repo.create(shipped_record(2, f"{run}b", T0 + timedelta(days=2), latest_delivery_at=None))
    repo.update(f"{run}b", lambda r: r.evolve(stage=Stage.DELIVERED, due_at=T0))
    now = (T0 + timedelta(hours=1)).isoformat()
    found = cosmos.due_in(ORDERS, "dueAt", now, 50, key="stage", values=["shipped"])
    assert shipped.ref in {d["id"] for d in found} and f"{run}b" not in {d["id"] for d in found}
    both = cosmos.due_in(ORDERS, "dueAt", now, 50, key="stage", values=["shipped", "delivered"])
    assert {shipped.ref, f"{run}b"} <= {d["id"] for d in both}
    assert cosmos.exists_where(ORDERS, "pii.epoch", shipped.pii["epoch"])  # type: ignore[index]
    assert not cosmos.exists_where(ORDERS, "pii.epoch", "e-never")


def test_blob_sweep_takes_only_the_prefix_and_tolerates_missing_containers(blobs: AzureBlobStore) -> None:
    container = f"sweep{uuid.uuid4().hex[:8]}"
    with pytest.raises(AppError):  # the app never creates containers: Bicep does
        blobs.put(container, "refaaaaaaa/label.pdf", b"1")
    blobs._service.create_container(container)  # type: ignore[attr-defined]
    blobs.put(container, "refaaaaaaa/label.pdf", b"1")
    blobs.put(container, "refaaaaaaa/inv/1.pdf", b"2")
    blobs.put(container, "refaaaaaaab/label.pdf", b"3")
    assert sorted(blobs.delete_prefix(container, "refaaaaaaa/")) == [
        "refaaaaaaa/inv/1.pdf",
        "refaaaaaaa/label.pdf",
    ]
    assert blobs.delete_prefix(container, "refaaaaaaa/") == []
    assert blobs.delete_prefix(container, "refaaaaaaab/") == ["refaaaaaaab/label.pdf"]
    assert blobs.delete_prefix(f"missing{uuid.uuid4().hex[:8]}", "x/") == []


def test_a_blob_deleted_by_name_goes_alone_and_a_missing_one_is_no_error(blobs: AzureBlobStore) -> None:
    container = f"byname{uuid.uuid4().hex[:8]}"
    blobs._service.create_container(container)  # type: ignore[attr-defined]
    blobs.put(container, "refaaaaaaa/label.pdf", b"1")
    blobs.put(container, "refaaaaaaa/label.pdf.bak", b"2")
    assert blobs.delete(container, "refaaaaaaa/label.pdf") is True
    assert blobs.list_names(container, "refaaaaaaa/") == ["refaaaaaaa/label.pdf.bak"]
    assert blobs.delete(container, "refaaaaaaa/label.pdf") is False  # gone already
    assert blobs.delete(f"missing{uuid.uuid4().hex[:8]}", "x/label.pdf") is False


def test_amazon_deletion_over_the_wire_leaves_nothing_but_the_confirmation(
    cosmos: CosmosDocumentStore, blobs: AzureBlobStore
) -> None:
    ref = f"del{uuid.uuid4().hex[:19]}"  # 22 characters, the shape of a reference
    OrderRepository(cosmos).create(shipped_record(7, ref, T0, latest_delivery_at=None))
    blobs.put("labels", f"{ref}/label.pdf", token(7, "name").encode())
    service = PrivacyService(
        cosmos,
        cipher=FakeCipher(readable=True),
        blobs=blobs,
        policy=RetentionPolicy(retention_days=7, delivery_grace_days=3, recoverability_days=28),
        audit=audit_trail(cosmos),
    )
    body = json.dumps({"requestId": f"amzn-{ref}", "type": "amazon_delete", "ref": ref}).encode()
    service.handle(body, T0)
    service.handle(body, T0 + timedelta(minutes=1))  # redelivered: same confirmation, no error
    assert cosmos.read(ORDERS, ref, ref) is None
    assert blobs.delete_prefix("labels", f"{ref}/") == []
    text = service.confirmation_text(ref, f"amzn-{ref}")
    assert text is not None and "All data held" in text and "labels" in text
    audit = json.dumps(cosmos.in_partition(AUDIT, ref))
    assert token(7, "name") not in audit and len(cosmos.in_partition(AUDIT, ref)) == 2
