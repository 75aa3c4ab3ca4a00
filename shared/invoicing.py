"""Issue the tax invoice (or credit note) of an order, number it without gaps, store it sealed,
deliver it to Amazon where configured, and record every step on the order by compare-and-swap.

Steps of `issue`, each safe to repeat when the message is redelivered:
1. read the order; skip (recording why) when no invoice is required or allowed;
2. allocate the number for claim "<ref>:<kind>" (the same claim always gets the same number);
3. open the buyer's data in memory, render the PDF, store it sealed under the order's data key
   (so it is crypto-shredded with the order: the 7-day rule), and archive a copy where the
   seller's tax law requires it (`shared.invoices.archive`);
4. record the document on the order (CAS); the counter drops the claim in a later allocation,
   once it is a week old and the order holds the number. Where the invoice goes to Amazon, the
   same write marks it `uploading` with this invocation's attempt id;
5. upload it with the UPLOAD_VAT_INVOICE feed and record the feed id and status (CAS). An
   answer that proves nothing was sent (throttled, unavailable) puts the mark back to `pending`
   and raises a transient error: the redelivered message resumes at this step. Another
   invocation's mark younger than `UPLOAD_MARK_STALE_AFTER` may still be live: the message is
   re-queued until then (`invoice_upload_in_progress`). An older one was left by an invocation
   that died or failed with the upload under way: whether Amazon has the invoice is unknown,
   so it is never sent again; the delivery becomes `manual` (`invoice_feed_upload_unknown`)
   for a person to check in Seller Central.

The order document's `invoice` mapping (no personal data):
  {"invoice": DOC, "creditNote": DOC, "skipped": {"invoice": REASON, ...}}
  DOC = {series, number, numberText, kind, issuedAt, blob, currency, totalAmount, totalVat,
         archiveUntil?, delivery: {status, attempt?, since?, feedId?, processingStatus?, error?}}
  delivery status: not_configured | uploading | pending | submitted | failed | manual
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from shared.audit import AuditAction, AuditLog
from shared.blob_store import INVOICES
from shared.errors import AppError, TransientError
from shared.invoices.archive import InvoiceArchive
from shared.invoices.feeds import (
    FeedOutcomeUnknown,
    FeedRejected,
    FeedUnavailable,
    VatInvoiceUploader,
    feed_options,
)
from shared.invoices.model import CREDIT_NOTE, INVOICE, InvoiceData, build_invoice, money
from shared.invoices.numbering import ClaimVerdict, InvoiceCounter
from shared.invoices.ports import BlobStore, ByteSealer
from shared.invoices.profile import VAT_UPLOAD_MARKETPLACES, SellerProfile
from shared.invoices.render import Renderer
from shared.messages import IssueInvoice
from shared.order_record import OrderRecord, PiiCipher, Stage
from shared.order_repository import OrderRepository
from shared.telemetry import record_stage

DOC_KEYS = {INVOICE: "invoice", CREDIT_NOTE: "creditNote"}
# An `uploading` mark older than this was left by an invocation that has ended without
# settling it: host.json's functionTimeout (5 minutes) ends every invocation before, and the
# extra minute covers clock skew between instances (a test holds the two together).
UPLOAD_MARK_STALE_AFTER = timedelta(minutes=6)
# Audit actions whose records list the invoice numbers an order held when it went.
_ORDER_GONE = frozenset({AuditAction.PURGED.value, AuditAction.ERASED.value})
FEED_DOCUMENT_TYPES = {INVOICE: "Invoice", CREDIT_NOTE: "CreditNote"}
# Set on an order's `extra` by whoever learns of them; both carry no personal data.
BUYER_REQUEST_FLAG = "invoiceRequested"
REFUND_TRANSACTION_ID = "refundTransactionId"

UPLOADING = "uploading"
PENDING = "pending"
UPLOAD_UNKNOWN = FeedOutcomeUnknown.code
NEEDS_TRANSACTION_ID = "credit_note_needs_transaction_id"


def new_attempt_id() -> str:
    return secrets.token_hex(8)


class InvoiceUnavailable(AppError):
    code = "invoice_unavailable"


class InvoiceUploadInProgress(TransientError):
    """Another invocation holds the document's upload mark and may still be running: the
    message is re-queued to look again when the mark would be stale (no attempt spent)."""

    code = "invoice_upload_in_progress"

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"another invocation is uploading; retry after {retry_after_s:.0f}s")
        self.retry_after_s = retry_after_s


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
        audit: AuditLog,
        archive: InvoiceArchive | None = None,
        new_attempt: Callable[[], str] = new_attempt_id,
    ) -> None:
        self._orders = orders
        self._audit = audit
        self._counter = counter
        self._cipher = cipher
        self._sealer = sealer
        self._blobs = blobs
        self._renderer = renderer
        self._profile = profile
        self._marketplaces = frozenset(invoice_marketplaces)
        self._uploader = uploader
        self._archive = archive
        self._new_attempt = new_attempt

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
        attempt = None
        if existing is None:
            reason = self._skip_reason(record, kind)
            if reason is not None:
                self._record_skip(record.ref, kind, reason)
                return
            attempt = self._new_attempt()
            stored = self._create_document(record, kind, now, attempt)
            if stored is None:
                return
            record = stored
        self._deliver(record, kind, attempt, now)

    def _delivery_plan(self, record: OrderRecord, kind: str, attempt: str, now: datetime) -> dict[str, str]:
        if not self._uploads(record):
            return {"status": "not_configured"}
        if kind == CREDIT_NOTE and not record.extra.get(REFUND_TRANSACTION_ID):
            return {"status": "manual", "error": NEEDS_TRANSACTION_ID}
        # Marked in the write that records the document: the upload follows at once, and no
        # extra write is needed to know, after a crash, that it may have happened.
        return _upload_mark(attempt, now)

    def _create_document(
        self, record: OrderRecord, kind: str, now: datetime, attempt: str
    ) -> OrderRecord | None:
        """The order as stored with its document (this one, or one a concurrent delivery of the
        same message recorded first); None if the order is gone."""
        prefix = self._profile.credit_note_prefix if kind == CREDIT_NOTE else self._profile.invoice_prefix
        series = f"{prefix}{now.year}"
        claim = f"{record.ref}:{kind}"
        allocation = self._counter.allocate(series, claim, now, self._claim_verdict)
        if allocation.reused:
            # A concurrent delivery of the same message may have finished meanwhile.
            current = self._orders.get(record.ref)
            if current is not None and _doc(current, kind) is not None:
                return current
        number_text = _number_text(series, allocation.number)
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
            "delivery": self._delivery_plan(record, kind, attempt, now),
        }
        if self._archive is not None:
            countries = (self._profile.establishment_country, data.buyer.country_code)
            until = self._archive.keep(number_text, countries, pdf, now)
            if until:
                entry["archiveUntil"] = until
        stored = self._record_document(record.ref, kind, entry)
        if stored is None:
            self._counter.void(series, claim, now)
        return stored

    def _claim_verdict(self, series: str, claim: str, number: int) -> ClaimVerdict:
        """What the counter does with a week-old claim. Its number is accounted for when its
        order holds it, or, once the order is gone, when the audit record of the purge or
        erasure lists it; an order gone without it never used the number (voided). An order
        still waiting for its number keeps the claim, as does one that cannot be read now."""
        ref, _, kind = claim.rpartition(":")
        try:
            record = self._orders.get(ref)
            if record is not None:
                doc = _doc(record, kind)
                held = doc is not None and doc.get("series") == series and doc.get("number") == number
                return ClaimVerdict.DROP if held else ClaimVerdict.KEEP
            number_text = _number_text(series, number)
            gone = (e for e in self._audit.trail(ref) if e.action in _ORDER_GONE)
            listed = any(number_text in (e.details.get("invoices") or ()) for e in gone)
        except (AppError, KeyError, TypeError, ValueError):
            # A store hiccup or a document this code cannot read: ask again at a later allocation.
            return ClaimVerdict.KEEP
        return ClaimVerdict.DROP if listed else ClaimVerdict.VOID

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

    def _deliver(self, record: OrderRecord, kind: str, attempt: str | None, now: datetime) -> None:
        """Upload the document if this invocation holds its `uploading` mark (made with the
        document, or taken here from `pending`); wait for a mark another invocation may still
        hold, and settle one it left. Each write starts from the record in hand
        (`OrderRepository.update_from`)."""
        doc = _doc(record, kind) or {}
        delivery = dict(doc.get("delivery") or {})
        status = delivery.get("status")
        if status == UPLOADING and delivery.get("attempt") != attempt:
            since = delivery.get("since")
            stale_at = datetime.fromisoformat(since) + UPLOAD_MARK_STALE_AFTER if since else now
            if now < stale_at:
                # A duplicate message while the first is uploading: look again once the first
                # has ended, by its answer or by the host's timeout.
                raise InvoiceUploadInProgress((stale_at - now).total_seconds())
            unknown = {"status": "manual", "error": UPLOAD_UNKNOWN, "attempt": delivery.get("attempt")}
            if self._settle(record, kind, delivery.get("attempt"), unknown) is not None:
                record_stage(UPLOAD_UNKNOWN)
            return
        if status == PENDING:
            attempt = self._new_attempt()
            taken = self._settle(record, kind, None, _upload_mark(attempt, now))
            if taken is None:
                return  # another delivery took it first
            record = taken
        elif status != UPLOADING:
            return
        if record.pii is None or self._uploader is None:
            return
        try:
            pdf, options = self._prepare(record, kind, doc)
        except FeedRejected as exc:
            self._settle(record, kind, attempt, _not_sent(exc.code))
            return
        except Exception:
            self._settle(record, kind, attempt, {"status": PENDING})  # nothing was sent
            raise
        try:
            receipt = self._uploader.upload(record.seller_id, record.marketplace_id, pdf, options)
        except FeedRejected as exc:
            self._settle(record, kind, attempt, {"status": "failed", "error": exc.code})
            return
        except FeedUnavailable:
            # An answer, not silence: nothing reached Amazon, so the retry may send it.
            self._settle(record, kind, attempt, {"status": PENDING})
            raise
        except FeedOutcomeUnknown:
            self._settle(
                record, kind, attempt, {"status": "manual", "error": UPLOAD_UNKNOWN, "attempt": attempt}
            )
            record_stage(UPLOAD_UNKNOWN)
            return
        submitted = {
            "status": "submitted",
            "feedId": receipt.feed_id,
            "processingStatus": receipt.processing_status,
        }
        self._settle(record, kind, attempt, submitted)

    def _prepare(
        self, record: OrderRecord, kind: str, doc: Mapping[str, Any]
    ) -> tuple[bytes, dict[str, str]]:
        """The PDF and feed options, before anything is sent."""
        assert record.pii is not None  # noqa: S101 - checked by the caller
        transaction_id = record.extra.get(REFUND_TRANSACTION_ID)
        if kind == CREDIT_NOTE and not transaction_id:
            raise FeedRejected(
                "credit note without Amazon's refund transaction id", code=NEEDS_TRANSACTION_ID
            )
        sealed = self._blobs.get(str(doc["blob"]))
        if sealed is None:
            raise InvoiceUnavailable("invoice blob missing")
        pdf = self._sealer.open_bytes(record.ref, sealed)
        order_id = self._cipher.open(record.ref, record.pii).order_id
        options = feed_options(
            order_id=order_id,
            invoice_number=str(doc["numberText"]),
            document_type=FEED_DOCUMENT_TYPES[kind],
            total_amount=str(doc["totalAmount"]),
            total_vat=str(doc["totalVat"]),
            transaction_id=str(transaction_id) if transaction_id else None,
        )
        return pdf, options

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

    def _record_document(self, ref: str, kind: str, entry: Mapping[str, Any]) -> OrderRecord | None:
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
        return stored if stored is not None and _doc(stored, kind) is not None else None

    def _settle(
        self, record: OrderRecord, kind: str, attempt: str | None, delivery: Mapping[str, Any]
    ) -> OrderRecord | None:
        """Write `delivery` if the document's delivery still belongs to `attempt` (None: is
        `pending`); the stored order if it was written, else None. An outcome this invocation
        saw always lands, also over a `manual` another invocation wrote on finding its mark."""

        def change(rec: OrderRecord) -> OrderRecord | None:
            doc = _doc(rec, kind)
            current = (doc or {}).get("delivery") or {}
            owned = current.get("status") == PENDING if attempt is None else current.get("attempt") == attempt
            if doc is None or not owned:
                return None
            invoice = dict(rec.invoice or {})
            invoice[DOC_KEYS[kind]] = {**doc, "delivery": dict(delivery)}
            return rec.evolve(invoice=invoice)

        stored = self._orders.update_from(record, change)
        written = _doc(stored, kind) if stored is not None else None
        return stored if written is not None and written.get("delivery") == dict(delivery) else None


def _not_sent(code: str) -> dict[str, str]:
    """A delivery refused before anything was sent: a person's task when only they can fix it."""
    return {"status": "manual" if code == NEEDS_TRANSACTION_ID else "failed", "error": code}


def _upload_mark(attempt: str, now: datetime) -> dict[str, str]:
    return {"status": UPLOADING, "attempt": attempt, "since": now.isoformat()}


def _number_text(series: str, number: int) -> str:
    return f"{series}-{number:06d}"


def _doc(record: OrderRecord, kind: str) -> Mapping[str, Any] | None:
    value = (record.invoice or {}).get(DOC_KEYS[kind])
    return value if isinstance(value, Mapping) else None
