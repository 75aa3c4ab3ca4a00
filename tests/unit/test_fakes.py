"""The test doubles keep their own contract (tests/fakes.py): the shredder keeps open and used
epochs, the one fake cipher round-trips in both its forms, hiding the PII by default, and the
memory store writes a batch all or none, as Cosmos does."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from shared.storage.document_store import STATE, BatchOp, WriteConflict
from tests.builders import order_pii
from tests.fakes import EPOCH0, FakeCipher, FakeShredder, MemoryDocumentStore


def test_fake_shredder_keeps_open_and_used_epochs() -> None:
    shredder = FakeShredder()
    now = EPOCH0 + timedelta(days=15)
    shredder.epochs = {"e0", "e1", "e2"}
    assert shredder.shred_unused(now, lambda e: e == "e1") == ["e0"]  # e2 still open
    assert set(shredder.shredded) == {"e0"} and shredder.asked == ["e0", "e1"]


@pytest.mark.parametrize("readable", [True, False])
def test_fake_cipher_round_trips(readable: bool) -> None:
    cipher = FakeCipher(readable=readable)
    sealed = cipher.seal("ref0000001", order_pii(1), EPOCH0)
    assert sealed["epoch"] == "e0"
    assert cipher.open("ref0000001", sealed) == order_pii(1)
    assert FakeCipher().open("ref0000001", json.loads(json.dumps(sealed))) == order_pii(1)  # any instance
    assert (cipher.sealed, cipher.opened) == (1, 1)
    with pytest.raises(AssertionError):
        cipher.open("ref0000002", sealed)  # another order's envelope


def test_the_fake_cipher_hides_the_pii_unless_asked_to_keep_it_readable() -> None:
    pii = order_pii(7)
    texts = [json.dumps(FakeCipher(readable=r).seal("ref0000007", pii, EPOCH0)) for r in (False, True)]
    values = ("SYNTHPIINAME00007", "SYNTHPIISTREET00007", "SYNTHPIIMAIL00007", pii.order_id)
    assert not any(value in texts[0] for value in values)
    assert all(value in texts[1] for value in values)


def test_the_memory_store_writes_none_of_a_batch_whose_last_write_fails() -> None:
    store = MemoryDocumentStore()
    head = store.create(STATE, {"id": "head", "pk": "p", "n": 1})
    store.create(STATE, {"id": "taken", "pk": "p"})
    batch = [
        BatchOp("replace", {"id": "head", "pk": "p", "n": 2}, head["_etag"]),
        BatchOp("create", {"id": "taken", "pk": "p"}),
    ]
    with pytest.raises(WriteConflict):
        store.write_batch(STATE, "p", batch)
    assert store.read(STATE, "p", "head") == head
