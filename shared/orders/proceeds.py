"""What the money in an Orders API v2026-01-01 order means, marketplace by marketplace.

Design notes: docs/invoices.md ("Design notes: `shared.orders.proceeds`")."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class TaxConvention(StrEnum):
    INCLUDED = "included"  # prices include the tax; TAX is the part of them that is tax
    ADDED = "added"  # TAX is added to the prices


# Marketplace id -> convention. The EU stores and the UK store charge VAT-inclusive prices;
# Amazon.com adds sales tax at checkout.
MARKETPLACE_TAX: Mapping[str, TaxConvention] = {
    "A1PA6795UKMFR9": TaxConvention.INCLUDED,  # Amazon.de
    "A13V1IB3VIYZZH": TaxConvention.INCLUDED,  # Amazon.fr
    "APJ6JRA9NG5V4": TaxConvention.INCLUDED,  # Amazon.it
    "A1RKKUPIHCS9HS": TaxConvention.INCLUDED,  # Amazon.es
    "A1805IZSGTT6HS": TaxConvention.INCLUDED,  # Amazon.nl
    "A1C3SOZRARQ6R3": TaxConvention.INCLUDED,  # Amazon.pl
    "A2NODRKZP88ZB9": TaxConvention.INCLUDED,  # Amazon.se
    "AMEN7PMS3EDWL": TaxConvention.INCLUDED,  # Amazon.com.be
    "A28R8C7NBKEWEA": TaxConvention.INCLUDED,  # Amazon.ie
    "A1F83G8C2ARO7P": TaxConvention.INCLUDED,  # Amazon.co.uk
    "ATVPDKIKX0DER": TaxConvention.ADDED,  # Amazon.com
}

# The item categories of `ItemProceedsBreakdown.type` besides TAX, and the order-level ones no
# item carries (`OrderProceedsBreakdown.type`: "DELIVERY_TIP is charged separately and not
# attributed to a specific item").
ITEM_CATEGORIES = frozenset({"ITEM", "SHIPPING", "GIFT_WRAP", "COD_FEE", "DISCOUNT", "OTHER"})
ORDER_ONLY_CATEGORIES = frozenset({"DELIVERY_TIP"})


# The kind of a zero charge `shared.ingestion.amazon_orders` adds to an item whose figures do not add up
# to Amazon's own totals under its marketplace's convention (the item's tax is then not read).
# The order keeps it with its items; the invoice model refuses such an order
# (`invoice_tax_unknown`) and never prints it.
UNRECONCILED = "UNRECONCILED"


def tax_convention(marketplace_id: str) -> TaxConvention | None:
    return MARKETPLACE_TAX.get(marketplace_id)
