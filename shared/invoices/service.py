"""Issue the tax invoice (or credit note) of an order, number it without gaps, store it sealed,
deliver it to Amazon where configured, and record every step on the order by compare-and-swap.

Design notes: docs/invoices.md ("Design notes: `shared.invoices.service`")."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from shared.errors import AppError, IntegrityFailure, TransientError
from shared.invoices.archive import InvoiceArchive
from shared.invoices.feeds import (
    FeedOutcomeUnknown,
    FeedRejected,
    FeedUnavailable,
    VatInvoiceUploader,
    feed_options,
)
from shared.invoices.model import (
    CREDIT_NOTE,
    INVOICE,
    InvoiceRefused,
    RateUnrecognised,
    TaxUnknown,
    build_invoice,
    check_priced,
    money,
    supply_date,
)
from shared.invoices.numbering import ClaimVerdict, InvoiceCounter
from shared.invoices.ports import BlobStore, ByteSealer
from shared.invoices.profile import VAT_UPLOAD_MARKETPLACES, SellerProfile
from shared.invoices.render import Renderer
from shared.orders import integrity, lifecycle
from shared.orders.messages import IssueInvoice
from shared.orders.record import OrderRecord, PiiCipher, noting_blob
from shared.orders.repository import OrderRepository
from shared.storage.audit import AuditAction, AuditLog
from shared.storage.blob_store import INVOICES, invoice_blob_name
from shared.telemetry.invocations import record_stage

DOC_KEYS = {INVOICE: "invoice", CREDIT_NOTE: "creditNote"}
# An `uploading` mark older than this was left by an invocation that has ended without
# settling it: host.json's functionTimeout (5 minutes) ends every invocation before, and the
# extra minute covers clock skew between instances (a test holds the two together).
UPLOAD_MARK_STALE_AFTER = timedelta(minutes=6)
# Audit actions whose records list invoice numbers that are accounted for once the order is
# gone: its purge, its erasure, or an invoice sent while it was erased.
_NUMBERS_LISTED_BY = frozenset(
    {AuditAction.PURGED.value, AuditAction.ERASED.value, AuditAction.INVOICE_UNRECORDED.value}
)
# The invoice blob's metadata key: the document's entry and delivery plan, as JSON.
DOCUMENT_METADATA = "document"
FEED_DOCUMENT_TYPES = {INVOICE: "Invoice", CREDIT_NOTE: "CreditNote"}
# Set on an order's `extra` by whoever learns of them; both carry no personal data.
BUYER_REQUEST_FLAG = "invoiceRequested"
REFUND_TRANSACTION_ID = "refundTransactionId"

# The order's `attention` while Amazon's data does not establish its invoice's VAT: a person
# issues the document (docs/invoices.md, "When Amazon's data does not establish the VAT").
REFUSALS = frozenset({TaxUnknown.code, RateUnrecognised.code})

UPLOADING = "uploading"
PENDING = "pending"
UPLOAD_UNKNOWN = FeedOutcomeUnknown.code
NEEDS_TRANSACTION_ID = "credit_note_needs_transaction_id"
WITHHELD_RESTRICTED = "invoice_withheld_restricted"


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
        credit_note = kind == CREDIT_NOTE
        reason = lifecycle.invoicing_skip_reason(
            record, credit_note=credit_note, has_invoice=bool(_doc(record, INVOICE))
        )
        if reason is not None or credit_note:
            return reason
        return None if self.required(record) else "not_required"

    def _uploads(self, record: OrderRecord) -> bool:
        return (
            self._uploader is not None
            and record.marketplace_id in self._marketplaces
            and record.marketplace_id in VAT_UPLOAD_MARKETPLACES
        )

    # -- the message handler ---------------------------------------------------------------

    def issue(self, request: IssueInvoice, now: datetime) -> None:
        record = self._orders.get(request.ref)
        if record is None:
            return
        try:
            self._issue(record, request.kind, now)
        except IntegrityFailure:
            # Its buyer data or stored document failed authentication: flagged, never retried.
            integrity.flag(self._orders, record.ref)

    def _issue(self, record: OrderRecord, kind: str, now: datetime) -> None:
        if _doc(record, kind) is not None:
            self._deliver(record, kind, now)  # a redelivery: resume or settle the upload
            return
        reason = self._skip_reason(record, kind)
        if reason is not None:
            self._record_skip(record.ref, kind, reason)
            return
        self._issue_document(record, kind, now)

    def _series(self, record: OrderRecord, kind: str, claim: str, now: datetime) -> str:
        """The series the document is numbered in, the same for every delivery of its message,
        so that one after New Year (a redelivery after a crash, whose first delivery claimed a
        number) finds the claim and never takes a second number. An invoice's year is its
        shipment's; a credit note, issued on a refund, takes the year it is issued in, unless
        its claim is in last year's series already (one read, for a rare document)."""
        if kind == INVOICE:
            year = (supply_date(record) or now.date()).year
            return f"{self._profile.invoice_prefix}{year}"
        earlier = f"{self._profile.credit_note_prefix}{now.year - 1}"
        if self._counter.held(earlier, claim) is not None:
            return earlier
        return f"{self._profile.credit_note_prefix}{now.year}"

    def _delivery_plan(self, record: OrderRecord, kind: str, now: datetime) -> dict[str, str]:
        if not self._uploads(record):
            return {"status": "not_configured"}
        if kind == CREDIT_NOTE and not record.extra.get(REFUND_TRANSACTION_ID):
            return _needs_transaction_id()
        return {"status": UPLOADING, "since": now.isoformat()}

    def _issue_document(self, record: OrderRecord, kind: str, now: datetime) -> None:
        """Number, render, store and (where it goes to Amazon) upload the document, then record
        it on the order in one write with the upload's outcome."""
        check_priced(record)
        if not self._established(record, kind, now):
            return  # no number taken: a person issues it
        claim = f"{record.ref}:{kind}"
        series = self._series(record, kind, claim, now)
        allocation = self._counter.allocate(series, claim, now, self._claim_verdict)
        number_text = _number_text(series, allocation.number)
        blob = f"{INVOICES}/{invoice_blob_name(record.ref, number_text)}"
        if allocation.reused:
            # An earlier delivery of this message got this far: it may have recorded the
            # document since, or stored it and ended with the upload under way.
            current = self._orders.get(record.ref)
            if current is None:
                return
            if _doc(current, kind) is not None:
                self._deliver(current, kind, now)
                return
            stored_by_earlier = self._blobs.metadata(blob)
            if stored_by_earlier is not None:
                self._resume(current, kind, stored_by_earlier, now)
                return
            record = current
        if record.pii is None:
            raise InvoiceUnavailable("buyer data deleted while issuing")
        pii = self._cipher.open(record.ref, record.pii)
        try:
            data = build_invoice(
                record,
                pii,
                self._profile,
                kind=kind,
                number_text=number_text,
                issued_on=now.date(),
                issued_at=now,
                original=_doc(record, INVOICE) if kind == CREDIT_NOTE else None,
            )
        except InvoiceRefused as refused:
            # The order changed since the check (a re-read above): the number goes void, so
            # the register accounts for it, and a person issues the document.
            self._counter.void(series, claim, now)
            self._refer(record.ref, kind, refused.code)
            return
        pdf = self._renderer.render(data)
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
        }
        if self._archive is not None:
            countries = (self._profile.establishment_country, data.buyer.country_code)
            until = self._archive.keep(number_text, countries, pdf, now)
            if until:
                entry["archiveUntil"] = until
        sealed = self._sealer.seal_bytes(record.ref, pdf, now)
        epoch = self._sealer.epoch_of(sealed)
        if epoch is not None:
            entry["epoch"] = epoch  # kept on the order: the epoch lives while the document does
        plan = self._delivery_plan(record, kind, now)
        # The blob holds the document with its entry and plan as metadata (no personal data),
        # and only the first delivery of the message creates it: that is the mark that an
        # upload may be under way. The order notes the blob's name first, so its purge deletes
        # the blob by name even if the document is never recorded.
        stored = self._store(record, kind, entry, (sealed, plan), now)
        if stored is None:
            return
        record = stored
        error: Exception | None = None
        delivery = plan
        if plan["status"] == UPLOADING:
            latest = self._still_to_send(record.ref, kind, entry, now)
            if latest is None:
                return
            record = latest
            delivery, error = self._upload(record, kind, entry, pdf, pii.order_id)
        self._record(record, kind, {**entry, "delivery": delivery}, now)
        if error is not None:
            raise error

    def _store(
        self,
        record: OrderRecord,
        kind: str,
        entry: Mapping[str, Any],
        blob: tuple[bytes, Mapping[str, str]],
        now: datetime,
    ) -> OrderRecord | None:
        """Note the document's blob on the order, then create it (`blob`: the sealed document and
        its delivery plan, stored with `entry` as its metadata): the order to go on with, or
        None when this delivery is done (the order erased meanwhile, or an earlier delivery's
        blob found and resumed)."""
        name = str(entry["blob"])
        noted = self._note_blob(record, name)
        if noted is None:
            # Erased (or being erased) meanwhile: nothing is stored or sent, the archive's copy
            # goes, and the claim's settlement voids the number.
            self._drop_unissued(entry)
            return None
        sealed, plan = blob
        metadata = {DOCUMENT_METADATA: json.dumps({**entry, "delivery": plan}, separators=(",", ":"))}
        if not self._blobs.create(name, sealed, metadata):
            self._resume(noted, kind, self._blobs.metadata(name) or metadata, now)
            return None
        return noted

    def _note_blob(self, record: OrderRecord, blob: str) -> OrderRecord | None:
        """The order noting `blob` before it is written, so that its purge deletes the blob by
        name even if it is never recorded; None when the order is gone or its buyer data erased."""

        def change(rec: OrderRecord) -> OrderRecord | None:
            return None if rec.pii is None else noting_blob(rec, blob)

        stored = self._orders.update_from(record, change)
        held = stored is not None and stored.pii is not None and blob in stored.noted_blobs
        return stored if held else None

    def _established(self, record: OrderRecord, kind: str, now: datetime) -> bool:
        """Whether Amazon's data establishes everything the document would state (its rates, a
        zero rate and its ground). If not, nothing is numbered or issued: the order is flagged
        for a person with the reason, and the message completes."""
        if record.pii is None:
            raise InvoiceUnavailable("buyer data deleted while issuing")
        try:
            build_invoice(
                record,
                self._cipher.open(record.ref, record.pii),
                self._profile,
                kind=kind,
                number_text="",
                issued_on=now.date(),
                original=_doc(record, INVOICE) if kind == CREDIT_NOTE else None,
            )
        except InvoiceRefused as refused:
            self._refer(record.ref, kind, refused.code)
            return False
        return True

    def _still_to_send(
        self, ref: str, kind: str, entry: Mapping[str, Any], now: datetime
    ) -> OrderRecord | None:
        """The order as it is right before `createFeed`, or None when nothing may be sent for
        it any more (the stored document is then deleted)."""
        blob = str(entry["blob"])
        try:
            latest = self._orders.get(ref)
        except Exception:
            self._blobs.delete(blob)  # nothing was sent: the redelivery starts afresh
            raise
        if latest is None or latest.pii is None:
            # Erased, or being erased, while the document was made: nothing is sent and the
            # document goes. The erasure may have listed its number (it lists the invoice
            # blobs it finds), so the claim's settlement decides between that and void.
            self._drop_unissued(entry)
            return None
        reason = self._skip_reason(latest, kind)
        if reason is not None:
            # Restricted meanwhile: nothing is sent, the document goes, the number is void.
            self._drop_unissued(entry)
            self._counter.void(str(entry["series"]), f"{ref}:{kind}", now)
            self._record_skip(ref, kind, reason)
            return None
        return latest

    def _resume(self, record: OrderRecord, kind: str, metadata: Mapping[str, str], now: datetime) -> None:
        """Record the document an earlier delivery stored and did not record. If it was to be
        uploaded, that delivery may still be uploading: wait until it must have ended; after
        that, whether Amazon has the invoice is unknown, so it is never sent again."""
        entry = json.loads(metadata[DOCUMENT_METADATA])
        if entry["delivery"]["status"] == UPLOADING:
            _wait_for_upload(entry["issuedAt"], now)
            entry["delivery"] = _upload_unknown(None)
        self._record(record, kind, entry, now)

    def _record(self, record: OrderRecord, kind: str, entry: Mapping[str, Any], now: datetime) -> None:
        """Record the document on the order. An order gone (or stripped by an erasure) meanwhile
        loses the blob stored for it. If the invoice may have reached Amazon, an audit record
        accounts for its number; if not, the claim's settlement finds the number listed by the
        erasure (which may have seen the blob) or voids it."""
        delivery = entry["delivery"]
        if self._record_document(record, kind, entry) is not None:
            _report_unknown(delivery)
            return
        if delivery["status"] == "submitted" or delivery.get("error") == UPLOAD_UNKNOWN:
            self._blobs.delete(str(entry["blob"]))  # issued: the archive's copy stays
            self._audit.record(
                record.ref,
                AuditAction.INVOICE_UNRECORDED,
                now,
                "issue_invoice",
                {"invoices": [str(entry["numberText"])], "delivery": str(delivery["status"])},
                once_key=str(entry["numberText"]),
            )
        else:
            self._drop_unissued(entry)

    def _drop_unissued(self, entry: Mapping[str, Any]) -> None:
        """A document that was never issued (nothing sent, nothing recorded): its blob goes,
        and so does its copy in the legal archive, which only issued documents oblige."""
        self._blobs.delete(str(entry["blob"]))
        if self._archive is not None and entry.get("archiveUntil"):
            self._archive.forget(str(entry["numberText"]))

    def _claim_verdict(self, series: str, claim: str, number: int) -> ClaimVerdict:
        """What the counter does with a week-old claim. Its number is accounted for when its
        order holds it, or, once the order is gone, when an audit record (of the purge or
        erasure, or of an invoice sent for an order erased meanwhile) lists it; an order gone
        without it never used the number (voided). An order still waiting for its number keeps
        the claim, as does one that cannot be read now."""
        ref, _, kind = claim.rpartition(":")
        try:
            record = self._orders.get(ref)
            if record is not None:
                doc = _doc(record, kind)
                held = doc is not None and doc.get("series") == series and doc.get("number") == number
                return ClaimVerdict.DROP if held else ClaimVerdict.KEEP
            number_text = _number_text(series, number)
            gone = (e for e in self._audit.trail(ref) if e.action in _NUMBERS_LISTED_BY)
            listed = any(number_text in (e.details.get("invoices") or ()) for e in gone)
        except (AppError, KeyError, TypeError, ValueError):
            # A store hiccup or a document this code cannot read: ask again at a later allocation.
            return ClaimVerdict.KEEP
        return ClaimVerdict.DROP if listed else ClaimVerdict.VOID

    def _deliver(self, record: OrderRecord, kind: str, now: datetime) -> None:
        """A redelivery that finds the document recorded: upload it if it waits `pending` (a
        throttled or unavailable upload), taking its `uploading` mark first; wait for a mark
        another invocation may still hold, and settle one it left. Each write starts from the
        record in hand (`OrderRepository.update_from`)."""
        doc = _doc(record, kind) or {}
        delivery = dict(doc.get("delivery") or {})
        status = delivery.get("status")
        if status == UPLOADING:
            if delivery.get("since"):
                _wait_for_upload(str(delivery["since"]), now)
            # The attempt stays in the record: the invocation that held the mark may still
            # settle its own outcome over this one (`_settle`).
            attempt = delivery.get("attempt")
            self._settle(record, kind, attempt, _upload_unknown(attempt))
            return
        if status != PENDING or record.pii is None or self._uploader is None:
            return
        attempt = self._new_attempt()
        taken = self._settle(record, kind, None, _upload_mark(attempt, now))
        if taken is None:
            return  # another delivery took it first
        record = taken
        if record.restricted:
            # Restricted since the upload was put off: nothing is sent; a person decides.
            self._settle(record, kind, attempt, {"status": "manual", "error": WITHHELD_RESTRICTED})
            return
        try:
            pdf, order_id = self._stored_pdf(record, doc)
        except Exception:
            self._settle(record, kind, attempt, {"status": PENDING})  # nothing was sent
            raise
        outcome, error = self._upload(record, kind, doc, pdf, order_id)
        if outcome.get("error") == UPLOAD_UNKNOWN:
            outcome = _upload_unknown(attempt)  # the mark's attempt stays with it (`_settle`)
        self._settle(record, kind, attempt, outcome)
        if error is not None:
            raise error

    def _stored_pdf(self, record: OrderRecord, doc: Mapping[str, Any]) -> tuple[bytes, str]:
        """The stored PDF and the Amazon order id, before anything is sent."""
        assert record.pii is not None  # noqa: S101 - checked by the caller
        sealed = self._blobs.get(str(doc["blob"]))
        if sealed is None:
            raise InvoiceUnavailable("invoice blob missing")
        pdf = self._sealer.open_bytes(record.ref, sealed)
        return pdf, self._cipher.open(record.ref, record.pii).order_id

    def _upload(
        self, record: OrderRecord, kind: str, doc: Mapping[str, Any], pdf: bytes, order_id: str
    ) -> tuple[dict[str, str], Exception | None]:
        """Send the document with the UPLOAD_VAT_INVOICE feed: the delivery to record, and the
        error to raise once it is recorded (an answer that proves nothing was sent)."""
        assert self._uploader is not None  # noqa: S101 - the plan uploads only with an uploader
        transaction_id = record.extra.get(REFUND_TRANSACTION_ID)
        if kind == CREDIT_NOTE and not transaction_id:
            return _needs_transaction_id(), None
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
            return {"status": "failed", "error": exc.code}, None
        except FeedUnavailable as exc:
            # An answer, not silence: nothing reached Amazon, so the retry may send it.
            return {"status": PENDING}, exc
        except FeedOutcomeUnknown:
            return _upload_unknown(None), None
        return {
            "status": "submitted",
            "feedId": receipt.feed_id,
            "processingStatus": receipt.processing_status,
        }, None

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

    def _refer(self, ref: str, kind: str, code: str) -> None:
        """Flag the order for a person: `attention` holds the reason (unless it holds another
        one already), as does `invoice.skipped.<kind>`. The order keeps its stage, so delivery
        tracking and the 7-day purge go on as for any shipped order."""
        record_stage(code)

        def change(rec: OrderRecord) -> OrderRecord | None:
            invoice = dict(rec.invoice or {})
            skipped = dict(invoice.get("skipped") or {})
            attention = code if rec.attention is None or rec.attention in REFUSALS else rec.attention
            if skipped.get(kind) == code and rec.attention == attention:
                return None
            skipped[kind] = code
            invoice["skipped"] = skipped
            return rec.evolve(invoice=invoice, attention=attention)

        self._orders.update(ref, change)

    def _record_document(
        self, record: OrderRecord, kind: str, entry: Mapping[str, Any]
    ) -> OrderRecord | None:
        def change(rec: OrderRecord) -> OrderRecord | None:
            if _doc(rec, kind) is not None or rec.pii is None:
                return None  # recorded already, or its buyer data erased meanwhile
            invoice = dict(rec.invoice or {})
            invoice[DOC_KEYS[kind]] = dict(entry)
            skipped = dict(invoice.get("skipped") or {})
            skipped.pop(kind, None)
            invoice["skipped"] = skipped
            attention = None if rec.attention in REFUSALS else rec.attention  # a person's fix worked
            return rec.evolve(invoice=invoice, attention=attention)

        stored = self._orders.update_from(record, change)
        return stored if stored is not None and _doc(stored, kind) is not None else None

    def _settle(
        self, record: OrderRecord, kind: str, attempt: str | None, delivery: Mapping[str, Any]
    ) -> OrderRecord | None:
        """Write `delivery` if the document's delivery still belongs to `attempt` (None: is
        `pending`); the stored order if it was written, else None. An outcome this invocation
        saw always lands, also over a `manual` another invocation wrote on finding its mark.
        An unknown upload outcome, once written, becomes the invocation's stage."""

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
        if written is None or written.get("delivery") != dict(delivery):
            return None
        _report_unknown(delivery)
        return stored


def _needs_transaction_id() -> dict[str, str]:
    """A credit note Amazon takes only with its refund transaction id: a person's task."""
    return {"status": "manual", "error": NEEDS_TRANSACTION_ID}


def _upload_unknown(attempt: str | None) -> dict[str, str]:
    """Sent, maybe: never sent again; a person checks Seller Central. `attempt`: the mark's."""
    unknown = {"status": "manual", "error": UPLOAD_UNKNOWN}
    return unknown if attempt is None else {**unknown, "attempt": attempt}


def _report_unknown(delivery: Mapping[str, Any]) -> None:
    """A recorded delivery whose upload outcome is unknown becomes the invocation's stage in
    telemetry: `invoice_feed_upload_unknown`, a person's task (docs/operations.md)."""
    if delivery.get("error") == UPLOAD_UNKNOWN:
        record_stage(UPLOAD_UNKNOWN)


def _wait_for_upload(since: str, now: datetime) -> None:
    """Raise `InvoiceUploadInProgress` while an upload that began at `since` may still be live:
    a copy of the message looks again once the first has ended, by its answer or by the host's
    timeout."""
    stale_at = datetime.fromisoformat(since) + UPLOAD_MARK_STALE_AFTER
    if now < stale_at:
        raise InvoiceUploadInProgress((stale_at - now).total_seconds())


def _upload_mark(attempt: str, now: datetime) -> dict[str, str]:
    return {"status": UPLOADING, "attempt": attempt, "since": now.isoformat()}


def _number_text(series: str, number: int) -> str:
    return f"{series}-{number:06d}"


def _doc(record: OrderRecord, kind: str) -> Mapping[str, Any] | None:
    value = (record.invoice or {}).get(DOC_KEYS[kind])
    return value if isinstance(value, Mapping) else None
