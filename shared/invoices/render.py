"""PDF rendering of an `InvoiceData`: reportlab (the app's renderer) and fpdf2 (kept for the
side-by-side benchmark in local/bench_invoices.py).

Why reportlab: measured side by side here (local/bench_invoices.py, 10-line invoice, one
embedded Unicode TTF subset), reportlab takes ~3 ms CPU (p50 wall ~5 ms on an idle box), fpdf2
~65 ms CPU, because fpdf2 re-parses the TTF with fontTools for every document and subsets it
with fontTools at output, while reportlab parses the font once per process and subsets with its
own code (with the `rl_accel` C extension for number formatting and string widths). Both are
actively maintained (reportlab 5.x, fpdf2 2.8). Streams are left uncompressed: zlib was a third
of the time, and the file (~50 KB) is stored and uploaded once.

Fonts: DejaVu Sans (shared/fonts/, Bitstream Vera licence with public-domain DejaVu changes)
covers Latin incl. Polish and Turkish letters, Greek and Cyrillic, and ships with the app, so
no machine needs a system font. One face only: every embedded face costs a subset and its
compression per document (~3 ms of the ~6), so emphasis is by size and a rule, not bold.

Buyer text is data: it is drawn with `drawString`/`cell` only (never reportlab `Paragraph`
markup, never fpdf2 markdown), and both libraries encode it as glyph ids of the subset font,
so no character of it can become PDF syntax.
"""

from __future__ import annotations

import io
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from shared.invoices.model import InvoiceData

FONT_DIR = Path(__file__).resolve().parent.parent / "fonts"
REGULAR = FONT_DIR / "DejaVuSans.ttf"
MAX_DESCRIPTION_LINES = 3
REGULAR_NAME = "InvoiceSans"
EMPHASIS_SIZE = 10.5
TOP, BOTTOM, LEADING = 800.0, 50.0, 12.0

COLUMNS = ("Description", "Qty", "Unit net", "VAT rate", "Taxable amount", "VAT amount", "Gross")


class Renderer(Protocol):
    name: str

    def render(self, doc: InvoiceData) -> bytes: ...


def amount(value: Decimal) -> str:
    return f"{value:,.2f}"


def rate_text(value: Decimal) -> str:
    return f"{value.normalize():f} %"


def header_lines(doc: InvoiceData) -> list[tuple[str, str]]:
    rows = [
        (f"{doc.title} number", doc.number_text),
        ("Issue date", doc.issued_on.isoformat()),
    ]
    if doc.supplied_on:
        rows.append(("Date of supply", doc.supplied_on.isoformat()))
    rows.append(("Amazon order", doc.order_id))
    rows.append(("Currency", doc.currency))
    if doc.original_number:
        original_date = doc.original_issued_on.isoformat() if doc.original_issued_on else ""
        rows.append(("Corrects invoice", f"{doc.original_number} of {original_date}".strip()))
    return rows


def seller_block(doc: InvoiceData) -> list[str]:
    lines = [doc.seller_name, *doc.seller_address]
    if doc.seller_vat_id:
        lines.append(f"VAT ID: {doc.seller_vat_id}")
    return [*lines, *doc.seller_extra]


def buyer_block(doc: InvoiceData) -> list[str]:
    """The one place buyer text is revealed: straight into the drawing calls."""
    buyer = doc.buyer
    lines = [buyer.company.reveal()] if buyer.company else []
    lines.append(buyer.name.reveal())
    lines.extend(p.reveal() for p in buyer.address_lines)
    if buyer.country_code:
        lines.append(buyer.country_code)
    if buyer.vat_id:
        lines.append(f"VAT ID: {buyer.vat_id.reveal()}")
    return lines


def line_cells(doc: InvoiceData) -> list[tuple[str, ...]]:
    return [
        (
            line.description,
            str(line.quantity),
            amount(line.unit_net),
            rate_text(line.rate),
            amount(line.net),
            amount(line.tax),
            amount(line.gross),
        )
        for line in doc.lines
    ]


def summary_rows(doc: InvoiceData) -> list[tuple[str, str]]:
    rows = [
        (f"Taxable amount at {rate_text(t.rate)}", f"{amount(t.net)} {doc.currency}") for t in doc.rate_totals
    ]
    rows.extend(
        (f"VAT amount at {rate_text(t.rate)}", f"{amount(t.tax)} {doc.currency}") for t in doc.rate_totals
    )
    rows.append(("Total taxable amount", f"{amount(doc.total_net)} {doc.currency}"))
    rows.append(("Total VAT amount", f"{amount(doc.total_tax)} {doc.currency}"))
    rows.append(
        (
            "Total amount due" if doc.kind == "invoice" else "Total credited",
            f"{amount(doc.total_gross)} {doc.currency}",
        )
    )
    return rows


# Column right edges in points (A4 width 595, margins 40); description is left-aligned.
_RIGHT_EDGES = (0.0, 330.0, 380.0, 425.0, 480.0, 520.0, 555.0)
_DESC_WIDTH = 270.0


class _Page:
    """A reportlab canvas with a text cursor that starts a new page when the page is full.

    All text of a page goes into one text object, and the font is only switched when it
    changes: per-string text objects and font operators dominated the rendering time."""

    def __init__(self, canvas: Any) -> None:
        self.canvas = canvas
        self.y = TOP
        self._font: tuple[str, float] | None = None
        self._text = canvas.beginText()

    def need(self, height: float) -> None:
        if self.y - height < BOTTOM:
            self.finish()
            self.canvas.showPage()
            self.y = TOP
            self._font = None
            self._text = self.canvas.beginText()

    def text(self, x: float, value: str, size: float = 9, *, right: bool = False) -> None:
        from reportlab.pdfbase.pdfmetrics import stringWidth

        font = (REGULAR_NAME, size)
        if font != self._font:
            self._text.setFont(*font)
            self._font = font
        left = x - stringWidth(value, *font) if right else x
        self._text.setTextOrigin(left, self.y)
        self._text.textOut(value)

    def down(self, height: float = LEADING) -> None:
        self.y -= height

    def finish(self) -> None:
        self.canvas.drawText(self._text)


class ReportlabRenderer:
    name = "reportlab"
    _lock = threading.Lock()
    _registered = False

    def __init__(self) -> None:
        from reportlab.pdfbase import pdfmetrics
        from reportlab.pdfbase.ttfonts import TTFont

        # Registration parses the TTF once per process; later documents reuse it.
        with ReportlabRenderer._lock:
            if not ReportlabRenderer._registered:
                pdfmetrics.registerFont(TTFont(REGULAR_NAME, str(REGULAR)))
                ReportlabRenderer._registered = True

    def render(self, doc: InvoiceData) -> bytes:
        from reportlab.lib.pagesizes import A4
        from reportlab.pdfgen.canvas import Canvas

        out = io.BytesIO()
        canvas = Canvas(out, pagesize=A4, invariant=True, pageCompression=0)
        canvas.setTitle(f"{doc.title} {doc.number_text}")
        page = _Page(canvas)
        self._parties(page, doc)
        self._table(page, doc)
        self._summary(page, doc)
        page.finish()
        canvas.showPage()
        canvas.save()
        return out.getvalue()

    @staticmethod
    def _parties(page: _Page, doc: InvoiceData) -> None:
        page.text(40, f"{doc.title} {doc.number_text}", 16)
        page.down(24)
        top = page.y
        header = header_lines(doc)
        for label, value in header:
            page.text(40, f"{label}: {value}")
            page.down()
        page.y = top
        for value in [f"{doc.title} issued by", *seller_block(doc)]:
            page.text(330, value, EMPHASIS_SIZE if value == doc.seller_name else 9)
            page.down()
        page.y = min(page.y, top - LEADING * len(header)) - LEADING
        page.text(40, "Buyer", EMPHASIS_SIZE)
        page.down()
        for value in buyer_block(doc):
            page.text(40, value)
            page.down()
        page.down(10)

    @staticmethod
    def _table(page: _Page, doc: InvoiceData) -> None:
        from reportlab.lib.utils import simpleSplit

        for i, heading in enumerate(COLUMNS):
            page.text(40 if i == 0 else _RIGHT_EDGES[i], heading, 8, right=i > 0)
        page.canvas.line(40, page.y - 4, 555, page.y - 4)
        page.down(16)
        for cells in line_cells(doc):
            wrapped = simpleSplit(cells[0], REGULAR_NAME, 9, _DESC_WIDTH)[:MAX_DESCRIPTION_LINES]
            page.need(LEADING * len(wrapped))
            for i, value in enumerate(cells[1:], start=1):
                page.text(_RIGHT_EDGES[i], value, right=True)
            for part in wrapped:
                page.text(40, part)
                page.down()

    @staticmethod
    def _summary(page: _Page, doc: InvoiceData) -> None:
        from reportlab.lib.utils import simpleSplit

        page.down(8)
        rows = summary_rows(doc)
        for index, (label, value) in enumerate(rows):
            page.need(LEADING)
            size = EMPHASIS_SIZE if index == len(rows) - 1 else 9
            page.text(420, label, size, right=True)
            page.text(555, value, size, right=True)
            page.down()
        for note in doc.notes:
            page.down(4)
            for part in simpleSplit(note, REGULAR_NAME, 9, 515):
                page.need(LEADING)
                page.text(40, part)
                page.down()


class FpdfRenderer:
    """The same page with fpdf2, for the benchmark; not used by the app."""

    name = "fpdf2"

    def render(self, doc: InvoiceData) -> bytes:
        from fpdf import FPDF

        pdf = FPDF(format="A4")
        pdf.add_font("InvoiceSans", "", str(REGULAR))
        pdf.set_title(f"{doc.title} {doc.number_text}")
        pdf.add_page()
        pdf.set_font("InvoiceSans", "", 16)
        pdf.cell(0, 9, f"{doc.title} {doc.number_text}", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("InvoiceSans", "", 9)
        for label, value in header_lines(doc):
            pdf.cell(0, 4.5, f"{label}: {value}", new_x="LMARGIN", new_y="NEXT")
        for value in [f"{doc.title} issued by", *seller_block(doc), "", "Buyer", *buyer_block(doc), ""]:
            pdf.cell(0, 4.5, value, new_x="LMARGIN", new_y="NEXT")
        widths = (70.0, 12.0, 20.0, 18.0, 25.0, 20.0, 25.0)
        pdf.set_font("InvoiceSans", "", 8)
        for width, heading in zip(widths, COLUMNS, strict=True):
            pdf.cell(width, 5, heading, align="L" if heading == "Description" else "R")
        pdf.ln()
        pdf.set_font("InvoiceSans", "", 9)
        for cells in line_cells(doc):
            pdf.cell(widths[0], 4.5, cells[0][:45])
            for width, value in zip(widths[1:], cells[1:], strict=True):
                pdf.cell(width, 4.5, value, align="R")
            pdf.ln()
        for label, value in summary_rows(doc):
            pdf.cell(140, 4.5, label, align="R")
            pdf.cell(50, 4.5, value, align="R", new_x="LMARGIN", new_y="NEXT")
        for note in doc.notes:
            pdf.multi_cell(0, 4.5, note, new_x="LMARGIN", new_y="NEXT")
        return bytes(pdf.output())
