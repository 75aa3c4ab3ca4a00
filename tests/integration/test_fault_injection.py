"""Fault injection across the whole chain (issue 11, item 2), on `local.pipeline.Pipeline`.

Faults: a crash after each external side effect and before the state write that records it
(label purchase, confirmShipment, invoice number and blob, feed upload, purge); Cosmos 429 and
503 raised inside the Cosmos client so the app's own error mapping sees them; SP-API 429 and
500; carrier 5xx; carriers selling labels whose answers are lost; every carrier, or Amazon's
confirmShipment, down for 30 simulated hours; Key Vault unavailable; duplicated and out-of-order messages.

Invariants, from evidence (the store, blobs, audit records, the stand-ins' own records, poison
queues), never from what the driver meant to do: every order ends in exactly one final state;
no label, confirmation package or invoice is duplicated; nothing with PII outlives its deadline;
every poison message carries a reason.

Each scenario is one `Pipeline` run (4-10 orders, 10-50 s).
"""

from __future__ import annotations

import base64
import itertools
import json
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.cosmos import exceptions as cosmos_errors

from local import sample_orders
from local.pipeline import Pipeline
from shared.orders.messages import INVOICES, ORDER_NOTIFICATIONS, SHIPMENTS, IssueInvoice, ShipOrder
from shared.storage.blob_store import INVOICES as INVOICE_BLOBS
from shared.storage.blob_store import LABELS, AzureBlobStore
from shared.storage.document_store import AUDIT, ORDERS, BatchOp, CosmosDocumentStore, DocumentStore
from tests.builders import unshipped_orders

pytestmark = pytest.mark.integration

Document = dict[str, Any]
MARKETPLACES = ["A1PA6795UKMFR9", "A13V1IB3VIYZZH", "APJ6JRA9NG5V4", "A1F83G8C2ARO7P"]
FINAL = {"delivered", "returned", "cancelled", "needs_attention"}
# Where a shippable order's life ends: delivered, or sent back by the carrier (carrier_returned).
DONE = {"delivered", "returned", "cancelled"}
RUN_LIMIT = timedelta(days=40)
# Enough for every order to be shipped, confirmed and invoiced (not delivered nor purged).
SHORT_RUN = timedelta(days=3)
# The purge timer runs hourly; each queue batch the driver runs lets 5 simulated seconds pass.
PURGE_INTERVAL_S = 3600
PURGE_SLACK_S = PURGE_INTERVAL_S + 600


class Crash(Exception):
    """The process died between a side effect and the write that records it."""


def _orders(count: int, seed: int) -> list[dict[str, Any]]:
    return unshipped_orders(count, seed, MARKETPLACES)


# ---- the fault-injecting store ----------------------------------------------------------------


def _state(doc: Mapping[str, Any] | None) -> str | None:
    return (doc or {}).get("shipment", {}).get("state") if (doc or {}).get("shipment") else None


def _invoice(doc: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    value = ((doc or {}).get("invoice") or {}).get("invoice")
    return value if isinstance(value, Mapping) else None


def _delivery(doc: Mapping[str, Any] | None) -> str | None:
    return (_invoice(doc) or {}).get("delivery", {}).get("status")


Transition = Callable[[Mapping[str, Any] | None, Mapping[str, Any]], bool]

# The order writes that record an external side effect: (before, after) -> is it this one?


def after_confirm_shipment(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    return (old or {}).get("stage") == "ready_to_ship" and new.get("stage") == "shipped"


def after_feed_upload(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    # The document is recorded once, with the upload's outcome (shared/invoices/service.py).
    return _invoice(old) is None and _delivery(new) == "submitted"


@dataclass
class CrashRule:
    name: str
    when: Transition | None  # None: the purge's deletion of the order document
    hit: str | None = None  # the order reference it crashed


class FaultStore:
    """The app's document store, with crashes on chosen order writes (each rule once, each on
    a different order so outcomes can be told apart) and a journal of every order document the
    app read or wrote (the last one before a purge tells its final state and reason)."""

    def __init__(
        self, inner: DocumentStore, rules: Sequence[CrashRule] = (), crash_after_creates: int | None = None
    ) -> None:
        self.inner = inner
        self.rules = list(rules)
        self.last: dict[str, Document] = {}
        #: Die once right after this many orders were created (stored, their messages unsent).
        self.crash_after_creates = crash_after_creates
        self.creates = 0

    def _crash_on(self, old: Document | None, new: Document | None, ref: str) -> None:
        hit = {r.hit for r in self.rules}
        for rule in self.rules:
            if rule.hit is not None or ref in hit:
                continue
            matches = new is None if rule.when is None else new is not None and rule.when(old, new)
            if matches:
                rule.hit = ref
                raise Crash(rule.name)

    def _seen(self, container: str, doc: Document | None) -> Document | None:
        if container == ORDERS and doc is not None:
            self.last[str(doc["id"])] = doc
        return doc

    def read(self, container: str, partition: str, doc_id: str) -> Document | None:
        return self._seen(container, self.inner.read(container, partition, doc_id))

    def create(self, container: str, doc: Document) -> Document:
        created = self.inner.create(container, doc)
        self._seen(container, created)
        if container == ORDERS:
            self.creates += 1
            if self.creates == self.crash_after_creates:
                raise Crash("after_order_stored")
        return created

    def replace(self, container: str, doc: Document, etag: str) -> Document:
        if container == ORDERS:
            self._crash_on(self.last.get(str(doc["id"])), doc, str(doc["id"]))
        replaced = self.inner.replace(container, doc, etag)
        self._seen(container, replaced)
        return replaced

    def delete(self, container: str, partition: str, doc_id: str, etag: str | None = None) -> bool:
        if container == ORDERS:
            self._crash_on(self.last.get(doc_id), None, doc_id)
        return self.inner.delete(container, partition, doc_id, etag)

    def write_batch(self, container: str, partition: str, ops: Sequence[BatchOp]) -> None:
        self.inner.write_batch(container, partition, ops)  # the invoice counter's: no order in it

    def due(self, container: str, field: str, upto: str, limit: int) -> list[Document]:
        return self.inner.due(container, field, upto, limit)

    def due_in(
        self, container: str, field: str, upto: str, limit: int, *, key: str, values: Sequence[str]
    ) -> list[Document]:
        return self.inner.due_in(container, field, upto, limit, key=key, values=values)

    def exists_where(self, container: str, field: str, value: str) -> bool:
        return self.inner.exists_where(container, field, value)

    def in_partition(self, container: str, partition: str) -> list[Document]:
        return self.inner.in_partition(container, partition)

    def scan(self, container: str) -> Iterator[Document]:
        return self.inner.scan(container)


@dataclass
class BlobCrash:
    """The process dies at the first blob write of `container` in the run (patched into
    `AzureBlobStore.<method>`): `before` it (a label bought, its blob, the purchase's record,
    never stored: shared/shipping/service.py) or right after it (an invoice's blob stored, the upload
    not begun: shared/invoices/service.py)."""

    container: str
    method: str  # "put" or "create"
    before: bool
    hit: str | None = None  # the order reference it crashed

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original = getattr(AzureBlobStore, self.method)

        def write(
            store: AzureBlobStore,
            container: str,
            name: str,
            data: bytes,
            metadata: Mapping[str, str] | None = None,
        ) -> object:
            if container != self.container or self.hit is not None:
                return original(store, container, name, data, metadata)
            self.hit = name.partition("/")[0]
            if not self.before:
                original(store, container, name, data, metadata)
            raise Crash(f"{'before' if self.before else 'after'} {self.container} blob")

        monkeypatch.setattr(AzureBlobStore, self.method, write)


# ---- Cosmos faults inside the Cosmos client -------------------------------------------------


class CosmosFaults:
    """Counts calls to the Cosmos container clients and raises the SDK's own
    `CosmosHttpResponseError` on a burst of consecutive calls every `every` calls, so the
    app's mapping (`shared.storage.document_store._mapped`) turns it into what it would in Azure."""

    METHODS = ("read_item", "create_item", "replace_item", "delete_item", "query_items", "execute_item_batch")

    def __init__(self, every: int, burst: Sequence[int]) -> None:
        self.every = every
        self.burst = list(burst)
        self.calls = itertools.count(1)
        self.raised: Counter[int] = Counter()

    def status_for_next_call(self) -> int | None:
        position = next(self.calls) % self.every
        return self.burst[position - 1] if 1 <= position <= len(self.burst) else None

    def wrap(self, container: Any) -> Any:
        faults = self

        class Faulty:
            def __getattr__(self, name: str) -> Any:
                real = getattr(container, name)
                if name not in CosmosFaults.METHODS:
                    return real

                def call(*args: Any, **kwargs: Any) -> Any:
                    status = faults.status_for_next_call()
                    if status is not None:
                        faults.raised[status] += 1
                        raise cosmos_errors.CosmosHttpResponseError(
                            status_code=status, message="injected by the fault test"
                        )
                    return real(*args, **kwargs)

                return call

        return Faulty()

    def store(self, pipeline: Pipeline) -> DocumentStore:
        """A second Cosmos store on the same emulator whose container clients fail."""
        from azure.cosmos import CosmosClient

        env = pipeline.env
        client = CosmosClient(env["COSMOS_ENDPOINT"], credential=env["COSMOS_KEY"], connection_verify=False)
        store = CosmosDocumentStore(client, env["COSMOS_DATABASE"])
        store._containers = {name: self.wrap(c) for name, c in store._containers.items()}
        return store


# ---- driving ----------------------------------------------------------------------------------


def on_timers(pipeline: Pipeline, hook: Callable[[list[str]], None]) -> None:
    """Run `hook(fired)` after each round of timers, before the queues are drained."""
    fire = pipeline.host.fire_due_timers

    def fired_then_hook() -> list[str]:
        fired = fire()
        hook(fired)
        return fired

    pipeline.host.fire_due_timers = fired_then_hook  # type: ignore[method-assign]


def queued(pipeline: Pipeline, queue: str) -> list[str]:
    client = pipeline.queue_service.get_queue_client(queue)
    return [base64.b64decode(m.content).decode() for m in client.peek_messages(max_messages=32)]


def notification(order: Mapping[str, Any], notification_id: str, change_time: str) -> str:
    body = {
        "NotificationVersion": "1.0",
        "NotificationType": "ORDER_CHANGE",
        "PayloadVersion": "1.0",
        "EventTime": change_time,
        "Payload": {
            "OrderChangeNotification": {
                "NotificationLevel": "OrderLevel",
                "SellerId": "A1LOCALSELLER",
                "AmazonOrderId": order["orderId"],
                "OrderChangeType": "OrderStatusChange",
                "OrderChangeTrigger": {"TimeOfOrderChange": change_time, "ChangeReason": "OrderStatusChange"},
                "Summary": {
                    "MarketplaceId": order["salesChannel"]["marketplaceId"],
                    "OrderStatus": "Unshipped",
                    "PurchaseDate": order["createdTime"],
                    "DestinationPostalCode": None,
                    "FulfillmentType": "MFN",
                    "OrderType": "StandardOrder",
                    "OrderItems": [],
                },
            }
        },
        "NotificationMetadata": {
            "ApplicationId": "app",
            "SubscriptionId": "sub",
            "PublishTime": change_time,
            "NotificationId": notification_id,
        },
    }
    return json.dumps(body)


# ---- evidence and invariants ----------------------------------------------------------------


@dataclass
class Evidence:
    refs: dict[str, str]  # Amazon order id -> reference
    final: dict[str, str]  # reference -> final stage
    attention: dict[str, str | None]
    purges: Counter[str]
    problems: list[str] = field(default_factory=list)


def _pii_tokens(orders: Sequence[Mapping[str, Any]]) -> set[str]:
    return {value for order in orders for value in sample_orders.pii_values(order)}


def evidence(
    p: Pipeline, journal: FaultStore, purge_slack_s: float = PURGE_SLACK_S, *, complete: bool = True
) -> Evidence:
    """The invariants' evidence and every problem found. `complete=False` after a short run:
    orders are still on their way, so final states and deadlines are not judged."""
    from shared.orders.reference import OrderReferencer

    referencer = OrderReferencer(p.secret_store())
    refs = {str(o["orderId"]): referencer.ref(str(o["orderId"])) for o in p.orders}
    remaining = {str(d["id"]): d for d in p.documents(ORDERS)}
    audits = [d for d in p.documents(AUDIT) if d.get("action") == "purged"]
    purges = Counter(str(d["ref"]) for d in audits)
    purged_stage = {str(d["ref"]): str(d["details"]["stage"]) for d in audits}
    final: dict[str, str] = {}
    attention: dict[str, str | None] = {}
    for ref in refs.values():
        doc = remaining.get(ref) or journal.last.get(ref) or {}
        final[ref] = purged_stage.get(ref) or str(doc.get("stage"))
        attention[ref] = doc.get("attention")
    ev = Evidence(refs, final, attention, purges)
    if complete:
        ev.problems += _final_states(ev, remaining)
        ev.problems += _deadlines(p, audits, remaining, purge_slack_s)
    ev.problems += _no_duplicates(p, ev, journal)
    ev.problems += _poison(p)
    return ev


def _final_states(ev: Evidence, remaining: Mapping[str, Document]) -> list[str]:
    problems = []
    for order_id, ref in ev.refs.items():
        places = ev.purges[ref] + (ref in remaining)
        if places != 1:
            problems.append(f"{order_id}: purged {ev.purges[ref]} times, stored {ref in remaining}")
        if ev.final[ref] not in FINAL:
            problems.append(f"{order_id}: ended in {ev.final[ref]}")
        if ev.final[ref] == "needs_attention" and not ev.attention[ref]:
            problems.append(f"{order_id}: needs attention without a reason")
    return problems


def _no_duplicates(p: Pipeline, ev: Evidence, journal: FaultStore) -> list[str]:
    problems = [f"{ref}: {n} label blobs" for ref, n in p.observed.labels.items() if n > 1]
    problems += [f"{ref}: {n} invoice blobs" for ref, n in p.observed.invoices.items() if n > 1]
    purchases = sum(c.purchases for c in p.carriers.all().values())
    # A label bought and never stored is the person's (label_intent_unresolved), never bought again.
    unresolved = sum(1 for ref in ev.refs.values() if ev.attention[ref] == "label_intent_unresolved")
    if purchases != len(p.observed.labels) + unresolved:
        problems.append(
            f"{purchases} labels bought at carriers, {len(p.observed.labels)} orders with a label,"
            f" {unresolved} left to a person"
        )
    issued = {str(t) for c in p.carriers.all().values() for t in c.labels.values()}
    for order_id in ev.refs:
        packages = p.spapi.order(order_id).get("packages") or []
        confirmed = {
            str(c.body["packageDetail"]["trackingNumber"])
            for c in p.spapi.confirmations
            if c.order_id == order_id
        }
        if len(packages) > 1 or len(confirmed) > 1:
            problems.append(
                f"{order_id}: {len(packages)} packages at Amazon, tracking numbers {len(confirmed)}"
            )
        if confirmed - issued:
            problems.append(f"{order_id}: confirmed a tracking number no carrier issued")
    invoices = [_invoice(journal.last.get(ref)) for ref in ev.refs.values()]
    numbers = Counter(str(i["numberText"]) for i in invoices if i)
    problems += [f"invoice number {n} used {c} times" for n, c in numbers.items() if c > 1]
    by_series: dict[str, list[int]] = {}
    for invoice in filter(None, invoices):
        by_series.setdefault(str(invoice["series"]), []).append(int(invoice["number"]))
    for series, used in by_series.items():
        if sorted(used) != list(range(1, len(used) + 1)):
            problems.append(f"series {series}: numbers {sorted(used)} have gaps")
    return problems + duplicate_uploads(p)


def duplicate_uploads(p: Pipeline) -> list[str]:
    uploads = Counter(
        (f.options.get("metadata:OrderId"), f.options.get("metadata:InvoiceNumber"))
        for f in p.feeds.feeds.values()
    )
    return [
        f"invoice {number} of {order} uploaded {n} times" for (order, number), n in uploads.items() if n > 1
    ]


def _deadlines(
    p: Pipeline, audits: Sequence[Document], remaining: Mapping[str, Document], slack_s: float
) -> list[str]:
    problems = []
    for audit in audits:
        lateness = float(audit["details"]["latenessSeconds"])
        if lateness > slack_s:
            problems.append(f"{audit['ref']}: purged {lateness:.0f} s after its deadline")
    now = p.clock()
    for ref, doc in remaining.items():
        if doc.get("pii") is not None and (not doc.get("purgeAfter") or doc["purgeAfter"] <= now.isoformat()):
            problems.append(f"{ref}: buyer data past (or without) its deadline")
    purged = {str(a["ref"]) for a in audits}
    for container, name, _, _ in p.blobs():
        if name.split("/", 1)[0] in purged and container != "invoice-archive":
            problems.append(f"{container}/{name} outlived its order")
    return problems


def _poison(p: Pipeline) -> list[str]:
    problems = []
    if p.host.stats.poisoned_by_host:
        problems.append(f"{p.host.stats.poisoned_by_host} messages poisoned by the host without a reason")
    tokens = _pii_tokens(p.orders)
    for queue in p.host.queue_names():
        for text in queued(p, f"{queue}-poison"):
            try:
                reason = json.loads(text).get("reason")
            except ValueError:
                reason = None
            if not reason:
                problems.append(f"{queue}-poison: a message without a reason")
            if any(t in text for t in tokens):
                problems.append(f"{queue}-poison: a message with buyer data")
    return problems


def unexpected_outcomes(ev: Evidence) -> dict[str, str]:
    """Orders that ended neither delivered (or returned) nor cancelled, except those handed to a person
    because a transient fault struck between a label purchase and its record: on carriers that
    cannot replay, that is the designed outcome (`label_intent_unresolved`, docs/shipping.md),
    and which order it strikes depends only on how the app's calls line up with the faults."""
    return {
        ref: f"{stage}:{ev.attention[ref]}"
        for ref, stage in ev.final.items()
        if stage not in DONE
        and not (stage == "needs_attention" and ev.attention[ref] == "label_intent_unresolved")
    }


def poison_reasons(p: Pipeline) -> list[str]:
    return [json.loads(t)["reason"] for q in p.host.queue_names() for t in queued(p, f"{q}-poison")]


def scenario_refs(p: Pipeline, ev: Evidence, kind: str) -> set[str]:
    return {ev.refs[o] for o, s in p.world.scenario.items() if s == kind}


# ---- scenarios --------------------------------------------------------------------------------


def _journaled(
    rules: Sequence[CrashRule] = (),
    base: Callable[[], DocumentStore] | None = None,
    crash_after_creates: int | None = None,
) -> Any:
    """A `wrap_store` for `Pipeline` that puts a `FaultStore` (kept in `.journal`) in front of
    the counting store, or of the store `base()` builds."""

    class Wrap:
        journal: FaultStore

        def __call__(self, inner: DocumentStore) -> DocumentStore:
            self.journal = FaultStore(base() if base else inner, rules, crash_after_creates)
            return self.journal

    return Wrap()


def test_crash_after_each_side_effect_on_carriers_that_cannot_replay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Production karrio carriers: a label bought before a crash is never bought again; the
    order goes to a person (`label_intent_unresolved`). An invoice stored before a crash is
    never sent (whether it was is unknown to the redelivery); it goes to a person. Everything
    else resumes."""
    label_crash = BlobCrash(LABELS, "put", before=True)
    label_crash.install(monkeypatch)
    invoice_crash = BlobCrash(INVOICE_BLOBS, "create", before=False)
    invoice_crash.install(monkeypatch)
    rules = [
        CrashRule("after_confirm_shipment", after_confirm_shipment),
        CrashRule("after_purge_deleted_blobs", None),
    ]
    wrap = _journaled(rules)
    with Pipeline(_orders(10, seed=11), tmp_path, wrap_store=wrap) as p:
        p.run(limit=RUN_LIMIT)
        ev = evidence(p, wrap.journal)
        failures = dict(p.host.stats.failures)
        confirmations = Counter(c.order_id for c in p.spapi.confirmations)
        uploaded = {f.options.get("metadata:InvoiceNumber") for f in p.feeds.feeds.values()}

    hit = {r.name: r.hit for r in rules}
    assert None not in hit.values(), hit
    assert ev.problems == []
    label_ref = label_crash.hit
    assert label_ref is not None and label_ref not in hit.values()
    assert invoice_crash.hit is not None
    unsent = (wrap.journal.last[invoice_crash.hit].get("invoice") or {})["invoice"]
    assert unsent["delivery"] == {"status": "manual", "error": "invoice_feed_upload_unknown"}
    assert unsent["numberText"] not in uploaded
    assert (ev.final[label_ref], ev.attention[label_ref]) == ("needs_attention", "label_intent_unresolved")
    assert {ev.final[r] for r in ev.refs.values() if r != label_ref} <= DONE
    order_of = {ref: order_id for order_id, ref in ev.refs.items()}
    # confirmShipment was sent again after the crash: the same package, edited, not a second one.
    assert confirmations[order_of[hit["after_confirm_shipment"]]] == 2
    assert order_of[label_ref] not in confirmations
    assert failures["ship_order"] == 2 and failures["issue_invoice"] == 1 and failures["purge_expired"] == 1


def test_crash_after_invoice_feed_upload_does_not_upload_twice(tmp_path: Path) -> None:
    """The process dies after createFeed and before the document is recorded: the redelivery
    finds the number claimed and the dead invocation's blob, sends nothing, and records the
    invoice for a person (`manual`, `invoice_feed_upload_unknown`); the other orders upload
    once each."""
    rules = [CrashRule("after_feed_upload", after_feed_upload)]
    wrap = _journaled(rules)
    with Pipeline(_orders(4, seed=12), tmp_path, wrap_store=wrap) as p:
        p.run(limit=SHORT_RUN)
        duplicates = duplicate_uploads(p)
        uploaded = {f.options.get("metadata:InvoiceNumber") for f in p.feeds.feeds.values()}

    crashed = rules[0].hit
    assert crashed is not None
    assert duplicates == []
    deliveries = {
        ref: (doc.get("invoice") or {}).get("invoice", {}).get("delivery", {})
        for ref, doc in wrap.journal.last.items()
    }
    assert deliveries[crashed]["status"] == "manual"
    assert deliveries[crashed]["error"] == "invoice_feed_upload_unknown"
    submitted = [d for ref, d in deliveries.items() if ref != crashed and d.get("status") == "submitted"]
    assert len(uploaded) == len(submitted) + 1


def test_crash_after_poll_stored_orders_before_their_messages_were_sent(tmp_path: Path) -> None:
    """The poll dies after storing orders and before the host sends their shipments messages:
    the ready orders are sent again (shared/ingestion/service.py), shipped once each."""
    wrap = _journaled(crash_after_creates=2)
    with Pipeline(_orders(4, seed=16), tmp_path, wrap_store=wrap) as p:
        p.run(limit=SHORT_RUN)
        ev = evidence(p, wrap.journal, complete=False)
        failures = dict(p.host.stats.failures)
        confirmed = {c.order_id for c in p.spapi.confirmations}
        to_ship = {o for o, kind in p.world.scenario.items() if kind != "cancelled"}

    assert failures["poll_orders"] == 1
    assert ev.problems == [], "\n".join(ev.problems)
    assert confirmed == to_ship


def test_label_crash_replays_on_idempotent_carriers_and_carrier_5xx_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `carriers_replay_safe` the stand-ins' idempotency (same reference, same label) is
    used: the crashed purchase is replayed and the order ships with its first label. Carrier
    503s clear the intent and the retry buys one label."""
    label_crash = BlobCrash(LABELS, "put", before=True)
    label_crash.install(monkeypatch)
    wrap = _journaled()
    with Pipeline(_orders(8, seed=13), tmp_path, wrap_store=wrap, carriers_replay_safe=True) as p:
        for carrier in p.carriers.all().values():
            carrier.fail_next(2)
        p.run(limit=RUN_LIMIT)
        ev = evidence(p, wrap.journal)
        attempts = sum(len(c.label_bodies()) for c in p.carriers.all().values())
        purchases = sum(c.purchases for c in p.carriers.all().values())

    assert label_crash.hit is not None
    assert ev.problems == []
    assert ev.final[label_crash.hit] in DONE - {"cancelled"}  # shipped once
    shipped = len(ev.refs) - len(scenario_refs(p, ev, "cancelled"))
    assert {"delivered", "cancelled"} <= set(ev.final.values()) <= DONE, ev.attention
    # Every purchase attempt is on the wire: 503s, the replay, and one label per shipped order.
    assert purchases == shipped
    assert attempts >= shipped + 1 + 2


def test_cosmos_spapi_and_feeds_throttling_and_outages(tmp_path: Path) -> None:
    """Cosmos 429/503 bursts inside the Cosmos client (the app maps them itself), SP-API 429
    and 500 on searchOrders and confirmShipment, Feeds 429 and 503: everything is retried or
    re-queued, and every order still lives its whole life."""
    cosmos = CosmosFaults(every=40, burst=[429, 503, 429])
    # The app's store is built while the pipeline starts, from the pipeline's own settings.
    wrap = _journaled(base=lambda: cosmos.store(p))
    p = Pipeline(_orders(10, seed=14), tmp_path, wrap_store=wrap)
    with p:
        p.spapi.fail_next("searchOrders", 429, 1)
        p.spapi.fail_next("searchOrders", 500, 1)
        p.spapi.fail_next("confirmShipment", 429, 2)
        p.spapi.fail_next("confirmShipment", 500, 2)
        p.feeds.fail_next(503, 2)
        p.feeds.fail_next(429, 1)
        p.run(limit=RUN_LIMIT)
        # These faults bypass the Cosmos SDK's own 429 retries: a purge run they fail is run
        # again by the next timer, one interval later.
        ev = evidence(p, wrap.journal, purge_slack_s=2 * PURGE_INTERVAL_S + 600)
        spapi_calls = dict(p.spapi.calls)
        confirmed = {c.order_id for c in p.spapi.confirmations}
        failures = dict(p.host.stats.failures)
        reasons = poison_reasons(p)

    assert ev.problems == [], "\n".join(ev.problems)
    assert reasons == []
    assert cosmos.raised[429] >= 5 and cosmos.raised[503] >= 3
    assert unexpected_outcomes(ev) == {}
    # Four injected failures, then one accepted call per order Amazon holds as shipped.
    assert spapi_calls["confirmShipment"] >= 4 + len(confirmed)
    assert failures.get("ship_order", 0) >= 2 and failures.get("issue_invoice", 0) >= 2


def test_key_vault_outage_and_duplicated_out_of_order_messages(tmp_path: Path) -> None:
    """Notifications before the first poll and again (stale) after it, every shipments and
    invoices message delivered twice, and Key Vault answering 503 (no SDK retries) while they
    are handled; afterwards late notifications for orders already purged."""
    orders = _orders(8, seed=15)
    wrap = _journaled()
    with Pipeline(orders, tmp_path, wrap_store=wrap, key_vault_options={"retry_total": 0}) as p:
        early = [o for i, o in enumerate(orders) if i % 2 == 0]
        for o in early:
            p.host.send(ORDER_NOTIFICATIONS, notification(o, f"early-{o['orderId']}", o["lastUpdatedTime"]))
        p.drain()
        polls: list[int] = []

        def disturb(fired: list[str]) -> None:
            if "poll_orders" not in fired or polls:
                return
            polls.append(1)
            p.vault.fail_next(503, 6)
            for body in queued(p, SHIPMENTS):
                p.host.send(SHIPMENTS, body)
            for ref in wrap.journal.last:
                p.host.send(SHIPMENTS, ShipOrder(ref).encode())
                p.host.send(INVOICES, IssueInvoice(ref).encode())
            for o in orders:
                stale = notification(o, f"stale-{o['orderId']}", o["createdTime"])
                p.host.send(ORDER_NOTIFICATIONS, stale)
                p.host.send(ORDER_NOTIFICATIONS, stale)

        on_timers(p, disturb)
        p.run(limit=RUN_LIMIT)
        vault_faults_left = len(p.vault.vault.faults) if p.vault.vault else -1
        for o in orders:
            p.host.send(ORDER_NOTIFICATIONS, notification(o, f"late-{o['orderId']}", o["lastUpdatedTime"]))
        p.drain()
        ev = evidence(p, wrap.journal)
        reasons = poison_reasons(p)

    assert polls and vault_faults_left == 0
    assert ev.problems == [], "\n".join(ev.problems)
    assert unexpected_outcomes(ev) == {}
    assert reasons == []


def test_carriers_down_for_30_hours_every_shippable_order_gets_exactly_one_label_after_recovery(
    tmp_path: Path,
) -> None:
    """Issue 24: every carrier answers 503 for 30 simulated hours from the first poll. No
    message is poisoned and no order goes to a person: each failed try puts the order back in
    the redrive's index with a back-off, and after the recovery every order that is not
    cancelled is labelled once, confirmed once and delivered (docs/shipping.md "Outages")."""
    outage = timedelta(hours=30)
    orders = _orders(6, seed=17)
    wrap = _journaled()
    with Pipeline(orders, tmp_path, wrap_store=wrap) as p:
        recovery = p.clock() + outage
        for carrier in p.carriers.all().values():
            carrier.fail_next(1_000_000)
        tried_in_outage: list[int] = []

        def end_outage(fired: list[str]) -> None:
            if p.clock() >= recovery and not tried_in_outage:
                tried_in_outage.append(sum(len(c.label_bodies()) for c in p.carriers.all().values()))
                for carrier in p.carriers.all().values():
                    carrier.fail_next(0)  # the carriers are back

        on_timers(p, end_outage)
        p.run(limit=RUN_LIMIT)
        ev = evidence(p, wrap.journal)
        reasons = poison_reasons(p)
        failures = dict(p.host.stats.failures)
        purchases = sum(c.purchases for c in p.carriers.all().values())
        confirmations = Counter(c.order_id for c in p.spapi.confirmations)
        first_confirmed = min(c.at for c in p.spapi.confirmations)
        labels = dict(p.observed.labels)
        shippable = {o for o, kind in p.world.scenario.items() if kind != "cancelled"}

    ship_by = min(datetime.fromisoformat(o["fulfillment"]["shipByWindow"]["latestDateTime"]) for o in orders)
    assert ship_by > recovery  # the outage ends before any order's ship-by date
    assert ev.problems == [], "\n".join(ev.problems)
    assert reasons == [] and failures.get("ship_order", 0) == 0
    # Every order was tried during the outage, at least once an hour (the local poll's interval).
    assert tried_in_outage and tried_in_outage[0] >= len(shippable) * 25
    assert first_confirmed >= recovery
    assert len(shippable) >= 4 and confirmations == Counter(dict.fromkeys(shippable, 1))
    assert purchases == len(shippable)
    assert sorted(labels.values()) == [1] * len(shippable)
    assert {ev.final[ev.refs[o]] for o in shippable} <= {"delivered", "returned"}  # the parcel left


def test_amazon_refusing_confirmations_for_30_hours_confirms_each_label_once_after_recovery(
    tmp_path: Path,
) -> None:
    """confirmShipment answers 503 for 30 simulated hours: each order's label is bought once
    and kept (`purchased`); the order is tried again with the back-off, never poisoned, and
    after the recovery each one is confirmed, invoiced and delivered without a second label."""
    outage = timedelta(hours=30)
    wrap = _journaled()
    with Pipeline(_orders(5, seed=18), tmp_path, wrap_store=wrap) as p:
        recovery = p.clock() + outage
        p.spapi.fail_next("confirmShipment", 503, 1_000_000)
        refused: list[int] = []

        def end_outage(fired: list[str]) -> None:
            if p.clock() >= recovery and not refused:
                refused.append(p.spapi.calls["confirmShipment"])
                p.spapi.recover("confirmShipment")

        on_timers(p, end_outage)
        p.run(limit=RUN_LIMIT)
        ev = evidence(p, wrap.journal)
        reasons = poison_reasons(p)
        purchases = sum(c.purchases for c in p.carriers.all().values())
        confirmations = Counter(c.order_id for c in p.spapi.confirmations)
        first_confirmed = min(c.at for c in p.spapi.confirmations)
        shippable = {o for o, kind in p.world.scenario.items() if kind != "cancelled"}

    assert ev.problems == [], "\n".join(ev.problems)
    assert reasons == []
    assert refused and refused[0] >= len(shippable) * 25  # tried about hourly through the outage
    assert first_confirmed >= recovery
    assert len(shippable) >= 3 and confirmations == Counter(dict.fromkeys(shippable, 1))
    assert purchases == len(shippable)
    assert {ev.final[ev.refs[o]] for o in shippable} <= {"delivered", "returned"}  # the parcel left


def test_labels_whose_answers_were_lost_are_found_by_the_replay_and_never_bought_twice(
    tmp_path: Path,
) -> None:
    """Each carrier sells its next 6 labels and closes the connection before answering: to the
    app, a timeout whose outcome is unknown. More losses than the host's 5 deliveries: the order
    keeps its intent and waits in the redrive's index with the back-off (never poisoned, never
    stuck), and the replay's same reference finds the label bought, so every order that is not
    cancelled ships with one label and one confirmation."""
    wrap = _journaled()
    with Pipeline(_orders(8, seed=19), tmp_path, wrap_store=wrap, carriers_replay_safe=True) as p:
        for carrier in p.carriers.all().values():
            carrier.lose_answers_next(6)
        p.run(limit=RUN_LIMIT)
        ev = evidence(p, wrap.journal)
        reasons = poison_reasons(p)
        failures = dict(p.host.stats.failures)
        lost = sum(c.lost for c in p.carriers.all().values())
        confirmations = Counter(c.order_id for c in p.spapi.confirmations)
        labels = dict(p.observed.labels)
        shippable = {o for o, kind in p.world.scenario.items() if kind != "cancelled"}

    assert lost >= 6
    assert ev.problems == [], "\n".join(ev.problems)
    assert reasons == [] and failures.get("ship_order", 0) == 0
    assert len(shippable) >= 5 and confirmations == Counter(dict.fromkeys(shippable, 1))
    assert sorted(labels.values()) == [1] * len(shippable)
    assert {ev.final[ev.refs[o]] for o in shippable} <= {"delivered", "returned"}
