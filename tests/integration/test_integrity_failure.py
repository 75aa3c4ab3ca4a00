"""A tampered order over the wire (issue 24, item 4), on `local.pipeline.Pipeline`: the local
Functions host, Azurite, the Cosmos emulator, the Key Vault stand-in and the real envelope cipher.

The fault, as it would happen: the stored buyer data of one order has a byte flipped, and
another order is given a third order's envelope, by a writer outside the app (the store the app
writes through changes them on their way in). Evidence only from the store, the queues, the
export blob, the stand-ins and the telemetry the app sent: both orders are flagged on the first
delivery of their shipments message (nothing bought, nothing poisoned), an access request
queued for one is answered in writing, and both are purged by their deadline. A poison message
planted on the way expires with its time-to-live on the simulated clock.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient
from cryptography.hazmat.primitives.asymmetric import rsa

from local.pipeline import Pipeline
from shared.orders.messages import PRIVACY_REQUESTS, SHIPMENTS
from shared.privacy.service import encode_recipient_key, open_export
from shared.storage.blob_store import EXPORTS
from shared.storage.document_store import AUDIT, ORDERS, DocumentStore
from tests.builders import flipped, unshipped_orders

pytestmark = pytest.mark.integration

Document = dict[str, Any]
MARKETPLACES = ["A1PA6795UKMFR9", "A13V1IB3VIYZZH", "APJ6JRA9NG5V4", "A1F83G8C2ARO7P"]
SHORT_RUN = timedelta(days=2)
RUN_LIMIT = timedelta(days=40)
PURGE_SLACK_S = 3600 + 600  # the hourly purge timer and one drain's worth of simulated time
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


class TamperingStore:
    """The app's document store, whose first ready order is stored with one ciphertext byte
    flipped and whose second ready order is stored with the first untouched one's envelope
    (the order created before it), as a writer outside the app would leave them."""

    def __init__(self, inner: DocumentStore) -> None:
        self.inner = inner
        self.flipped: str | None = None
        self.swapped: str | None = None
        self._donor: Mapping[str, Any] | None = None

    def _tampered(self, doc: Document) -> Document:
        if doc.get("stage") != "ready_to_ship" or not doc.get("pii"):
            return doc
        if self.flipped is None:
            self.flipped = str(doc["id"])
            return {**doc, "pii": flipped(doc["pii"])}
        if self._donor is None:
            self._donor = doc["pii"]  # a valid envelope, of this order
            return doc
        if self.swapped is None:
            self.swapped = str(doc["id"])
            return {**doc, "pii": self._donor}
        return doc

    def create(self, container: str, doc: Document) -> Document:
        return self.inner.create(container, self._tampered(doc) if container == ORDERS else doc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Wrap:
    store: TamperingStore

    def __call__(self, inner: DocumentStore) -> DocumentStore:
        self.store = TamperingStore(inner)
        return self.store  # type: ignore[return-value]


def telemetry(p: Pipeline) -> Iterator[Mapping[str, Any]]:
    """The custom dimensions of every record the app sent to the Application Insights stand-in."""
    # Read under the stand-in's lock: its exporter may still be appending a batch.
    for envelope in p.insights.envelopes():
        properties = (envelope.get("data", {}).get("baseData", {}) or {}).get("properties") or {}
        if properties:
            yield properties


def access_request(ref: str, request_id: str) -> str:
    body = {
        "requestId": request_id,
        "type": "access",
        "ref": ref,
        "recipientKey": encode_recipient_key(KEY.public_key()),
    }
    return json.dumps(body)


def poisoned(p: Pipeline) -> list[str]:
    found = []
    for queue in p.host.queue_names():
        client = p.queue_service.get_queue_client(f"{queue}-poison")
        found += [base64.b64decode(m.content).decode() for m in client.peek_messages(max_messages=32)]
    return found


def test_a_tampered_order_is_flagged_its_requester_answered_and_it_is_purged_on_time(tmp_path: Path) -> None:
    wrap = Wrap()
    with Pipeline(unshipped_orders(6, 24, MARKETPLACES), tmp_path, wrap_store=wrap, expire_poison=True) as p:
        p.run(limit=SHORT_RUN)
        tampered = [wrap.store.flipped, wrap.store.swapped]
        assert None not in tampered, "no two ready orders to tamper with"
        docs = {str(d["id"]): d for d in p.documents(ORDERS)}
        flagged = {ref: (docs[ref]["stage"], docs[ref]["attention"]) for ref in tampered}  # type: ignore[index]
        shipped_refs = {ref for ref, d in docs.items() if d.get("shipment")}
        failures_so_far = dict(p.host.stats.failures)
        poison_so_far = poisoned(p)

        # The buyer asks for their data: a privacy-requests message, as the ops CLI queues it.
        request_id = f"req-{uuid.uuid4().hex[:12]}"
        p.host.send(PRIVACY_REQUESTS, access_request(str(wrap.store.flipped), request_id))
        p.drain()
        blobs = BlobServiceClient.from_connection_string(p.env["STORAGE"]).get_container_client(EXPORTS)
        [export] = [b.name for b in blobs.list_blobs(name_starts_with=f"{wrap.store.flipped}/")]
        answer = open_export(blobs.download_blob(export).readall(), KEY)
        privacy_failures = dict(p.host.stats.failures).get("handle_privacy_request", 0)

        # A message that can never succeed is poisoned with the recoverability bound's
        # time-to-live, which the local host counts on the simulated clock.
        p.host.send(SHIPMENTS, '{"ref": 1}')
        p.drain()
        poison_planted = poisoned(p)

        p.run(limit=RUN_LIMIT)
        remaining = {str(d["id"]) for d in p.documents(ORDERS)}
        purges = {str(d["ref"]): d["details"] for d in p.documents(AUDIT) if d.get("action") == "purged"}
        records = list(telemetry(p))
        poison_at_end = poisoned(p)
        expired = p.host.stats.expired_poison

    # Flagged on the first delivery of the shipments message: not retried, not poisoned,
    # nothing bought for them.
    assert flagged == dict.fromkeys(tampered, ("needs_attention", "integrity_failure"))
    assert not shipped_refs & set(tampered)  # type: ignore[arg-type]
    assert failures_so_far.get("ship_order", 0) == 0 and poison_so_far == []
    stages = [(r.get("operation"), r.get("stage")) for r in records if r.get("event") == "invocation"]
    # One invocation per tampered order, its message's first delivery (the exporter may send a
    # batch twice when the stand-in answers slowly: records are told apart by invocation id).
    flagged_by = ("ship_order", "integrity_failure")
    reported = [r for r in records if (r.get("operation"), r.get("stage")) == flagged_by]
    by_invocation = {r["invocation_id"]: (r.get("order_ref"), str(r.get("dequeue_count"))) for r in reported}
    assert sorted(by_invocation.values()) == sorted((ref, "1") for ref in tampered)  # type: ignore[type-var]

    # The requester is answered in writing, on the first delivery.
    assert privacy_failures == 0
    assert answer["buyer"] is None and answer["ref"] == wrap.store.flipped
    assert "could not be read" in answer["buyerDataUnreadable"]
    assert "deleted on schedule" in answer["buyerDataUnreadable"]
    assert ("handle_privacy_request", "integrity_failure") in stages

    # Purged by its deadline, like every other order; nothing poisoned on the way.
    for ref in tampered:
        assert ref not in remaining
        assert purges[ref]["attention"] == "integrity_failure"  # type: ignore[index]
        assert float(purges[ref]["latenessSeconds"]) <= PURGE_SLACK_S  # type: ignore[index]
    assert len(poison_planted) == 1 and json.loads(poison_planted[0])["reason"] == "message_bad_ref"
    assert poison_at_end == [] and expired == 1  # expired 7 simulated days later
