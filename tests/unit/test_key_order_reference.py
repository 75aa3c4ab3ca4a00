"""Order references: keyed, stable, short, URL-safe, and accepted by the queue messages."""

from __future__ import annotations

import base64
import re

from hypothesis import given
from hypothesis import strategies as st

from shared.orders.messages import checked_ref
from shared.orders.reference import ORDER_REF_SECRET, OrderReferencer
from tests.fakes import MemorySecretStore

REF = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
STORE = MemorySecretStore()
REFERENCER = OrderReferencer(STORE)


@given(st.text(min_size=1, max_size=60))
def test_refs_are_short_url_safe_and_accepted_by_messages(order_id: str) -> None:
    ref = REFERENCER.ref(order_id)
    assert REF.match(ref) and len(ref) == 22
    assert checked_ref(ref) == ref
    assert order_id not in ref or len(order_id) < 4


def test_refs_are_stable_across_instances_and_keyed() -> None:
    store = MemorySecretStore()
    first = OrderReferencer(store).ref("303-1234567-7654321")
    assert OrderReferencer(store).ref("303-1234567-7654321") == first
    assert OrderReferencer(store).ref("303-1234567-7654322") != first
    # Another key (another deployment) gives unrelated references.
    assert OrderReferencer(MemorySecretStore()).ref("303-1234567-7654321") != first


def test_key_is_created_once_and_read_after() -> None:
    store = MemorySecretStore()
    OrderReferencer(store).ensure_key()
    key = store.get(ORDER_REF_SECRET)
    assert key is not None and len(base64.b64decode(key.value)) == 32
    OrderReferencer(store).ensure_key()
    assert [c for c in store.calls if c[0] == "set"] == [("set", ORDER_REF_SECRET)]


def test_key_is_loaded_once_per_instance() -> None:
    store = MemorySecretStore()
    referencer = OrderReferencer(store)
    for i in range(50):
        referencer.ref(f"303-0000000-{i:07d}")
    assert len([c for c in store.calls if c[0] == "get"]) == 2  # the miss, then the re-read
