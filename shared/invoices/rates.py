"""The statutory VAT rates of each country on a given date, from the dated table
`vat_rates.json` next to this module (its sources and the meaning of its dates are in the file
and in docs/invoices.md). An invoice prints only a rate from this table, never a ratio.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

TABLE = Path(__file__).resolve().parent / "vat_rates.json"
KINDS = frozenset({"standard", "reduced", "super-reduced", "parking", "zero"})


@dataclass(frozen=True, slots=True)
class StatutoryRate:
    country: str
    rate: Decimal
    kind: str
    since: date
    until: date | None
    source: str

    def valid_on(self, day: date) -> bool:
        return self.since <= day and (self.until is None or day <= self.until)


def parse_table(doc: Mapping[str, Any]) -> tuple[StatutoryRate, ...]:
    """The entries of a rate table document; raises ValueError on an entry without a known
    kind, a date or a listed source, so a broken table fails at start, not on an invoice."""
    sources = doc["sources"]
    entries = []
    for country, listed in doc["rates"].items():
        for entry in listed:
            if entry["kind"] not in KINDS or entry["source"] not in sources:
                raise ValueError(f"vat_rates.json: {country} has an entry of unknown kind or source")
            until = entry.get("until")
            entries.append(
                StatutoryRate(
                    country=country,
                    rate=Decimal(entry["rate"]),
                    kind=entry["kind"],
                    since=date.fromisoformat(entry["since"]),
                    until=date.fromisoformat(until) if until else None,
                    source=entry["source"],
                )
            )
    return tuple(entries)


@cache
def table() -> tuple[StatutoryRate, ...]:
    return parse_table(json.loads(TABLE.read_text(encoding="utf-8")))


def statutory_rates(country: str, day: date) -> tuple[Decimal, ...]:
    """The rates of `country` in force on `day`, highest first; () for a country or a date the
    table does not cover."""
    rates = {e.rate for e in table() if e.country == country and e.valid_on(day)}
    return tuple(sorted(rates, reverse=True))


def covered(country: str) -> bool:
    return any(e.country == country for e in table())
