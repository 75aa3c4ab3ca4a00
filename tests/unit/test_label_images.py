"""UPS label images are made 1-bit before karrio reads the ship response; nothing else changes,
and an image that cannot be read is the app's typed error."""

from __future__ import annotations

import base64
import io
import json
from datetime import date
from decimal import Decimal
from types import SimpleNamespace

import pytest
from PIL import Image

from shared.crypto.pii import Pii
from shared.shipping.carriers import CarrierTimeout, LabelRequest, Parcel, Recipient, ShipFrom
from shared.shipping.carriers.karrio_adapter import KarrioCarrier
from shared.shipping.carriers.label_images import LabelImageUnreadable, one_bit_ups_labels
from shared.telemetry.invocations import error_code
from tests.worlds.handoff import CREDENTIALS


def grey_gif() -> bytes:
    image = Image.new("L", (40, 20), 255)
    image.paste(0, (10, 0, 20, 20))  # a black bar
    image.paste(90, (30, 0, 35, 20))  # a dark grey bar prints black
    image.paste(200, (0, 0, 5, 20))  # a light grey prints white
    out = io.BytesIO()
    image.save(out, format="GIF")
    return out.getvalue()


def ship_response(package: object) -> str:
    return json.dumps({"ShipmentResponse": {"ShipmentResults": {"PackageResults": package}}})


def test_a_single_packages_gif_becomes_a_one_bit_png_of_the_same_bars() -> None:
    label = {"ImageFormat": {"Code": "GIF"}, "GraphicImage": base64.b64encode(grey_gif()).decode()}
    body = one_bit_ups_labels(ship_response({"TrackingNumber": "1Z1", "ShippingLabel": label}))

    shipped = json.loads(body)["ShipmentResponse"]["ShipmentResults"]["PackageResults"]["ShippingLabel"]
    assert shipped["ImageFormat"]["Code"] == "PNG"
    image = Image.open(io.BytesIO(base64.b64decode(shipped["GraphicImage"])))
    assert image.mode == "1"
    row = [image.getpixel((x, 10)) for x in range(40)]
    assert [x for x, v in enumerate(row) if v == 0] == [*range(10, 20), *range(30, 35)]


def test_error_pages_and_zpl_labels_pass_unchanged() -> None:
    zpl = ship_response([{"ShippingLabel": {"ImageFormat": {"Code": "ZPL"}, "GraphicImage": "XlhB"}}])
    assert one_bit_ups_labels(zpl) == zpl
    assert one_bit_ups_labels("Service Unavailable") == "Service Unavailable"
    refused = json.dumps({"response": {"errors": [{"code": "120202"}]}})
    assert one_bit_ups_labels(refused) == refused


def label_response(graphic_image: str) -> str:
    label = {"ImageFormat": {"Code": "GIF"}, "GraphicImage": graphic_image}
    return ship_response({"TrackingNumber": "1Z1", "ShippingLabel": label})


@pytest.mark.parametrize(
    "graphic_image",
    [
        pytest.param("R0lGODlhA", id="corrupt base64"),
        pytest.param(base64.b64encode(b"GIF89a" + b"\x00" * 7).decode(), id="truncated gif"),
        pytest.param(base64.b64encode(b"not an image at all").decode(), id="no image"),
    ],
)
def test_an_unreadable_label_image_is_the_apps_typed_error_not_a_librarys(graphic_image: str) -> None:
    with pytest.raises(LabelImageUnreadable) as raised:
        one_bit_ups_labels(label_response(graphic_image))

    assert error_code(raised.value) == "label_image_unreadable"
    assert raised.value.transient and raised.value.__cause__ is None
    assert raised.value.__suppress_context__


def test_a_ups_purchase_answered_with_an_unreadable_image_keeps_its_intent_as_a_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """UPS answers the purchase (its proxy stubbed at karrio's class, under the adapter's own
    wrappers) with an image that is not base64. karrio turns what its proxy raises into a
    message; the adapter gives back the typed error (a label may have been bought), not karrio's
    internal error, which reads as an outage and would clear the intent."""
    from karrio.mappers.ups.proxy import Proxy

    answer = SimpleNamespace(value=label_response("R0lGODlhA"))
    monkeypatch.setattr(Proxy, "create_shipment", lambda self, request: answer)
    carrier = KarrioCarrier("ups", CREDENTIALS["ups"], base_url="http://127.0.0.1:9", replay_safe=False)

    with pytest.raises(CarrierTimeout) as raised:
        carrier.create_label(label_request())

    assert error_code(raised.value) == "label_image_unreadable"


def label_request() -> LabelRequest:
    return LabelRequest(
        idempotency_key="intent-1",
        service="ups_ground",
        ship_from=ShipFrom("Dispatch", "1 Dock St", "Seattle", "98101", "US", state_or_region="WA"),
        parcel=Parcel(Decimal("0.6"), Decimal(20), Decimal(15), Decimal(10)),
        ship_date=date(2026, 1, 5),
        recipient=Recipient(
            name=Pii("Jane Doe"), line1=Pii("2 Main St"), city=Pii("Austin"), postal_code=Pii("78701"),
            country_code="US", state_or_region=Pii("TX"), phone=Pii("5125550100"),
        ),
    )  # fmt: skip
