"""PDF rendering of an `InvoiceData` with reportlab (fpdf2's version, for the side-by-side
benchmark in local/bench_invoices.py, is local/fpdf_renderer.py).

Design notes: docs/invoices.md ("Design notes: `shared.invoices.render`")."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from datetime import UTC, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from shared.invoices.model import SALES_TAX_LABEL, InvoiceData

FONT_DIR = Path(__file__).resolve().parent.parent / "fonts"
REGULAR = FONT_DIR / "DejaVuSans.ttf"
REGULAR_NAME = "InvoiceSans"
EMPHASIS_SIZE = 10.5
TOP, BOTTOM, LEADING = 800.0, 50.0, 12.0
LEFT, RIGHT = 40.0, 555.0  # A4 is 595 points wide: 40-point margins
SPLIT = 330.0  # where the seller's block starts beside the document's details
GAP = 10.0  # between table columns
BODY, HEADING = 9.0, 8.0
CREATOR = "Amazon MFN fulfilment app (shared.invoices)"

COLUMNS = ("Description", "Qty", "Unit net", "VAT rate", "Taxable amount", "VAT amount", "Gross")
# The same headings on at most two lines, for narrow columns.
HEADINGS = (
    ("Description",),
    ("Qty",),
    ("Unit", "net"),
    ("VAT", "rate"),
    ("Taxable", "amount"),
    ("VAT", "amount"),
    ("Gross", "amount"),
)


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
    if doc.sales_tax:
        rows.append((SALES_TAX_LABEL, f"{amount(doc.sales_tax)} {doc.currency}"))
    rows.append(
        (
            "Total amount due" if doc.kind == "invoice" else "Total credited",
            f"{amount(doc.total_gross)} {doc.currency}",
        )
    )
    return rows


def width(value: str, size: float) -> float:
    from reportlab.pdfbase.pdfmetrics import stringWidth

    return float(stringWidth(value, REGULAR_NAME, size))


def wrap(value: str, size: float, room: float) -> list[str]:
    """`value` in lines no wider than `room` at `size`: broken between words, and a word that
    alone is too wide is broken between characters. Nothing is dropped."""
    if width(value, size) <= room:
        return [" ".join(value.split())]  # the common case: one measurement
    lines: list[str] = []
    current = ""
    for word in value.split():
        candidate = f"{current} {word}" if current else word
        if width(candidate, size) <= room:
            current = candidate
            continue
        if current:
            lines.append(current)
        *whole, current = _broken(word, size, room)
        lines.extend(whole)
    if current or not lines:
        lines.append(current)
    return lines


def _broken(word: str, size: float, room: float) -> list[str]:
    """`word` in pieces no wider than `room` (at least one character each)."""
    pieces: list[str] = []
    rest = word
    while width(rest, size) > room and len(rest) > 1:
        cut = 1
        while cut < len(rest) and width(rest[: cut + 1], size) <= room:
            cut += 1
        pieces.append(rest[:cut])
        rest = rest[cut:]
    return [*pieces, rest]


def pdf_date(moment: datetime) -> str:
    """A PDF date string (ISO 32000-1, 7.9.4) of `moment` in UTC."""
    utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return utc.strftime("D:%Y%m%d%H%M%S+00'00'")


def issue_time(doc: InvoiceData) -> datetime:
    return doc.issued_at or datetime.combine(doc.issued_on, time(), UTC)


def producer() -> str:
    import reportlab

    return f"ReportLab PDF Library {reportlab.Version}"


class _Page:
    """A reportlab canvas with a text cursor that starts a new page when the page is full.

    All text of a page goes into one text object, and the font is only switched when it
    changes: per-string text objects and font operators dominated the rendering time."""

    def __init__(self, canvas: Any) -> None:
        self.canvas = canvas
        self.y = TOP
        self._font: tuple[str, float] | None = None
        self._text = canvas.beginText()
        self.on_new_page: Callable[[], None] | None = None

    def need(self, height: float) -> None:
        if self.y - height < BOTTOM:
            self.finish()
            self.canvas.showPage()
            self.y = TOP
            self._font = None
            self._text = self.canvas.beginText()
            if self.on_new_page is not None:
                self.on_new_page()

    def text(self, x: float, value: str, size: float = BODY, *, right: bool = False) -> None:
        font = (REGULAR_NAME, size)
        if font != self._font:
            self._text.setFont(*font)
            self._font = font
        left = x - width(value, size) if right else x
        self._text.setTextOrigin(left, self.y)
        self._text.textOut(value)

    def block(self, x: float, values: list[str], room: float, size: float = BODY) -> None:
        """Each value wrapped to `room`, one line after another."""
        for value in values:
            for part in wrap(value, size, room):
                self.need(LEADING)
                self.text(x, part, size)
                self.down()

    def down(self, height: float = LEADING) -> None:
        self.y -= height

    def finish(self) -> None:
        self.canvas.drawText(self._text)


def column_widths(cells: list[tuple[str, ...]]) -> tuple[float, ...]:
    """Each column's width: its widest heading line or value (the description's is unused)."""
    return tuple(
        max([width(h, HEADING) for h in HEADINGS[i]] + [width(row[i], BODY) for row in cells])
        for i in range(len(HEADINGS))
    )


def column_edges(widths: tuple[float, ...]) -> tuple[float, ...]:
    """The description's left edge, then each amount column's right edge, laid out from the
    right margin with `GAP` between columns."""
    edges = [RIGHT]
    for i in range(len(widths) - 1, 1, -1):
        edges.append(edges[-1] - widths[i] - GAP)
    return (LEFT, *reversed(edges))


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
        # invariant: no wall-clock time and a content-derived document id; the dates are set
        # to the issue time below.
        canvas = Canvas(
            out,
            pagesize=A4,
            invariant=True,
            pageCompression=0,
            initialFontName=REGULAR_NAME,
            initialFontSize=BODY,
            lang="en",
        )
        name = f"{doc.title} {doc.number_text}"
        canvas.setTitle(name)
        canvas.setSubject(name)
        canvas.setAuthor("")
        canvas.setKeywords("")
        canvas.setCreator(CREATOR)
        canvas.setProducer(producer())
        created = pdf_date(issue_time(doc))
        canvas.setDateFormatter(lambda *_: created)
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
        page.block(LEFT, [f"{doc.title} {doc.number_text}"], RIGHT - LEFT, 16)
        page.down(12)
        top = page.y
        page.block(LEFT, [f"{label}: {value}" for label, value in header_lines(doc)], SPLIT - LEFT - GAP)
        left_bottom = page.y
        page.y = top
        page.block(SPLIT, [f"{doc.title} issued by"], RIGHT - SPLIT)
        page.block(SPLIT, [doc.seller_name], RIGHT - SPLIT, EMPHASIS_SIZE)
        page.block(SPLIT, seller_block(doc)[1:], RIGHT - SPLIT)
        page.y = min(page.y, left_bottom) - LEADING
        page.need(LEADING * 3)
        page.block(LEFT, ["Buyer"], RIGHT - LEFT, EMPHASIS_SIZE)
        page.block(LEFT, buyer_block(doc), RIGHT - LEFT)
        page.down(10)

    @staticmethod
    def _table(page: _Page, doc: InvoiceData) -> None:
        cells = line_cells(doc)
        widths = column_widths(cells)
        edges = column_edges(widths)
        description_room = edges[1] - widths[1] - GAP - LEFT

        def heading() -> None:
            page.need(LEADING * 3)
            for line in range(2):
                for i, lines in enumerate(HEADINGS):
                    if line < len(lines):
                        page.text(LEFT if i == 0 else edges[i], lines[line], HEADING, right=i > 0)
                page.down(10)
            page.canvas.line(LEFT, page.y + 6, RIGHT, page.y + 6)
            page.down(6)

        heading()
        page.on_new_page = heading
        for row in cells:
            wrapped = wrap(row[0], BODY, description_room)
            page.need(LEADING * len(wrapped))
            for n, part in enumerate(wrapped):
                page.text(LEFT, part)
                if n == 0:
                    # Each figure starts with an (invisible) space, so text extraction keeps
                    # the cells apart however narrow the columns are.
                    for i, value in enumerate(row[1:], start=1):
                        page.text(edges[i], f" {value}", right=True)
                page.down()
        page.on_new_page = None

    @staticmethod
    def _summary(page: _Page, doc: InvoiceData) -> None:
        page.down(8)
        rows = summary_rows(doc)
        values = max(width(value, EMPHASIS_SIZE) for _, value in rows)
        label_edge = RIGHT - values - 2 * GAP
        for index, (label, value) in enumerate(rows):
            size = EMPHASIS_SIZE if index == len(rows) - 1 else BODY
            parts = wrap(label, size, label_edge - LEFT)
            page.need(LEADING * len(parts))
            for n, part in enumerate(parts):
                page.text(label_edge, part, size, right=True)
                if n == 0:
                    page.text(RIGHT, value, size, right=True)
                page.down()
        for note in doc.notes:
            page.down(4)
            page.block(LEFT, [note], RIGHT - LEFT)
