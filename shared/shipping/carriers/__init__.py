"""Carrier adapters behind one neutral interface (`shared.shipping.carriers.base`).

Importing this package imports no carrier SDK: the karrio adapters load karrio on first use,
so only the shipping path pays for it (see local/bench_shipping.py).
"""

from shared.shipping.carriers.base import (
    AddressProblem,
    Carrier,
    CarrierError,
    CarrierTimeout,
    CarrierUnavailable,
    Label,
    LabelItem,
    LabelRequest,
    Parcel,
    Recipient,
    ShipFrom,
    ShipmentRef,
    TrackingInfo,
)

__all__ = [
    "AddressProblem",
    "Carrier",
    "CarrierError",
    "CarrierTimeout",
    "CarrierUnavailable",
    "Label",
    "LabelItem",
    "LabelRequest",
    "Parcel",
    "Recipient",
    "ShipFrom",
    "ShipmentRef",
    "TrackingInfo",
]
