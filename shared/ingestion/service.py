"""Order ingestion: the timer's searchOrders backfill and ORDER_CHANGE notifications.

Design notes: docs/ingestion.md ("Design notes: `shared.ingestion.service`")."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from shared.errors import AppError, IntegrityFailure, InvalidInput, OrderMappingError, TransientError
from shared.ingestion.amazon_orders import order_from_api, order_identity
from shared.ingestion.notifications import OrderChange, parse_order_change
from shared.ingestion.rate_budget import GET_ORDER, SEARCH_ORDERS, Bucket, RateBudget, seller_partition
from shared.ingestion.spapi_gateway import (
    FetchedOrder,
    SearchPage,
    SpApiNotFound,
    SpApiRejected,
    SpApiThrottled,
    UnknownSeller,
)
from shared.orders import integrity, lifecycle
from shared.orders.corrections import with_corrections
from shared.orders.domain import Buyer, FulfillmentStatus, Order, Package
from shared.orders.messages import ShipOrder
from shared.orders.record import (
    CORRECTED,
    READY_AT,
    OrderPii,
    OrderRecord,
    PiiCipher,
    ReferenceMaker,
    Stage,
    left_ready,
)
from shared.orders.repository import OrderRepository
from shared.settings import SellerAccount, Settings
from shared.storage.audit import AuditAction
from shared.storage.document_store import (
    AUDIT,
    STATE,
    Document,
    DocumentStore,
    StoreUnavailable,
    WriteConflict,
)
from shared.telemetry.invocations import record_count

OVERLAP = timedelta(minutes=5)
SEARCH_LAG = timedelta(minutes=2)  # Amazon's searches end at least two minutes before "now"
DEFAULT_BACKFILL = timedelta(days=30)
DEFAULT_POLL_INTERVAL = timedelta(minutes=5)
NOTIFICATION_MARKER_TTL_S = 14 * 24 * 3600  # longer than any redelivery (SQS keeps 14 days)
NOT_FOUND_RETRIES = 3  # getOrder may lag a fresh notification: retry before calling it bad input
MAX_CAS_ATTEMPTS = 5
CURSOR_ID = "orders-cursor"
# A poll that finds nothing writes nothing; the cursor is written at least this often all the
# same, which bounds the next search's window.
CURSOR_HEARTBEAT = timedelta(hours=6)
# `amazonStatus` of an order held because its data could not be read (`order_unmappable`).
UNREADABLE_STATUS = "UNREADABLE"
# On an order Amazon reported shipped before this app began shipping it (no label of ours).
SHIPPED_ELSEWHERE = "shippedElsewhere"
# Audit actions after which an order must never be stored again: purged at its deadline, or
# erased on request. Amazon still knows the order and may mention it in a late poll or
# notification; we must not learn the buyer again.
FORGOTTEN = frozenset({AuditAction.PURGED.value, AuditAction.ERASED.value})

# ORDER_CHANGE's `Summary.OrderStatus` values (its schema's enum) for a stopped order.
STOPPED_SUMMARY_STATUSES = frozenset({"Canceled", "Unfulfillable"})


class OrdersGateway(Protocol):
    """The part of `shared.ingestion.spapi_gateway.SpApiGateway` ingestion uses."""

    def search_orders(
        self,
        seller_id: str,
        marketplace_ids: Sequence[str],
        *,
        last_updated_after: datetime,
        pagination_token: str | None = None,
    ) -> SearchPage: ...

    def get_order(self, seller_id: str, order_id: str) -> FetchedOrder: ...


class IngestThrottled(TransientError):
    """Out of SP-API budget: re-queue the message `retry_after_s` later."""

    code = "ingest_throttled"

    def __init__(self, operation: str, retry_after_s: float) -> None:
        super().__init__(f"{operation} budget exhausted, retry after {retry_after_s:.1f}s")
        self.retry_after_s = retry_after_s


class OrderNotYetVisible(TransientError):
    """Retried by the host (host.json's visibility timeout), not re-queued with a delay: a
    re-queued message starts its dequeue count again, so it would never become bad input."""

    code = "order_not_yet_visible"


class UnknownMarketplace(InvalidInput):
    code = "unknown_marketplace"


class OrderWithoutAddress(InvalidInput):
    code = lifecycle.NO_ADDRESS


class OrderNotFound(InvalidInput):
    code = "order_not_found"


@dataclass
class PollStats:
    pages: int = 0
    orders_seen: int = 0
    stored: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    throttled: int = 0

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


@dataclass
class _Cursor:
    doc: Document
    watermark: datetime | None
    last_poll_at: datetime | None  # the last write: at least every CURSOR_HEARTBEAT of polling
    cycle: dict[str, Any] | None
    budget: Bucket  # searchOrders' token bucket as written


def _time(value: object) -> datetime | None:
    return datetime.fromisoformat(str(value)) if value else None


def _packages(packages: Sequence[Package]) -> list[dict[str, Any]]:
    return [
        {
            "reference": p.reference,
            "status": p.status.value if p.status else None,
            "trackingNumber": p.tracking_number,
            "carrier": p.carrier,
        }
        for p in packages
    ]


class IngestionService:
    """Implements `shared.app.runtime.Ingestion`."""

    def __init__(
        self,
        settings: Settings,
        *,
        repository: OrderRepository,
        store: DocumentStore,
        cipher: PiiCipher,
        refs: ReferenceMaker,
        gateway: OrdersGateway,
        budget: RateBudget,
        poll_interval: timedelta = DEFAULT_POLL_INTERVAL,
        backfill: timedelta = DEFAULT_BACKFILL,
    ) -> None:
        self._settings = settings
        self._repo = repository
        self._store = store
        self._cipher = cipher
        self._refs = refs
        self._gateway = gateway
        self._budget = budget
        self._poll_interval = poll_interval
        self._backfill = backfill
        #: Figures of the last `poll` (pages, orders, skips by reason): for telemetry and tests.
        self.last_poll = PollStats()

    # ---- polling ---------------------------------------------------------------------------

    def poll(self, now: datetime) -> Sequence[ShipOrder]:
        stats = PollStats()
        ready: list[ShipOrder] = []
        for seller in self._settings.sellers:
            try:
                # `ready` receives each message as its order is stored: a failure later in the
                # poll must not drop them, since the stored order is never "new" again.
                self._poll_seller(seller, now, stats, ready)
            except AppError as exc:
                # One seller's failure must not starve the others; its cursor stays where the
                # last fully stored page left it, and the next timer tries again.
                stats.skip(exc.code)
                record_count(f"poll_stopped_{exc.code}"[:40])
        self.last_poll = stats
        return [*ready, *self._redrive_stuck(now)]

    def past_ship_by(self, now: datetime) -> int:
        """How many orders still to ship have passed their ship-by date (telemetry's gauge for
        the orders-not-shipping rule)."""
        return self._repo.past_ship_by(now)

    def _redrive_stuck(self, now: datetime) -> list[ShipOrder]:
        """Send ShipOrder again for ready orders whose time in the redrive's index has come: a
        lost message (see `lifecycle.RESEND_AFTER`) or a retry after a transient failure. Past the ship-by
        date the lifecycle hands the order to a person instead. One indexed query per poll; a
        write only for an order due."""
        resent: list[ShipOrder] = []
        next_send = now + lifecycle.RESEND_AFTER
        for due in self._repo.due_to_send(now):
            if not lifecycle.may_ship_again(due):
                continue  # a guard: a label purchase is under way, or the order must not ship

            def change(current: OrderRecord, due: OrderRecord = due) -> OrderRecord | None:
                if current.extra != due.extra or not lifecycle.may_ship_again(current):
                    return None
                return lifecycle.ship_again_at(current, next_send, now)

            updated = self._repo.update(due.ref, change)
            if updated is not None and updated.extra.get(READY_AT) == next_send.isoformat():
                resent.append(ShipOrder(due.ref))
        return resent

    def _poll_seller(
        self, seller: SellerAccount, now: datetime, stats: PollStats, ready: list[ShipOrder]
    ) -> None:
        cursor = self._load_cursor(seller.seller_id, now)
        bucket = cursor.budget.refilled(now)
        # A poll that finds nothing may write nothing: when no backfill is running and the
        # token it spends is back in the bucket before the next poll, the stored state stays
        # exact without recording it (searchOrders refills one token in 179 s; the timer
        # polls every 5 minutes). The heartbeat writes all the same every CURSOR_HEARTBEAT.
        # What goes unrecorded otherwise is at most one token per failed poll (the page could
        # not be stored) or per extra run inside one refill time (a host restart's catch-up
        # run): Amazon's 429 then empties the stored bucket, and the poll stops until refilled.
        could_be_quiet = (
            cursor.cycle is None
            and bucket.is_full
            and 1.0 / bucket.rate <= self._poll_interval.total_seconds()
        )
        pages = 0
        restarted = False
        while True:
            cycle = cursor.cycle or self._new_cycle(cursor, now)
            if bucket.tokens < 1.0:
                break
            bucket = bucket.taken()
            try:
                page = self._gateway.search_orders(
                    seller.seller_id,
                    seller.marketplace_ids,
                    last_updated_after=datetime.fromisoformat(cycle["after"]),
                    pagination_token=cycle.get("token"),
                )
            except SpApiThrottled as exc:
                stats.throttled += 1
                self._save_cursor(cursor, now, cycle=cursor.cycle, budget=bucket.emptied(exc.rate))
                return
            except SpApiRejected:
                if not cycle.get("token") or restarted:
                    raise
                # An expired pagination token (24 h): start the cycle again from the watermark.
                restarted = True
                cursor = self._save_cursor(cursor, now, cycle=None, budget=bucket)
                continue
            bucket = bucket.observed(page.rate)
            pages += 1
            stats.pages += 1
            self._store_page(seller, page, now, stats, ready)
            if page.next_token:
                before = cycle.get("before") or (
                    page.last_updated_before.isoformat() if page.last_updated_before else None
                )
                cursor = self._save_cursor(
                    cursor, now, cycle={**cycle, "token": page.next_token, "before": before}, budget=bucket
                )
                continue
            quiet = could_be_quiet and pages == 1 and not page.orders and bucket.rate == cursor.budget.rate
            if quiet and not self._heartbeat_due(cursor, now):
                return
            done_at = page.last_updated_before or _time(cycle.get("before"))
            watermark = done_at or datetime.fromisoformat(cycle["startedAt"]) - SEARCH_LAG
            if cursor.watermark is not None:
                watermark = max(watermark, cursor.watermark)
            self._save_cursor(cursor, now, cycle=None, watermark=watermark, budget=bucket)
            return
        # Out of tokens: nothing changed since the last write, unless it is time for a heartbeat.
        if self._heartbeat_due(cursor, now):
            self._save_cursor(cursor, now, cycle=cursor.cycle, budget=bucket)

    @staticmethod
    def _heartbeat_due(cursor: _Cursor, now: datetime) -> bool:
        return cursor.last_poll_at is None or now - cursor.last_poll_at >= CURSOR_HEARTBEAT

    def _new_cycle(self, cursor: _Cursor, now: datetime) -> dict[str, Any]:
        start = (cursor.watermark - OVERLAP) if cursor.watermark else now - self._backfill
        cycle = {"after": start.isoformat(), "token": None, "before": None, "startedAt": now.isoformat()}
        cursor.cycle = cycle
        return cycle

    def _store_page(
        self, seller: SellerAccount, page: SearchPage, now: datetime, stats: PollStats, ready: list[ShipOrder]
    ) -> None:
        for payload in page.orders:
            stats.orders_seen += 1
            try:
                order = order_from_api(payload, seller.seller_id)
            except OrderMappingError as exc:
                stats.skip(exc.code)
                record_count(f"skipped_{exc.code}"[:40])
                self._hold_unmappable(payload, seller, now)
                continue
            if not order.is_merchant_fulfilled:
                stats.skip("not_merchant_fulfilled")
                continue
            if order.marketplace_id not in seller.marketplace_ids:
                stats.skip(UnknownMarketplace.code)
                continue
            wrote, message = self._store_order(order, now)
            stats.stored += int(wrote)
            if message is not None:
                ready.append(message)

    # ---- cursor ----------------------------------------------------------------------------

    def _load_cursor(self, seller_id: str, now: datetime) -> _Cursor:
        partition = seller_partition(seller_id)
        doc = self._store.read(STATE, partition, CURSOR_ID) or {"id": CURSOR_ID, "pk": partition}
        budget = doc.get("budget")
        return _Cursor(
            doc,
            _time(doc.get("watermark")),
            _time(doc.get("lastPollAt")),
            doc.get("cycle"),
            Bucket.from_doc(budget) if budget else Bucket.full(self._budget.plan(SEARCH_ORDERS), now),
        )

    def _save_cursor(
        self,
        cursor: _Cursor,
        now: datetime,
        *,
        cycle: Mapping[str, Any] | None,
        budget: Bucket,
        watermark: datetime | None = None,
    ) -> _Cursor:
        """CAS; a `WriteConflict` means another instance moved the cursor: this poll stops."""
        mark = watermark or cursor.watermark
        body: Document = {
            "id": CURSOR_ID,
            "pk": cursor.doc["pk"],
            "watermark": mark.isoformat() if mark else None,
            "lastPollAt": now.isoformat(),
            "cycle": dict(cycle) if cycle else None,
            "budget": budget.to_doc(),
        }
        etag = cursor.doc.get("_etag")
        saved = self._store.replace(STATE, body, etag) if etag else self._store.create(STATE, body)
        return _Cursor(saved, mark, now, saved.get("cycle"), budget)

    def poll_covers(self, seller_id: str, change_time: datetime | None, now: datetime) -> bool:
        """Will a timer poll within the next two intervals return an order changed at
        `change_time` anyway? (The next poll comes within one interval; when its search ends
        before `change_time`, the one after starts from that end.) Only while the cursor shows
        a poll in the last two intervals: quiet polls write nothing, so after a quiet spell the
        first notification is fetched; its change then makes the next poll write."""
        if change_time is None:
            return False
        cursor = self._load_cursor(seller_id, now)
        if cursor.cycle is not None or cursor.watermark is None or cursor.last_poll_at is None:
            return False  # a backfill is running: the next cycle may be hours away
        if now - cursor.last_poll_at > 2 * self._poll_interval:
            return False  # no sign the timer runs (a quiet spell, a stopped timer, failing polls)
        next_poll = now + self._poll_interval
        if not cursor.watermark - OVERLAP <= change_time <= next_poll - SEARCH_LAG:
            return False
        return cursor.budget.refilled(now).wait_for_one() <= self._poll_interval.total_seconds()

    # ---- storing ---------------------------------------------------------------------------

    def _store_order(self, order: Order, now: datetime) -> tuple[bool, ShipOrder | None]:
        """Write `order` if it is new or newer; returns (written, the ShipOrder it caused)."""
        ref = self._refs.ref(order.order_id)
        for _ in range(MAX_CAS_ATTEMPTS):
            current = self._repo.get(ref)
            try:
                if current is None:
                    requests = self._privacy_requests(ref)
                    if requests & FORGOTTEN:
                        return False, None
                    # A restriction that came before the order: it is held from the start.
                    restricted = AuditAction.RESTRICTED.value in requests
                    fresh = self._new_record(ref, order, now).evolve(restricted=restricted)
                    record = self._repo.create(fresh)
                    return True, _ship_order(record)
                if current.amazon_updated_at >= order.last_updated_at or current.being_erased:
                    return False, None
                updated = self._updated(current, order, now)
                if _only_amazon_bookkeeping_changed(current, updated):
                    return False, None
                record = self._repo.replace(updated)
            except WriteConflict:
                continue
            return True, _ship_order(record) if current.stage is not Stage.READY else None
        raise WriteConflict("order kept changing")

    def _hold_unmappable(self, payload: object, seller: SellerAccount, now: datetime) -> None:
        """An order this app cannot read is held for a person, not dropped: a new order gets a
        record without buyer data (only its order id, sealed) in `needs_attention`
        (`order_unmappable`), which Amazon's next update of the order re-reads. An order
        already stored keeps its state (the count in telemetry tells)."""
        identity = order_identity(payload)
        if identity is None or identity.marketplace_id not in seller.marketplace_ids:
            return
        ref = self._refs.ref(identity.order_id)
        if self._repo.get(ref) is not None:
            return
        requests = self._privacy_requests(ref)
        if requests & FORGOTTEN:
            return
        created = identity.created_at or now
        stage, attention = lifecycle.unreadable_stage(OrderMappingError.code)
        record = OrderRecord(
            ref=ref,
            seller_id=seller.seller_id,
            marketplace_id=identity.marketplace_id,
            stage=stage,
            amazon_status=UNREADABLE_STATUS,
            # Any readable version of the order is newer than this one.
            amazon_updated_at=identity.last_updated_at or created,
            created_at=created,
            ship_country=None,
            service_level=None,
            is_business=False,
            latest_ship_at=None,
            latest_delivery_at=None,
            items=(),
            pii=self._cipher.seal(ref, OrderPii(identity.order_id, Buyer(), None), now),
            attention=attention,
            restricted=AuditAction.RESTRICTED.value in requests,
        )
        with contextlib.suppress(WriteConflict):  # stored meanwhile: that version stands
            self._repo.create(record)

    def _privacy_requests(self, ref: str) -> set[str]:
        """The actions in the order's own audit partition: one query, empty for a new order."""
        return {str(doc.get("action")) for doc in self._store.in_partition(AUDIT, ref)}

    def _sealed(self, ref: str, order: Order, stage: Stage, now: datetime) -> Mapping[str, Any] | None:
        return None if stage is Stage.CANCELLED else self._cipher.seal(ref, OrderPii.of(order), now)

    def _keeping_corrections(self, current: OrderRecord, order: Order, now: datetime) -> Mapping[str, Any]:
        """Amazon's buyer data of `order`, sealed, with what a person corrected kept."""
        fresh = OrderPii.of(order)
        names = current.extra.get(CORRECTED)
        if names and current.pii is not None:
            fresh = with_corrections(fresh, self._cipher.open(current.ref, current.pii), names)
        return self._cipher.seal(current.ref, fresh, now)

    def _new_record(self, ref: str, order: Order, now: datetime) -> OrderRecord:
        stage, attention = lifecycle.entry_stage(order)
        return OrderRecord(
            ref=ref,
            seller_id=order.seller_id,
            marketplace_id=order.marketplace_id,
            stage=stage,
            amazon_status=order.fulfillment_status.value,
            amazon_updated_at=order.last_updated_at,
            created_at=order.created_at,
            ship_country=order.ship_to.country_code if order.ship_to else None,
            service_level=order.service_level,
            is_business=order.is_business,
            latest_ship_at=order.latest_ship_at,
            latest_delivery_at=order.latest_delivery_at,
            items=order.items,
            pii=self._sealed(ref, order, stage, now),
            attention=attention,
            extra={"packages": _packages(order.packages)}
            | ({READY_AT: (now + lifecycle.RESEND_AFTER).isoformat()} if stage is Stage.READY else {}),
        )

    def _updated(self, current: OrderRecord, order: Order, now: datetime) -> OrderRecord:
        amazon = {
            "amazon_status": order.fulfillment_status.value,
            "amazon_updated_at": order.last_updated_at,
            "extra": {**current.extra, "packages": _packages(order.packages)},
        }
        not_shipped = current.stage in lifecycle.NOT_SHIPPED
        if not_shipped and order.fulfillment_status in lifecycle.STOPPED_STATUSES:
            # The pipeline stops here and the buyer's data goes at once.
            return lifecycle.cancelled(current, attention=None, **amazon)
        if current.restricted:
            # Processing is restricted: nothing new about the buyer is learnt or acted on.
            return current.evolve(**amazon)
        reevaluate = current.stage is Stage.AWAITING or (
            current.stage is Stage.ATTENTION
            and current.attention in (lifecycle.NO_ADDRESS, OrderMappingError.code)
        )
        if reevaluate:
            fresh = self._new_record(current.ref, order, now)
            try:
                pii = self._keeping_corrections(current, order, now) if fresh.pii is not None else None
            except IntegrityFailure:
                # The corrections a person made cannot be read back: the order waits for them.
                return integrity.flagged(current.evolve(**amazon))
            return fresh.evolve(etag=current.etag, pii=pii, extra={**current.extra, **fresh.extra})
        if (
            current.stage is Stage.READY
            and not current.shipment
            and order.fulfillment_status in lifecycle.SENT_ELSEWHERE_STATUSES
        ):
            # Shipped, wholly or in part, outside this app (in Seller Central, say) before
            # shipping began here: never buy a label for it. Wholly: retention tracks it as any
            # shipped order. In part: the rest needs a person (the unshipped quantities).
            updated = current.evolve(**amazon)
            left = updated.evolve(extra=left_ready(updated.extra))
            if order.fulfillment_status is FulfillmentStatus.PARTIALLY_SHIPPED:
                return lifecycle.needs_attention(left, lifecycle.PARTIALLY_SHIPPED)
            shipped = lifecycle.shipped(left, ttl=None)
            return shipped.evolve(extra={**shipped.extra, SHIPPED_ELSEWHERE: True})
        if current.stage is Stage.READY:
            # Not shipped yet: keep the latest address and items Amazon has.
            try:
                pii = self._keeping_corrections(current, order, now)
            except IntegrityFailure:
                # A person's corrections cannot be read back: flagged, so the poll goes on.
                return integrity.flagged(current.evolve(**amazon))
            return current.evolve(
                items=order.items,
                ship_country=order.ship_to.country_code if order.ship_to else current.ship_country,
                pii=pii,
                **amazon,
            )
        return current.evolve(**amazon)

    # ---- notifications ---------------------------------------------------------------------

    def handle_notification(self, body: bytes, dequeue_count: int, now: datetime) -> Sequence[ShipOrder]:
        change = parse_order_change(body)
        seller = self._settings.seller(change.seller_id)
        if seller is None:
            raise UnknownSeller("notification for a seller that is not configured")
        if change.fulfillment_type != "MFN":
            return []
        if change.marketplace_id not in seller.marketplace_ids:
            raise UnknownMarketplace("notification for a marketplace the seller does not use")
        marker = f"notification|{change.dedupe_key}"
        if self._store.read(STATE, marker, marker) is not None:
            return []
        ready = self._apply(change, seller, dequeue_count, now)
        # WriteConflict: a concurrent delivery of the same notification finished first.
        # StoreUnavailable: the marker only saves repeat work; failing the message here would
        # lose `ready`, since its retry finds the order stored and sends nothing.
        with contextlib.suppress(WriteConflict, StoreUnavailable):
            self._store.create(STATE, {"id": marker, "pk": marker, "ttl": NOTIFICATION_MARKER_TTL_S})
        return ready

    def _apply(
        self, change: OrderChange, seller: SellerAccount, dequeue_count: int, now: datetime
    ) -> list[ShipOrder]:
        ref = self._refs.ref(change.order_id)
        current = self._repo.get(ref)
        if current is not None and change.change_time and current.amazon_updated_at >= change.change_time:
            return []  # this change (or a later one) is stored already
        # A cancellation is fetched at once, not left to the next poll: the buyer's data goes
        # now, and the order stops being shippable now.
        stopped = change.order_status in STOPPED_SUMMARY_STATUSES
        if not stopped and self.poll_covers(seller.seller_id, change.change_time, now):
            return []
        order = self._fetch(change, seller, dequeue_count, now)
        if not order.is_merchant_fulfilled:
            return []
        if order.fulfillment_status in lifecycle.SHIPPABLE_STATUSES and order.ship_to is None:
            raise OrderWithoutAddress("order to ship has no delivery address")
        _, message = self._store_order(order, now)
        return [message] if message else []

    def _fetch(self, change: OrderChange, seller: SellerAccount, dequeue_count: int, now: datetime) -> Order:
        grant = self._budget.try_acquire(seller.seller_id, GET_ORDER, now)
        if not grant.granted:
            raise IngestThrottled(GET_ORDER, grant.wait_s)
        try:
            fetched = self._gateway.get_order(seller.seller_id, change.order_id)
        except SpApiThrottled as exc:
            wait = self._budget.throttled(seller.seller_id, GET_ORDER, now, exc.rate)
            raise IngestThrottled(GET_ORDER, max(wait, exc.retry_after_s)) from None
        except SpApiNotFound:
            if dequeue_count < NOT_FOUND_RETRIES:
                raise OrderNotYetVisible("getOrder does not know the order yet") from None
            raise OrderNotFound("getOrder does not know the order") from None
        self._budget.observe(seller.seller_id, GET_ORDER, now, fetched.rate)
        order = order_from_api(fetched.order, seller.seller_id)
        if order.marketplace_id not in seller.marketplace_ids:
            raise UnknownMarketplace("order in a marketplace the seller does not use")
        return order


def _ship_order(record: OrderRecord) -> ShipOrder | None:
    """The shipping message an order just made ready causes (none while it is restricted)."""
    return ShipOrder(record.ref) if record.stage is Stage.READY and not record.restricted else None


def _only_amazon_bookkeeping_changed(current: OrderRecord, updated: OrderRecord) -> bool:
    """After shipping, Amazon's own bookkeeping (its status flipping to SHIPPED, the package our
    confirmation created) changes nothing this app acts on; only every package reaching
    DELIVERED does (the retention schedule then marks the order delivered in that write).
    Skipping the rest keeps an order's lifecycle to the writes that move it."""
    if current.stage not in (Stage.SHIPPED, Stage.DELIVERED, Stage.RETURNED):
        return False
    packages = updated.extra.get("packages") or []
    if current.stage is Stage.SHIPPED and packages and all(p.get("status") == "DELIVERED" for p in packages):
        return False
    before, after = current.to_doc(), updated.to_doc()
    for doc in (before, after):
        doc.pop("amazonStatus")
        doc.pop("amazonUpdatedAt")
        doc["extra"] = {k: v for k, v in doc["extra"].items() if k != "packages"}
    return before == after
