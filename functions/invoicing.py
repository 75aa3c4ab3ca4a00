"""Invoicing: issue the tax invoice (or credit note) of a shipped order and deliver it."""

import azure.functions as func

from shared.app import runtime
from shared.orders.messages import INVOICES, STORAGE_CONNECTION, IssueInvoice

bp = func.Blueprint()


@bp.queue_trigger(arg_name="msg", queue_name=INVOICES, connection=STORAGE_CONNECTION)
def issue_invoice(msg: func.QueueMessage) -> None:
    rt = runtime.current()
    with rt.failures.guard(INVOICES, msg), rt.telemetry.invocation("issue_invoice", message=msg) as record:
        request = IssueInvoice.decode(msg.get_body())
        record.order(request.ref)
        rt.invoicing.issue(request, rt.clock())
