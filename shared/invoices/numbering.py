"""Gap-free invoice numbers per series: a compare-and-swap counter in the Cosmos `state` container.

One counter document per series (`id` = `pk` = "invoice-series:<series>") holds
`next` (the next number to hand out) and `pending` ({claim key: number}): numbers handed out
whose invoice is not yet recorded on its order. Allocation is one CAS that increments `next`
and records the claim in the same write, so a number can never be handed out without its
owner being written down beside it:

- a redelivered message with the same claim key (order ref + kind) gets the number it already
  has: never a second one, and never a gap left by a crash between allocate and record;
- after the number is on the order document, `release` drops the claim (a later redelivery
  finds the number on the order and only repeats the release);
- a claim whose order disappeared before recording is moved to `voided` with the date, so the
  register explains the number instead of reusing it (numbers are never reused).

Cosmos has no transaction across two documents here, so this single-document design is what
makes "allocate then record" safe. Concurrent writers lose the CAS and retry with jittered
backoff; every success hands out exactly one number.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.document_store import STATE, Document, DocumentStore, WriteConflict
from shared.errors import TransientError

MAX_ATTEMPTS = 400
BACKOFF_BASE_S = 0.002
BACKOFF_CAP_S = 0.05


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
    ) -> None:
        self._store = store
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security

    def allocate(self, series: str, claim: str) -> Allocation:
        """The number for `claim` in `series`: the one it holds, or the next free one."""
        result: list[Allocation] = []

        def change(doc: Document) -> Document | None:
            pending = doc.setdefault("pending", {})
            if claim in pending:
                result.append(Allocation(series, int(pending[claim]), reused=True))
                return None
            number = int(doc.get("next", 1))
            pending[claim] = number
            doc["next"] = number + 1
            result.append(Allocation(series, number, reused=False))
            return doc

        self._cas(series, change, result.clear)
        return result[-1]

    def release(self, series: str, claim: str) -> None:
        """Forget a claim whose number is recorded on its order."""

        def change(doc: Document) -> Document | None:
            if claim not in doc.get("pending", {}):
                return None
            del doc["pending"][claim]
            return doc

        self._cas(series, change, lambda: None)

    def void(self, series: str, claim: str, now: datetime) -> None:
        """Keep a claimed number whose order vanished before recording, as voided."""

        def change(doc: Document) -> Document | None:
            number = doc.get("pending", {}).pop(claim, None)
            if number is None:
                return None
            doc.setdefault("voided", []).append({"number": number, "at": now.isoformat()})
            return doc

        self._cas(series, change, lambda: None)

    def peek(self, series: str) -> Document | None:
        return self._store.read(STATE, counter_id(series), counter_id(series))

    def _cas(
        self, series: str, change: Callable[[Document], Document | None], reset: Callable[[], None]
    ) -> None:
        doc_id = counter_id(series)
        for attempt in range(MAX_ATTEMPTS):
            reset()
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
                delay = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** min(attempt, 5))
                self._sleep(self._rng.uniform(0, delay))
        raise CounterBusy("invoice counter kept changing")
