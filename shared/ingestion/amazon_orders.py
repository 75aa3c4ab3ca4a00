"""Map an Orders API v2026-01-01 `Order` to the app's `Order`, keeping only what policy allows.

Kept: buyer name, e-mail, company and VAT registration (invoices), the delivery address and
phone, order details (ASIN, SKU, title, quantity, unit price, item tax and charges), fulfilment
facts and package statuses (delivery signals). The proceeds are read for the items' charges and
taxes only, under the marketplace's convention (`shared.orders.proceeds`) and checked against
Amazon's own totals. Dropped: payment, promotions, delivery preferences and instructions,
aliases, serial numbers, customisations, and anything else Amazon adds. Errors name the missing
field, never a value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from shared.crypto.pii import Pii, pii_or_none
from shared.errors import OrderMappingError
from shared.orders.domain import (
    Address,
    Buyer,
    Charge,
    FulfillmentStatus,
    Money,
    Order,
    OrderItem,
    Package,
    PackageState,
)
from shared.orders.proceeds import (
    ITEM_CATEGORIES,
    ORDER_ONLY_CATEGORIES,
    UNRECONCILED,
    TaxConvention,
    tax_convention,
)

MAX_ITEMS_PER_ORDER = 500


def parse_time(value: object, field_name: str) -> datetime:
    if not isinstance(value, str):
        raise OrderMappingError(f"{field_name} missing")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise OrderMappingError(f"{field_name} not ISO 8601") from None
    if parsed.tzinfo is None:
        raise OrderMappingError(f"{field_name} has no time zone")
    return parsed


def _optional_time(value: object, field_name: str) -> datetime | None:
    return None if value is None else parse_time(value, field_name)


def _obj(value: object, field_name: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise OrderMappingError(f"{field_name} not an object")
    return value


def _list(value: object, field_name: str) -> Sequence[Any]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise OrderMappingError(f"{field_name} not a list")
    return value


def _text(value: object, field_name: str, *, required: bool = False) -> str:
    if value is None or value == "":
        if required:
            raise OrderMappingError(f"{field_name} missing")
        return ""
    # No length limit: Amazon's models set none on these fields (a buyer's name may be 2,000
    # characters), so a long one is valid; a carrier's label shortens it for itself
    # (`shared.shipping.carriers.karrio_adapter.LABEL_LIMITS`), the order and invoice keep it.
    if not isinstance(value, str):
        raise OrderMappingError(f"{field_name} not a string")
    return value


def _pii(value: object, field_name: str) -> Pii | None:
    return pii_or_none(_text(value, field_name)) if value is not None else None


def _money(value: object, field_name: str) -> Money | None:
    data = _obj(value, field_name)
    if not data:
        return None
    try:
        amount = Decimal(str(data.get("amount")))
    except InvalidOperation:
        raise OrderMappingError(f"{field_name}.amount not a decimal") from None
    if not amount.is_finite():
        raise OrderMappingError(f"{field_name}.amount not finite")
    currency = _text(data.get("currencyCode"), f"{field_name}.currencyCode", required=True)
    return Money(amount, currency)


def _address(value: object) -> Address | None:
    data = _obj(value, "recipient.deliveryAddress")
    if not data:
        return None
    # Amazon's model requires none of these; a postal code is absent where a country has none
    # (the UAE), the others a label cannot do without.
    missing = [k for k in ("name", "addressLine1", "city", "countryCode") if not data.get(k)]
    if missing:
        raise OrderMappingError("recipient.deliveryAddress lacks " + ",".join(missing))

    def req(key: str) -> Pii:
        text = _text(data.get(key), f"deliveryAddress.{key}", required=True)
        return Pii(text)

    return Address(
        name=req("name"),
        line1=req("addressLine1"),
        city=req("city"),
        postal_code=_pii(data.get("postalCode"), "deliveryAddress.postalCode"),
        country_code=_text(data.get("countryCode"), "deliveryAddress.countryCode").upper()[:2],
        line2=_pii(data.get("addressLine2"), "deliveryAddress.addressLine2"),
        line3=_pii(data.get("addressLine3"), "deliveryAddress.addressLine3"),
        company=_pii(data.get("companyName"), "deliveryAddress.companyName"),
        state_or_region=_pii(data.get("stateOrRegion"), "deliveryAddress.stateOrRegion"),
        district=_pii(data.get("districtOrCounty"), "deliveryAddress.districtOrCounty"),
        phone=_pii(data.get("phone"), "deliveryAddress.phone"),
        address_type=_text(data.get("addressType"), "deliveryAddress.addressType") or None,
    )


def _buyer_vat_id(tax: Mapping[str, Any]) -> Pii | None:
    for entry in _list(tax.get("taxRegistrations"), "tax.taxRegistrations"):
        reg = _obj(entry, "tax.taxRegistrations[]")
        if reg.get("entityType") == "BUYER" and reg.get("taxRegistrationType") in ("VAT", "BUSINESS"):
            return _pii(reg.get("taxRegistrationNumber"), "taxRegistrationNumber")
    return None


def _item(value: object, convention: TaxConvention | None) -> tuple[OrderItem, Decimal | None]:
    """The item, and what its proceeds add up to under the marketplace's convention (None when
    the convention is unknown or Amazon's figures for the item disagree with it)."""
    data = _obj(value, "orderItems[]")
    product = _obj(data.get("product"), "orderItems[].product")
    quantity = data.get("quantityOrdered")
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 0:
        raise OrderMappingError("orderItems[].quantityOrdered not a non-negative integer")
    unit_price = _money(_obj(product.get("price"), "product.price").get("unitPrice"), "unitPrice")
    proceeds = _proceeds(_obj(data.get("proceeds"), "proceeds"))
    total = proceeds.total(convention)
    consistent = total is not None and (proceeds.stated is None or proceeds.stated == total)
    if proceeds.item is not None and unit_price is not None:
        consistent = consistent and proceeds.item == _cents(unit_price.amount * quantity)
    item = OrderItem(
        order_item_id=_text(data.get("orderItemId"), "orderItems[].orderItemId", required=True),
        asin=_text(product.get("asin"), "product.asin"),
        sku=_text(product.get("sellerSku"), "product.sellerSku"),
        title=_text(product.get("title"), "product.title"),
        quantity=quantity,
        unit_price=unit_price,
        item_tax=proceeds.item_tax,
        charges=proceeds.charges,
    )
    if convention is not None and not consistent:
        item = _tax_unknown(item)
    return item, total if consistent else None


def _tax_unknown(item: OrderItem) -> OrderItem:
    """The item with its tax not read, and marked `UNRECONCILED`: Amazon's figures disagree
    with what they mean on its marketplace (the invoice goes to a person)."""
    marker = Charge(UNRECONCILED, Decimal(0), Decimal(0))
    charges = (
        *(Charge(c.kind, c.amount, Decimal(0)) for c in item.charges if c.kind != UNRECONCILED),
        marker,
    )
    return OrderItem(
        item.order_item_id, item.asin, item.sku, item.title, item.quantity, item.unit_price, None, charges
    )


_CENT = Decimal("0.01")


def _to_cent(value: Decimal) -> Decimal:
    try:
        return value.quantize(_CENT)
    except InvalidOperation:  # too large to hold to the cent
        raise OrderMappingError("proceeds amounts out of range") from None


def _cents(value: Decimal | None) -> Decimal | None:
    """`value` to the cent, for comparing totals; None when it cannot be held to the cent (a
    total that cannot be compared does not add up)."""
    try:
        return None if value is None else value.quantize(_CENT)
    except InvalidOperation:
        return None


@dataclass(frozen=True, slots=True)
class _Proceeds:
    charges: tuple[Charge, ...]
    item_tax: Money | None  # None: Amazon reported no TAX
    amounts: Mapping[str, Decimal]  # ITEM and the charges (a discount negative)
    tax: Decimal  # the TAX subtotal (0 without one)
    stated: Decimal | None  # Amazon's proceedsTotal

    @property
    def item(self) -> Decimal | None:
        return _cents(self.amounts["ITEM"]) if "ITEM" in self.amounts else None

    def total(self, convention: TaxConvention | None) -> Decimal | None:
        """What the item's proceeds add up to: the tax is in the prices, or added to them."""
        base = sum(self.amounts.values(), Decimal(0))
        if convention is TaxConvention.INCLUDED:
            return _cents(base)
        if convention is TaxConvention.ADDED:
            return _cents(base + self.tax)
        return None


def _proceeds(proceeds: Mapping[str, Any]) -> _Proceeds:
    """The item's price, its other charges with their tax, and the tax on the price, from the
    item's proceeds breakdown: ITEM (the price), SHIPPING, GIFT_WRAP, COD_FEE, DISCOUNT, OTHER, and
    TAX, whose detailed breakdown splits the tax by category. Without that split the tax is
    shared in proportion to the amounts (one rate for the item and what goes with it, as when a
    charge follows the goods' rate); the totals are Amazon's either way."""
    amounts: dict[str, Decimal] = {}
    tax: Money | None = None
    split: dict[str, Decimal] = {}
    for entry in _list(proceeds.get("breakdowns"), "breakdowns"):
        part = _obj(entry, "proceeds.breakdowns[]")
        kind = str(part.get("type") or "")
        subtotal = _money(part.get("subtotal"), "proceeds.breakdowns[].subtotal")
        if subtotal is None:
            continue
        if kind == "TAX":
            tax = subtotal
            for detail in _list(part.get("detailedBreakdowns"), "detailedBreakdowns"):
                share = _obj(detail, "detailedBreakdowns[]")
                value = _money(share.get("value"), "detailedBreakdowns[].value")
                if value is not None:
                    sub = str(share.get("subtype") or "OTHER")
                    split[sub] = split.get(sub, Decimal(0)) + value.amount
        elif kind in ITEM_CATEGORIES:
            amount = subtotal.amount
            amounts[kind] = -abs(amount) if kind == "DISCOUNT" else amount
    given = _money(proceeds.get("proceedsTotal"), "proceeds.proceedsTotal")
    stated = _cents(given.amount) if given else None
    charged = {k: v for k, v in sorted(amounts.items()) if k != "ITEM" and v != 0}
    if tax is None:
        charges = tuple(Charge(k, v, Decimal(0)) for k, v in charged.items())
        return _Proceeds(charges, None, amounts, Decimal(0), stated)
    if "DISCOUNT" in split:
        split["DISCOUNT"] = -abs(split["DISCOUNT"])  # a discount lowers the tax, as its amount
    if not split:
        share_base = amounts.get("ITEM", Decimal(0)) + sum(charged.values(), Decimal(0))
        for kind, amount in charged.items():
            split[kind] = _to_cent(tax.amount * amount / share_base) if share_base else Decimal(0)
        split["ITEM"] = tax.amount - sum(split.values(), Decimal(0))
    charges = tuple(Charge(k, v, split.get(k, Decimal(0))) for k, v in charged.items())
    # The item's tax is what the charges' leave of Amazon's total, so the totals stay Amazon's
    # even when the split names a category with no charge of its own.
    item_tax = tax.amount - sum((c.tax for c in charges), Decimal(0))
    return _Proceeds(charges, Money(item_tax, tax.currency), amounts, tax.amount, stated)


def _order_items(data: Mapping[str, Any], marketplace_id: str) -> tuple[OrderItem, ...]:
    """The order's items. When Amazon's `grandTotal` is not what the items' proceeds add up to
    (with the order-level categories no item carries), no item's tax is read as known."""
    raw_items = _list(data.get("orderItems"), "orderItems")
    if len(raw_items) > MAX_ITEMS_PER_ORDER:
        raise OrderMappingError("orderItems too many")
    convention = tax_convention(marketplace_id)
    mapped = [_item(i, convention) for i in raw_items]
    items = tuple(item for item, _ in mapped)
    order_proceeds = _obj(data.get("proceeds"), "proceeds")
    grand = _money(order_proceeds.get("grandTotal"), "proceeds.grandTotal")
    if convention is None or grand is None:
        return items
    totals = [total for _, total in mapped]
    extra = Decimal(0)
    for entry in _list(order_proceeds.get("breakdowns"), "proceeds.breakdowns"):
        part = _obj(entry, "proceeds.breakdowns[]")
        subtotal = _money(part.get("subtotal"), "proceeds.breakdowns[].subtotal")
        if subtotal is not None and part.get("type") in ORDER_ONLY_CATEGORIES:
            extra += subtotal.amount
    known = [t for t in totals if t is not None]
    adds_up = len(known) == len(totals) and _cents(sum(known, extra)) == _cents(grand.amount)
    return items if adds_up else tuple(_tax_unknown(i) for i in items)


def _package(value: object) -> Package:
    data = _obj(value, "packages[]")
    status_text = _obj(data.get("packageStatus"), "packageStatus").get("status")
    try:
        status = PackageState(status_text) if status_text else None
    except ValueError:
        status = None  # a status Amazon adds later is not a delivery signal we understand
    return Package(
        reference=_text(data.get("packageReferenceId"), "packages[].packageReferenceId", required=True),
        status=status,
        tracking_number=_text(data.get("trackingNumber"), "packages[].trackingNumber") or None,
        carrier=_text(data.get("carrier"), "packages[].carrier") or None,
    )


def order_from_api(payload: object, seller_id: str) -> Order:
    """Build an `Order` from one element of `searchOrders().orders` or `getOrder().order`."""
    data = _obj(payload, "order")
    if not data:
        raise OrderMappingError("order missing")
    channel = _obj(data.get("salesChannel"), "salesChannel")
    fulfillment = _obj(data.get("fulfillment"), "fulfillment")
    status_text = fulfillment.get("fulfillmentStatus")
    try:
        status = FulfillmentStatus(str(status_text))
    except ValueError:
        raise OrderMappingError("fulfillment.fulfillmentStatus unknown") from None
    marketplace_id = _text(channel.get("marketplaceId"), "salesChannel.marketplaceId", required=True)
    items = _order_items(data, marketplace_id)
    buyer = _obj(data.get("buyer"), "buyer")
    tax = _obj(data.get("tax"), "tax")
    programs = _list(data.get("programs"), "programs")
    return Order(
        order_id=_text(data.get("orderId"), "orderId", required=True),
        seller_id=seller_id,
        marketplace_id=marketplace_id,
        created_at=parse_time(data.get("createdTime"), "createdTime"),
        last_updated_at=parse_time(data.get("lastUpdatedTime"), "lastUpdatedTime"),
        fulfillment_status=status,
        fulfilled_by=_text(fulfillment.get("fulfilledBy"), "fulfillment.fulfilledBy") or "MERCHANT",
        items=items,
        buyer=Buyer(
            name=_pii(buyer.get("buyerName"), "buyer.buyerName"),
            email=_pii(buyer.get("buyerEmail"), "buyer.buyerEmail"),
            company=_pii(buyer.get("buyerCompanyName"), "buyer.buyerCompanyName"),
            vat_id=_buyer_vat_id(tax),
        ),
        ship_to=_address(_obj(data.get("recipient"), "recipient").get("deliveryAddress")),
        service_level=_text(fulfillment.get("fulfillmentServiceLevel"), "fulfillmentServiceLevel") or None,
        latest_ship_at=_optional_time(
            _obj(fulfillment.get("shipByWindow"), "shipByWindow").get("latestDateTime"), "shipByWindow"
        ),
        latest_delivery_at=_optional_time(
            _obj(fulfillment.get("deliverByWindow"), "deliverByWindow").get("latestDateTime"),
            "deliverByWindow",
        ),
        packages=tuple(_package(p) for p in _list(data.get("packages"), "packages")),
        programs=frozenset(str(p) for p in programs),
    )


@dataclass(frozen=True, slots=True)
class OrderIdentity:
    """What identifies an order this app cannot map, to hold it for a person (no buyer data)."""

    order_id: str
    marketplace_id: str
    created_at: datetime | None
    last_updated_at: datetime | None


def order_identity(payload: object) -> OrderIdentity | None:
    """The order id, marketplace and times of a `searchOrders` element that `order_from_api`
    refused; None when even those cannot be read."""
    try:
        data = _obj(payload, "order")
        return OrderIdentity(
            order_id=_text(data.get("orderId"), "orderId", required=True),
            marketplace_id=_text(
                _obj(data.get("salesChannel"), "salesChannel").get("marketplaceId"), "marketplaceId"
            ),
            created_at=_lenient_time(data.get("createdTime")),
            last_updated_at=_lenient_time(data.get("lastUpdatedTime")),
        )
    except OrderMappingError:
        return None


def _lenient_time(value: object) -> datetime | None:
    try:
        return parse_time(value, "time")
    except OrderMappingError:
        return None
