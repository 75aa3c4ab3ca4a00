"""Invoice rendering benchmark: a 10-line invoice with reportlab (the app's renderer) and fpdf2,
measured side by side in the same run, each as it is used in `shared.invoices.render`.

Yields `invoice_render_ms_p50` (and p95, and CPU p50) once per library, tagged with "library"
and "chosen". Target for the chosen library: p50 <= 5 ms.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from datetime import date
from decimal import Decimal

from local.fpdf_renderer import FpdfRenderer
from shared.crypto.pii import Pii
from shared.invoices.model import InvoiceData, Line, Party, RateTotal
from shared.invoices.render import Renderer, ReportlabRenderer

WARMUP = 5
ROUNDS = {"reportlab": 200, "fpdf2": 30}  # fpdf2 is ~20x slower: fewer rounds keep the run short
LINES = 10


def sample_invoice() -> InvoiceData:
    """Synthetic data: names in Greek, Cyrillic, Polish and Turkish to exercise the font."""
    lines = tuple(
        Line(
            description=f"Artikel {n}: Ζυγαριά / Весы / Waga łazienkowa / Banyo terazisi",
            sku=f"SKU-{n}",
            quantity=n % 3 + 1,
            unit_net=Decimal("8.40"),
            net=Decimal("8.40") * (n % 3 + 1),
            rate=Decimal(19),
            tax=Decimal("1.60") * (n % 3 + 1),
            gross=Decimal("10.00") * (n % 3 + 1),
        )
        for n in range(LINES)
    )
    net = sum((line.net for line in lines), Decimal(0))
    tax = sum((line.tax for line in lines), Decimal(0))
    return InvoiceData(
        kind="invoice",
        number_text="INV2026-000001",
        issued_on=date(2026, 11, 2),
        supplied_on=date(2026, 11, 1),
        order_id="302-0000000-0000000",
        currency="EUR",
        seller_name="Muster Handel GmbH",
        seller_address=("Hauptstraße 1", "10115 Berlin", "DE"),
        seller_vat_id="DE123456789",
        seller_extra=(),
        buyer=Party(
            name=Pii("Γιώργος Παπαδόπουλος"),
            company=Pii("Şükrü Çağlayan Ltd. Şti."),
            address_lines=(Pii("ul. Długa 5"), Pii("00-950 Warszawa")),
            country_code="PL",
            vat_id=None,
        ),
        lines=lines,
        rate_totals=(RateTotal(Decimal(19), net, tax),),
        total_net=net,
        total_tax=tax,
        total_gross=net + tax,
        notes=(),
    )


def _times_ms(renderer: Renderer, doc: InvoiceData, rounds: int) -> tuple[list[float], list[float]]:
    """Wall and CPU milliseconds per render; CPU time is the steadier figure on a shared box."""
    for _ in range(WARMUP):
        renderer.render(doc)
    wall, cpu = [], []
    for _ in range(rounds):
        start, start_cpu = time.perf_counter(), time.process_time()
        renderer.render(doc)
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return wall, cpu


def run() -> Iterator[dict[str, object]]:
    doc = sample_invoice()
    chosen = ReportlabRenderer.name
    for renderer in (ReportlabRenderer(), FpdfRenderer()):
        wall, cpu = _times_ms(renderer, doc, ROUNDS[renderer.name])
        tags = {"library": renderer.name, "chosen": renderer.name == chosen, "lines": LINES}
        p95 = statistics.quantiles(wall, n=20)[-1]
        yield {
            "metric": "invoice_render_ms_p50",
            "value": round(statistics.median(wall), 3),
            "unit": "ms",
            **tags,
        }
        yield {"metric": "invoice_render_ms_p95", "value": round(p95, 3), "unit": "ms", **tags}
        yield {
            "metric": "invoice_render_cpu_ms_p50",
            "value": round(statistics.median(cpu), 3),
            "unit": "ms",
            **tags,
        }


if __name__ == "__main__":
    import json
    import sys

    for row in run():
        sys.stdout.write(json.dumps(row) + "\n")
