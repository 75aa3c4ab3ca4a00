"""Carrier label images made 1-bit before karrio turns them into a PDF.

UPS sends its label as a GIF or PNG image; karrio rotates it, scales it to 1200x1800 and saves
it as a PDF, which Pillow writes uncompressed for a grey or palette image (about 4.4 MB a
label). A label is black on white, so the same image in 1-bit is lossless for what is printed,
and Pillow writes a 1-bit image to PDF with CCITT G4 compression (a few KB). Figures:
docs/shipping.md ("Label size"). An image that cannot be decoded raises `LabelImageUnreadable`.
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any

from PIL import Image

from shared.shipping.carriers.base import CarrierTimeout

IMAGE_FORMATS = ("GIF", "PNG")
THRESHOLD = 128  # a grey at or above it prints white
# What base64 and Pillow raise on bytes that are no image they can read (Pillow's
# UnidentifiedImageError and a truncated file are OSErrors; some decoders raise SyntaxError).
_UNREADABLE = (ValueError, OSError, SyntaxError, EOFError, Image.DecompressionBombError)


class LabelImageUnreadable(CarrierTimeout):
    """The carrier answered a purchase with a label image that cannot be decoded: the label
    may have been bought, so (as a timeout does) the intent stays and no second label is bought."""

    code = "label_image_unreadable"


def one_bit_png(image: bytes) -> bytes:
    """The image as a 1-bit PNG: each pixel black or white at `THRESHOLD`, never dithered.
    Raises `LabelImageUnreadable` when `image` is no image Pillow can read."""
    try:
        with Image.open(io.BytesIO(image)) as source:
            grey = source.convert("L")
    except _UNREADABLE:
        raise LabelImageUnreadable("label image undecodable") from None
    mono = grey.point(lambda v: 255 if v >= THRESHOLD else 0).convert("1", dither=Image.Dither.NONE)
    out = io.BytesIO()
    mono.save(out, format="PNG", optimize=True)
    return out.getvalue()


def one_bit_ups_labels(body: str) -> str:
    """A UPS ship response with each GIF or PNG label image made 1-bit (as PNG); any other
    body (an error page, a ZPL label) is returned as it came."""
    try:
        document = json.loads(body)
    except ValueError:
        return body
    changed = False
    for label in _shipping_labels(document):
        code = str((label.get("ImageFormat") or {}).get("Code", "")).upper()
        image = label.get("GraphicImage")
        if code in IMAGE_FORMATS and isinstance(image, str):
            label["GraphicImage"] = base64.b64encode(one_bit_png(_decoded(image))).decode()
            label["ImageFormat"] = {**label["ImageFormat"], "Code": "PNG"}
            changed = True
    return json.dumps(document) if changed else body


def _decoded(image: str) -> bytes:
    try:
        return base64.b64decode(image)
    except ValueError:  # binascii.Error
        raise LabelImageUnreadable("label image is not base64") from None


def _shipping_labels(document: Any) -> list[dict[str, Any]]:
    """Every `ShippingLabel` object of the response's packages (UPS sends one package as an
    object, several as a list)."""
    results = (
        (document.get("ShipmentResponse") or {}).get("ShipmentResults")
        if isinstance(document, dict)
        else None
    )
    packages = (results or {}).get("PackageResults") or []
    if isinstance(packages, dict):
        packages = [packages]
    return [
        p["ShippingLabel"]
        for p in packages
        if isinstance(p, dict) and isinstance(p.get("ShippingLabel"), dict)
    ]
