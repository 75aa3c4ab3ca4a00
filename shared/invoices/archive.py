"""The one documented exception to the 7-day rule: a legal archive of issued invoices.

Off unless Settings.invoice_archive_years names a country with a number of years above 0. An
archived copy is the invoice PDF itself, which holds only what Art. 226 requires (buyer name,
address, VAT id; never phone or e-mail), sealed under the archive's own key (`ARCHIVE_KEY_REF`,
a separate Key Vault key that only the archive role may use) in its own blob store. Its index
entry in the `state` container carries no personal data (number, country, blob name, date) and
drives deletion when the retention ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidTag

from shared.errors import IntegrityFailure
from shared.invoices.ports import BlobStore, ByteSealer
from shared.storage.document_store import STATE, DocumentStore, WriteConflict

ARCHIVE_KEY_REF = "invoice-archive"
INDEX_PARTITION = "invoice-archive"


class ArchiveUnreadable(IntegrityFailure):
    """An archived copy that does not open for its number: swapped, or tampered with. It has
    no order to flag (the copy outlives it): the tax-audit reader gets this error."""

    code = "invoice_archive_unreadable"


def _bound_to(number_text: str) -> str:
    """What a copy is sealed for (its associated data): the archive and the invoice number, so
    a copy moved to another number's name does not open."""
    return f"{ARCHIVE_KEY_REF}:{number_text}"


def _kept_until(issued: datetime, years: int) -> datetime:
    """The end of the keeping period: it runs from the end of the calendar year of issue, as
    German law counts it (§147(4) AO, §14b UStG), so the last instant of the year `years` after
    the year of issue. Counted so, a copy is never kept shorter than counting from the issue
    date would keep it."""
    return datetime(issued.year + years, 12, 31, 23, 59, 59, tzinfo=UTC)


def archived_until(store: DocumentStore, number_text: str) -> str | None:
    """Until when the archive keeps the invoice numbered `number_text` (None: not archived).
    One point read of its index entry: what a deletion confirmation states is kept."""
    entry = store.read(STATE, INDEX_PARTITION, index_id(number_text))
    return str(entry["retainUntil"]) if entry else None


def index_id(number_text: str) -> str:
    return f"invoice-archive:{number_text}"


class InvoiceArchive:
    def __init__(
        self,
        store: DocumentStore,
        blobs: BlobStore,
        sealer: ByteSealer,
        years_by_country: Mapping[str, int],
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._sealer = sealer
        self._years = {k.upper(): v for k, v in years_by_country.items()}

    def kept_until(self, number_text: str) -> str | None:
        """Until when the archive keeps the document numbered `number_text` (None: not kept)."""
        return archived_until(self._store, number_text)

    def years_for(self, countries: tuple[str, ...]) -> int:
        """The longest duty among the countries whose law covers the invoice (the seller's
        establishment and the taxing country, e.g. OSS records)."""
        return max((self._years.get(c.upper(), 0) for c in countries if c), default=0)

    def keep(self, number_text: str, countries: tuple[str, ...], pdf: bytes, now: datetime) -> str | None:
        """Archive `pdf` when a listed country requires it; returns the retain-until time."""
        years = self.years_for(countries)
        if years <= 0:
            return None
        name = f"invoice-archive/{number_text}.pdf"
        until = _kept_until(now, years).isoformat()
        self._blobs.put(name, self._sealer.seal_bytes(_bound_to(number_text), pdf, now))
        entry: dict[str, Any] = {
            "id": index_id(number_text),
            "pk": INDEX_PARTITION,
            "blob": name,
            "countries": [c for c in countries if c],
            "retainUntil": until,
        }
        try:
            self._store.create(STATE, entry)
        except WriteConflict:  # a redelivery archived it already: the first date stands
            existing = self._store.read(STATE, INDEX_PARTITION, entry["id"])
            return str(existing["retainUntil"]) if existing else until
        return until

    def read(self, number_text: str) -> bytes | None:
        """For the archive role only (tax audits)."""
        sealed = self._blobs.get(f"invoice-archive/{number_text}.pdf")
        if sealed is None:
            return None
        try:
            return self._sealer.open_bytes(_bound_to(number_text), sealed)
        except (InvalidTag, ValueError):
            raise ArchiveUnreadable("the archived copy does not open for this number") from None

    def forget(self, number_text: str) -> None:
        """Drop the copy of a document that was never issued after all (its order erased or
        restricted while it was made, nothing sent): no legal duty keeps it."""
        self._blobs.delete(f"invoice-archive/{number_text}.pdf")
        self._store.delete(STATE, INDEX_PARTITION, index_id(number_text))

    def purge_expired(self, now: datetime, limit: int = 500) -> int:
        due = self._store.due(STATE, "retainUntil", now.isoformat(), limit)
        for entry in due:
            self._blobs.delete(str(entry["blob"]))
            self._store.delete(STATE, INDEX_PARTITION, str(entry["id"]))
        return len(due)
