"""The invoice PDF itself: every font embedded, metadata that is true and names nothing but the
document, and a layout where no text overlaps another or leaves the page, however long the
names, titles and amounts (read back with PyPDF2 and from the renderer's own drawing calls)."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
import reportlab
from PyPDF2 import PdfReader
from PyPDF2.generic import DictionaryObject

from shared.crypto.pii import Pii
from shared.invoices import render
from shared.invoices.model import InvoiceData, Line, Party, RateTotal
from shared.invoices.render import LEFT, RIGHT, ReportlabRenderer, width
from tests.fakes import stored
from tests.worlds.invoices import World, de_consumer

LONG_NAME = "Maximilian Alexander von und zu Hohenlohe-Schillingsfürst-Waldenburg-Bartenstein-Jagstberg"
UNBROKEN = "Unbreakable" + "x" * 150


def _pdf(world: World, ref: str) -> bytes:
    record = world.orders.get(ref)
    assert record is not None and record.invoice is not None
    return world.sealer.open_bytes(ref, stored(world.memory)[record.invoice["invoice"]["blob"]])


def _fonts(reader: PdfReader) -> list[DictionaryObject]:
    fonts = []
    for page in reader.pages:
        for ref in page["/Resources"]["/Font"].values():
            font = ref.get_object()
            fonts.extend(d.get_object() for d in font.get("/DescendantFonts", [font]))
    return fonts


def test_every_font_is_embedded_and_none_is_a_standard_one() -> None:
    world = World()
    de_consumer(world)
    world.issue("ref-de-consumer-1")
    fonts = _fonts(PdfReader(io.BytesIO(_pdf(world, "ref-de-consumer-1"))))
    assert fonts
    for font in fonts:
        descriptor = font.get("/FontDescriptor")
        assert descriptor is not None, font.get("/BaseFont")  # the standard 14 have none
        assert "/FontFile2" in descriptor.get_object(), font.get("/BaseFont")
        assert str(font["/BaseFont"]).endswith("+DejaVuSans")  # a subset of the shipped face


def test_metadata_is_the_documents_own_and_dated_by_the_injected_clock() -> None:
    world = World()
    de_consumer(world)
    issued = datetime(2026, 11, 2, 9, 30, 15, tzinfo=UTC)
    world.issue("ref-de-consumer-1", now=issued)
    reader = PdfReader(io.BytesIO(_pdf(world, "ref-de-consumer-1")))
    meta = reader.metadata
    assert meta["/Title"] == meta["/Subject"] == "Invoice INV2026-000001"
    assert meta["/CreationDate"] == meta["/ModDate"] == "D:20261102093015+00'00'"
    assert meta["/Producer"] == f"ReportLab PDF Library {reportlab.Version}"
    assert meta["/Author"] == "" and meta["/Keywords"] == ""
    personal = ("Jürgen", "Weiß", "Lindenstraße", "München", "302-1111111-1111111", "jw@")
    assert not any(p in str(value) for value in meta.values() for p in personal)


def test_the_creation_date_follows_the_clock_not_a_fixed_date() -> None:
    doc = _document(short=True)
    later = dict(issued_at=datetime(2027, 3, 4, 5, 6, 7, tzinfo=UTC))
    first = PdfReader(io.BytesIO(ReportlabRenderer().render(doc))).metadata["/CreationDate"]
    second = PdfReader(io.BytesIO(ReportlabRenderer().render(_document(short=True, **later)))).metadata
    assert first == "D:20261102093000+00'00'" and second["/CreationDate"] == "D:20270304050607+00'00'"
    undated = _document(short=True, issued_at=None)  # only the day: midnight UTC of it
    assert PdfReader(io.BytesIO(ReportlabRenderer().render(undated))).metadata["/CreationDate"] == (
        "D:20261102000000+00'00'"
    )


def _document(*, short: bool = False, **changes: Any) -> InvoiceData:
    title = (
        "Kaffeemühle"
        if short
        else "Kaffeemühle aus Edelstahl mit Keramikmahlwerk, stufenlos einstellbar " * 3
    )
    lines = (
        Line(
            title,
            "S1",
            3,
            Decimal("33333.33"),
            Decimal("99999.99"),
            Decimal(19),
            Decimal("19000.00"),
            Decimal("118999.99"),
        ),
        Line(
            f"Shipping: {title}",
            "S1",
            1,
            Decimal("4.19"),
            Decimal("4.19"),
            Decimal(19),
            Decimal("0.80"),
            Decimal("4.99"),
        ),
        Line(
            UNBROKEN,
            "S2",
            12,
            Decimal("10.00"),
            Decimal("120.00"),
            Decimal("5.5"),
            Decimal("6.60"),
            Decimal("126.60"),
        ),
    )
    fields: dict[str, Any] = {
        "kind": "invoice",
        "number_text": "INV2026-000017",
        "issued_on": date(2026, 11, 2),
        "supplied_on": date(2026, 11, 1),
        "order_id": "302-1111111-1111111",
        "currency": "EUR",
        "seller_name": "Muster Handel GmbH"
        if short
        else "Muster Handel GmbH, Fachhandel für Küchenbedarf aller Art",
        "seller_address": ("Hauptstraße 1", "10115 Berlin", "DE"),
        "seller_vat_id": "DE123456789",
        "seller_extra": ("Registered at Amtsgericht Berlin HRB 12345",),
        "buyer": Party(
            name=Pii(LONG_NAME),
            company=Pii(f"{LONG_NAME} Beteiligungsgesellschaft mbH"),
            address_lines=(Pii(UNBROKEN), Pii("80331 München")),
            country_code="DE",
            vat_id=Pii("DE987654321"),
        ),
        "lines": lines,
        "rate_totals": (RateTotal(Decimal(19), Decimal("100004.18"), Decimal("19000.80")),),
        "total_net": Decimal("100124.18"),
        "total_tax": Decimal("19007.40"),
        "total_gross": Decimal("119131.58"),
        "notes": ("A note long enough to need wrapping across the page, " * 4,),
        "sales_tax": Decimal("0.00"),
        "issued_at": datetime(2026, 11, 2, 9, 30, tzinfo=UTC),
    }
    return InvoiceData(**{**fields, **changes})


def _drawn(monkeypatch: pytest.MonkeyPatch, doc: InvoiceData) -> list[tuple[int, float, float, float, str]]:
    """Every string the renderer draws: (page, left, right, baseline, text)."""
    spans: list[tuple[int, float, float, float, str]] = []
    original = render._Page.text

    def recording(page: Any, x: float, value: str, size: float = render.BODY, *, right: bool = False) -> None:
        left = x - width(value, size) if right else x
        spans.append((page.canvas.getPageNumber(), left, left + width(value, size), page.y, value))
        original(page, x, value, size, right=right)

    monkeypatch.setattr(render._Page, "text", recording)
    ReportlabRenderer().render(doc)
    return spans


def test_no_text_leaves_the_page_or_overlaps_other_text(monkeypatch: pytest.MonkeyPatch) -> None:
    spans = _drawn(monkeypatch, _document())
    assert any(UNBROKEN.startswith(t) and t != UNBROKEN for *_, t in spans)  # broken, not cut
    assert "".join(t for *_, t in spans if "xxx" in t).count("x") >= 2 * 150  # both copies, whole
    for page, left, right, y, text in spans:
        assert left >= LEFT - 0.01 and right <= RIGHT + 0.01, text
        for other in spans:
            if other[0] == page and abs(other[3] - y) < 1 and other[1:] != (left, right, y, text):
                overlap = min(right, other[2]) - max(left, other[1])
                assert overlap <= 0.01 or not text.strip() or not other[4].strip(), (text, other[4])


def test_column_headings_are_apart_and_each_figure_sits_under_its_heading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spans = _drawn(monkeypatch, _document())
    first = next(s for s in spans if s[4] == "Qty")
    headings = [s for s in spans if s[0] == first[0] and abs(s[3] - first[3]) < 1]
    assert [s[4] for s in headings] == ["Description", "Qty", "Unit", "VAT", "Taxable", "VAT", "Gross"]
    price = next(s for s in spans if s[4].strip() == "33,333.33")
    row = [s for s in spans if s[0] == price[0] and abs(s[3] - price[3]) < 1][1:]  # after the title
    assert [round(s[2], 1) for s in row] == [round(s[2], 1) for s in headings[1:]]


def test_the_rendered_page_of_a_long_invoice_is_still_one_readable_page_set() -> None:
    reader = PdfReader(io.BytesIO(ReportlabRenderer().render(_document())))
    text = " ".join(page.extract_text() for page in reader.pages)
    assert "Total amount due" in text and "119,131.58 EUR" in text
