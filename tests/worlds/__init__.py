"""Per-context test worlds: each wires one service to the fakes and memory stores of
tests/fakes.py as the composition root (shared/app/composition.py) wires it in Azure."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from shared.orders.deadlines import RetentionPolicy
from shared.orders.lifecycle import Settle
from shared.orders.repository import OrderRepository
from shared.storage.document_store import DocumentStore

#: The retention the app runs with by default (7 days after delivery, 3 days' grace, 28 days
#: recoverable), for worlds that apply the retention schedule.
RETENTION = RetentionPolicy(retention_days=7, delivery_grace_days=3, recoverability_days=28)


def order_repository(
    store: DocumentStore,
    clock: Callable[[], datetime] | None = None,
    policy: RetentionPolicy = RETENTION,
) -> OrderRepository:
    """The orders repository over `store`. Given the world's `clock`, under the retention
    schedule the app applies to every order it writes (as shared/app/composition.py builds
    it), so each write also sets the order's deadlines; without, records are stored as given."""
    if clock is None:
        return OrderRepository(store)
    return OrderRepository(store, Settle(policy, clock))
