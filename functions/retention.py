"""Retention: learn when orders were delivered, and forget buyers 7 days later."""

import azure.functions as func

from shared import runtime

bp = func.Blueprint()


@bp.timer_trigger(arg_name="timer", schedule="%TRACK_DELIVERIES_SCHEDULE%", run_on_startup=False)
def track_deliveries(timer: func.TimerRequest) -> None:
    rt = runtime.current()
    with rt.telemetry.invocation("track_deliveries") as record:
        delivered = rt.retention.track_deliveries(rt.clock())
        record.count("delivered", delivered)


@bp.timer_trigger(arg_name="timer", schedule="%PURGE_EXPIRED_SCHEDULE%", run_on_startup=False)
def purge_expired(timer: func.TimerRequest) -> None:
    rt = runtime.current()
    with rt.telemetry.invocation("purge_expired") as record:
        purged = rt.retention.purge_expired(rt.clock())
        record.count("purged", purged)
