"""Amazon's ORDER_CHANGE notifications: a timer moves them from each seller's Amazon SQS queue onto
`order-notifications`, where `ingest_notification` (functions/ingest.py) reads them. A new LWA
client secret is handed to its rotation from SQS, never put on an Azure queue.

No output binding: the host sends an output binding's messages only after the function returns,
and the drain deletes each message from SQS only once it is on the Azure queue, so it sends them
itself (shared/ingestion/sqs_bridge.py). Telemetry: counts and reason codes, never a body."""

import azure.functions as func

from shared.app import runtime

bp = func.Blueprint()


@bp.timer_trigger(arg_name="timer", schedule="%DRAIN_NOTIFICATIONS_SCHEDULE%", run_on_startup=False)
def drain_notifications(timer: func.TimerRequest) -> None:
    rt = runtime.current()
    with rt.telemetry.invocation("drain_notifications") as record:
        if rt.notifications is not None:
            report = rt.notifications.drain()
            record.count("sellers", report.sellers)
            record.count("received", report.received)
            record.count("moved", report.moved)
            record.count("deleted", report.deleted)
            record.count("too_large", report.too_large)
            record.count("not_order_change", report.not_order_change)
            record.count("dead_letter_messages", report.dead_letter_messages)
            record.count("lwa_secret_stored", report.secrets_stored)
            record.count("lwa_secret_refused", report.secrets_refused)
            record.count("lwa_secret_repeated", report.secrets_repeated)
            record.count("failed_sellers", len(report.failures))
            report.raise_first_failure()
    rt.telemetry.heartbeat(rt.clock(), "drain_notifications")
