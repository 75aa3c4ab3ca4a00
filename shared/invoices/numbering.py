"""Gap-free invoice numbers per series: a compare-and-swap counter in the Cosmos `state` container.

One counter document per series (`id` = `pk` = "invoice-series:<series>") holds `next` (the
next number to hand out) and `claims` ({claim key: [number, claimed at]}: the numbers handed
out, each with its owner, the order reference and document kind). Allocation is one CAS that
increments `next` and writes the claim in the same write, so a number is never handed out
without its owner being written down beside it:

- a delivery of the same message (a redelivery, or a copy racing the first) gets the number
  its claim already holds: never a second one, and no gap from a crash between allocating and
  recording the number on the order;
- a claim stays for at least `RECENT_DAYS`. After that a later allocation drops it in its own
  write, once the order holds the number, or the order is gone (purged or erased). So recording
  an invoice costs no counter write of its own, and the document stays about a week of
  invoices long. A claim whose order exists without the number (its message poisoned before
  recording) stays: replayed weeks later, it still gets its own number;
- a claim whose order disappeared before recording is moved to `voided` with the date, so the
  register explains the number instead of reusing it (numbers are never reused).

Cosmos has no transaction across two documents here, so this single-document design is what
makes "allocate then record" safe. Concurrent writers lose the CAS and retry with jittered
backoff; every successful write hands out at most one number. Within one process the writers
of a series also queue on a local lock first, so the CAS only arbitrates between processes
(instances), and a burst of N messages on one worker costs N round trips instead of ~N^2.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.document_store import STATE, Document, DocumentStore, WriteConflict
from shared.errors import TransientError

MAX_ATTEMPTS = 400
BACKOFF_CAP_S = 2.0
RECENT_DAYS = 7
SETTLE_CHECKS = 10  # old claims checked per allocation: a bounded number of reads

# `settled(claim, number)`: True when the claim's entry may go: its order holds the number, or
# the order is gone. The owner of the claim keys (invoicing) answers it.
ClaimSettled = Callable[[str, int], bool]


class CounterBusy(TransientError):
    code = "invoice_counter_busy"


@dataclass(frozen=True, slots=True)
class Allocation:
    series: str
    number: int
    reused: bool  # True when the claim already held this number (a redelivery)


def counter_id(series: str) -> str:
    return f"invoice-series:{series}"


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

    def allocate(self, series: str, claim: str, now: datetime, settled: ClaimSettled) -> Allocation:
        """The number for `claim` in `series`: the one it holds, or the next free one. Claims
        older than `RECENT_DAYS` for which `settled(claim, number)` holds are dropped in the
        same write (at most `SETTLE_CHECKS` of them, oldest first, each checked once here)."""
        result: list[Allocation] = []
        done = self._settled_claims(series, claim, now - timedelta(days=RECENT_DAYS), settled)

        def change(doc: Document) -> Document | None:
            claims = doc.setdefault("claims", {})
            if claim in claims:
                result.append(Allocation(series, int(claims[claim][0]), reused=True))
                return None
            number = int(doc.get("next", 1))
            for old, old_number in done.items():
                if old in claims and claims[old][0] == old_number:
                    del claims[old]
            claims[claim] = [number, now.isoformat()]
            doc["next"] = number + 1
            result.append(Allocation(series, number, reused=False))
            return doc

        self._cas(series, change, result.clear)
        return result[-1]

    def _settled_claims(
        self, series: str, claim: str, horizon: datetime, settled: ClaimSettled
    ) -> dict[str, int]:
        current = self.peek(series) or {}
        old = sorted(
            (at, key, int(number))
            for key, (number, at) in current.get("claims", {}).items()
            if key != claim and at < horizon.isoformat()
        )
        return {key: number for _, key, number in old[:SETTLE_CHECKS] if settled(key, number)}

    def void(self, series: str, claim: str, now: datetime) -> None:
        """Keep a claimed number whose order vanished before recording, as voided."""

        def change(doc: Document) -> Document | None:
            held = doc.get("claims", {}).pop(claim, None)
            if held is None:
                return None
            doc.setdefault("voided", []).append({"number": held[0], "at": now.isoformat()})
            return doc

        self._cas(series, change, lambda: None)

    def peek(self, series: str) -> Document | None:
        return self._store.read(STATE, counter_id(series), counter_id(series))

    def _cas(
        self, series: str, change: Callable[[Document], Document | None], reset: Callable[[], None]
    ) -> None:
        with self._series_lock(series):
            self._cas_unlocked(series, change, reset)

    def _cas_unlocked(
        self, series: str, change: Callable[[Document], Document | None], reset: Callable[[], None]
    ) -> None:
        doc_id = counter_id(series)
        for attempt in range(MAX_ATTEMPTS):
            reset()
            started = self._monotonic()
            current = self._store.read(STATE, doc_id, doc_id)
            fresh = current is None
            doc: dict[str, Any] = current or {"id": doc_id, "pk": doc_id, "series": series, "next": 1}
            changed = change(doc)
            if changed is None:
                return
            try:
                if fresh:
                    self._store.create(STATE, changed)
                else:
                    self._store.replace(STATE, changed, str(doc["_etag"]))
                return
            except WriteConflict:
                # Back off in units of the round trip just observed: with N writers racing,
                # spreading retries over ~N round trips lets most of them win on the next try.
                round_trip = max(self._monotonic() - started, 0.001)
                delay = min(BACKOFF_CAP_S, round_trip * 2 ** min(attempt, 6))
                self._sleep(self._rng.uniform(0, delay))
        raise CounterBusy("invoice counter kept changing")
