"""Retention: learn when orders were delivered, and forget buyers 7 days later."""

import azure.functions as func

from shared.app import runtime

bp = func.Blueprint()


@bp.timer_trigger(arg_name="timer", schedule="%TRACK_DELIVERIES_SCHEDULE%", run_on_startup=False)
def track_deliveries(timer: func.TimerRequest) -> None:
    rt = runtime.current()
    with rt.telemetry.invocation("track_deliveries") as record:
        report = rt.retention.track(rt.clock())
        record.count("delivered", len(report.delivered))
        record.count("returned", len(report.returned))
        record.count("rescheduled", report.rescheduled)
        record.count("source_errors", len(report.source_errors))
        record.count("failed", len(report.failed))
        report.raise_if_failed()
    rt.telemetry.heartbeat(rt.clock(), "track_deliveries")


@bp.timer_trigger(arg_name="timer", schedule="%PURGE_EXPIRED_SCHEDULE%", run_on_startup=False)
def purge_expired(timer: func.TimerRequest) -> None:
    rt = runtime.current()
    with rt.telemetry.invocation("purge_expired") as record:
        report = rt.retention.purge(rt.clock())
        record.count("purged", len(report.purged))
        record.count("purged_unshipped", report.unshipped)
        record.count("purge_lateness_max_s", int(max((p.lateness_seconds for p in report.purged), default=0)))
        record.count("shredded_epochs", len(report.shredded_epochs))
        record.count("archive_deleted", report.archive_deleted)
        record.count("purge_deferred", len(report.deferred))
        record.count("failed", len(report.failed))
        report.raise_if_failed()
    rt.telemetry.heartbeat(rt.clock(), "purge_expired")
