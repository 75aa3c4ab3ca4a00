"""Privacy requests: access, correct, delete and restrict, and Amazon's deletion requests."""

import azure.functions as func

from shared.app import runtime
from shared.orders.messages import PRIVACY_REQUESTS, STORAGE_CONNECTION

bp = func.Blueprint()


@bp.queue_trigger(arg_name="msg", queue_name=PRIVACY_REQUESTS, connection=STORAGE_CONNECTION)
def handle_privacy_request(msg: func.QueueMessage) -> None:
    rt = runtime.current()
    with (
        rt.failures.guard(PRIVACY_REQUESTS, msg),
        rt.telemetry.invocation("handle_privacy_request", message=msg),
    ):
        rt.privacy.handle(msg.get_body(), rt.clock())
