"""Long text never stops a valid order (issue 24, item 6): Amazon sets no length on a buyer's
name, so a 2,000-character one maps; a carrier's label gets each field within that carrier's
limit, the shortening is counted, and the order keeps the full text."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from karrio.core import models

from shared.crypto.pii import Pii
from shared.ingestion.amazon_orders import order_from_api
from shared.shipping.carriers import karrio_adapter
from shared.shipping.carriers.base import Recipient

LONG = "Ä" + "b" * 1998 + "Z"  # 2,000 characters


def _sandbox_order(model: dict[str, Any]) -> dict[str, Any]:
    get_order = model["paths"]["/orders/2026-01-01/orders/{orderId}"]["get"]
    order: dict[str, Any] = get_order["responses"]["200"]["x-amzn-api-sandbox"]["static"][0]["response"][
        "order"
    ]
    return copy.deepcopy(order)


def test_a_2000_character_buyer_name_and_address_map(amazon_model: Any) -> None:
    raw = _sandbox_order(amazon_model("orders_2026-01-01.json"))
    raw.setdefault("buyer", {})["buyerName"] = LONG
    order = order_from_api(raw, "SELLER")
    assert order.buyer.name is not None and order.buyer.name.reveal() == LONG


@pytest.mark.parametrize("carrier", sorted(karrio_adapter.LABEL_LIMITS))
def test_the_label_gets_each_field_within_the_carriers_limit_and_counts_it(
    carrier: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    counted: list[tuple[str, int]] = []
    monkeypatch.setattr(karrio_adapter, "record_count", lambda name, value=1: counted.append((name, value)))
    recipient = Recipient(
        name=Pii(LONG),
        line1=Pii("1" * 300),
        city=Pii("C" * 100),
        postal_code=Pii("98101"),
        country_code="US",
        company=Pii("Co " * 40),
    )
    address = karrio_adapter._address(models, recipient, carrier)
    limits = karrio_adapter.LABEL_LIMITS[carrier]
    assert 0 < len(address.person_name) <= limits["name"] and address.person_name.startswith("Äbbb")
    assert len(address.address_line1) <= limits["line"] and len(address.city) <= limits["city"]
    assert len(address.company_name) <= limits["company"]
    assert counted == [(karrio_adapter.SHORTENED_COUNTER, 4)]
    assert recipient.name.reveal() == LONG  # the order's own text is untouched


def test_a_field_within_the_limit_is_sent_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    counted: list[object] = []
    monkeypatch.setattr(karrio_adapter, "record_count", lambda *a: counted.append(a))
    recipient = Recipient(
        name=Pii("Erika Mustermann"),
        line1=Pii("1 Main St"),
        city=Pii("Seattle"),
        postal_code=Pii("98101"),
        country_code="US",
    )
    address = karrio_adapter._address(models, recipient, "ups")
    assert address.person_name == "Erika Mustermann" and counted == []
