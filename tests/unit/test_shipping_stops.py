"""One label per order, and no confirmation to Amazon for an order that may no longer ship: a
purchase whose outcome is unknown keeps its intent, an order stopped while the carrier sold its
label is not confirmed, and only the lines and data the label needs leave the app."""

from __future__ import annotations

import base64
import http.client
from typing import Any

import pytest

from shared.orders.domain import OrderItem
from shared.orders.messages import ShipOrder
from shared.orders.record import OrderRecord, Stage
from shared.orders.repository import OrderRepository
from shared.shipping.carriers.amazon import AmazonBuyShipping
from shared.shipping.carriers.base import CarrierTimeout, Label, LabelRequest
from tests.fakes import FakeCarrier
from tests.worlds.shipping import NOW, REF, World, address

UK = "A1F83G8C2ARO7P"


class _BuyShipping:
    """Shipping v2 as Amazon keeps it: one shipment per idempotency key."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.bought: dict[str, str] = {}
        self.answer = answer

    def get_rates(self, body: Any) -> dict[str, Any]:
        rate = {"rateId": "r1", "serviceId": "std", "carrierId": "AMZN_UK", "carrierName": "Amazon Shipping"}
        return {"requestToken": "tok", "rates": [{**rate, "totalCharge": {"value": 3, "unit": "GBP"}}]}

    def purchase_shipment(self, body: Any, idempotency_key: str) -> dict[str, Any]:
        shipment = self.bought.setdefault(idempotency_key, f"SHP{len(self.bought) + 1}")
        return {**self.answer, "shipmentId": shipment}


def test_a_buy_shipping_answer_without_a_tracking_id_never_buys_a_second_label() -> None:
    """trackingId is optional in Shipping v2's PackageDocumentDetail: the answer proves a
    purchase all the same, so the intent stays and the retry replays the same key."""
    label = {"type": "LABEL", "format": "PDF", "contents": base64.b64encode(b"%PDF").decode()}
    api = _BuyShipping({"packageDocumentDetails": [{"packageDocuments": [label]}]})
    w = World()
    w.carriers["amazon"] = AmazonBuyShipping(api)  # type: ignore[arg-type]
    w.add(REF, marketplace=UK, addr=address(country="GB"))
    for _ in range(2):  # the first try, then the redrive's
        assert w.service().ship(ShipOrder(REF), NOW) == []
        assert (w.get(REF).shipment or {})["state"] == "intent"  # kept: the replay's key finds it
    assert len(api.bought) == 1


def test_a_connection_lost_after_the_request_leaves_the_outcome_unknown() -> None:
    from shared.shipping.carriers.karrio_adapter import KarrioCarrier

    def reset() -> None:
        raise http.client.RemoteDisconnected("Remote end closed connection without response")

    with pytest.raises(CarrierTimeout):
        KarrioCarrier("usps", {})._call(reset)


class _StoppedWhileSelling(FakeCarrier):
    def __init__(self, name: str, store: Any, stop: Any) -> None:
        super().__init__(name)
        self.store, self.stop = store, stop

    def create_label(self, request: LabelRequest) -> Label:
        OrderRepository(self.store).update(REF, self.stop)  # ingestion or a privacy request, meanwhile
        return super().create_label(request)


@pytest.mark.parametrize(
    "stop",
    [
        lambda r: r.evolve(stage=Stage.CANCELLED, pii=None),
        lambda r: r.evolve(restricted=True),
    ],
    ids=["cancelled", "restricted"],
)
def test_an_order_stopped_while_its_label_was_bought_is_not_confirmed(stop: Any) -> None:
    w = World()
    w.add(REF)
    w.carriers["usps"] = _StoppedWhileSelling("usps", w.store, stop)
    assert w.service().ship(ShipOrder(REF), NOW) == []
    record: OrderRecord = w.get(REF)
    assert w.confirmer.calls == [] and record.stage is not Stage.SHIPPED
    assert (record.shipment or {}).get("trackingNumber")  # the purchase is on it, to void


def test_only_lines_that_ship_are_confirmed_and_the_phone_only_goes_where_required() -> None:
    w = World()
    w.add(REF)  # Standard: USPS, which does not require a phone
    items = (
        OrderItem("OI-1", "B000", "MUG", "Mug", 2, None),
        OrderItem("OI-2", "B001", "MUG", "Mug", 0, None),
    )
    w.orders.update(REF, lambda r: r.evolve(items=items))
    w.service().ship(ShipOrder(REF), NOW)
    (call,) = w.confirmer.calls
    assert call["items"] == [("OI-1", 2)]
    (request,) = w.carriers["usps"].requests
    assert request.recipient is not None and request.recipient.phone is None
