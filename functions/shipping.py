"""Shipping: buy one label for a ready order, confirm the shipment to Amazon, and hand the
order to invoicing when it needs an invoice."""

from typing import List  # the worker refuses Out[list[str]]: see pyproject.toml

import azure.functions as func

from shared.app import runtime
from shared.orders.messages import INVOICES, SHIPMENTS, STORAGE_CONNECTION, ShipOrder

bp = func.Blueprint()


@bp.queue_trigger(arg_name="msg", queue_name=SHIPMENTS, connection=STORAGE_CONNECTION)
@bp.queue_output(arg_name="invoices", queue_name=INVOICES, connection=STORAGE_CONNECTION)
def ship_order(msg: func.QueueMessage, invoices: func.Out[List[str]]) -> None:
    rt = runtime.current()
    with rt.failures.guard(SHIPMENTS, msg), rt.telemetry.invocation("ship_order", message=msg) as record:
        request = ShipOrder.decode(msg.get_body())
        record.order(request.ref)
        next_steps = rt.shipping.ship(request, rt.clock())
        invoices.set([m.encode() for m in next_steps])
