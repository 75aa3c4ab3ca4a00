"""The eight functions the app registers, binding for binding: the one table that both the
azure-functions library's view (test_wiring) and Microsoft's worker (test_worker_indexing) must
reproduce exactly."""

from typing import Any

from shared.orders.messages import (
    INVOICES,
    ORDER_NOTIFICATIONS,
    PRIVACY_REQUESTS,
    SHIPMENTS,
    STORAGE_CONNECTION,
)


def _timer(schedule_setting: str) -> dict[str, Any]:
    return {
        "direction": "IN",
        "type": "timerTrigger",
        "name": "timer",
        "schedule": f"%{schedule_setting}%",
        "runOnStartup": False,
    }


def _queue_trigger(queue: str) -> dict[str, Any]:
    return {
        "direction": "IN",
        "type": "queueTrigger",
        "name": "msg",
        "queueName": queue,
        "connection": STORAGE_CONNECTION,
    }


def _queue_output(name: str, queue: str) -> dict[str, Any]:
    return {
        "direction": "OUT",
        "type": "queue",
        "name": name,
        "queueName": queue,
        "connection": STORAGE_CONNECTION,
    }


FUNCTIONS: dict[str, list[dict[str, Any]]] = {
    "poll_orders": [_timer("POLL_ORDERS_SCHEDULE"), _queue_output("shipments", SHIPMENTS)],
    "ingest_notification": [_queue_trigger(ORDER_NOTIFICATIONS), _queue_output("shipments", SHIPMENTS)],
    "ship_order": [_queue_trigger(SHIPMENTS), _queue_output("invoices", INVOICES)],
    "issue_invoice": [_queue_trigger(INVOICES)],
    "track_deliveries": [_timer("TRACK_DELIVERIES_SCHEDULE")],
    "purge_expired": [_timer("PURGE_EXPIRED_SCHEDULE")],
    "handle_privacy_request": [_queue_trigger(PRIVACY_REQUESTS)],
    # No output binding: it sends to order-notifications itself, before deleting from SQS.
    "drain_notifications": [_timer("DRAIN_NOTIFICATIONS_SCHEDULE")],
}


def by_name(bindings: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Bindings keyed by their argument name, for order-free comparison."""
    return {str(b["name"]): b for b in bindings}
