"""Issue the tax invoice (or credit note) of an order, number it without gaps, store it sealed,
deliver it to Amazon where configured, and record every step on the order by compare-and-swap.

Steps of `issue`, each safe to repeat when the message is redelivered:
1. read the order; skip (recording why) when no invoice is required or allowed;
2. allocate the number for claim "<ref>:<kind>" (the same claim always gets the same number);
3. open the buyer's data in memory, render the PDF, store it sealed under the order's data key
   (so it is crypto-shredded with the order: the 7-day rule), and archive a copy where the
   seller's tax law requires it (`shared.invoices.archive`);
4. record the document on the order (CAS), then release the claim;
5. upload it with the UPLOAD_VAT_INVOICE feed where configured and record the feed id and
   status (CAS). A throttled or failed upload raises a transient error: the redelivered message
   finds the document recorded and resumes at this step.

The order document's `invoice` mapping (no personal data):
  {"invoice": DOC, "creditNote": DOC, "skipped": {"invoice": REASON, ...}}
  DOC = {series, number, numberText, kind, issuedAt, blob, currency, totalAmount, totalVat,
         archiveUntil?, delivery: {status, feedId?, processingStatus?, error?}}
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from shared.blob_store import INVOICES
from shared.errors import AppError
from shared.invoices.archive import InvoiceArchive
from shared.invoices.feeds import FeedRejected, VatInvoiceUploader, feed_options
from shared.invoices.model import CREDIT_NOTE, INVOICE, InvoiceData, build_invoice, money
from shared.invoices.numbering import InvoiceCounter
from shared.invoices.ports import BlobStore, ByteSealer
from shared.invoices.profile import VAT_UPLOAD_MARKETPLACES, SellerProfile
from shared.invoices.render import Renderer
from shared.messages import IssueInvoice
from shared.order_record import OrderRecord, PiiCipher, Stage
from shared.order_repository import OrderRepository

DOC_KEYS = {INVOICE: "invoice", CREDIT_NOTE: "creditNote"}
FEED_DOCUMENT_TYPES = {INVOICE: "Invoice", CREDIT_NOTE: "CreditNote"}
# Set on an order's `extra` by whoever learns of them; both carry no personal data.
BUYER_REQUEST_FLAG = "invoiceRequested"
REFUND_TRANSACTION_ID = "refundTransactionId"


class InvoiceUnavailable(AppError):
    code = "invoice_unavailable"


def invoice_blob_names(record: OrderRecord) -> list[str]:
    """The order's invoice blobs, for the purge (the archive keeps its own copies)."""
    docs = (record.invoice or {}).values()
    return [str(d["blob"]) for d in docs if isinstance(d, Mapping) and "blob" in d]


class InvoicingService:
    def __init__(
        self,
        *,
        orders: OrderRepository,
        counter: InvoiceCounter,
        cipher: PiiCipher,
        sealer: ByteSealer,
        blobs: BlobStore,
        renderer: Renderer,
        profile: SellerProfile,
        invoice_marketplaces: tuple[str, ...],
        uploader: VatInvoiceUploader | None,
        archive: InvoiceArchive | None = None,
    ) -> None:
        self._orders = orders
        self._counter = counter
        self._cipher = cipher
        self._sealer = sealer
        self._blobs = blobs
        self._renderer = renderer
        self._profile = profile
        self._marketplaces = frozenset(invoice_marketplaces)
        self._uploader = uploader
        self._archive = archive

    # -- decisions -------------------------------------------------------------------------

    def required(self, record: OrderRecord) -> bool:
        return (
            record.marketplace_id in self._marketplaces
            or record.is_business
            or bool(record.extra.get(BUYER_REQUEST_FLAG))
        )

    def _skip_reason(self, record: OrderRecord, kind: str) -> str | None:
        if record.restricted:
            return "restricted"
        if record.pii is None:
            return "pii_deleted"
        if kind == CREDIT_NOTE:
            return None if _doc(record, INVOICE) else "no_invoice_to_credit"
        if record.stage is Stage.CANCELLED:
            return "cancelled"
        if record.stage in (Stage.AWAITING, Stage.READY):
            return "not_shipped"
        return None if self.required(record) else "not_required"

    def _uploads(self, record: OrderRecord) -> bool:
        return (
            self._uploader is not None
            and record.marketplace_id in self._marketplaces
            and record.marketplace_id in VAT_UPLOAD_MARKETPLACES
        )

    # -- the message handler ---------------------------------------------------------------

    def issue(self, request: IssueInvoice, now: datetime) -> None:
        kind = request.kind
        record = self._orders.get(request.ref)
        if record is None:
            return
        existing = _doc(record, kind)
        if existing is None:
            reason = self._skip_reason(record, kind)
            if reason is not None:
                self._record_skip(record.ref, kind, reason)
                return
            existing = self._create_document(record, kind, now)
            if existing is None:
                return
        self._deliver(request.ref, kind, existing)

    def _create_document(self, record: OrderRecord, kind: str, now: datetime) -> Mapping[str, Any] | None:
        prefix = self._profile.credit_note_prefix if kind == CREDIT_NOTE else self._profile.invoice_prefix
        series = f"{prefix}{now.year}"
        claim = f"{record.ref}:{kind}"
        allocation = self._counter.allocate(series, claim, now)
        if allocation.reused:
            # A concurrent delivery of the same message may have finished meanwhile.
            current = self._orders.get(record.ref)
            done = _doc(current, kind) if current is not None else None
            if done is not None:
                self._counter.release(series, claim, now)
                return done
        number_text = f"{series}-{allocation.number:06d}"
        data = self._build(record, kind, number_text, now)
        pdf = self._renderer.render(data)
        blob = f"{INVOICES}/{record.ref}/{number_text}.pdf"
        self._blobs.put(blob, self._sealer.seal_bytes(record.ref, pdf, now))
        entry: dict[str, Any] = {
            "kind": kind,
            "series": series,
            "number": allocation.number,
            "numberText": number_text,
            "issuedAt": now.isoformat(),
            "blob": blob,
            "currency": data.currency,
            "totalAmount": str(money(data.total_gross)),
            "totalVat": str(money(data.total_tax)),
            "delivery": {"status": "pending" if self._uploads(record) else "not_configured"},
        }
        if self._archive is not None:
            countries = (self._profile.establishment_country, data.buyer.country_code)
            until = self._archive.keep(number_text, countries, pdf, now)
            if until:
                entry["archiveUntil"] = until
        stored = self._record_document(record.ref, kind, entry)
        if stored is None:
            self._counter.void(series, claim, now)
            return None
        self._counter.release(series, claim, now)
        return stored

    def _build(self, record: OrderRecord, kind: str, number_text: str, now: datetime) -> InvoiceData:
        if record.pii is None:
            raise InvoiceUnavailable("buyer data deleted while issuing")
        pii = self._cipher.open(record.ref, record.pii)
        return build_invoice(
            record,
            pii,
            self._profile,
            kind=kind,
            number_text=number_text,
            issued_on=now.date(),
            original=_doc(record, INVOICE) if kind == CREDIT_NOTE else None,
        )

    def _deliver(self, ref: str, kind: str, doc: Mapping[str, Any]) -> None:
        if doc.get("delivery", {}).get("status") != "pending":
            return
        record = self._orders.get(ref)
        if record is None or record.pii is None or self._uploader is None:
            return
        transaction_id = record.extra.get(REFUND_TRANSACTION_ID)
        if kind == CREDIT_NOTE and not transaction_id:
            self._record_delivery(
                ref, kind, {"status": "manual", "error": "credit_note_needs_transaction_id"}
            )
            return
        sealed = self._blobs.get(str(doc["blob"]))
        if sealed is None:
            raise InvoiceUnavailable("invoice blob missing")
        pdf = self._sealer.open_bytes(ref, sealed)
        order_id = self._cipher.open(ref, record.pii).order_id
        try:
            options = feed_options(
                order_id=order_id,
                invoice_number=str(doc["numberText"]),
                document_type=FEED_DOCUMENT_TYPES[kind],
                total_amount=str(doc["totalAmount"]),
                total_vat=str(doc["totalVat"]),
                transaction_id=str(transaction_id) if transaction_id else None,
            )
            receipt = self._uploader.upload(record.seller_id, record.marketplace_id, pdf, options)
        except FeedRejected as exc:
            self._record_delivery(ref, kind, {"status": "failed", "error": exc.code})
            return
        delivery = {
            "status": "submitted",
            "feedId": receipt.feed_id,
            "processingStatus": receipt.processing_status,
        }
        self._record_delivery(ref, kind, delivery)

    # -- recording on the order (compare-and-swap) -----------------------------------------

    def _record_skip(self, ref: str, kind: str, reason: str) -> None:
        def change(rec: OrderRecord) -> OrderRecord | None:
            invoice = dict(rec.invoice or {})
            skipped = dict(invoice.get("skipped") or {})
            if skipped.get(kind) == reason:
                return None
            skipped[kind] = reason
            invoice["skipped"] = skipped
            return rec.evolve(invoice=invoice)

        self._orders.update(ref, change)

    def _record_document(self, ref: str, kind: str, entry: Mapping[str, Any]) -> Mapping[str, Any] | None:
        def change(rec: OrderRecord) -> OrderRecord | None:
            if _doc(rec, kind) is not None:
                return None
            invoice = dict(rec.invoice or {})
            invoice[DOC_KEYS[kind]] = dict(entry)
            skipped = dict(invoice.get("skipped") or {})
            skipped.pop(kind, None)
            invoice["skipped"] = skipped
            return rec.evolve(invoice=invoice)

        stored = self._orders.update(ref, change)
        return _doc(stored, kind) if stored is not None else None

    def _record_delivery(self, ref: str, kind: str, delivery: Mapping[str, Any]) -> None:
        def change(rec: OrderRecord) -> OrderRecord | None:
            doc = _doc(rec, kind)
            if doc is None or doc.get("delivery") == delivery:
                return None
            invoice = dict(rec.invoice or {})
            invoice[DOC_KEYS[kind]] = {**doc, "delivery": dict(delivery)}
            return rec.evolve(invoice=invoice)

        self._orders.update(ref, change)


def _doc(record: OrderRecord, kind: str) -> Mapping[str, Any] | None:
    value = (record.invoice or {}).get(DOC_KEYS[kind])
    return value if isinstance(value, Mapping) else None
