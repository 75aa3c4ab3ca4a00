"""The order's lifecycle: every stage transition, every rule on whether an order may still be
shipped, invoiced or changed, and the deadlines each write carries. No other module writes a
stage (tests/unit/test_import_rules.py); docs/architecture.md draws the stages."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from shared.orders.deadlines import (
    SOURCE_AMAZON,
    AmazonPackageStatus,
    RetentionPolicy,
    delivery_bound,
    first_delivery_check,
    refresh_ttl,
    with_deadline,
)
from shared.orders.domain import FulfillmentStatus, Order
from shared.orders.record import READY_AT, OrderRecord, Stage, left_ready

# Attention codes the lifecycle itself sets.
NO_ADDRESS = "order_without_address"
PARTIALLY_SHIPPED = "partially_shipped_elsewhere"
INTEGRITY_FAILURE = "integrity_failure"

AWAITING_STATUSES = frozenset({FulfillmentStatus.PENDING, FulfillmentStatus.PENDING_AVAILABILITY})
SHIPPABLE_STATUSES = frozenset({FulfillmentStatus.UNSHIPPED})
STOPPED_STATUSES = frozenset({FulfillmentStatus.CANCELLED, FulfillmentStatus.UNFULFILLABLE})
SENT_ELSEWHERE_STATUSES = frozenset({FulfillmentStatus.SHIPPED, FulfillmentStatus.PARTIALLY_SHIPPED})
NOT_SHIPPED = frozenset({Stage.AWAITING, Stage.READY, Stage.ATTENTION})

# Shipping that failed for a transient cause is tried again, waiting SHIP_RETRY_FIRST, then twice
# as long each time up to SHIP_RETRY_MAX, until the order's ship-by date (Amazon's, or
# SHIP_BY_FALLBACK after the order was created); past it a person decides (docs/shipping.md,
# "Outages").
SHIP_RETRY_FIRST = timedelta(minutes=5)
SHIP_RETRY_MAX = timedelta(hours=1)
SHIP_BY_FALLBACK = timedelta(days=3)
SHIP_BY_PASSED = "ship_by_passed"
# The `extra` keys counting an order's shipping tries that failed for a transient cause, and
# the time of the last one (a failure is counted once, however many writes record it).
SHIP_TRIES = "shipTries"
SHIP_FAILED_AT = "shipFailedAt"
# A ready order sent to shipping is sent again this long after, if shipping has not begun by then
# (its message was lost): long enough that a normal queue backlog never looks stuck.
RESEND_AFTER = timedelta(hours=6)
# The shipment state of a label bought and stored, not yet confirmed to Amazon
# (`shared.shipping.service`): sending the order again only confirms it.
LABEL_PURCHASED = "purchased"


# --- where an order enters ------------------------------------------------------------------


def entry_stage(order: Order) -> tuple[Stage, str | None]:
    """The stage (and attention code) an order takes from Amazon's fulfilment status."""
    status = order.fulfillment_status
    if status in AWAITING_STATUSES:
        return Stage.AWAITING, None
    if status in SHIPPABLE_STATUSES:
        return (Stage.READY, None) if order.ship_to is not None else (Stage.ATTENTION, NO_ADDRESS)
    if status in STOPPED_STATUSES:
        return Stage.CANCELLED, None
    if status is FulfillmentStatus.PARTIALLY_SHIPPED:
        return Stage.ATTENTION, PARTIALLY_SHIPPED
    return Stage.SHIPPED, None  # shipped before this app saw it (backfill)


def unreadable_stage(code: str) -> tuple[Stage, str]:
    """An order the app cannot read is held for a person with the mapping error's code."""
    return Stage.ATTENTION, code


# --- transitions --------------------------------------------------------------------------


def needs_attention(record: OrderRecord, code: str, **changes: Any) -> OrderRecord:
    """A person must act; `code` says why. Out of the redrive's index: nothing sends it again."""
    extra = left_ready(changes.pop("extra", record.extra))
    return record.evolve(stage=Stage.ATTENTION, attention=code, extra=extra, **changes)


def ship_by(record: OrderRecord) -> datetime:
    """When the order must have shipped: Amazon's ship-by date, else SHIP_BY_FALLBACK after it
    was created."""
    return record.latest_ship_at or record.created_at + SHIP_BY_FALLBACK


def shipping_backoff(tries: int) -> timedelta:
    """The wait before the next try after `tries` (1 or more) tries failed for a transient cause."""
    return min(SHIP_RETRY_FIRST * (1 << min(max(tries - 1, 0), 16)), SHIP_RETRY_MAX)


def ship_again_at(record: OrderRecord, at: datetime, now: datetime) -> OrderRecord:
    """A ready order whose shipping has not (or no longer) begun, in the redrive's index to be
    sent again at `at`; or, when `now` is past its ship-by date, handed to a person. An order
    whose label is bought is never cut off: only its confirmation to Amazon remains, late is
    better than never, and the orders-not-shipping gauge counts it meanwhile."""
    if now >= ship_by(record) and _shipment_state(record) != LABEL_PURCHASED:
        return needs_attention(record, SHIP_BY_PASSED)
    return record.evolve(extra={**record.extra, READY_AT: at.isoformat()})


def purchase_started(record: OrderRecord, intent: Mapping[str, Any], now: datetime) -> OrderRecord:
    """A label purchase begins: its intent is written before the carrier is called, and the
    order's next send moves RESEND_AFTER ahead. A purchase ends long before (the host stops a
    function after 5 minutes), so it is never sent a second message while it runs; one whose
    every delivery died (a store outage after the label was sold) is sent again then, and the
    replay decides."""
    return record.evolve(
        shipment=dict(intent), extra={**record.extra, READY_AT: (now + RESEND_AFTER).isoformat()}
    )


def shipping_failed(record: OrderRecord, now: datetime, **changes: Any) -> OrderRecord:
    """A try to ship failed for a transient cause (carrier, Amazon or store unavailable): one
    more try counted, the next after `shipping_backoff`, bounded by the ship-by date."""
    tries = int(record.extra.get(SHIP_TRIES, 0)) + 1
    extra = {**record.extra, SHIP_TRIES: tries, SHIP_FAILED_AT: now.isoformat()}
    return ship_again_at(record.evolve(extra=extra, **changes), now + shipping_backoff(tries), now)


def failure_recorded(record: OrderRecord, now: datetime) -> bool:
    """Whether the transient failure of the try at `now` is already on the order."""
    return record.extra.get(SHIP_FAILED_AT) == now.isoformat()


def integrity_failure(record: OrderRecord) -> OrderRecord:
    """Its sealed data failed authentication. Not shipped, it stops for a person (and leaves
    the redrive's index); shipped or delivered, it keeps its stage, so delivery tracking and its
    deadline go on, and carries the code as an invoice refusal does. Its deadline stands
    either way (`Settle` gives an unshipped order the bound)."""
    if record.stage in NOT_SHIPPED:
        return needs_attention(record, INTEGRITY_FAILURE)
    return record.evolve(attention=INTEGRITY_FAILURE)


def shipped(record: OrderRecord, **changes: Any) -> OrderRecord:
    """Label bought and shipment confirmed (here or elsewhere). No due time and no deadline:
    `settle` sets the first delivery check; the deadline comes with the delivery. Out of the
    redrive's index."""
    changes.setdefault("extra", left_ready(record.extra))
    return record.evolve(stage=Stage.SHIPPED, due_at=None, purge_after=None, **changes)


def cancelled(record: OrderRecord, **changes: Any) -> OrderRecord:
    """Cancelled at Amazon before it shipped: the buyer's data goes at once."""
    return record.evolve(stage=Stage.CANCELLED, pii=None, **changes)


def delivered(
    record: OrderRecord, delivered_at: datetime, source: str, now: datetime, policy: RetentionPolicy
) -> OrderRecord:
    """Delivered (by Amazon's, the carrier's or the bound's word): forgotten `retention_days`
    after `delivered_at`."""
    done = record.evolve(stage=Stage.DELIVERED, delivered_at=delivered_at, delivery_source=source)
    return with_deadline(done, delivered_at + timedelta(days=policy.retention_days), now, policy)


def returned(
    record: OrderRecord, returned_at: datetime, source: str, now: datetime, policy: RetentionPolicy
) -> OrderRecord:
    """Sent back to the seller and never delivered (the carrier's word): not delivered, and
    forgotten `retention_days` after the return event, as a delivered order is after delivery."""
    back = record.evolve(stage=Stage.RETURNED, returned_at=returned_at, delivery_source=source)
    return with_deadline(back, returned_at + timedelta(days=policy.retention_days), now, policy)


def cancelled_now(record: OrderRecord, now: datetime, policy: RetentionPolicy) -> OrderRecord:
    """A cancelled order's deadline: its PII-free document stays `retention_days` (so a late
    notification cannot re-create it with PII), then is purged like any other."""
    gone = cancelled(record)
    return with_deadline(gone, now + timedelta(days=policy.retention_days), now, policy)


# --- may this order be touched --------------------------------------------------------------


def untouchable(record: OrderRecord) -> bool:
    """Processing is restricted, or a deletion request is erasing it: nothing may be added."""
    return record.restricted or record.being_erased


def may_ship_again(record: OrderRecord) -> bool:
    """Whether a ShipOrder sent again can only finish this order's shipping, never buy a second
    label: ready and not untouchable. Its shipment is none, a label bought whose confirmation
    remains, or an intent whose purchase ended in doubt (a timeout, or deliveries that died):
    the replay asks again with the same key, or hands it to a person. A purchase running is
    never due in the redrive's index (`purchase_started`), so nothing sends it meanwhile."""
    return record.stage is Stage.READY and not untouchable(record)


def _shipment_state(record: OrderRecord) -> object:
    return (record.shipment or {}).get("state")


def shipping_skip_reason(record: OrderRecord) -> str | None:
    """Why shipping must leave this order alone, or None if it may buy its label."""
    if record.restricted:
        return "restricted"
    if record.stage is Stage.CANCELLED:
        return "cancelled"
    if record.stage in (Stage.SHIPPED, Stage.DELIVERED, Stage.RETURNED):
        return "already_shipped"
    if record.stage is Stage.AWAITING:
        return "not_ready"
    if record.stage is Stage.ATTENTION:
        return "needs_attention"
    if record.pii is None:
        return "pii_deleted"
    return None


def invoicing_skip_reason(record: OrderRecord, *, credit_note: bool, has_invoice: bool) -> str | None:
    """Why invoicing must leave this order alone (before asking whether an invoice is required),
    or None."""
    if record.restricted:
        return "restricted"
    if record.pii is None:
        return "pii_deleted"
    if credit_note:
        return None if has_invoice else "no_invoice_to_credit"
    if record.stage is Stage.CANCELLED:
        return "cancelled"
    if record.stage in (Stage.AWAITING, Stage.READY):
        return "not_shipped"
    return None


# --- the deadlines every write carries -------------------------------------------------------


class Settle:
    """Applied to every order the repository writes, so no stage can forget retention: a
    cancelled order loses its PII at once; an order without a deadline that has not shipped
    gets the bound (latest delivery date + grace + retention); a shipped order that Amazon
    reports delivered is marked so at once, otherwise it gets its first delivery check; and any
    order with a deadline has its Cosmos `ttl` restarted."""

    def __init__(self, policy: RetentionPolicy, clock: Callable[[], datetime]) -> None:
        self._policy = policy
        self._clock = clock
        self._amazon = AmazonPackageStatus()

    def __call__(self, record: OrderRecord) -> OrderRecord:
        now = self._clock()
        if record.stage is Stage.CANCELLED and record.purge_after is None:
            return cancelled_now(record, now, self._policy)
        if record.stage in NOT_SHIPPED and record.purge_after is None:
            bound = delivery_bound(record, self._policy) + timedelta(days=self._policy.retention_days)
            return with_deadline(record, max(bound, now), now, self._policy)
        if record.stage is Stage.SHIPPED:
            # Amazon's DELIVERED arrives with a poll: take it in the same write.
            at = self._amazon.delivered_at(record)
            if at is not None:
                return delivered(record, min(at, now), SOURCE_AMAZON, now, self._policy)
            if record.due_at is None:
                first_check = first_delivery_check(record, now, self._policy)
                return refresh_ttl(record.evolve(due_at=first_check), now, self._policy)
        return refresh_ttl(record, now, self._policy)
