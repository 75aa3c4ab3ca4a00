"""The invoice page with fpdf2, beside the app's reportlab renderer (`shared.invoices.render`)
in the rendering benchmark (local/bench_invoices.py); the invoice tests render with both."""

from __future__ import annotations

from shared.invoices.model import InvoiceData
from shared.invoices.render import (
    COLUMNS,
    REGULAR,
    buyer_block,
    header_lines,
    line_cells,
    seller_block,
    summary_rows,
)


class FpdfRenderer:
    """The same page with fpdf2; not used by the app."""

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
