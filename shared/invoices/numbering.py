"""Gap-free invoice numbers per series: a counter and its claims in one partition of the Cosmos
`state` container.

The counter item holds the next number; each number handed out is a claim item beside it,
created in the same transactional batch that moves the counter on, so no item grows with the
volume of invoices. Design notes: docs/invoices.md ("Design notes: `shared.invoices.numbering`")."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from shared.errors import TransientError
from shared.storage.document_store import STATE, BatchOp, Document, DocumentStore, WriteConflict

MAX_ATTEMPTS = 400
BACKOFF_CAP_S = 2.0
RECENT_DAYS = 7
SETTLE_CHECKS = 10  # old claims checked per allocation: a bounded number of reads
CLAIM_PREFIX = "invoice-claim:"
#: A claim's only indexed field (infra/modules/cosmos.bicep excludes `/claim/*`): when it was
#: claimed, or last checked and kept.
CHECKED_AT = "claimCheckedAt"

T = TypeVar("T")


class ClaimVerdict(StrEnum):
    """What a later allocation does with a week-old claim."""

    KEEP = "keep"  # not settled yet (its message may be replayed), or it could not be checked
    DROP = "drop"  # its number is on its order, or on the audit record of its purge or erasure
    VOID = "void"  # its order is gone and never held the number: kept in `voided`


# `verdict(series, claim, number)`: answered by the owner of the claim keys (invoicing).
ClaimCheck = Callable[[str, str, int], ClaimVerdict]


class CounterBusy(TransientError):
    code = "invoice_counter_busy"


@dataclass(frozen=True, slots=True)
class Allocation:
    series: str
    number: int
    reused: bool  # True when the claim already held this number (a redelivery)


def counter_id(series: str) -> str:
    return f"invoice-series:{series}"


def claim_id(claim: str) -> str:
    return f"{CLAIM_PREFIX}{claim}"


@dataclass(slots=True)
class Settlement:
    """The counter as last read, and the verdicts reached on week-old claim items (by item id),
    valid while the counter keeps that etag: every change to a claim moves the counter on in
    the same batch. The first attempt uses the reads the verdicts were reached on (`unused`)."""

    counter: Document | None
    verdicts: dict[str, tuple[Document, ClaimVerdict]]
    unused: bool = True


class InvoiceCounter:
    def __init__(
        self,
        store: DocumentStore,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._sleep = sleep
        self._monotonic = monotonic
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def _series_lock(self, series: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(series, threading.Lock())

    def allocate(self, series: str, claim: str, now: datetime, check: ClaimCheck) -> Allocation:
        """The number for `claim` in `series`: the one it holds, or the next free one. In the
        same batch, up to `SETTLE_CHECKS` claims older than `RECENT_DAYS` are settled as
        `check` says (a claim kept is stamped, so it waits another `RECENT_DAYS`)."""
        counter = self.peek(series)
        held = self.held(series, claim)  # read after the counter: see `_try_allocate`
        if held is not None:
            return Allocation(series, held, reused=True)
        settlement = Settlement(counter, self._check_old_claims(series, claim, now, check))
        with self._series_lock(series):
            return self._retrying(lambda: self._try_allocate(series, claim, now, settlement))

    def held(self, series: str, claim: str) -> int | None:
        """The number `claim` holds in `series`, if it holds one (one point read)."""
        item = self._claim(series, claim)
        return _number(item) if item is not None else None

    def _claim(self, series: str, claim: str) -> Document | None:
        return self._store.read(STATE, counter_id(series), claim_id(claim))

    def _try_allocate(self, series: str, claim: str, now: datetime, settlement: Settlement) -> Allocation:
        # The counter is read before the claims: a racing batch that changed a claim after
        # this read also moved the counter on, so this batch fails on its first write, the
        # counter's etag (the local stand-in, not atomic, relies on it).
        if settlement.unused:
            settlement.unused = False
            counter = settlement.counter
        else:
            counter = self.peek(series)
            held = self.held(series, claim)
            if held is not None:
                return Allocation(series, held, reused=True)
            self._drop_changed(series, settlement, counter)
        verdicts = settlement.verdicts
        doc: Document = counter or {"id": counter_id(series), "pk": counter_id(series), "series": series}
        number = int(doc.get("next", 1))
        changed = {**doc, "next": number + 1}
        settle = [_settled(changed, item, verdict, now) for item, verdict in verdicts.values()]
        claimed = BatchOp("create", _claim_item(series, claim, number, now))
        ops = [_counter_write(counter, changed), claimed, *settle]
        self._store.write_batch(STATE, counter_id(series), ops)
        return Allocation(series, number, reused=False)

    def _check_old_claims(
        self, series: str, claim: str, now: datetime, check: ClaimCheck
    ) -> dict[str, tuple[Document, ClaimVerdict]]:
        horizon = (now - timedelta(days=RECENT_DAYS)).isoformat()
        pk = counter_id(series)
        old = self._store.due_in(STATE, CHECKED_AT, horizon, SETTLE_CHECKS + 1, key="pk", values=[pk])
        others = [item for item in old if item["id"] != claim_id(claim)][:SETTLE_CHECKS]
        return {str(item["id"]): (item, check(series, _claim_key(item), _number(item))) for item in others}

    def _drop_changed(self, series: str, settlement: Settlement, counter: Document | None) -> None:
        """If the counter moved on, forget the verdicts on claims changed since (settled by another)."""
        if _etag(counter) == _etag(settlement.counter):
            return
        settlement.counter = counter
        for item_id, (item, _) in list(settlement.verdicts.items()):
            current = self._store.read(STATE, counter_id(series), item_id)
            if current is None or current["_etag"] != item["_etag"]:
                del settlement.verdicts[item_id]

    def void(self, series: str, claim: str, now: datetime) -> None:
        """Keep a claimed number whose order vanished before recording, as voided."""

        def attempt() -> None:
            counter = self.peek(series)
            item = self._claim(series, claim)
            if counter is None or item is None:
                return
            changed = dict(counter)
            _voided(changed, _number(item), now)
            ops = [_counter_write(counter, changed), _delete(item)]
            self._store.write_batch(STATE, counter_id(series), ops)

        with self._series_lock(series):
            self._retrying(attempt)

    def peek(self, series: str) -> Document | None:
        return self._store.read(STATE, counter_id(series), counter_id(series))

    def _retrying(self, attempt: Callable[[], T]) -> T:
        for n in range(MAX_ATTEMPTS):
            started = self._monotonic()
            try:
                return attempt()
            except WriteConflict:
                # Back off in units of the round trip just observed: with N writers racing,
                # spreading retries over ~N round trips lets most of them win on the next try.
                round_trip = max(self._monotonic() - started, 0.001)
                delay = min(BACKOFF_CAP_S, round_trip * 2 ** min(n, 6))
                self._sleep(self._rng.uniform(0, delay))
        raise CounterBusy("invoice counter kept changing")


def _claim_item(series: str, claim: str, number: int, now: datetime) -> Document:
    return {
        "id": claim_id(claim),
        "pk": counter_id(series),
        "claim": {"number": number, "at": now.isoformat()},
        CHECKED_AT: now.isoformat(),
    }


def _etag(doc: Document | None) -> str | None:
    return str(doc["_etag"]) if doc is not None else None


def _claim_key(item: Document) -> str:
    return str(item["id"]).removeprefix(CLAIM_PREFIX)


def _number(item: Document) -> int:
    return int(item["claim"]["number"])


def _counter_write(current: Document | None, changed: Document) -> BatchOp:
    if current is None:
        return BatchOp("create", changed)
    return BatchOp("replace", changed, str(current["_etag"]))


def _delete(item: Document) -> BatchOp:
    return BatchOp("delete", {"id": item["id"], "pk": item["pk"]}, str(item["_etag"]))


def _settled(counter: Document, item: Document, verdict: ClaimVerdict, now: datetime) -> BatchOp:
    """The write that applies `verdict` to `item` (a void is also noted on `counter`)."""
    if verdict is ClaimVerdict.KEEP:
        return BatchOp("replace", {**item, CHECKED_AT: now.isoformat()}, str(item["_etag"]))
    if verdict is ClaimVerdict.VOID:
        _voided(counter, _number(item), now)
    return _delete(item)


def _voided(counter: Document, number: int, now: datetime) -> None:
    counter["voided"] = [*counter.get("voided", []), {"number": number, "at": now.isoformat()}]
