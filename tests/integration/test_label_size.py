"""Every carrier's stored label fits in 100 KB, and a UPS label, made 1-bit before karrio's PDF,
still scans: the PDF page's image, placed as the page draws it, carries the same Code 128 bars
as the image UPS sent."""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from barcode.charsets import code128
from PIL import Image, ImageOps
from PyPDF2 import PdfReader

from local import carrier_servers
from local.memory_stores import MemoryBlobStore
from shared.crypto.envelope import EnvelopeCipher
from shared.crypto.key_epochs import KeyEpochs
from shared.crypto.pii import Pii
from shared.shipping.carriers import LabelRequest, Parcel, Recipient, ShipFrom
from shared.shipping.carriers.karrio_adapter import KarrioCarrier
from shared.storage.blob_store import LABELS, LabelStore, label_blob_name
from tests.fakes import MemorySecretStore
from tests.worlds.handoff import CREDENTIALS

pytestmark = pytest.mark.integration

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
MAX_STORED_LABEL_BYTES = 100_000
SERVICES = {"usps": "usps_ground_advantage", "fedex": "fedex_ground", "ups": "ups_ground"}
PAGE_POINTS = (288, 432)  # 4 x 6 in
PATTERNS = {pattern: value for value, pattern in enumerate(code128.CODES)}
STOP = code128.STOP + "11"  # the stop symbol and its final two-module bar


def label_request(key: str, service: str) -> LabelRequest:
    return LabelRequest(
        idempotency_key=key,
        service=service,
        ship_from=ShipFrom(
            "Dispatch", "1 Dock St", "Seattle", "98101", "US", state_or_region="WA", phone="2065550100"
        ),
        parcel=Parcel(Decimal("0.6"), Decimal(20), Decimal(15), Decimal(10)),
        ship_date=date(2026, 1, 5),
        recipient=Recipient(
            name=Pii("Jane Doe"),
            line1=Pii("2 Main St"),
            city=Pii("Austin"),
            postal_code=Pii("78701"),
            country_code="US",
            state_or_region=Pii("TX"),
            phone=Pii("5125550100"),
        ),
    )


@pytest.fixture(scope="module")
def servers() -> Iterator[carrier_servers.CarrierServers]:
    with carrier_servers.running() as running:
        yield running


def carrier(servers: carrier_servers.CarrierServers, name: str) -> KarrioCarrier:
    return KarrioCarrier(name, CREDENTIALS[name], base_url=servers.all()[name].base_url, replay_safe=True)


@pytest.mark.parametrize("name", ["usps", "fedex", "ups"])
def test_every_carriers_stored_label_is_at_most_100_kb(
    servers: carrier_servers.CarrierServers, name: str
) -> None:
    label = carrier(servers, name).create_label(label_request(f"size-{name}", SERVICES[name]))
    blobs = MemoryBlobStore()
    LabelStore(blobs, EnvelopeCipher(KeyEpochs(MemorySecretStore(), lambda: NOW))).put(
        f"size-{name}", label.document, {"carrier": name}, NOW
    )
    stored = blobs.get(LABELS, label_blob_name(f"size-{name}"))
    assert label.document.startswith(b"%PDF") and stored is not None
    assert len(stored) <= MAX_STORED_LABEL_BYTES


def test_ups_label_pdf_scans_as_the_tracking_number_ups_drew(servers: carrier_servers.CarrierServers) -> None:
    label = carrier(servers, "ups").create_label(label_request("scan-ups", SERVICES["ups"]))
    printed = rendered_page(label.document)
    sent = Image.open(io.BytesIO(carrier_servers.label_image(label.tracking_number))).rotate(-90, expand=True)

    printed_bars = bars_across_barcode(printed)
    sent_bars = bars_across_barcode(sent)
    assert decode_code128(printed_bars) == decode_code128(sent_bars) == label.tracking_number
    assert modules(printed_bars) == modules(sent_bars)


def rendered_page(pdf: bytes) -> Image.Image:
    """The page as printed at 203 dpi, by poppler's pdftoppm where the machine has it."""
    pdftoppm = shutil.which("pdftoppm")
    if pdftoppm is None:
        return page_image(pdf)
    out = subprocess.run(  # noqa: S603 - poppler on a PDF made by this test
        [pdftoppm, "-r", str(carrier_servers.LABEL_DPI), "-gray", "-singlefile"],
        input=pdf,
        capture_output=True,
        check=True,
    )
    return Image.open(io.BytesIO(out.stdout)).convert("L")


def page_image(pdf: bytes) -> Image.Image:
    """Without a renderer: the page's one image, drawn over the whole 4 x 6 in page (the content
    stream is checked to say exactly that), its CCITT samples read as /BlackIs1 says (PyPDF2's
    extraction ignores that flag)."""
    page = PdfReader(io.BytesIO(pdf)).pages[0]
    width, height = (float(v) for v in page.mediabox[2:])
    assert (width, height) == PAGE_POINTS
    operators = page.get_contents().get_data().split()
    assert [float(v) for v in operators[1:7]] == [width, 0, 0, height, 0, 0] and b"Do" in operators
    (image,) = page.images
    xobject = page["/Resources"]["/XObject"]["/image"].get_object()
    with Image.open(io.BytesIO(image.data)) as picture:
        grey = picture.convert("L")
    if xobject["/DecodeParms"][0].get("/BlackIs1"):
        grey = ImageOps.invert(grey)
    return grey.resize(carrier_servers.LABEL_SIZE_PX, Image.Resampling.BOX)


def bars_across_barcode(page: Image.Image) -> list[tuple[bool, int]]:
    """(dark, width in px) runs along the middle row of the barcode region, quiet zones cut off."""
    left, top, right, bottom = carrier_servers.BARCODE_BOX
    scale = page.width / carrier_servers.LABEL_SIZE_PX[0]
    row = int((top + bottom) / 2 * scale)
    pixels = [page.getpixel((x, row)) for x in range(int(left * scale), int(right * scale))]
    runs: list[tuple[bool, int]] = []
    for value in pixels:
        dark = isinstance(value, int) and value < 128
        if runs and runs[-1][0] == dark:
            runs[-1] = (dark, runs[-1][1] + 1)
        else:
            runs.append((dark, 1))
    while runs and not runs[0][0]:
        runs.pop(0)
    while runs and not runs[-1][0]:
        runs.pop()
    return runs


def modules(runs: list[tuple[bool, int]]) -> str:
    """The bars as Code 128 modules: the start symbol (11 modules, 6 runs) sets the width."""
    unit = sum(width for _, width in runs[:6]) / 11
    return "".join(("1" if dark else "0") * round(width / unit) for dark, width in runs)


def decode_code128(runs: list[tuple[bool, int]]) -> str:
    """Code sets B and C (what a UPS 1Z number uses), checksum checked."""
    bits = modules(runs)
    assert bits.endswith(STOP)
    values = [PATTERNS[bits[i : i + 11]] for i in range(0, len(bits) - len(STOP), 11)]
    *data, check = values
    assert check == (data[0] + sum(i * v for i, v in enumerate(data[1:], start=1))) % 103
    code_set, text = {104: "B", 105: "C"}[data[0]], ""
    for value in data[1:]:
        if value in (99, 100):
            code_set = "C" if value == 99 else "B"
        elif code_set == "C":
            text += f"{value:02d}"
        else:
            text += chr(value + 32)
    return text
