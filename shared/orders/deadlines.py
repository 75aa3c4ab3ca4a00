"""An order's deadlines: when its delivery is checked, when it counts as delivered if no one
confirms it, when its buyer data must be gone, and the Cosmos `ttl` that backs the purge up.
The retention policy's numbers come from the settings; docs/retention.md gives the reasoning."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.orders.domain import PackageState
from shared.orders.record import OrderRecord
from shared.settings import Settings

SOURCE_AMAZON = "amazon"
SOURCE_CARRIER = "carrier"
SOURCE_BOUND = "bound"


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    retention_days: int
    delivery_grace_days: int
    recoverability_days: int
    #: Used when an order has no latest delivery date: shipped date + this, then + grace.
    default_transit_days: int = 14
    #: How long a shipped order waits before its delivery is checked again. The deadline is
    #: counted from the reported delivery time, not from when we learn it, so a sparse check
    #: costs no retention as long as it is shorter than the retention period (`recheck`).
    check_interval: timedelta = timedelta(days=3)
    #: The purge timer's period: the most a deadline can be overrun by the timer.
    purge_interval: timedelta = timedelta(hours=1)

    @property
    def recheck(self) -> timedelta:
        """The check interval, never longer than the retention period: a delivery is then
        always learnt before its deadline, so learning it late never delays the purge."""
        return min(self.check_interval, timedelta(days=self.retention_days))

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        check_interval: timedelta = timedelta(days=3),
        purge_interval: timedelta = timedelta(hours=1),
    ) -> RetentionPolicy:
        return cls(
            retention_days=settings.retention_days,
            delivery_grace_days=settings.delivery_grace_days,
            recoverability_days=settings.recoverability_days,
            check_interval=check_interval,
            purge_interval=purge_interval,
        )


def ttl_seconds(expire_at: datetime, now: datetime) -> int:
    """Cosmos `ttl` counts seconds from the item's last write (about `now`): floor, so the item
    never outlives `expire_at`; at least 1, since 0 is not a valid item ttl."""
    return max(1, math.floor((expire_at - now).total_seconds()))


def expiry_ttl(purge_after: datetime, now: datetime, policy: RetentionPolicy) -> int:
    """TTL for an order with a deadline. Cosmos hides an expired item from every read, so if
    TTL fired at `purge_after` the purge timer would never see the order, and its blobs (which
    have no TTL) and audit record would be left behind. The purge timer, which runs every
    interval, purges the order within one interval of its deadline; TTL fires two intervals
    after the deadline, so a timer run that starts late, or is missed once, still gets there
    first. TTL is the backstop for a purge that stopped altogether."""
    return ttl_seconds(purge_after + 2 * policy.purge_interval, now)


def refresh_ttl(record: OrderRecord, now: datetime, policy: RetentionPolicy) -> OrderRecord:
    """Every write restarts the TTL clock: a writer of an order that has a deadline must call
    this so the item still expires at its deadline, not `ttl` seconds after the later write."""
    if record.purge_after is None:
        return record
    return record.evolve(ttl=expiry_ttl(record.purge_after, now, policy))


def with_deadline(
    record: OrderRecord, purge_after: datetime, now: datetime, policy: RetentionPolicy
) -> OrderRecord:
    return record.evolve(
        purge_after=purge_after, due_at=purge_after, ttl=expiry_ttl(purge_after, now, policy)
    )


class AmazonPackageStatus:
    """Amazon's own delivery signal, as polls and notifications stored it on the order.

    Every package DELIVERED means delivered; Amazon gives no delivery time, so the time of the
    update that reported it stands in (never later than the truth by more than a poll)."""

    def delivered_at(self, record: OrderRecord) -> datetime | None:
        packages = record.extra.get("packages") or []
        if packages and all(p.get("status") == PackageState.DELIVERED.value for p in packages):
            return record.amazon_updated_at
        return None


def first_delivery_check(record: OrderRecord, now: datetime, policy: RetentionPolicy) -> datetime:
    """When `track_deliveries` first asks whether a just-shipped order arrived: on Amazon's
    latest delivery date (the date promised to the buyer, so most orders are found delivered at
    the first look: one write), never later than one `recheck` from now (a delivery is then
    always learnt before its deadline, which counts from the reported delivery time, not from
    the check) nor than the bound, and never in the past."""
    promised = record.latest_delivery_at or now + policy.recheck
    return max(now, min(promised, now + policy.recheck, delivery_bound(record, policy)))


def delivery_bound(record: OrderRecord, policy: RetentionPolicy) -> datetime:
    """The instant an order counts as delivered if no one ever confirms it."""
    latest = record.latest_delivery_at
    if latest is None:
        latest = _shipped_at(record) + timedelta(days=policy.default_transit_days)
    return latest + timedelta(days=policy.delivery_grace_days)


def _shipped_at(record: OrderRecord) -> datetime:
    raw = (record.shipment or {}).get("shippedAt")
    if isinstance(raw, str) and raw:
        return datetime.fromisoformat(raw)
    return record.latest_ship_at or record.created_at
