"""Corrections a person made to an order's buyer data (`extra["corrected"]` names the fields),
and how Amazon's later data keeps them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import MISSING, fields, replace
from typing import Any

from shared.crypto.pii import Pii
from shared.orders.domain import Address, Buyer
from shared.orders.record import OrderPii

# Correctable fields: "buyer.<field>" and "shipTo.<field>" for every personal field.
_BUYER_FIELDS = {f.name for f in fields(Buyer)}
_ADDRESS_FIELDS = {f.name for f in fields(Address)} - {"country_code", "address_type"}
CORRECTABLE = frozenset({f"buyer.{n}" for n in _BUYER_FIELDS} | {f"shipTo.{n}" for n in _ADDRESS_FIELDS})

# Fields an address cannot do without: a correction may change them, never remove them.
REQUIRED = frozenset(f"shipTo.{f.name}" for f in fields(Address) if f.default is MISSING) & CORRECTABLE


def applied(pii: OrderPii, changes: Mapping[str, Pii | None]) -> OrderPii:
    """`changes` (correctable field names, checked by the caller) applied; None removes."""
    # Any: `replace` cannot type-check field names computed at run time; CORRECTABLE holds
    # exactly the Pii-typed fields, so every value fits its field.
    buyer: dict[str, Any] = {k.split(".", 1)[1]: v for k, v in changes.items() if k.startswith("buyer.")}
    ship: dict[str, Any] = {k.split(".", 1)[1]: v for k, v in changes.items() if k.startswith("shipTo.")}
    return OrderPii(
        order_id=pii.order_id,
        buyer=replace(pii.buyer, **buyer),
        ship_to=replace(pii.ship_to, **ship) if pii.ship_to is not None and ship else pii.ship_to,
    )


def with_corrections(fresh: OrderPii, corrected: OrderPii, names: Sequence[str]) -> OrderPii:
    """Amazon's newer buyer data (`fresh`), with the fields a person corrected (`names`) kept as
    `corrected` holds them (an address field only while Amazon still gives an address)."""
    changes: dict[str, Pii | None] = {}
    for name in set(names) & CORRECTABLE:
        part, field_name = name.split(".", 1)
        source = corrected.buyer if part == "buyer" else corrected.ship_to
        if source is not None and (part == "buyer" or fresh.ship_to is not None):
            changes[name] = getattr(source, field_name)
    return applied(fresh, changes) if changes else fresh
