"""Order ingestion: a timer polls the Selling Partner API; ORDER_CHANGE notifications arrive on
a queue. Orders that became ready to ship go to `shipments`."""

from typing import List  # the worker refuses Out[list[str]]: see pyproject.toml

import azure.functions as func

from shared.app import runtime
from shared.orders.messages import ORDER_NOTIFICATIONS, SHIPMENTS, STORAGE_CONNECTION

bp = func.Blueprint()


@bp.timer_trigger(arg_name="timer", schedule="%POLL_ORDERS_SCHEDULE%", run_on_startup=False)
@bp.queue_output(arg_name="shipments", queue_name=SHIPMENTS, connection=STORAGE_CONNECTION)
def poll_orders(timer: func.TimerRequest, shipments: func.Out[List[str]]) -> None:
    rt = runtime.current()
    with rt.telemetry.invocation("poll_orders") as record:
        ready = rt.ingestion.poll(rt.clock())
        shipments.set([m.encode() for m in ready])
        record.count("ready_to_ship", len(ready))
        record.count("past_ship_by", rt.ingestion.past_ship_by(rt.clock()))
    rt.telemetry.heartbeat(rt.clock(), "poll_orders")


@bp.queue_trigger(arg_name="msg", queue_name=ORDER_NOTIFICATIONS, connection=STORAGE_CONNECTION)
@bp.queue_output(arg_name="shipments", queue_name=SHIPMENTS, connection=STORAGE_CONNECTION)
def ingest_notification(msg: func.QueueMessage, shipments: func.Out[List[str]]) -> None:
    rt = runtime.current()
    with (
        rt.failures.guard(ORDER_NOTIFICATIONS, msg),
        rt.telemetry.invocation("ingest_notification", message=msg) as record,
    ):
        ready = rt.ingestion.handle_notification(msg.get_body(), msg.dequeue_count or 1, rt.clock())
        shipments.set([m.encode() for m in ready])
        record.count("ready_to_ship", len(ready))
