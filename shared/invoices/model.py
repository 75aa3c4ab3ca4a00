"""The content of one invoice or credit note (Art. 226 of Directive 2006/112/EC), computed from
the order's items and the seller profile. Buyer fields stay `Pii` until the renderer draws them.

Amounts: Amazon's `unitPrice` is per unit and, in the EU marketplaces, VAT-inclusive; `itemTax`
is the VAT of the whole line. Net = gross - tax (or gross = net + tax when the profile says
prices exclude VAT). The rate is recognised from tax / net against the destination country's
rates (Amazon rounds tax per line, so the raw quotient is a few hundredths off).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from shared.domain import Address, Charge, OrderItem
from shared.errors import InvalidInput
from shared.invoices.profile import EU_COUNTRIES, SellerProfile
from shared.order_record import OrderPii, OrderRecord
from shared.pii import Pii

CENT = Decimal("0.01")
HUNDRED = Decimal(100)
RATE_TOLERANCE = Decimal("0.6")  # percentage points between tax/net and a listed rate

INVOICE = "invoice"
CREDIT_NOTE = "credit_note"

REVERSE_CHARGE_NOTE = (
    "Reverse charge: VAT to be accounted for by the recipient (Art. 196 Directive 2006/112/EC). "
    "Exempt intra-Community supply of goods (Art. 138 Directive 2006/112/EC)."
)
EXPORT_NOTE = "VAT exemption: export of goods outside the EU (Art. 146 Directive 2006/112/EC)."
DEFAULT_EXEMPTION_NOTE = "VAT exemption: exempt supply (Directive 2006/112/EC)."


class UnpricedOrder(InvalidInput):
    code = "invoice_unpriced_order"


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class Line:
    description: str
    sku: str
    quantity: int
    unit_net: Decimal
    net: Decimal
    rate: Decimal
    tax: Decimal
    gross: Decimal


@dataclass(frozen=True, slots=True)
class RateTotal:
    rate: Decimal
    net: Decimal
    tax: Decimal


@dataclass(frozen=True, slots=True)
class Party:
    name: Pii
    company: Pii | None
    address_lines: tuple[Pii, ...]
    country_code: str
    vat_id: Pii | None


@dataclass(frozen=True, slots=True)
class InvoiceData:
    kind: str
    number_text: str
    issued_on: date
    supplied_on: date | None
    order_id: str
    currency: str
    seller_name: str
    seller_address: tuple[str, ...]
    seller_vat_id: str | None
    seller_extra: tuple[str, ...]
    buyer: Party
    lines: tuple[Line, ...]
    rate_totals: tuple[RateTotal, ...]
    total_net: Decimal
    total_tax: Decimal
    total_gross: Decimal
    notes: tuple[str, ...]
    original_number: str | None = None
    original_issued_on: date | None = None

    @property
    def title(self) -> str:
        return "Credit note" if self.kind == CREDIT_NOTE else "Invoice"


def recognise_rate(tax: Decimal, net: Decimal, rates: tuple[Decimal, ...]) -> Decimal:
    """The listed rate that gives Amazon's (rounded) tax on `net` to the cent; on a cheap line
    the ratio itself is far off (0.06 on 0.29 reads 20.7 %, not 19 %). Failing that, the listed
    rate within `RATE_TOLERANCE` of the ratio, else the ratio itself."""
    if tax == 0 or net == 0:
        return Decimal(0)
    raw = tax / net * HUNDRED
    exact = [r for r in rates if abs(money(net * r / HUNDRED) - tax) <= CENT]
    if exact:
        return min(exact, key=lambda r: abs(r - raw))
    nearest = min(rates, key=lambda r: abs(r - raw), default=None)
    if nearest is not None and abs(nearest - raw) <= RATE_TOLERANCE:
        return nearest
    return raw.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def _line(item: OrderItem, profile: SellerProfile, country: str | None, sign: int) -> Line:
    if item.unit_price is None:
        raise UnpricedOrder("an item has no unit price")
    quantity = item.quantity
    price = money(item.unit_price.amount * quantity)
    tax = money(item.item_tax.amount) if item.item_tax else Decimal("0.00")
    net, gross = (price - tax, price) if profile.prices_include_vat else (price, price + tax)
    rate = recognise_rate(tax, net, profile.rates_for(country))
    unit_net = money(net / quantity) if quantity else net
    return Line(item.title, item.sku, quantity, sign * unit_net, sign * net, rate, sign * tax, sign * gross)


CHARGE_LABELS = {
    "SHIPPING": "Shipping",
    "GIFT_WRAP": "Gift wrap",
    "COD_FEE": "Cash on delivery fee",
    "DISCOUNT": "Discount",
    "OTHER": "Other charge",
}


def _charge_line(
    item: OrderItem, charge: Charge, profile: SellerProfile, country: str | None, sign: int
) -> Line:
    """A charge of an item (shipping, gift wrap, a discount) as a line of its own, priced and
    taxed as the item's price is (`prices_include_vat`)."""
    price, tax = money(charge.amount), money(charge.tax)
    net, gross = (price - tax, price) if profile.prices_include_vat else (price, price + tax)
    rate = recognise_rate(tax, net, profile.rates_for(country))
    label = CHARGE_LABELS.get(charge.kind, CHARGE_LABELS["OTHER"])
    return Line(f"{label}: {item.title}", item.sku, 1, sign * net, sign * net, rate, sign * tax, sign * gross)


def _lines(record: OrderRecord, profile: SellerProfile, country: str | None, sign: int) -> tuple[Line, ...]:
    """Each invoiced item's line, followed by its charges' lines."""
    lines: list[Line] = []
    for item in record.items:
        if item.quantity > 0:
            lines.append(_line(item, profile, country, sign))
            lines.extend(_charge_line(item, c, profile, country, sign) for c in item.charges)
    return tuple(lines)


def _rate_totals(lines: tuple[Line, ...]) -> tuple[RateTotal, ...]:
    by_rate: dict[Decimal, tuple[Decimal, Decimal]] = {}
    for line in lines:
        net, tax = by_rate.get(line.rate, (Decimal("0.00"), Decimal("0.00")))
        by_rate[line.rate] = (net + line.net, tax + line.tax)
    return tuple(RateTotal(r, n, t) for r, (n, t) in sorted(by_rate.items(), reverse=True))


def _address_lines(address: Address | None) -> tuple[Pii, ...]:
    if address is None:
        return ()
    street = (address.line1, address.line2, address.line3, address.district)
    city = f"{address.postal_code.reveal()} {address.city.reveal()}".strip()
    region = (address.state_or_region,)
    return tuple(p for p in (*street, Pii(city), *region) if p)


def buyer_party(pii: OrderPii) -> Party:
    """Name, company and address the invoice needs: phone and e-mail are never copied."""
    ship_to = pii.ship_to
    name = pii.buyer.name or (ship_to.name if ship_to else None) or Pii("Amazon customer")
    company = pii.buyer.company or (ship_to.company if ship_to else None)
    return Party(
        name=name,
        company=company,
        address_lines=_address_lines(ship_to),
        country_code=ship_to.country_code if ship_to else "",
        vat_id=pii.buyer.vat_id,
    )


def _notes(record: OrderRecord, buyer: Party, total_tax: Decimal, profile: SellerProfile) -> tuple[str, ...]:
    country = buyer.country_code or record.ship_country or ""
    if total_tax != 0:
        return ()
    if (
        record.is_business
        and buyer.vat_id
        and country in EU_COUNTRIES
        and country != profile.establishment_country
    ):
        return (REVERSE_CHARGE_NOTE,)
    if country and country not in EU_COUNTRIES and profile.establishment_country in EU_COUNTRIES:
        return (EXPORT_NOTE,)
    return (profile.exemption_note or DEFAULT_EXEMPTION_NOTE,)


def check_priced(record: OrderRecord) -> None:
    """Raise `UnpricedOrder` unless the order's items can be invoiced: some to invoice, every
    one priced, one currency. Checked before a number is claimed, so a document that cannot be
    made never holds a number."""
    invoiced = [i for i in record.items if i.quantity > 0]
    if not invoiced:
        raise UnpricedOrder("the order has no invoiceable items")
    if any(i.unit_price is None for i in invoiced):
        raise UnpricedOrder("an item has no unit price")
    if len({i.unit_price.currency for i in record.items if i.unit_price}) != 1:
        raise UnpricedOrder("items are priced in more than one currency")


def build_invoice(
    record: OrderRecord,
    pii: OrderPii,
    profile: SellerProfile,
    *,
    kind: str,
    number_text: str,
    issued_on: date,
    original: Mapping[str, Any] | None = None,
) -> InvoiceData:
    """`original` is the order's invoice entry, required for a credit note (Art. 219)."""
    check_priced(record)
    sign = -1 if kind == CREDIT_NOTE else 1
    buyer = buyer_party(pii)
    country = buyer.country_code or record.ship_country
    lines = _lines(record, profile, country, sign)
    currencies = {i.unit_price.currency for i in record.items if i.unit_price}
    total_tax = sum((line.tax for line in lines), Decimal("0.00"))
    notes = _notes(record, buyer, total_tax, profile)
    reverse = REVERSE_CHARGE_NOTE in notes
    shipped = (record.shipment or {}).get("shippedAt")
    return InvoiceData(
        kind=kind,
        number_text=number_text,
        issued_on=issued_on,
        supplied_on=date.fromisoformat(str(shipped)[:10]) if shipped else None,
        order_id=pii.order_id,
        currency=currencies.pop(),
        seller_name=profile.legal_name,
        seller_address=(
            *profile.address.lines,
            f"{profile.address.postal_code} {profile.address.city}",
            profile.address.country_code,
        ),
        # Reverse charge and export: supplied where dispatch begins (Art. 32), so the home id.
        seller_vat_id=profile.vat_id_for(None if reverse or EXPORT_NOTE in notes else country),
        seller_extra=profile.extra_lines,
        buyer=buyer,
        lines=lines,
        rate_totals=_rate_totals(lines),
        total_net=sum((line.net for line in lines), Decimal("0.00")),
        total_tax=total_tax,
        total_gross=sum((line.gross for line in lines), Decimal("0.00")),
        notes=notes,
        original_number=str(original["numberText"]) if original else None,
        original_issued_on=date.fromisoformat(str(original["issuedAt"])[:10]) if original else None,
    )
