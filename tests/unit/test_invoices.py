"""Invoices end to end in memory: content (golden), numbering, idempotency, skips, retention."""

from __future__ import annotations

import dataclasses
import io
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from PyPDF2 import PdfReader

from local.fpdf_renderer import FpdfRenderer
from shared.crypto.pii import Pii
from shared.errors import SettingsError
from shared.invoices.archive import ARCHIVE_KEY_REF
from shared.invoices.feeds import FeedOutcomeUnknown, FeedReceipt, FeedRejected, FeedUnavailable
from shared.invoices.model import UnpricedOrder, recognise_rate
from shared.invoices.numbering import SETTLE_CHECKS, ClaimVerdict, InvoiceCounter, counter_id
from shared.invoices.profile import parse_profile
from shared.invoices.render import ReportlabRenderer
from shared.invoices.service import (
    DOC_KEYS,
    REFUND_TRANSACTION_ID,
    UPLOAD_MARK_STALE_AFTER,
    UPLOAD_UNKNOWN,
    InvoiceUploadInProgress,
)
from shared.orders.domain import Buyer, Charge
from shared.orders.messages import IssueInvoice
from shared.orders.record import OrderPii, OrderRecord, Stage
from shared.orders.repository import OrderRepository
from shared.storage.audit import AuditAction
from shared.storage.document_store import ORDERS, STATE, CountingStore, StoreUnavailable
from tests.fakes import (
    FakeShredder,
    FakeSignal,
    KeyShredded,
    MemoryBlobs,
    MemoryDocumentStore,
    audit_trail,
    stored,
)
from tests.worlds.invoices import (
    DE,
    FR,
    NOW,
    PROFILE,
    UK,
    US,
    World,
    address,
    assert_has,
    de_consumer,
    held_claims,
    item,
    normalise,
)

# -- golden tests ------------------------------------------------------------------------


def test_de_consumer_invoice_holds_every_required_field() -> None:
    world = World()
    de_consumer(world)
    invoice = world.issue("ref-de-consumer-1")["invoice"]
    assert invoice["numberText"] == "INV2026-000001"
    text = world.pdf_text("ref-de-consumer-1")
    assert_has(
        text,
        "Invoice INV2026-000001",
        "Invoice number: INV2026-000001",
        "Issue date: 2026-11-02",
        "Date of supply: 2026-11-01",
        "Amazon order: 302-1111111-1111111",
        "Currency: EUR",
        "Muster Handel GmbH",
        "Hauptstraße 1",
        "10115 Berlin",
        "VAT ID: DE123456789",
        "Jürgen Weiß",
        "Lindenstraße 5",
        "80331 München",
        "Kaffeemühle aus Edelstahl",
        "Espressotassen, 6er Set",
        "Taxable amount at 19 % 50.00 EUR",
        "Taxable amount at 7 % 20.00 EUR",
        "VAT amount at 19 % 9.50 EUR",
        "VAT amount at 7 % 1.40 EUR",
        "Total taxable amount 70.00 EUR",
        "Total VAT amount 10.90 EUR",
        "Total amount due 80.90 EUR",
        "Registered at Amtsgericht Berlin HRB 12345",
    )
    # quantities, per-line rates and amounts of the goods
    assert re.search(r"\b2\s+10\.00\s+7 %\s+20\.00\s+1\.40\s+21\.40", text)
    assert re.search(r"\b1\s+50\.00\s+19 %\s+50\.00\s+9\.50\s+59\.50", text)
    # data minimisation: neither phone nor e-mail reach the invoice
    assert "+49 89 123456" not in text and "jw@marketplace.example" not in text
    assert invoice["totalAmount"] == "80.90" and invoice["totalVat"] == "10.90"


def test_fr_business_order_under_reverse_charge() -> None:
    world = World()
    pii = OrderPii(
        order_id="403-2222222-2222222",
        buyer=Buyer(
            name=Pii("Émilie Dupont"), company=Pii("Atelier Éclair SARL"), vat_id=Pii("FR12345678901")
        ),
        ship_to=address("Émilie Dupont", "12 rue de la Paix", "75002", "Paris", "FR"),
    )
    items = (item(1, "Perceuse sans fil", 3, "42.00", "0.00"),)
    world.add_order("ref-fr-business-1", marketplace=FR, items=items, pii=pii, business=True)
    world.issue("ref-fr-business-1")
    text = world.pdf_text("ref-fr-business-1")
    assert_has(
        text,
        "Invoice number: INV2026-000001",
        "Issue date: 2026-11-02",
        "Atelier Éclair SARL",
        "Émilie Dupont",
        "12 rue de la Paix",
        "75002 Paris",
        "VAT ID: FR12345678901",  # buyer's id: required under reverse charge
        "VAT ID: DE123456789",  # seller's home id for an intra-Community supply
        "Perceuse sans fil",
        "Taxable amount at 0 % 126.00 EUR",
        "VAT amount at 0 % 0.00 EUR",
        "Total amount due 126.00 EUR",
        "Reverse charge: VAT to be accounted for by the recipient",
        "Art. 138 Directive 2006/112/EC",
    )


def test_uk_order_uses_the_uk_registration_and_pounds() -> None:
    world = World()
    pii = OrderPii(
        order_id="202-3333333-3333333",
        buyer=Buyer(name=Pii("Oliver Smith")),
        ship_to=address(
            "Oliver Smith", "10 Downing Lane", "SW1A 2AA", "London", "GB", state_or_region="Greater London"
        ),
    )
    items = (
        item(1, "Garden hose 25 m", 1, "24.00", "4.00", currency="GBP"),
        item(2, "Hose reel", 1, "36.00", "6.00", currency="GBP"),
    )
    world.add_order("ref-uk-order-1", marketplace=UK, items=items, pii=pii)
    world.issue("ref-uk-order-1")
    text = world.pdf_text("ref-uk-order-1")
    assert_has(
        text,
        "Invoice number: INV2026-000001",
        "Currency: GBP",
        "VAT ID: GB123456789",
        "Oliver Smith",
        "10 Downing Lane",
        "SW1A 2AA London",
        "Greater London",
        "Garden hose 25 m",
        "Hose reel",
        "Taxable amount at 20 % 50.00 GBP",
        "VAT amount at 20 % 10.00 GBP",
        "Total amount due 60.00 GBP",
    )
    assert "DE123456789" not in text


def test_credit_note_refers_to_the_invoice_and_takes_its_own_number() -> None:
    world = World()
    de_consumer(world)
    world.issue("ref-de-consumer-1")
    later = NOW + timedelta(days=3)
    invoice = world.issue("ref-de-consumer-1", "credit_note", later)
    credit = invoice["creditNote"]
    assert credit["numberText"] == "CN2026-000001"
    assert invoice["invoice"]["numberText"] == "INV2026-000001"  # never deleted or reused
    text = world.pdf_text("ref-de-consumer-1", "creditNote")
    assert_has(
        text,
        "Credit note CN2026-000001",
        "Credit note number: CN2026-000001",
        "Issue date: 2026-11-05",
        "Corrects invoice: INV2026-000001 of 2026-11-02",
        "Muster Handel GmbH",
        "VAT ID: DE123456789",
        "Jürgen Weiß",
        "Kaffeemühle aus Edelstahl",
        "Taxable amount at 19 % -50.00 EUR",
        "VAT amount at 7 % -1.40 EUR",
        "Total VAT amount -10.90 EUR",
        "Total credited -80.90 EUR",
    )


# -- rendering -----------------------------------------------------------------------------


@pytest.mark.parametrize("renderer", [ReportlabRenderer(), FpdfRenderer()], ids=lambda r: r.name)
def test_names_in_every_script_render_and_buyer_text_stays_data(renderer: Any) -> None:
    world = World()
    world.service._renderer = renderer
    names = "Γιώργος Παπαδόπουλος / Дмитрий Иванов / Zdzisław Łęcki / Şükrü Çağlayan İğdır"
    hostile = "(x) Tj ET BT /F1 9 Tf <b>bold</b> \\) endstream"
    pii = OrderPii(
        order_id="302-4444444-4444444",
        buyer=Buyer(name=Pii(names)),
        ship_to=address(names, hostile, "00-950", "Kraków", "PL"),
    )
    world.add_order("ref-scripts-01", items=(item(1, "Ζυγαριά / Весы / Waga", 1, "12.30", "2.30"),), pii=pii)
    world.issue("ref-scripts-01")
    text = world.pdf_text("ref-scripts-01")
    assert_has(text, names, hostile, "00-950 Kraków", "Ζυγαριά / Весы / Waga")
    pdf = world.sealer.open_bytes("ref-scripts-01", next(iter(stored(world.memory).values())))
    assert len(PdfReader(io.BytesIO(pdf)).pages) == 1


def test_long_orders_flow_onto_further_pages() -> None:
    world = World()
    items = tuple(
        item(n, f"Article number {n} with a long descriptive title " * 3, 1, "11.90", "1.90")
        for n in range(80)
    )
    pii = OrderPii(
        "302-5555555-5555555", Buyer(name=Pii("A B")), address("A B", "Weg 1", "10115", "Berlin", "DE")
    )
    world.add_order("ref-long-order", items=items, pii=pii)
    world.issue("ref-long-order")
    text = world.pdf_text("ref-long-order")
    assert_has(text, "Total amount due 952.00 EUR")
    pdf = world.sealer.open_bytes("ref-long-order", next(iter(stored(world.memory).values())))
    assert len(PdfReader(io.BytesIO(pdf)).pages) > 1


def test_rate_is_recognised_despite_per_line_rounding() -> None:
    rates = (Decimal(19), Decimal(7))
    assert recognise_rate(Decimal("1.60"), Decimal("8.39"), rates) == Decimal(19)
    assert recognise_rate(Decimal("0.65"), Decimal("9.34"), rates) == Decimal(7)
    # Never a ratio: no tax where the rates are 19 and 7, or 30 %, matches no statutory rate.
    assert recognise_rate(Decimal("0"), Decimal("9.34"), rates) is None
    assert recognise_rate(Decimal("3.00"), Decimal("10.00"), rates) is None
    # A cheap line: 0.05 on 0.24 reads 20.8 %, but 19 % of 0.24 is 0.05 to the cent.
    assert recognise_rate(Decimal("0.05"), Decimal("0.24"), rates) == Decimal(19)


# -- numbering and idempotency ---------------------------------------------------------------


def test_redelivery_never_takes_a_second_number() -> None:
    world = World()
    de_consumer(world, "ref-de-order-a")
    de_consumer(world, "ref-de-order-b")
    first = world.issue("ref-de-order-a")["invoice"]
    again = world.issue("ref-de-order-a")["invoice"]
    assert again == first
    assert world.issue("ref-de-order-b")["invoice"]["number"] == 2
    counter = world.counter.peek("INV2026")
    assert counter is not None and counter["next"] == 3
    assert held_claims(world.store, "INV2026") == {
        "ref-de-order-a:invoice": [1, NOW.isoformat()],
        "ref-de-order-b:invoice": [2, NOW.isoformat()],
    }
    assert len(stored(world.memory)) == 2 and len(world.uploader.calls) == 2


def test_crash_between_allocation_and_recording_leaves_no_gap() -> None:
    world = World()
    de_consumer(world, "ref-crashing-1")
    de_consumer(world, "ref-next-order")
    original_create = world.blobs.create

    def crash(name: str, data: bytes, metadata: Mapping[str, str]) -> bool:
        world.blobs.create = original_create  # type: ignore[method-assign]
        raise RuntimeError("worker died")

    world.blobs.create = crash  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        world.issue("ref-crashing-1")
    assert held_claims(world.store, "INV2026") == {"ref-crashing-1:invoice": [1, NOW.isoformat()]}
    assert world.issue("ref-crashing-1")["invoice"]["number"] == 1  # the redelivery keeps it
    assert world.issue("ref-next-order")["invoice"]["number"] == 2


def test_redelivery_that_allocates_after_the_first_delivery_finished_gets_the_same_number() -> None:
    world = World()
    de_consumer(world, "ref-raced-order")
    stale = world.orders.get("ref-raced-order")  # the redelivery read the order early...
    world.issue("ref-raced-order")  # ...the first delivery then finished completely
    assert stale is not None
    world.service._issue_document(stale, "invoice", NOW)
    record = world.orders.get("ref-raced-order")
    assert record is not None and record.invoice["invoice"]["number"] == 1  # type: ignore[index]
    counter = world.counter.peek("INV2026")
    assert (
        counter is not None
        and counter["next"] == 2
        and list(held_claims(world.store, "INV2026")) == ["ref-raced-order:invoice"]
    )


def test_a_week_old_claim_is_settled_by_a_later_allocation_without_a_write_of_its_own() -> None:
    world = World()
    refs = ("ref-recorded", "ref-purged", "ref-erased-unrecorded", "ref-poisoned", "ref-recent")
    for ref in refs:
        de_consumer(world, ref)
    world.issue("ref-recorded")
    world.issue("ref-purged")
    purged = world.orders.get("ref-purged")
    assert purged is not None
    world.audit.record(
        "ref-purged", AuditAction.PURGED, NOW, "purge_expired", {"invoices": purged.invoice_numbers()}
    )
    world.orders.delete("ref-purged")
    original_create = world.blobs.create

    def crash(name: str, data: bytes, metadata: Mapping[str, str]) -> bool:
        raise RuntimeError("worker died")

    world.blobs.create = crash  # type: ignore[method-assign]
    for ref in ("ref-erased-unrecorded", "ref-poisoned"):  # numbers 3 and 4: claimed, never recorded
        with pytest.raises(RuntimeError):
            world.issue(ref)
    world.blobs.create = original_create  # type: ignore[method-assign]
    world.audit.record("ref-erased-unrecorded", AuditAction.ERASED, NOW, "ops", {"invoices": []})
    world.orders.delete("ref-erased-unrecorded")
    counted = CountingStore(world.store)
    world.counter = world.service._counter = InvoiceCounter(counted, sleep=lambda _s: None)
    world.issue("ref-recent", now=NOW + timedelta(days=6))
    assert len(held_claims(world.store, "INV2026")) == 5  # none a week old
    assert counted.counts["state.write"] == 1  # the allocation: recording needs no counter write

    de_consumer(world, "ref-next-week")
    world.issue("ref-next-week", now=NOW + timedelta(days=8))
    counter = world.counter.peek("INV2026")
    assert counter is not None and counted.counts["state.write"] == 2
    assert {claim: entry[0] for claim, entry in held_claims(world.store, "INV2026").items()} == {
        "ref-poisoned:invoice": 4,  # its order still waits: replayed from the poison queue, it gets 4
        "ref-recent:invoice": 5,
        "ref-next-week:invoice": 6,
    }
    assert counter["voided"] == [{"number": 3, "at": (NOW + timedelta(days=8)).isoformat()}]
    assert world.issue("ref-poisoned", now=NOW + timedelta(days=20))["invoice"]["number"] == 4


def test_a_claim_kept_waits_a_week_so_the_others_are_settled_in_turn() -> None:
    store = MemoryDocumentStore()
    counter = InvoiceCounter(store, sleep=lambda _s: None)
    for n in range(SETTLE_CHECKS):
        counter.allocate("S", f"poisoned-{n}:invoice", NOW, lambda *_: ClaimVerdict.KEEP)
    counter.allocate("S", "recorded:invoice", NOW + timedelta(hours=1), lambda *_: ClaimVerdict.KEEP)
    checked: list[str] = []

    def verdict(series: str, claim: str, number: int) -> ClaimVerdict:
        checked.append(claim)
        return ClaimVerdict.DROP if claim == "recorded:invoice" else ClaimVerdict.KEEP

    later = NOW + timedelta(days=8)
    counter.allocate("S", "new-1:invoice", later, verdict)
    assert len(checked) == SETTLE_CHECKS  # ten of the eleven week-old claims
    counter.allocate("S", "new-2:invoice", later + timedelta(minutes=1), verdict)
    assert sorted(checked) == sorted(
        [f"poisoned-{n}:invoice" for n in range(SETTLE_CHECKS)] + ["recorded:invoice"]
    )
    claims = held_claims(store, "S")  # the one left is checked next: the kept ones wait a week
    assert "recorded:invoice" not in claims
    assert len(claims) == SETTLE_CHECKS + 2  # the kept ones, and the two new


def test_a_claim_whose_order_cannot_be_read_now_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World()
    de_consumer(world, "ref-old")
    world.issue("ref-old")
    verdict = world.service._claim_verdict
    assert verdict("INV2026", "ref-old:invoice", 1) is ClaimVerdict.DROP
    assert verdict("INV2026", "ref-old:invoice", 2) is ClaimVerdict.KEEP  # not its number
    broken = world.store.read(ORDERS, "ref-old", "ref-old")
    assert broken is not None
    world.store.replace(ORDERS, {k: v for k, v in broken.items() if k != "stage"}, broken["_etag"])
    assert verdict("INV2026", "ref-old:invoice", 1) is ClaimVerdict.KEEP  # unreadable document

    def unavailable(container: str, partition: str, doc_id: str) -> None:
        raise StoreUnavailable("cosmos down")

    monkeypatch.setattr(world.store, "read", unavailable)
    assert verdict("INV2026", "ref-old:invoice", 1) is ClaimVerdict.KEEP


def test_number_of_an_order_that_vanished_is_voided_not_reused() -> None:
    """Gone while its invoice was made: nothing is sent and the blob goes. No erasure record
    lists the number, so the week-old check voids it; it is never handed out again."""
    world = World()
    de_consumer(world, "ref-vanishing")
    de_consumer(world, "ref-next-order")
    original_create = world.blobs.create

    def delete_order_meanwhile(name: str, data: bytes, metadata: Mapping[str, str]) -> bool:
        world.orders.delete("ref-vanishing")
        return original_create(name, data, metadata)

    world.blobs.create = delete_order_meanwhile  # type: ignore[method-assign]
    world.service.issue(IssueInvoice(ref="ref-vanishing"), NOW)
    world.blobs.create = original_create  # type: ignore[method-assign]
    assert world.uploader.calls == [] and stored(world.memory) == {}
    assert world.issue("ref-next-order")["invoice"]["number"] == 2
    de_consumer(world, "ref-next-week")
    assert world.issue("ref-next-week", now=NOW + timedelta(days=8))["invoice"]["number"] == 3
    counter = world.counter.peek("INV2026")
    assert counter is not None and "ref-vanishing:invoice" not in held_claims(world.store, "INV2026")
    assert counter["voided"] == [{"number": 1, "at": (NOW + timedelta(days=8)).isoformat()}]


def _changed_while_made(world: World, ref: str, change: Callable[[OrderRecord], OrderRecord]) -> None:
    original_create = world.blobs.create

    def change_meanwhile(name: str, data: bytes, metadata: Mapping[str, str]) -> bool:
        world.orders.update(ref, change)
        return original_create(name, data, metadata)

    world.blobs.create = change_meanwhile  # type: ignore[method-assign]


@pytest.mark.parametrize(
    "erasing",
    [
        # The erasure's first step: the document stripped to a shell, then blobs, then the shell.
        lambda r: r.evolve(pii=None, restricted=True, invoice=None),
        lambda r: r.evolve(pii=None),
    ],
)
def test_an_order_erased_while_its_invoice_is_made_gets_nothing_sent(
    erasing: Callable[[OrderRecord], OrderRecord],
) -> None:
    """The erasure lists the invoice blobs it finds, so whether the number counts as used is
    left to the claim's settlement, which reads the erasure's record."""
    world = World()
    de_consumer(world, "ref-erasing")
    _changed_while_made(world, "ref-erasing", erasing)
    world.issue("ref-erasing")
    assert world.uploader.calls == [] and stored(world.memory) == {}
    assert "ref-erasing:invoice" in held_claims(world.store, "INV2026")
    world.orders.delete("ref-erasing")
    verdict = world.service._claim_verdict
    assert verdict("INV2026", "ref-erasing:invoice", 1) is ClaimVerdict.VOID  # nobody listed it
    world.audit.record("ref-erasing", AuditAction.ERASED, NOW, "ops", {"invoices": ["INV2026-000001"]})
    assert verdict("INV2026", "ref-erasing:invoice", 1) is ClaimVerdict.DROP  # the erasure saw its blob


def test_an_order_erased_before_its_invoice_blob_is_noted_gets_no_blob_and_no_note() -> None:
    """The note comes before the blob: an order stripped while the PDF renders refuses it, so
    no blob exists that its purge or erasure would have to find."""
    world = World()
    de_consumer(world, "ref-erased-rendering")
    render = world.service._renderer.render

    def render_while_erased(data: Any) -> bytes:
        world.orders.update(
            "ref-erased-rendering", lambda r: r.evolve(pii=None, restricted=True, invoice=None)
        )
        return render(data)

    world.service._renderer.render = render_while_erased  # type: ignore[method-assign]
    writes = world.memory.writes
    world.issue("ref-erased-rendering")
    record = world.orders.get("ref-erased-rendering")
    assert record is not None and record.noted_blobs == ()
    assert world.memory.writes == writes  # never written, not written and deleted
    assert world.uploader.calls == [] and stored(world.memory) == {}


def test_an_order_restricted_while_its_invoice_is_made_gets_nothing_sent() -> None:
    world = World()
    de_consumer(world, "ref-restricted")
    _changed_while_made(world, "ref-restricted", lambda r: r.evolve(restricted=True))
    assert world.issue("ref-restricted") == {"skipped": {"invoice": "restricted"}}
    assert world.uploader.calls == [] and stored(world.memory) == {}
    assert world.counter.peek("INV2026")["voided"] == [{"number": 1, "at": NOW.isoformat()}]  # type: ignore[index]


def test_an_invoice_not_uploaded_is_not_recorded_on_an_order_whose_buyer_data_went() -> None:
    world = World(marketplaces=())  # a business invoice kept, not uploaded
    de_consumer(world, "ref-erased-business")
    world.orders.update("ref-erased-business", lambda r: r.evolve(is_business=True))
    _changed_while_made(world, "ref-erased-business", lambda r: r.evolve(pii=None))
    assert world.issue("ref-erased-business") == {}
    assert stored(world.memory) == {}  # the sealed PDF does not outlive the buyer's data


def test_an_invoice_sent_while_its_order_was_erased_is_accounted_for_in_the_audit() -> None:
    world = World()
    de_consumer(world, "ref-erased-mid-upload")
    first_upload = world.uploader.upload

    def erased_during_upload(
        seller: str, marketplace: str, pdf: bytes, options: Mapping[str, str]
    ) -> FeedReceipt:
        world.orders.delete("ref-erased-mid-upload")
        return first_upload(seller, marketplace, pdf, options)

    world.uploader.upload = erased_during_upload  # type: ignore[method-assign]
    world.service.issue(IssueInvoice(ref="ref-erased-mid-upload"), NOW)
    [event] = world.audit.trail("ref-erased-mid-upload")
    assert (event.action, dict(event.details)) == (
        "invoice_unrecorded",
        {"invoices": ["INV2026-000001"], "delivery": "submitted"},
    )
    assert stored(world.memory) == {}  # the sealed PDF does not outlive its order
    verdict = world.service._claim_verdict("INV2026", "ref-erased-mid-upload:invoice", 1)
    assert verdict is ClaimVerdict.DROP  # the number is accounted for, not voided


def test_counter_document_lives_in_the_state_container_under_its_partition() -> None:
    world = World()
    de_consumer(world)
    world.issue("ref-de-consumer-1")
    doc = world.store.read(STATE, counter_id("INV2026"), counter_id("INV2026"))
    assert doc is not None and doc["pk"] == doc["id"] == "invoice-series:INV2026"


# -- when an invoice is (not) issued ----------------------------------------------------------


def _plain_order(world: World, ref: str, marketplace: str, **changes: Any) -> None:
    pii = OrderPii(
        "111-6666666-6666666", Buyer(name=Pii("C D")), address("C D", "Rd 1", "10001", "NYC", "US")
    )
    world.add_order(
        ref,
        marketplace=marketplace,
        items=(item(1, "Thing", 1, "10.00", "0.00", currency="USD"),),
        pii=pii,
        **changes,
    )


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({}, "not_required"),
        ({"restricted": True, "extra": {"invoiceRequested": True}}, "restricted"),
        ({"stage": Stage.CANCELLED, "business": True}, "cancelled"),
        ({"stage": Stage.READY, "business": True}, "not_shipped"),
    ],
)
def test_skips_are_recorded_with_their_reason(changes: dict[str, Any], reason: str) -> None:
    world = World()
    _plain_order(world, "ref-skipped-1", US, **changes)
    assert world.issue("ref-skipped-1") == {"skipped": {"invoice": reason}}
    assert world.counter.peek("INV2026") is None and not stored(world.memory)


def test_deleted_buyer_data_is_a_skip() -> None:
    world = World()
    _plain_order(world, "ref-deleted-pii", US, business=True)
    world.orders.update("ref-deleted-pii", lambda r: r.evolve(pii=None))
    assert world.issue("ref-deleted-pii") == {"skipped": {"invoice": "pii_deleted"}}


def test_business_and_buyer_requested_orders_get_an_invoice_without_upload() -> None:
    world = World()
    _plain_order(world, "ref-business-us", US, business=True)
    _plain_order(world, "ref-requested-us", US, extra={"invoiceRequested": True})
    for ref in ("ref-business-us", "ref-requested-us"):
        doc = world.issue(ref)["invoice"]
        assert doc["delivery"] == {"status": "not_configured"}
    assert world.uploader.calls == []
    assert "export of goods outside the EU" in normalise(world.pdf_text("ref-business-us"))


def test_credit_note_without_an_invoice_is_a_skip() -> None:
    world = World()
    de_consumer(world)
    assert world.issue("ref-de-consumer-1", "credit_note") == {
        "skipped": {"credit_note": "no_invoice_to_credit"}
    }


# -- delivery through the Feeds API ---------------------------------------------------------


def test_upload_carries_the_invoice_metadata_and_records_the_feed() -> None:
    world = World()
    de_consumer(world)
    doc = world.issue("ref-de-consumer-1")["invoice"]
    assert doc["delivery"] == {"status": "submitted", "feedId": "feed-1", "processingStatus": "IN_QUEUE"}
    seller, marketplace, pdf, options = world.uploader.calls[0]
    assert (seller, marketplace) == ("A1SELLER", DE) and pdf.startswith(b"%PDF-")
    assert options == {
        "metadata:OrderId": "302-1111111-1111111",
        "metadata:InvoiceNumber": "INV2026-000001",
        "metadata:DocumentType": "Invoice",
        "metadata:TotalAmount": "80.90",
        "metadata:TotalVATAmount": "10.90",
    }


def test_throttled_upload_is_retried_by_redelivery_with_the_same_number() -> None:
    world = World()
    de_consumer(world)
    world.uploader.errors.append(FeedUnavailable("sp-api status 429"))
    with pytest.raises(FeedUnavailable):
        world.issue("ref-de-consumer-1")
    assert world.issue_doc("ref-de-consumer-1", "invoice")["delivery"] == {"status": "pending"}
    doc = world.issue("ref-de-consumer-1")["invoice"]
    assert doc["number"] == 1 and doc["delivery"]["status"] == "submitted"
    assert world.counter.peek("INV2026")["next"] == 2  # type: ignore[index]


def _dies_before_recording(world: World, kind: str, *, now: datetime, ref: str = "ref-de-consumer-1") -> None:
    """A delivery of the message whose worker dies after the upload, before the document is
    recorded on the order."""
    original = world.orders.replace

    def dies(record: OrderRecord) -> OrderRecord:
        if (record.invoice or {}).get(DOC_KEYS[kind]):
            raise RuntimeError("worker died")
        return original(record)

    world.orders.replace = dies  # type: ignore[method-assign]
    try:
        with pytest.raises(RuntimeError):
            world.issue(ref, kind, now=now)
    finally:
        world.orders.replace = original  # type: ignore[method-assign]


def test_a_redelivery_after_new_year_keeps_the_series_and_never_sends_twice() -> None:
    """The worker dies after createFeed at 23:58 on 31 December; the message comes back after
    midnight. The series follows the shipment's year, so the redelivery finds its claim."""
    world = World()
    de_consumer(world)  # shipped on 1 November 2026
    eve = datetime(2026, 12, 31, 23, 58, tzinfo=UTC)
    _dies_before_recording(world, "invoice", now=eve)

    doc = world.issue("ref-de-consumer-1", now=eve + timedelta(minutes=10))["invoice"]

    assert [opts["metadata:InvoiceNumber"] for *_, opts in world.uploader.calls] == ["INV2026-000001"]
    assert doc["numberText"] == "INV2026-000001" and world.counter.peek("INV2027") is None


def test_a_credit_note_redelivered_after_new_year_keeps_its_series_and_is_sent_once() -> None:
    world = World()
    de_consumer(world)
    world.orders.update(
        "ref-de-consumer-1", lambda r: r.evolve(extra={REFUND_TRANSACTION_ID: "amzn1-refund-1"})
    )
    world.issue("ref-de-consumer-1")  # the invoice
    eve = datetime(2026, 12, 31, 23, 58, tzinfo=UTC)
    _dies_before_recording(world, "credit_note", now=eve)

    world.issue("ref-de-consumer-1", "credit_note", now=eve + timedelta(minutes=10))

    sent = [
        o["metadata:InvoiceNumber"]
        for *_, o in world.uploader.calls
        if o["metadata:DocumentType"] == "CreditNote"
    ]
    assert sent == ["CN2026-000001"] and world.counter.peek("CN2027") is None


def test_an_upload_put_off_is_not_sent_once_the_order_is_restricted() -> None:
    world = World()
    de_consumer(world)
    world.uploader.errors.append(FeedUnavailable("sp-api status 429"))
    with pytest.raises(FeedUnavailable):
        world.issue("ref-de-consumer-1")
    world.orders.update("ref-de-consumer-1", lambda r: r.evolve(restricted=True))

    doc = world.issue("ref-de-consumer-1")["invoice"]  # the redelivery

    assert world.uploader.calls == []
    assert doc["delivery"] == {"status": "manual", "error": "invoice_withheld_restricted"}


def test_a_crash_after_the_upload_never_sends_the_invoice_twice() -> None:
    """The worker dies after createFeed and before the document is recorded: the redelivery
    finds the number claimed and the blob stored, waits out the first invocation, then records
    the document from the blob's metadata for a person."""
    world = World()
    de_consumer(world)
    _dies_before_recording(world, "invoice", now=NOW)
    crashed = world.orders.get("ref-de-consumer-1")
    assert crashed is not None and not crashed.invoice  # no document on the order yet
    assert len(world.uploader.calls) == 1
    # Redelivered within the host's timeout, the first may still be uploading: look again later.
    with pytest.raises(InvoiceUploadInProgress) as wait:
        world.issue("ref-de-consumer-1", now=NOW + timedelta(minutes=1))
    assert wait.value.retry_after_s == 5 * 60 and wait.value.transient
    later = NOW + UPLOAD_MARK_STALE_AFTER
    doc = world.issue("ref-de-consumer-1", now=later)["invoice"]
    assert doc["delivery"] == {"status": "manual", "error": UPLOAD_UNKNOWN}
    assert (doc["numberText"], doc["totalAmount"], doc["issuedAt"]) == (
        "INV2026-000001",
        "80.90",
        NOW.isoformat(),
    )
    assert len(world.uploader.calls) == 1
    world.issue("ref-de-consumer-1", now=later)  # and stays so
    assert len(world.uploader.calls) == 1


def test_a_duplicate_that_finds_the_document_being_uploaded_waits_for_it() -> None:
    """A duplicate message handled while the first is mid-upload is re-queued, not handed to a
    person; the first records the feed, and the duplicate, back later, finds it done."""
    world = World()
    de_consumer(world)
    first_upload = world.uploader.upload

    def duplicate_arrives(
        seller: str, marketplace: str, pdf: bytes, options: Mapping[str, str]
    ) -> FeedReceipt:
        world.uploader.upload = first_upload  # type: ignore[method-assign]
        with pytest.raises(InvoiceUploadInProgress):
            world.issue("ref-de-consumer-1", now=NOW + timedelta(seconds=20))
        return first_upload(seller, marketplace, pdf, options)

    world.uploader.upload = duplicate_arrives  # type: ignore[method-assign]
    submitted = {"status": "submitted", "feedId": "feed-1", "processingStatus": "IN_QUEUE"}
    assert world.issue("ref-de-consumer-1")["invoice"]["delivery"] == submitted
    assert (
        world.issue("ref-de-consumer-1", now=NOW + UPLOAD_MARK_STALE_AFTER)["invoice"]["delivery"]
        == submitted
    )
    assert len(world.uploader.calls) == 1


def test_an_uploaded_invoice_costs_two_order_writes_and_one_counter_write() -> None:
    world = World()
    de_consumer(world)
    counted = CountingStore(world.store)
    world.service._orders = OrderRepository(counted)
    world.counter = world.service._counter = InvoiceCounter(counted, sleep=lambda _s: None)
    assert world.issue("ref-de-consumer-1")["invoice"]["delivery"]["status"] == "submitted"
    # The blob's name noted before it is written (so the purge never lists), then the document.
    record = world.orders.get("ref-de-consumer-1")
    assert record is not None and record.invoice is not None
    assert record.noted_blobs == (record.invoice["invoice"]["blob"],)
    assert (counted.counts["orders.write"], counted.counts["state.write"]) == (2, 1)


def test_an_upload_whose_outcome_is_unknown_goes_to_a_person_at_once() -> None:
    world = World()
    de_consumer(world)
    world.uploader.errors.append(FeedOutcomeUnknown("createFeed status 504"))
    doc = world.issue("ref-de-consumer-1")["invoice"]
    assert doc["delivery"]["status"] == "manual" and doc["delivery"]["error"] == UPLOAD_UNKNOWN
    world.issue("ref-de-consumer-1")
    assert world.uploader.calls == []  # never sent again


def test_a_failure_before_anything_is_sent_keeps_the_invoice_pending() -> None:
    world = World()
    de_consumer(world)
    world.uploader.errors.append(FeedUnavailable("sp-api status 503"))
    with pytest.raises(FeedUnavailable):
        world.issue("ref-de-consumer-1")
    original = world.blobs.get

    def unavailable(name: str) -> bytes | None:
        raise RuntimeError("blob store down")

    world.blobs.get = unavailable  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        world.issue("ref-de-consumer-1")
    assert world.issue_doc("ref-de-consumer-1", "invoice")["delivery"] == {"status": "pending"}
    world.blobs.get = original  # type: ignore[method-assign]
    assert world.issue("ref-de-consumer-1")["invoice"]["delivery"]["status"] == "submitted"
    assert len(world.uploader.calls) == 1


def test_rejected_upload_is_recorded_not_retried() -> None:
    world = World()
    de_consumer(world)
    world.uploader.errors.append(FeedRejected("sp-api status 400"))
    doc = world.issue("ref-de-consumer-1")["invoice"]
    assert doc["delivery"] == {"status": "failed", "error": "invoice_feed_rejected"}


def test_option_text_amazon_refuses_is_recorded_failed_and_nothing_is_sent() -> None:
    world = World()
    de_consumer(world)
    world.issue("ref-de-consumer-1")
    world.orders.update("ref-de-consumer-1", lambda r: r.evolve(extra={REFUND_TRANSACTION_ID: "refund<1>"}))
    doc = world.issue("ref-de-consumer-1", "credit_note")["creditNote"]
    assert doc["delivery"] == {"status": "failed", "error": "invoice_feed_option"}
    assert len(world.uploader.calls) == 1  # the invoice's upload only


def test_a_store_failure_just_before_the_upload_leaves_nothing_to_doubt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The order cannot be re-read before createFeed: nothing was sent, so the blob goes and
    the redelivery starts again with the same number, instead of waiting for a person."""
    world = World()
    de_consumer(world)
    original_get = world.service._orders.get
    reads: list[str] = []

    def second_read_fails(ref: str) -> OrderRecord | None:
        reads.append(ref)
        if len(reads) == 2:  # the read right before the upload
            raise StoreUnavailable("cosmos down")
        return original_get(ref)

    monkeypatch.setattr(world.service._orders, "get", second_read_fails)
    with pytest.raises(StoreUnavailable):
        world.issue("ref-de-consumer-1")
    assert stored(world.memory) == {} and world.uploader.calls == []
    doc = world.issue("ref-de-consumer-1")["invoice"]
    assert (doc["number"], doc["delivery"]["status"]) == (1, "submitted")
    assert len(world.uploader.calls) == 1


def test_credit_note_upload_needs_amazons_refund_transaction_id() -> None:
    world = World()
    de_consumer(world, "ref-refund-nok")
    de_consumer(world, "ref-refund-ok1")
    world.orders.update("ref-refund-ok1", lambda r: r.evolve(extra={REFUND_TRANSACTION_ID: "amzn1-refund-1"}))
    for ref in ("ref-refund-nok", "ref-refund-ok1"):
        world.issue(ref)
        world.issue(ref, "credit_note")
    missing = world.issue_doc("ref-refund-nok", "creditNote")["delivery"]
    assert missing == {"status": "manual", "error": "credit_note_needs_transaction_id"}
    assert world.issue_doc("ref-refund-ok1", "creditNote")["delivery"]["status"] == "submitted"
    options = world.uploader.calls[-1][3]
    assert options["metadata:DocumentType"] == "CreditNote"
    assert options["metadata:TransactionId"] == "amzn1-refund-1"
    assert options["metadata:TotalAmount"] == "-80.90"


# -- retention --------------------------------------------------------------------------------


def test_by_default_nothing_is_archived_and_the_blob_dies_with_the_order_key() -> None:
    world = World()
    de_consumer(world)
    world.issue("ref-de-consumer-1")
    record = world.orders.get("ref-de-consumer-1")
    assert record is not None and "archiveUntil" not in record.invoice["invoice"]  # type: ignore[index]
    assert not stored(world.archive_memory)
    names = [record.invoice["invoice"]["blob"]]  # type: ignore[index]
    assert names == ["invoices/ref-de-consumer-1/INV2026-000001.pdf"]
    world.sealer.shred("ref-de-consumer-1")  # the order's key is destroyed with its PII
    with pytest.raises(KeyShredded):
        world.sealer.open_bytes("ref-de-consumer-1", stored(world.memory)[names[0]])


def test_archive_keeps_only_the_invoice_under_its_own_key_until_the_legal_period_ends() -> None:
    world = World(archive_years={"DE": 10})
    de_consumer(world)
    doc = world.issue("ref-de-consumer-1")["invoice"]
    assert doc["archiveUntil"] == "2036-12-31T23:59:59+00:00"  # from the end of the year of issue
    sealed = stored(world.archive_memory)["invoice-archive/INV2026-000001.pdf"]
    with pytest.raises(KeyShredded):  # the order's key cannot open it
        world.sealer.open_bytes(ARCHIVE_KEY_REF, sealed)
    archived = world.archive.read("INV2026-000001")
    assert archived is not None
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(archived)).pages)
    assert "Jürgen Weiß" in text and "+49 89 123456" not in text and "jw@marketplace.example" not in text
    assert world.archive.purge_expired(NOW + timedelta(days=365 * 9)) == 0
    assert world.archive.purge_expired(datetime(2037, 1, 1, tzinfo=UTC)) == 1
    assert not stored(world.archive_memory) and world.archive.read("INV2026-000001") is None


def test_profile_errors_name_the_field_not_the_value() -> None:
    with pytest.raises(SettingsError, match=r"SELLER_PROFILE\.legalName") as err:
        parse_profile({**PROFILE, "legalName": ""})
    assert "Muster" not in str(err.value)
    with pytest.raises(SettingsError, match=r"SELLER_PROFILE\.address"):
        parse_profile({**PROFILE, "address": "Somewhere 1"})


def test_an_order_erased_before_invoicing_gets_no_number_and_no_document() -> None:
    # A privacy delete between label and invoice: the invoice message arrives for an order
    # that no longer exists.
    world = World()
    de_consumer(world, "ref-erased-1")
    world.orders.delete("ref-erased-1")
    world.service.issue(IssueInvoice(ref="ref-erased-1"), NOW)
    assert world.counter.peek("INV2026") is None and not stored(world.memory) and not world.uploader.calls


def test_a_deletion_confirmation_names_the_invoice_the_legal_archive_keeps() -> None:
    """The archive is the one exception to deletion: the confirmation says so, by number and
    date, instead of claiming everything went."""
    from shared.orders.deadlines import RetentionPolicy
    from shared.privacy.service import PrivacyService

    world = World(archive_years={"DE": 10})
    de_consumer(world)
    world.issue("ref-de-consumer-1")
    privacy = PrivacyService(
        world.store,
        cipher=world.cipher,
        blobs=world.memory,
        policy=RetentionPolicy(retention_days=7, delivery_grace_days=3, recoverability_days=28),
        archive=world.archive,
        audit=audit_trail(world.store),
    )
    confirmation = privacy.delete("ref-de-consumer-1", "amzn-del-0001", NOW, request_type="amazon_delete")

    assert world.archive.read("INV2026-000001") is not None
    assert confirmation.kept == (
        "tax document INV2026-000001: archived copy, kept until 2036-12-31T23:59:59+00:00 (tax law)",
    )
    text = privacy.confirmation_text("ref-de-consumer-1", "amzn-del-0001") or ""
    assert "except what the law requires the seller to keep" in text
    assert "Kept under a legal obligation (not deleted):\n  - tax document INV2026-000001" in text


@pytest.mark.parametrize(
    "meanwhile",
    [lambda r: r.evolve(pii=None), lambda r: r.evolve(restricted=True)],
    ids=["erased", "restricted"],
)
def test_a_document_never_issued_leaves_no_copy_in_the_legal_archive(
    meanwhile: Callable[[OrderRecord], OrderRecord],
) -> None:
    world = World(archive_years={"DE": 10})
    de_consumer(world, "ref-changing")
    _changed_while_made(world, "ref-changing", meanwhile)
    world.issue("ref-changing")
    assert world.uploader.calls == [] and stored(world.memory) == {}
    assert stored(world.archive_memory) == {} and world.archive.read("INV2026-000001") is None


def test_the_purge_timer_deletes_archived_invoices_whose_keeping_ended() -> None:
    from shared.orders.deadlines import RetentionPolicy
    from shared.retention.service import RetentionService

    world = World(archive_years={"DE": 10})
    de_consumer(world)
    world.issue("ref-de-consumer-1")
    retention = RetentionService(
        world.store,
        amazon=FakeSignal(lambda: NOW),
        carrier=FakeSignal(lambda: NOW),
        blobs=MemoryBlobs(),
        shredder=FakeShredder(),
        policy=RetentionPolicy(retention_days=7, delivery_grace_days=3, recoverability_days=28),
        archive=world.archive,
        audit=audit_trail(world.store),
    )
    assert retention.purge(datetime(2036, 12, 31, 12, 0, tzinfo=UTC)).archive_deleted == 0
    assert world.archive.read("INV2026-000001") is not None  # ten years from the end of 2026
    assert retention.purge(datetime(2037, 1, 1, 0, 30, tzinfo=UTC)).archive_deleted == 1
    assert world.archive.read("INV2026-000001") is None


def test_an_order_that_cannot_be_invoiced_takes_no_number() -> None:
    """An unpriced item or two currencies: refused before a number is claimed, so no number
    is held by a document that can never be made."""
    world = World()
    pii = OrderPii(
        "302-2222222-2222222", Buyer(name=Pii("A B")), address("A B", "X 1", "10115", "Berlin", "DE")
    )
    items = (item(1, "Thing", 1, "11.90", "1.90"), item(2, "Other", 1, "10.00", "1.60", currency="PLN"))
    world.add_order("ref-two-currencies", marketplace=DE, items=items, pii=pii)
    with pytest.raises(UnpricedOrder):
        world.issue("ref-two-currencies")
    assert world.counter.peek("INV2026") is None
    de_consumer(world, "ref-good")
    assert world.issue("ref-good")["invoice"]["numberText"] == "INV2026-000001"


def test_shipping_and_a_discount_are_lines_of_their_own_with_their_vat() -> None:
    """Transport is part of the taxable amount (Art. 78(b)); a promotion reduces it. The total
    is what the buyer paid."""
    world = World()
    pii = OrderPii(
        "302-3333333-3333333", Buyer(name=Pii("A B")), address("A B", "X 1", "10115", "Berlin", "DE")
    )
    mill = dataclasses.replace(
        item(1, "Kaffeemühle", 1, "59.50", "9.50"),
        charges=(
            Charge("SHIPPING", Decimal("4.99"), Decimal("0.80")),
            Charge("DISCOUNT", Decimal("-5.95"), Decimal("-0.95")),
        ),
    )
    world.add_order("ref-charges", marketplace=DE, items=(mill,), pii=pii)

    doc = world.issue("ref-charges")["invoice"]

    assert (doc["totalAmount"], doc["totalVat"]) == ("58.54", "9.35")  # 59.50 + 4.99 - 5.95
    text = world.pdf_text("ref-charges")
    assert "Shipping: Kaffeemühle" in text and "Discount: Kaffeemühle" in text
    assert world.uploader.calls[0][3]["metadata:TotalAmount"] == "58.54"


def test_an_export_shows_the_vat_id_of_the_country_the_goods_leave() -> None:
    """A zero-rated export from DE to GB (Art. 146) is supplied in DE (Art. 32): the invoice
    carries the DE registration (Art. 226(3)), not the seller's GB one."""
    world = World()
    pii = OrderPii(
        "302-4444444-4444444", Buyer(name=Pii("A B")), address("A B", "X 1", "SW1", "London", "GB")
    )
    world.add_order("ref-export", marketplace=UK, items=(item(1, "Hose", 1, "50.00", "0.00"),), pii=pii)
    world.issue("ref-export")
    text = world.pdf_text("ref-export")
    assert "DE123456789" in text and "GB123456789" not in text


def test_an_archived_copy_opens_only_under_its_own_number() -> None:
    """Sealed for "invoice-archive:<number>": a copy moved to another number's name, or a
    tampered one, is refused with a reason code, never opened as the other invoice."""
    from shared.invoices.archive import ArchiveUnreadable

    world = World(archive_years={"DE": 10})
    de_consumer(world, "ref-one")
    de_consumer(world, "ref-two")
    world.issue("ref-one")
    world.issue("ref-two")
    copies = world.archive_memory.blobs
    first, second = ("invoice-archive", "INV2026-000001.pdf"), ("invoice-archive", "INV2026-000002.pdf")
    copies[second] = copies[first]
    with pytest.raises(ArchiveUnreadable):
        world.archive.read("INV2026-000002")
    copies[first] = copies[first][:-1] + bytes([copies[first][-1] ^ 1])
    with pytest.raises(ArchiveUnreadable):
        world.archive.read("INV2026-000001")
