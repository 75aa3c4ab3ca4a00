"""Synthetic orders shaped like Orders API v2026-01-01 `Order`, for the SP-API stand-in.

Every personal field is a random token ("Name-q3k9..."), so a test can search stored documents,
logs and queue messages for these exact strings and prove none leaked. The mix covers several
marketplaces, merchant- and Amazon-fulfilled orders, and every fulfillment status.

    python -m local.sample_orders --count 1000 --out orders.json
"""

from __future__ import annotations

import argparse
import json
import random
import string
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

MARKETPLACES: dict[str, tuple[str, str, str]] = {
    # marketplace id: (country, currency, marketplace name)
    "A1PA6795UKMFR9": ("DE", "EUR", "Amazon.de"),
    "A13V1IB3VIYZZH": ("FR", "EUR", "Amazon.fr"),
    "APJ6JRA9NG5V4": ("IT", "EUR", "Amazon.it"),
    "A1RKKUPIHCS9HS": ("ES", "EUR", "Amazon.es"),
    "A1F83G8C2ARO7P": ("GB", "GBP", "Amazon.co.uk"),
    "ATVPDKIKX0DER": ("US", "USD", "Amazon.com"),
}
# The other marketplaces Amazon's models name (local.amazon_models.model_marketplaces): orders
# from them only when asked for (`generate(marketplaces=...)`); the default mix stays as it was.
EXPORT_MARKETPLACES: dict[str, tuple[str, str, str]] = {
    "A2EUQ1WTGCTBG2": ("CA", "CAD", "Amazon.ca"),
    "A2Q3Y263D00KWC": ("BR", "BRL", "Amazon.com.br"),
    "A1VC38T7YXB528": ("JP", "JPY", "Amazon.co.jp"),
    "A21TJRUUN4KGV": ("IN", "INR", "Amazon.in"),
    "A33AVAJ2PDY3EV": ("TR", "TRY", "Amazon.com.tr"),
    "A2VIGQ35RCS4UG": ("AE", "AED", "Amazon.ae"),
    "A17E79C6D8DWNP": ("SA", "SAR", "Amazon.sa"),
    "ARBP9OOSHTCHU": ("EG", "EGP", "Amazon.eg"),
}
ALL_MARKETPLACES = {**MARKETPLACES, **EXPORT_MARKETPLACES}
STATUSES: dict[str, float] = {
    "PENDING_AVAILABILITY": 0.03,
    "PENDING": 0.12,
    "UNSHIPPED": 0.55,
    "PARTIALLY_SHIPPED": 0.05,
    "SHIPPED": 0.15,
    "CANCELLED": 0.07,
    "UNFULFILLABLE": 0.03,
}
SERVICE_LEVELS = ("STANDARD", "EXPEDITED", "NEXT_DAY", "SECOND_DAY")


def _token(rng: random.Random, n: int = 10) -> str:
    return "".join(rng.choices(string.ascii_lowercase + string.digits, k=n))


def _order_id(rng: random.Random) -> str:
    return f"{rng.randint(100, 999)}-{rng.randint(0, 9999999):07d}-{rng.randint(0, 9999999):07d}"


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _money(amount: float, currency: str) -> dict[str, str]:
    return {"amount": f"{amount:.2f}", "currencyCode": currency}


# The money, as docs/invoices.md ("What Amazon's amounts mean") sets out: on the EU and UK
# marketplaces prices include VAT and TAX is the VAT in them (proceedsTotal = ITEM + SHIPPING);
# on Amazon.com TAX is sales tax added on top (proceedsTotal = ITEM + SHIPPING + TAX); grandTotal
# is the sum of the items' totals. The seller ships from Germany: a sale to another EU country
# is taxed there (OSS), and Amazon charges no VAT to an Amazon Business buyer with a VAT number
# in another EU country (reverse charge). Rates: the destination's standard rate, a reduced one
# for one item in five (shared/invoices/vat_rates.json). A sale to a country outside the EU and
# the UK is an export from Germany: its price holds no VAT (a TAX breakdown of zero).
VAT_RATES: dict[str, tuple[str, str]] = {  # country: (standard, reduced)
    "DE": ("19", "7"),
    "FR": ("20", "5.5"),
    "IT": ("22", "10"),
    "ES": ("21", "10"),
    "GB": ("20", "5"),
}
US_SALES_TAX = ("0", "6.25", "7.25", "8.875")  # percent, a few US states' rates
SELLER_COUNTRY = "DE"
SHIPPING_FEE = Decimal("4.99")
CENT = Decimal("0.01")


def _amount(value: Decimal, currency: str) -> dict[str, str]:
    return {"amount": str(value.quantize(CENT, ROUND_HALF_UP)), "currencyCode": currency}


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, ROUND_HALF_UP)


def _proceeds(
    money_rng: random.Random, price: float, quantity: int, *, country: str, currency: str, business: bool
) -> dict[str, Any]:
    """An item's proceeds under its marketplace's convention; `money_rng` is the item's own,
    so the choices here leave the order's other random values as they were."""
    item = _cents(Decimal(str(price)) * quantity)
    shipping = SHIPPING_FEE if money_rng.random() < 0.4 else Decimal(0)
    parts = {"ITEM": item, "SHIPPING": shipping}
    if country == "US":
        rate = Decimal(money_rng.choice(US_SALES_TAX))
        taxes = {k: _cents(v * rate / 100) for k, v in parts.items()}  # added on top
        added = True
    else:
        standard, reduced = VAT_RATES.get(country, ("0", "0"))
        rate = Decimal(reduced if money_rng.random() < 0.2 else standard)
        if business and country not in (SELLER_COUNTRY, "GB"):
            rate = Decimal(0)  # intra-Community supply to a VAT-registered business
        taxes = {k: _cents(v * rate / (100 + rate)) for k, v in parts.items()}  # VAT in the price
        added = False
    breakdowns: list[dict[str, Any]] = [
        {"type": kind, "subtotal": _amount(value, currency)} for kind, value in parts.items() if value
    ]
    tax = sum(taxes.values(), Decimal(0))
    if rate or not added:  # Amazon.com lists no TAX where it adds none
        details = [
            {"subtype": kind, "value": _amount(taxes[kind], currency)}
            for kind, value in parts.items()
            if value
        ]
        breakdowns.append({"type": "TAX", "subtotal": _amount(tax, currency), "detailedBreakdowns": details})
    total = item + shipping + (tax if added else Decimal(0))
    return {"proceedsTotal": _amount(total, currency), "breakdowns": breakdowns}


def _item(rng: random.Random, index: int, country: str, currency: str, business: bool) -> dict[str, Any]:
    price = round(rng.uniform(3, 250), 2)
    quantity = rng.randint(1, 3)
    item_id = f"{rng.randint(10**13, 10**14 - 1)}{index}"
    return {
        "orderItemId": item_id,
        "quantityOrdered": quantity,
        "product": {
            "asin": "B0" + _token(rng, 8).upper(),
            "title": f"Product {_token(rng, 6)}",
            "sellerSku": f"SKU-{_token(rng, 6).upper()}",
            "condition": {"conditionType": "NEW"},
            "price": {"unitPrice": _money(price, currency)},
        },
        "proceeds": _proceeds(
            random.Random(item_id), price, quantity, country=country, currency=currency, business=business
        ),
        "fulfillment": {"quantityFulfilled": 0, "quantityUnfulfilled": quantity},
        "promotion": {"breakdowns": [{"promotionId": f"PROMO-{_token(rng, 4)}"}]},
    }


def _present(fields: dict[str, Any]) -> dict[str, Any]:
    """Amazon omits an absent optional field: its models have no null (a null string breaks them)."""
    return {k: v for k, v in fields.items() if v is not None}


# Each country's postal code shape (9 a digit, A a letter); five digits elsewhere. The UAE has
# no postal codes: its addresses carry none.
POSTAL_FORMATS = {
    "GB": "AA9 9AA",
    "CA": "A9A 9A9",
    "BR": "99999-999",
    "JP": "999-9999",
    "IN": "999999",
    "AE": "",
}


def _postal_code(rng: random.Random, country: str) -> str | None:
    """One draw from `rng` whatever the shape, so the orders' other values stay as they were."""
    drawn = rng.randint(10000, 99999)
    if country not in POSTAL_FORMATS:
        return str(drawn)
    shaped = random.Random(drawn)
    pick = {"9": string.digits, "A": string.ascii_uppercase}
    return "".join(shaped.choice(pick[c]) if c in pick else c for c in POSTAL_FORMATS[country]) or None


def _address(rng: random.Random, country: str) -> dict[str, Any]:
    address = {
        "name": f"Name-{_token(rng)}",
        "addressLine1": f"Street-{_token(rng)} {rng.randint(1, 200)}",
        "addressLine2": f"Flat-{_token(rng)}" if rng.random() < 0.3 else None,
        "city": f"City-{_token(rng)}",
        "stateOrRegion": f"Region-{_token(rng)}",
        "postalCode": _postal_code(rng, country),
        "countryCode": country,
        "phone": f"+{rng.randint(10**9, 10**10 - 1)}",
        "addressType": rng.choice(("RESIDENTIAL", "COMMERCIAL")),
    }
    return _present(address)


def order(
    rng: random.Random,
    created: datetime,
    *,
    marketplace_id: str,
    status: str,
    fulfilled_by: str = "MERCHANT",
    business: bool = False,
) -> dict[str, Any]:
    """One order in the full shape Amazon returns with every `includedData` set."""
    country, currency, name = ALL_MARKETPLACES[marketplace_id]
    items = [_item(rng, i, country, currency, business) for i in range(rng.randint(1, 3))]
    updated = created + timedelta(minutes=rng.randint(0, 600))
    data: dict[str, Any] = {
        "orderId": _order_id(rng),
        "createdTime": _iso(created),
        "lastUpdatedTime": _iso(updated),
        "programs": ["AMAZON_BUSINESS"] if business else [],
        "salesChannel": {"channelName": "AMAZON", "marketplaceId": marketplace_id, "marketplaceName": name},
        "buyer": _present(
            {
                "buyerName": f"Buyer-{_token(rng)}",
                "buyerEmail": f"{_token(rng)}@marketplace.amazon.example",
                "buyerCompanyName": f"Company-{_token(rng)}" if business else None,
            }
        ),
        "recipient": {
            "deliveryAddress": _address(rng, country),
            "deliveryPreference": {"addressInstruction": f"Instruction-{_token(rng)}"},
        },
        "proceeds": {
            "grandTotal": _amount(
                sum((Decimal(i["proceeds"]["proceedsTotal"]["amount"]) for i in items), Decimal(0)), currency
            )
        },
        "payment": {"paymentExecutions": [{"paymentMethod": "CREDIT_CARD"}]},
        "fulfillment": {
            "fulfillmentStatus": status,
            "fulfilledBy": fulfilled_by,
            "fulfillmentServiceLevel": rng.choice(SERVICE_LEVELS),
            "shipByWindow": {"latestDateTime": _iso(created + timedelta(days=2))},
            "deliverByWindow": {"latestDateTime": _iso(created + timedelta(days=7))},
        },
        "orderItems": items,
        "packages": [],
    }
    if business:
        data["tax"] = {
            "taxRegistrations": [
                {
                    "entityType": "BUYER",
                    "taxRegistrationType": "VAT",
                    "taxRegistrationNumber": f"VAT{_token(rng)}",
                }
            ]
        }
    if status in ("SHIPPED", "PARTIALLY_SHIPPED"):
        data["packages"] = [
            {
                "packageReferenceId": "1",
                "packageStatus": {"status": "IN_TRANSIT"},
                "carrier": "DHL",
                "trackingNumber": _token(rng, 12).upper(),
            }
        ]
    return data


def generate(
    count: int,
    *,
    seed: int = 7,
    start: datetime = datetime(2026, 10, 1, tzinfo=UTC),
    span: timedelta = timedelta(days=20),
    marketplaces: Sequence[str] = tuple(MARKETPLACES),
    afn_share: float = 0.1,
    statuses: dict[str, float] | None = None,
) -> list[dict[str, Any]]:
    """`count` orders created between `start` and `start + span` (lastUpdatedTime up to 10 h later)."""
    rng = random.Random(seed)
    weights = statuses or STATUSES
    orders = []
    for _ in range(count):
        created = start + timedelta(seconds=rng.uniform(0, span.total_seconds()))
        orders.append(
            order(
                rng,
                created,
                marketplace_id=rng.choice(list(marketplaces)),
                status=rng.choices(list(weights), weights=list(weights.values()))[0],
                fulfilled_by="AMAZON" if rng.random() < afn_share else "MERCHANT",
                business=rng.random() < 0.15,
            )
        )
    return orders


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write synthetic orders as a searchOrders response body.")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--afn-share", type=float, default=0.1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    body = {"orders": generate(args.count, seed=args.seed, afn_share=args.afn_share)}
    args.out.write_text(json.dumps(body, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def pii_values(order: Mapping[str, Any]) -> list[str]:
    """Every distinctive personal value this generator planted in `order` (random tokens), plus
    the Amazon order id: what a leak scan looks for. Five-digit postal codes are left out, as a
    number like that can appear in counts or timings."""
    buyer = order.get("buyer") or {}
    recipient = order.get("recipient") or {}
    address = recipient.get("deliveryAddress") or {}
    values = [
        order.get("orderId"),
        buyer.get("buyerName"),
        buyer.get("buyerEmail"),
        buyer.get("buyerCompanyName"),
    ]
    values += [
        address.get(k) for k in ("name", "companyName", "addressLine1", "addressLine2", "addressLine3")
    ]
    values += [address.get(k) for k in ("city", "stateOrRegion", "districtOrCounty", "phone")]
    values.append((recipient.get("deliveryPreference") or {}).get("addressInstruction"))
    for registration in (order.get("tax") or {}).get("taxRegistrations") or []:
        values.append(registration.get("taxRegistrationNumber"))
    return [str(v) for v in values if v]
