"""The composition root: one `Runtime` per worker process, built once from the app settings.

Functions ask `current()` for it; tests and the local runner `install()` their own (with a
simulated clock and loopback endpoints). Every service receives its clients and clock from
here and never reads globals, so each can be driven without the Functions host.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

import azure.functions as func

if TYPE_CHECKING:  # what only annotations need stays out of the functions' cold start
    from shared.ingestion.lwa_rotation import RotationOutcome
    from shared.ingestion.sqs_bridge import DrainReport
    from shared.orders.messages import IssueInvoice, ShipOrder
    from shared.retention.service import PurgeReport, TrackReport
    from shared.settings import Settings
    from shared.telemetry.message_failures import MessageFailures

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class InvocationRecord(Protocol):
    def order(self, ref: str) -> None: ...

    def count(self, name: str, value: int) -> None: ...


class Telemetry(Protocol):
    def invocation(
        self, operation: str, message: func.QueueMessage | None = None
    ) -> AbstractContextManager[InvocationRecord]: ...

    def heartbeat(self, now: datetime, source: str = "timer") -> None: ...


class Ingestion(Protocol):
    def poll(self, now: datetime) -> Sequence[ShipOrder]: ...

    def past_ship_by(self, now: datetime) -> int: ...

    def handle_notification(self, body: bytes, dequeue_count: int, now: datetime) -> Sequence[ShipOrder]: ...


class Shipping(Protocol):
    def ship(self, request: ShipOrder, now: datetime) -> Sequence[IssueInvoice]: ...


class Invoicing(Protocol):
    def issue(self, request: IssueInvoice, now: datetime) -> None: ...


class Retention(Protocol):
    def track(self, now: datetime) -> TrackReport: ...

    def purge(self, now: datetime) -> PurgeReport: ...


class Privacy(Protocol):
    def handle(self, body: bytes, now: datetime) -> None: ...


class LwaRotation(Protocol):
    """Amazon's LWA secret notifications (shared/ingestion/lwa_rotation.py)."""

    def handles(self, body: bytes) -> bool: ...

    def handle(self, body: bytes, now: datetime) -> RotationOutcome: ...


class NotificationBridge(Protocol):
    """Amazon's SQS queues -> `order-notifications` (shared/ingestion/sqs_bridge.py)."""

    def drain(self) -> DrainReport: ...


@dataclass
class Runtime:
    settings: Settings
    clock: Clock
    telemetry: Telemetry
    failures: MessageFailures
    ingestion: Ingestion
    shipping: Shipping
    invoicing: Invoicing
    retention: Retention
    privacy: Privacy
    #: None where no bridge was built (a test's runtime): drain_notifications then moves nothing.
    notifications: NotificationBridge | None = None
    #: None where no rotation was built (a test's runtime): the LWA secret notifications then
    #: fail as any unknown notification does.
    lwa_rotation: LwaRotation | None = None


_current: Runtime | None = None


def install(runtime: Runtime | None) -> None:
    """Use `runtime` for every function in this process (None: build from settings again)."""
    global _current  # noqa: PLW0603 - the one process-wide composition root
    _current = runtime


def current() -> Runtime:
    global _current  # noqa: PLW0603
    if _current is None:
        from shared.app.composition import build_runtime

        _current = build_runtime(os.environ, utc_now)
    return _current
