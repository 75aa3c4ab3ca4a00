"""The seller's own invoice data (Settings.seller_profile) and when an invoice is required.

The seller's name, address and VAT ids are the issuer's data, not buyer PII: they are printed on
every invoice and live in plain configuration. The shape is documented in docs/invoices.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from shared.errors import SettingsError

# The marketplaces that take seller invoices through the UPLOAD_VAT_INVOICE feed (Amazon's
# "Option 3: upload invoices through SP-API"): ES, UK, FR, DE, IT, NL, PL, SE.
VAT_UPLOAD_MARKETPLACES: Mapping[str, str] = {
    "A1RKKUPIHCS9HS": "ES",
    "A1F83G8C2ARO7P": "GB",
    "A13V1IB3VIYZZH": "FR",
    "A1PA6795UKMFR9": "DE",
    "APJ6JRA9NG5V4": "IT",
    "A1805IZSGTT6HS": "NL",
    "A1C3SOZRARQ6R3": "PL",
    "A2NODRKZP88ZB9": "SE",
}

EU_COUNTRIES = frozenset(
    {
        *("AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU"),
        *("IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK"),
    }
)


@dataclass(frozen=True, slots=True)
class SellerAddress:
    lines: tuple[str, ...]
    postal_code: str
    city: str
    country_code: str


@dataclass(frozen=True, slots=True)
class SellerProfile:
    legal_name: str
    address: SellerAddress
    vat_ids: Mapping[str, str]  # country code -> VAT id (the seller's registrations)
    invoice_prefix: str
    credit_note_prefix: str
    # Country -> the rates the seller's goods can bear there (narrows the statutory table).
    vat_rates: Mapping[str, tuple[Decimal, ...]]
    exemption_note: str | None
    extra_lines: tuple[str, ...]

    @property
    def establishment_country(self) -> str:
        return self.address.country_code

    def vat_id_for(self, country: str | None) -> str | None:
        """The registration that covers a supply taxed in `country` (OSS: the home id)."""
        if country and country in self.vat_ids:
            return self.vat_ids[country]
        return self.vat_ids.get(self.establishment_country)

    def rates_for(self, country: str) -> tuple[Decimal, ...] | None:
        """The rates the seller listed for `country` (None: every statutory rate may apply)."""
        return self.vat_rates.get(country)


def _text(data: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise SettingsError(f"SELLER_PROFILE.{key} is required text")
    return value.strip()


def parse_profile(data: Mapping[str, Any]) -> SellerProfile:
    """Validate Settings.seller_profile; errors name the field, never a value."""
    address = data.get("address")
    if not isinstance(address, dict):
        raise SettingsError("SELLER_PROFILE.address must be an object")
    lines = address.get("lines")
    if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines) or not lines:
        raise SettingsError("SELLER_PROFILE.address.lines must be a non-empty list of text")
    vat_ids = data.get("vatIds", {})
    if not isinstance(vat_ids, dict) or not all(isinstance(v, str) for v in vat_ids.values()):
        raise SettingsError("SELLER_PROFILE.vatIds must map country codes to VAT ids")
    custom = data.get("vatRates", {})
    if not isinstance(custom, dict) or not all(isinstance(v, list) for v in custom.values()):
        raise SettingsError("SELLER_PROFILE.vatRates must map country codes to lists of rates")
    try:
        rates = {str(k).upper(): tuple(Decimal(str(r)) for r in v) for k, v in custom.items()}
    except (TypeError, ArithmeticError):
        raise SettingsError("SELLER_PROFILE.vatRates must map country codes to lists of rates") from None
    series = data.get("series", {})
    if not isinstance(series, dict):
        raise SettingsError("SELLER_PROFILE.series must be an object")
    extra = data.get("extraLines", [])
    if not isinstance(extra, list) or not all(isinstance(x, str) for x in extra):
        raise SettingsError("SELLER_PROFILE.extraLines must be a list of text")
    note = data.get("exemptionNote")
    return SellerProfile(
        legal_name=_text(data, "legalName"),
        address=SellerAddress(
            lines=tuple(lines),
            postal_code=_text(address, "postalCode"),
            city=_text(address, "city"),
            country_code=_text(address, "countryCode").upper(),
        ),
        vat_ids={str(k).upper(): v.strip() for k, v in vat_ids.items()},
        invoice_prefix=_text(series, "invoice", "INV"),
        credit_note_prefix=_text(series, "creditNote", "CN"),
        vat_rates=rates,
        exemption_note=note.strip() if isinstance(note, str) and note.strip() else None,
        extra_lines=tuple(extra),
    )
