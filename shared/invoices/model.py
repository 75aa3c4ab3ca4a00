"""The content of one invoice or credit note (Art. 226 of Directive 2006/112/EC), computed from
the order's items and the seller profile. Buyer fields stay `Pii` until the renderer draws them.

Amounts follow what Amazon's proceeds mean on the order's marketplace (`shared.orders.proceeds`,
docs/invoices.md): on the EU and UK marketplaces the prices include VAT and an item's TAX is the
VAT in them (net = price - tax); on Amazon.com TAX is sales tax added on top, which is not VAT.
Either way the invoice's total is what the buyer paid.

The invoice states only what Amazon's data establishes. Each line's rate is a statutory rate of
the country of taxation on the supply date (`shared.invoices.rates`) that gives Amazon's tax to
the cent; a ratio is never printed (`RateUnrecognised` otherwise). A zero rate, an exemption or a
reverse charge is stated only on the grounds listed in `_treatment`; a supply whose VAT Amazon
did not report is not guessed (`TaxUnknown`). Both refusals go to a person.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any

from shared.crypto.pii import Pii
from shared.errors import AppError, InvalidInput
from shared.invoices.profile import EU_COUNTRIES, SellerProfile
from shared.invoices.rates import covered, statutory_rates
from shared.orders.domain import Address, OrderItem
from shared.orders.proceeds import UNRECONCILED, TaxConvention, tax_convention
from shared.orders.record import OrderPii, OrderRecord

CENT = Decimal("0.01")
HUNDRED = Decimal(100)
ZERO = Decimal("0.00")

INVOICE = "invoice"
CREDIT_NOTE = "credit_note"

REVERSE_CHARGE_NOTE = (
    "Reverse charge: VAT to be accounted for by the recipient (Art. 196 Directive 2006/112/EC). "
    "Exempt intra-Community supply of goods (Art. 138 Directive 2006/112/EC)."
)
EXPORT_NOTE = "VAT exemption: export of goods outside the EU (Art. 146 Directive 2006/112/EC)."
SALES_TAX_LABEL = "Sales tax added by Amazon (not VAT)"


class UnpricedOrder(InvalidInput):
    code = "invoice_unpriced_order"


class InvoiceRefused(AppError):
    """Amazon's data does not establish what the invoice would have to state: no invoice is
    issued (no number is taken) and the order is flagged for a person (`attention`)."""


class TaxUnknown(InvoiceRefused):
    """No VAT reported where VAT is due and no ground for none is established: Amazon reported
    no TAX for a domestic or EU sale that is neither a reverse charge nor covered by the
    seller's exemption, or its amounts do not add up to its own totals, or the marketplace's
    tax is of a kind this app does not read as VAT."""

    code = "invoice_tax_unknown"


class RateUnrecognised(InvoiceRefused):
    """A line's tax matches no statutory rate of the country of taxation on the supply date
    (rounding to the cent allowed), or the table has no rate for that country and date."""

    code = "invoice_rate_unrecognised"


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
    total_gross: Decimal  # what the buyer paid: the lines' gross plus `sales_tax`
    notes: tuple[str, ...]
    original_number: str | None = None
    original_issued_on: date | None = None
    sales_tax: Decimal = ZERO  # tax Amazon added that is not VAT (Amazon.com's sales tax)
    issued_at: datetime | None = None  # the issue time (the PDF's creation date)

    @property
    def title(self) -> str:
        return "Credit note" if self.kind == CREDIT_NOTE else "Invoice"


def _fits(rate: Decimal, tax: Decimal, net: Decimal, gross: Decimal, quantity: int) -> bool:
    """Whether `rate` gives Amazon's (rounded) `tax` on this line to the cent: computed on the
    net, taken out of the gross, or per unit (Amazon rounds the tax of a line or of a unit, so
    on a cheap line tax / net is far off: 0.05 on 0.24 reads 20.8 %, not 19 %)."""
    if rate == 0:
        return tax == 0
    candidates = [money(net * rate / HUNDRED), money(gross * rate / (HUNDRED + rate))]
    if quantity > 1:
        candidates.append(money(net / quantity * rate / HUNDRED) * quantity)
        candidates.append(money(gross / quantity * rate / (HUNDRED + rate)) * quantity)
    return any(abs(c - tax) <= CENT for c in candidates)


def recognise_rate(
    tax: Decimal, net: Decimal, rates: tuple[Decimal, ...], *, gross: Decimal | None = None, quantity: int = 1
) -> Decimal | None:
    """The statutory rate among `rates` that gives Amazon's `tax` on the line to the cent
    (closest to tax / net when several do, as on a cheap line), or None: a ratio is never
    returned. Discount lines are negative: their magnitudes are compared."""
    tax, net = abs(tax), abs(net)
    gross = abs(gross) if gross is not None else net + tax
    fitting = [r for r in rates if _fits(r, tax, net, gross, quantity)]
    if not fitting:
        return None
    raw = tax / net * HUNDRED if net else Decimal(0)
    return min(fitting, key=lambda r: (abs(r - raw), -r))


@dataclass(frozen=True, slots=True)
class _Part:
    """An item's price or one of its charges, as Amazon gave it: `amount` under the
    marketplace's convention, `tax` Amazon's (None when Amazon reported none)."""

    description: str
    sku: str
    quantity: int
    amount: Decimal
    tax: Decimal | None


CHARGE_LABELS = {
    "SHIPPING": "Shipping",
    "GIFT_WRAP": "Gift wrap",
    "COD_FEE": "Cash on delivery fee",
    "DISCOUNT": "Discount",
    "OTHER": "Other charge",
}


def _parts(record: OrderRecord) -> tuple[_Part, ...]:
    """Each invoiced item's price, followed by its charges (shipping, gift wrap, a discount):
    transport and packing belong to the taxable amount (Art. 78(b))."""
    parts: list[_Part] = []
    for item in record.items:
        if item.quantity <= 0:
            continue
        known = item.item_tax is not None
        parts.append(_item_part(item))
        for charge in item.charges:
            if charge.kind == UNRECONCILED:
                raise TaxUnknown("Amazon's figures for an item do not add up to its totals")
            label = CHARGE_LABELS.get(charge.kind, CHARGE_LABELS["OTHER"])
            tax = money(charge.tax) if known else None
            parts.append(_Part(f"{label}: {item.title}", item.sku, 1, money(charge.amount), tax))
    return tuple(parts)


def _item_part(item: OrderItem) -> _Part:
    if item.unit_price is None:
        raise UnpricedOrder("an item has no unit price")
    price = money(item.unit_price.amount * item.quantity)
    tax = money(item.item_tax.amount) if item.item_tax is not None else None
    return _Part(item.title, item.sku, item.quantity, price, tax)


class Treatment(StrEnum):
    VAT = "vat"  # VAT at statutory rates of the country of taxation
    REVERSE_CHARGE = "reverse_charge"
    EXPORT = "export"
    EXEMPT = "exempt"  # the seller's own exemption (`exemptionNote`)


def _treatment(
    record: OrderRecord, buyer: Party, country: str, parts: tuple[_Part, ...], profile: SellerProfile
) -> Treatment:
    """How the supply is taxed, from Amazon's data only:
    - VAT: Amazon reported TAX on a VAT-inclusive marketplace for a destination with rates in
      the table (an EU country, or GB);
    - reverse charge: an Amazon Business order with the buyer's VAT registration, to an EU
      country other than the seller's, on which Amazon charged no VAT;
    - export: a destination outside the EU, from a seller established in the EU, on which
      Amazon charged no VAT (or, on Amazon.com, only its sales tax, which is not VAT);
    - exempt: no VAT charged and the seller's profile declares its exemption (`exemptionNote`).
    Anything else raises `TaxUnknown`."""
    convention = tax_convention(record.marketplace_id)
    home = profile.establishment_country
    unknown = any(p.tax is None for p in parts)
    uncharged = all(not p.tax for p in parts)  # no TAX reported, or TAX of zero
    in_eu, home_eu = country in EU_COUNTRIES, home in EU_COUNTRIES
    reverse = in_eu and record.is_business and buyer.vat_id is not None and country != home and home_eu
    if reverse and uncharged:
        return Treatment.REVERSE_CHARGE
    # Amazon.com's TAX is sales tax, not VAT; into a country with VAT of its own (GB) it is not
    # read at all.
    sales_tax_only = convention is TaxConvention.ADDED and not covered(country)
    if country and not in_eu and home_eu and (uncharged or sales_tax_only):
        return Treatment.EXPORT
    if uncharged and profile.exemption_note:
        return Treatment.EXEMPT
    if unknown or convention is not TaxConvention.INCLUDED or not covered(country):
        raise TaxUnknown("Amazon's data does not establish the VAT of this supply")
    return Treatment.VAT


def _vat_line(part: _Part, rates: tuple[Decimal, ...]) -> Line:
    tax = part.tax if part.tax is not None else ZERO
    net = part.amount - tax
    if part.amount == 0 and tax == 0:
        rate: Decimal | None = rates[0] if rates else None  # a free line: the standard rate
    else:
        rate = recognise_rate(tax, net, rates, gross=part.amount, quantity=part.quantity)
    if rate is None:
        raise RateUnrecognised("a line's VAT matches no statutory rate of its country and date")
    return _line(part, net, rate, tax, part.amount)


def _line(part: _Part, net: Decimal, rate: Decimal, tax: Decimal, gross: Decimal) -> Line:
    unit_net = money(net / part.quantity) if part.quantity else net
    return Line(part.description, part.sku, part.quantity, unit_net, net, rate, tax, gross)


def _rates(profile: SellerProfile, country: str, day: date) -> tuple[Decimal, ...]:
    """The statutory rates of `country` on `day`, narrowed to those the seller listed."""
    statutory = statutory_rates(country, day)
    listed = profile.rates_for(country)
    return statutory if listed is None else tuple(r for r in statutory if r in listed)


def _lines(
    parts: tuple[_Part, ...], treatment: Treatment, rates: tuple[Decimal, ...]
) -> tuple[tuple[Line, ...], Decimal]:
    """The lines, and the tax Amazon added that is not VAT (an export's sales tax)."""
    if treatment is Treatment.VAT:
        return tuple(_vat_line(p, rates) for p in parts), ZERO
    # No VAT on the supply. On Amazon.com any TAX is sales tax added on top of the amounts;
    # elsewhere a part here carries no tax (`_treatment`).
    lines = tuple(_line(p, p.amount, Decimal(0), ZERO, p.amount) for p in parts)
    return lines, sum((p.tax or ZERO for p in parts), ZERO)


def _rate_totals(lines: tuple[Line, ...]) -> tuple[RateTotal, ...]:
    by_rate: dict[Decimal, tuple[Decimal, Decimal]] = {}
    for line in lines:
        net, tax = by_rate.get(line.rate, (ZERO, ZERO))
        by_rate[line.rate] = (net + line.net, tax + line.tax)
    return tuple(RateTotal(r, n, t) for r, (n, t) in sorted(by_rate.items(), reverse=True))


def _signed(line: Line, sign: int) -> Line:
    return Line(
        line.description,
        line.sku,
        line.quantity,
        sign * line.unit_net,
        sign * line.net,
        line.rate,
        sign * line.tax,
        sign * line.gross,
    )


def _address_lines(address: Address | None) -> tuple[Pii, ...]:
    if address is None:
        return ()
    street = (address.line1, address.line2, address.line3, address.district)
    postal = address.postal_code.reveal() if address.postal_code else ""
    city = f"{postal} {address.city.reveal()}".strip()
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


NOTES = {
    Treatment.VAT: None,
    Treatment.REVERSE_CHARGE: REVERSE_CHARGE_NOTE,
    Treatment.EXPORT: EXPORT_NOTE,
}


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


def supply_date(record: OrderRecord) -> date | None:
    shipped = (record.shipment or {}).get("shippedAt")
    return date.fromisoformat(str(shipped)[:10]) if shipped else None


def build_invoice(
    record: OrderRecord,
    pii: OrderPii,
    profile: SellerProfile,
    *,
    kind: str,
    number_text: str,
    issued_on: date,
    issued_at: datetime | None = None,
    original: Mapping[str, Any] | None = None,
) -> InvoiceData:
    """`original` is the order's invoice entry, required for a credit note (Art. 219). Raises
    `UnpricedOrder` for an order that cannot be invoiced, and an `InvoiceRefused` when Amazon's
    data does not establish the VAT the invoice would state."""
    check_priced(record)
    sign = -1 if kind == CREDIT_NOTE else 1
    buyer = buyer_party(pii)
    country = buyer.country_code or record.ship_country or ""
    supplied_on = supply_date(record)
    parts = _parts(record)
    treatment = _treatment(record, buyer, country, parts, profile)
    rates = _rates(profile, country, supplied_on or issued_on) if treatment is Treatment.VAT else ()
    unsigned, sales_tax = _lines(parts, treatment, rates)
    lines = tuple(_signed(line, sign) for line in unsigned)
    note = profile.exemption_note if treatment is Treatment.EXEMPT else NOTES[treatment]
    currencies = {i.unit_price.currency for i in record.items if i.unit_price}
    total_net = sum((line.net for line in lines), ZERO)
    total_tax = sum((line.tax for line in lines), ZERO)
    return InvoiceData(
        kind=kind,
        number_text=number_text,
        issued_on=issued_on,
        supplied_on=supplied_on,
        order_id=pii.order_id,
        currency=currencies.pop(),
        seller_name=profile.legal_name,
        seller_address=(
            *profile.address.lines,
            f"{profile.address.postal_code} {profile.address.city}",
            profile.address.country_code,
        ),
        # Reverse charge and export: supplied where dispatch begins (Art. 32), so the home id.
        seller_vat_id=profile.vat_id_for(country if treatment in (Treatment.VAT, Treatment.EXEMPT) else None),
        seller_extra=profile.extra_lines,
        buyer=buyer,
        lines=lines,
        rate_totals=_rate_totals(lines),
        total_net=total_net,
        total_tax=total_tax,
        total_gross=sum((line.gross for line in lines), ZERO) + sign * sales_tax,
        notes=(note,) if note else (),
        original_number=str(original["numberText"]) if original else None,
        original_issued_on=date.fromisoformat(str(original["issuedAt"])[:10]) if original else None,
        sales_tax=sign * sales_tax,
        issued_at=issued_at,
    )
