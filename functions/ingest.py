"""Order ingestion: a timer polls the Selling Partner API; ORDER_CHANGE notifications arrive on
a queue. Orders that became ready to ship go to `shipments`. The application's LWA secret
notifications come on the same queue and rotate the secret (shared/ingestion/lwa_rotation.py)."""

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
        body = msg.get_body()
        if rt.lwa_rotation is not None and rt.lwa_rotation.handles(body):
            outcome = rt.lwa_rotation.handle(body, rt.clock())
            record.count("lwa_rotation_requested", outcome.requested)
            record.count("lwa_secret_stored", outcome.stored)
            record.count("lwa_secret_refused", outcome.refused)
            record.count("lwa_secret_repeated", outcome.repeated)
            record.count("lwa_rotation_manual", outcome.manual)
            if outcome.days_left is not None:
                record.count("lwa_secret_days_left", outcome.days_left)
            return
        ready = rt.ingestion.handle_notification(body, msg.dequeue_count or 1, rt.clock())
        shipments.set([m.encode() for m in ready])
        record.count("ready_to_ship", len(ready))
