"""Test data built in one place: an order as the store holds it, every field a test does not
care about filled in, no buyer data unless the test gives some."""

from datetime import datetime
from typing import Any

from shared.orders.record import OrderRecord, Stage


def order_record(*, at: datetime, **fields: Any) -> OrderRecord:
    """A ready, unshipped order created and last updated by Amazon `at`; `fields` override."""
    defaults: dict[str, Any] = {
        "ref": "ref-000000001",
        "seller_id": "S",
        "marketplace_id": "M",
        "stage": Stage.READY,
        "amazon_status": "UNSHIPPED",
        "amazon_updated_at": at,
        "created_at": at,
        "ship_country": "DE",
        "service_level": None,
        "is_business": False,
        "latest_ship_at": None,
        "latest_delivery_at": None,
        "items": (),
        "pii": None,
    }
    return OrderRecord(**{**defaults, **fields})
