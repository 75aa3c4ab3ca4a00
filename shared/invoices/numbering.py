"""Gap-free invoice numbers per series: a compare-and-swap counter in the Cosmos `state` container.

Design notes: docs/invoices.md ("Design notes: `shared.invoices.numbering`")."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.errors import TransientError
from shared.storage.document_store import STATE, Document, DocumentStore, WriteConflict

MAX_ATTEMPTS = 400
BACKOFF_CAP_S = 2.0
RECENT_DAYS = 7
SETTLE_CHECKS = 10  # old claims checked per allocation: a bounded number of reads


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
        same write, up to `SETTLE_CHECKS` claims older than `RECENT_DAYS` are settled as
        `check` says, those checked longest ago first (a claim kept goes to the back)."""
        current = self.peek(series) or {}
        held = current.get("claims", {}).get(claim)
        if held is not None:
            return Allocation(series, int(held[0]), reused=True)
        verdicts = self._check_old_claims(series, current, claim, now, check)
        result: list[Allocation] = []

        def change(doc: Document) -> Document | None:
            claims = doc.setdefault("claims", {})
            if claim in claims:
                result.append(Allocation(series, int(claims[claim][0]), reused=True))
                return None
            number = int(doc.get("next", 1))
            _settle(doc, verdicts, now)
            claims[claim] = [number, now.isoformat()]
            doc["next"] = number + 1
            result.append(Allocation(series, number, reused=False))
            return doc

        self._cas(series, change, result.clear)
        return result[-1]

    @staticmethod
    def _check_old_claims(
        series: str, current: Document, claim: str, now: datetime, check: ClaimCheck
    ) -> dict[str, tuple[list[Any], ClaimVerdict]]:
        horizon = (now - timedelta(days=RECENT_DAYS)).isoformat()
        # An entry is [number, claimed at] or, once checked and kept, [number, claimed at, checked at].
        old = sorted(
            (entry[-1], key, entry)
            for key, entry in current.get("claims", {}).items()
            if key != claim and entry[1] < horizon
        )
        return {key: (entry, check(series, key, int(entry[0]))) for _, key, entry in old[:SETTLE_CHECKS]}

    def void(self, series: str, claim: str, now: datetime) -> None:
        """Keep a claimed number whose order vanished before recording, as voided."""

        def change(doc: Document) -> Document | None:
            held = doc.get("claims", {}).pop(claim, None)
            if held is None:
                return None
            _voided(doc, held, now)
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


def _settle(doc: Document, verdicts: Mapping[str, tuple[list[Any], ClaimVerdict]], now: datetime) -> None:
    """Apply the verdicts to the claims they were reached on (a claim changed since is left)."""
    claims = doc["claims"]
    for key, (entry, verdict) in verdicts.items():
        if claims.get(key) != entry:
            continue
        if verdict is ClaimVerdict.KEEP:
            claims[key] = [entry[0], entry[1], now.isoformat()]
            continue
        del claims[key]
        if verdict is ClaimVerdict.VOID:
            _voided(doc, entry, now)


def _voided(doc: Document, entry: list[Any], now: datetime) -> None:
    doc.setdefault("voided", []).append({"number": entry[0], "at": now.isoformat()})
