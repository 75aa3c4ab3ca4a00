"""Sealed data that fails authentication: the one rule for every stage that opens an order's data.

A changed byte, another order's envelope or the wrong key fails AES-GCM's authentication
(`shared.errors.IntegrityFailure`, raised by shared/crypto). Reading it again reads the same
bytes, so nothing retries it: each service catches it where it starts work on an order and calls
`flag` (or `flagged` inside its own write): the order goes to `lifecycle.integrity_failure`, the
invocation's stage becomes `integrity_failure` (the Sentinel rule of that name fires on it), and
the service ends its work on the order. The order keeps its deadline and is purged on time;
docs/encryption.md ("Integrity failures") explains it.
"""

from __future__ import annotations

from shared.orders import lifecycle
from shared.orders.record import OrderRecord
from shared.orders.repository import OrderRepository
from shared.telemetry.invocations import record_stage

INTEGRITY_FAILURE = lifecycle.INTEGRITY_FAILURE


def flagged(record: OrderRecord) -> OrderRecord:
    """`record` flagged for a person (inside a write the caller makes), the failure reported."""
    record_stage(INTEGRITY_FAILURE)
    return lifecycle.integrity_failure(record)


def flag(orders: OrderRepository, ref: str) -> OrderRecord | None:
    """Flag the stored order whose sealed data (buyer data, label or document) failed; the
    stored record, None if it is gone."""

    def change(current: OrderRecord) -> OrderRecord | None:
        marked = flagged(current)
        same = marked.stage is current.stage and marked.attention == current.attention
        return None if same else marked

    return orders.update(ref, change)
