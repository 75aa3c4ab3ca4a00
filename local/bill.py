"""The bill (issue 21): counted usage times the committed price table, docs/prices.json.

`Usage` holds what a run counted (Cosmos RUs, storage operations by class, Key Vault
operations, executions, GB-s, bytes logged to the Sentinel workspace); `cost()` prices it line by
line. `ru()` is Cosmos's documented RU model by operation and item size, for an emulator that
sends no `x-ms-request-charge`. docs/performance.md explains every term and its source.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

PRICES = Path(__file__).resolve().parent.parent / "docs" / "prices.json"
GB = 1e9  # Azure bills log and storage volume in units of 10^9 bytes


def load_prices(path: Path = PRICES) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


def value(table: dict[str, Any], name: str) -> Any:
    entry = table["prices"].get(name) or table["model"][name]
    return entry["value"]


@dataclass
class Usage:
    """Counts over some period (a run, a month): each field one meter of the bill."""

    cosmos_ru: float = 0.0
    blob_writes: int = 0
    blob_lists: int = 0
    blob_reads: int = 0
    blob_other: int = 0
    queue_class1: int = 0
    queue_class2: int = 0
    key_vault_ops: int = 0
    executions: int = 0
    gb_seconds: float = 0.0
    workspace_bytes: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def scaled(self, factor: float) -> Usage:
        return Usage(**{f.name: getattr(self, f.name) * factor for f in fields(self)})


def cost(usage: Usage, table: dict[str, Any]) -> dict[str, float]:
    """USD per line of the bill, list prices, without free grants."""
    p = lambda name: float(value(table, name))  # noqa: E731 - a short local alias
    per_gb_logged = p("log_analytics_analytics_per_gb") + p("sentinel_analytics_per_gb")
    return {
        "cosmos_ru": usage.cosmos_ru / 1e6 * p("cosmos_serverless_per_million_ru"),
        "blob_operations": (
            usage.blob_writes * p("blob_hot_write_per_10k")
            + usage.blob_lists * p("blob_hot_list_per_10k")
            + usage.blob_reads * p("blob_hot_read_per_10k")
            + usage.blob_other * p("blob_hot_other_per_10k")
        )
        / 1e4,
        "queue_operations": (
            usage.queue_class1 * p("queue_class1_per_10k") + usage.queue_class2 * p("queue_class2_per_10k")
        )
        / 1e4,
        "key_vault": usage.key_vault_ops / 1e4 * p("key_vault_per_10k"),
        "function_executions": usage.executions / 1e6 * p("functions_flex_per_million_executions"),
        "function_gb_seconds": usage.gb_seconds * p("functions_flex_gb_second"),
        "workspace_ingestion": usage.workspace_bytes / GB * per_gb_logged,
    }


def total(usage: Usage, table: dict[str, Any]) -> float:
    return sum(cost(usage, table).values())


def ru(operation: str, item_bytes: int, table: dict[str, Any], *, items: int = 0) -> float:
    """Cosmos RUs of one operation by its kind and the size of the item it reads or writes:
    `read`, `write` (create, replace, upsert, delete), `query` (a base charge plus a point read
    of each of `items` items of `item_bytes` on average)."""
    rows = value(table, "cosmos_ru_by_item_kb")
    kb = max(item_bytes, 1) / 1024
    read_ru, write_ru = next(((r, w) for size, r, w in rows if kb <= size), (rows[-1][1], rows[-1][2]))
    if operation == "read":
        return float(read_ru)
    if operation == "write":
        return float(write_ru)
    if operation == "query":
        return float(value(table, "cosmos_query_base_ru")) + items * float(read_ru)
    raise ValueError(f"unknown Cosmos operation {operation!r}")
