"""UPS label images are made 1-bit before karrio reads the ship response; nothing else changes."""

from __future__ import annotations

import base64
import io
import json

from PIL import Image

from shared.shipping.carriers.label_images import one_bit_ups_labels


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
