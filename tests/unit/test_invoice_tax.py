"""What an invoice states about tax comes from Amazon's data, read as docs/invoices.md says it
means: statutory rates only, no zero rate or exemption Amazon's data does not establish, and a
total that is what the buyer paid. Orders are built in Amazon's shape and mapped by the app's
own mapper (`order_from_api`), so the semantics are tested end to end."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from local.sample_orders import generate
from shared.crypto.pii import Pii
from shared.ingestion.amazon_orders import order_from_api
from shared.invoices.model import (
    EXPORT_NOTE,
    REVERSE_CHARGE_NOTE,
    RateUnrecognised,
    TaxUnknown,
    build_invoice,
)
from shared.invoices.profile import parse_profile
from shared.invoices.rates import TABLE, parse_table, statutory_rates, table
from shared.orders.domain import Buyer, OrderItem
from shared.orders.record import OrderPii
from tests.builders import order_record
from tests.fakes import stored
from tests.worlds.invoices import DE, FR, NOW, PROFILE, UK, US, World, address, assert_has, normalise

ROOT = Path(__file__).resolve().parents[2]
SUPPLY = date(2026, 11, 1)


def amazon_order(
    marketplace: str,
    lines: Sequence[tuple[str, int, str | None]],
    *,
    currency: str = "EUR",
    shipping: tuple[str, str | None] | None = None,
    tax_added: bool = False,
) -> dict[str, Any]:
    """An order in Amazon's v2026-01-01 shape: one item per (unit price, quantity, TAX) line,
    TAX None for none reported; its totals follow the marketplace's convention (VAT in the
    prices, or `tax_added` on top as on Amazon.com)."""
    items, grand = [], Decimal(0)
    for n, (unit, quantity, tax) in enumerate(lines):
        item = Decimal(unit) * quantity
        breakdowns: list[dict[str, Any]] = [{"type": "ITEM", "subtotal": _money(item, currency)}]
        total = item
        if shipping and n == 0:
            breakdowns.append({"type": "SHIPPING", "subtotal": _money(Decimal(shipping[0]), currency)})
            total += Decimal(shipping[0])
        if tax is not None:
            details = [{"subtype": "ITEM", "value": _money(Decimal(tax), currency)}]
            all_tax = Decimal(tax)
            if shipping and n == 0 and shipping[1] is not None:
                details.append({"subtype": "SHIPPING", "value": _money(Decimal(shipping[1]), currency)})
                all_tax += Decimal(shipping[1])
            breakdowns.append(
                {"type": "TAX", "subtotal": _money(all_tax, currency), "detailedBreakdowns": details}
            )
            total += all_tax if tax_added else 0
        grand += total
        items.append(
            {
                "orderItemId": f"item-{n}",
                "quantityOrdered": quantity,
                "product": {
                    "asin": f"B0{n}",
                    "sellerSku": f"SKU-{n}",
                    "title": f"Article {n}",
                    "price": {"unitPrice": _money(Decimal(unit), currency)},
                },
                "proceeds": {"proceedsTotal": _money(total, currency), "breakdowns": breakdowns},
            }
        )
    return {
        "orderId": "302-1234567-1234567",
        "createdTime": "2026-10-30T10:00:00Z",
        "lastUpdatedTime": "2026-11-01T10:00:00Z",
        "salesChannel": {"channelName": "AMAZON", "marketplaceId": marketplace},
        "fulfillment": {"fulfillmentStatus": "SHIPPED", "fulfilledBy": "MERCHANT"},
        "proceeds": {"grandTotal": _money(grand, currency)},
        "orderItems": items,
    }


def _money(value: Decimal, currency: str) -> dict[str, str]:
    return {"amount": str(value), "currencyCode": currency}


def mapped_items(raw: dict[str, Any]) -> tuple[OrderItem, ...]:
    return order_from_api(raw, "A1SELLER").items


def consumer(country: str, order_id: str = "302-1234567-1234567") -> OrderPii:
    return OrderPii(
        order_id=order_id,
        buyer=Buyer(name=Pii("Kim Berger")),
        ship_to=address("Kim Berger", "Weg 1", "10115", "Berlin", country),
    )


def issue(world: World, ref: str, raw: dict[str, Any], pii: OrderPii, **changes: Any) -> dict[str, Any]:
    marketplace = raw["salesChannel"]["marketplaceId"]
    world.add_order(ref, marketplace=marketplace, items=mapped_items(raw), pii=pii, **changes)
    return world.issue(ref)


def rates_printed(text: str) -> set[str]:
    return set(re.findall(r"(\d+(?:\.\d+)?) %", text))


# -- the required cases -------------------------------------------------------------------


def test_a_german_domestic_sale_at_19_percent_prints_the_statutory_19_and_what_the_buyer_paid() -> None:
    world = World()
    raw = amazon_order(DE, [("1278.49", 1, "204.13")])  # 1,278.49 with 19 % VAT in it
    doc = issue(world, "ref-de-19", raw, consumer("DE"))["invoice"]
    assert doc["totalAmount"] == raw["proceeds"]["grandTotal"]["amount"] == "1278.49"
    assert doc["totalVat"] == "204.13"
    text = world.pdf_text("ref-de-19")
    assert_has(text, "Taxable amount at 19 % 1,074.36 EUR", "Total amount due 1,278.49 EUR")
    assert rates_printed(text) == {"19"}


def test_a_reduced_rate_line_is_invoiced_at_7_percent_beside_a_standard_one() -> None:
    world = World()
    raw = amazon_order(DE, [("59.50", 1, "9.50"), ("10.70", 2, "1.40")], shipping=("4.99", "0.80"))
    doc = issue(world, "ref-de-7", raw, consumer("DE"))["invoice"]
    assert doc["totalAmount"] == raw["proceeds"]["grandTotal"]["amount"] == "85.89"
    text = world.pdf_text("ref-de-7")
    assert_has(text, "Taxable amount at 7 % 20.00 EUR", "VAT amount at 7 % 1.40 EUR")
    assert_has(text, "Taxable amount at 19 % 54.19 EUR", "VAT amount at 19 % 10.30 EUR")
    assert rates_printed(text) == {"19", "7"}


def test_tax_that_implies_23_4_percent_goes_to_a_person_and_takes_no_number() -> None:
    """The stand-in's old bug: 19 % added on top of a price read as VAT-inclusive gave 23.4 %.
    No country has that rate: nothing is issued, the order says why."""
    world = World()
    raw = amazon_order(DE, [("100.00", 1, "19.00")])  # 19.00 of 100.00 is 23.46 % of 81.00
    invoice = issue(world, "ref-de-234", raw, consumer("DE"))
    assert invoice == {"skipped": {"invoice": "invoice_rate_unrecognised"}}
    record = world.orders.get("ref-de-234")
    assert record is not None and record.attention == "invoice_rate_unrecognised"
    assert record.stage.value == "shipped"  # delivery tracking and the 7-day purge go on
    assert world.counter.peek("INV2026") is None and not stored(world.memory)
    assert world.uploader.calls == []


def test_a_domestic_sale_without_tax_reported_goes_to_a_person_not_to_an_exemption() -> None:
    """An Amazon.de order shipped within Germany whose proceeds carry no TAX (valid in the
    model): a domestic consumer sale is not exempt, and the app cannot know a ground."""
    world = World()
    raw = amazon_order(DE, [("49.99", 1, None)])
    invoice = issue(world, "ref-de-notax", raw, consumer("DE"))
    assert invoice == {"skipped": {"invoice": "invoice_tax_unknown"}}
    record = world.orders.get("ref-de-notax")
    assert record is not None and record.attention == "invoice_tax_unknown"
    assert world.counter.peek("INV2026") is None and not stored(world.memory)
    # The same again (a redelivery): no second write, still no number.
    before = world.orders.get("ref-de-notax")
    assert world.issue("ref-de-notax") == invoice
    assert world.orders.get("ref-de-notax") == before


def test_an_explicit_zero_tax_on_a_domestic_sale_is_no_statutory_rate_unless_the_seller_is_exempt() -> None:
    raw = amazon_order(DE, [("49.99", 1, "0.00")])
    world = World()
    assert issue(world, "ref-de-zero", raw, consumer("DE")) == {
        "skipped": {"invoice": "invoice_rate_unrecognised"}
    }
    exempt = World()
    exempt.service._profile = parse_profile({**PROFILE, "exemptionNote": "Steuerbefreit nach § 19 UStG"})
    issue(exempt, "ref-de-zero", raw, consumer("DE"))
    text = exempt.pdf_text("ref-de-zero")
    assert_has(text, "Steuerbefreit nach § 19 UStG", "Total amount due 49.99 EUR")
    assert "exempt supply (Directive" not in text  # the app's own guess is gone


def test_a_person_fixing_the_profile_and_replaying_clears_the_flag() -> None:
    world = World()
    raw = amazon_order(DE, [("49.99", 1, "0.00")])
    issue(world, "ref-fixed", raw, consumer("DE"))
    world.service._profile = parse_profile({**PROFILE, "exemptionNote": "Steuerbefreit nach § 19 UStG"})
    doc = world.issue("ref-fixed")
    record = world.orders.get("ref-fixed")
    assert doc["invoice"]["numberText"] == "INV2026-000001" and "invoice" not in doc["skipped"]
    assert record is not None and record.attention is None


def test_the_sellers_own_rate_list_narrows_the_statutory_ones() -> None:
    world = World()
    world.service._profile = parse_profile({**PROFILE, "vatRates": {"DE": [19]}})
    raw = amazon_order(DE, [("10.70", 2, "1.40")])  # 7 %: not among the seller's rates
    assert issue(world, "ref-narrow", raw, consumer("DE")) == {
        "skipped": {"invoice": "invoice_rate_unrecognised"}
    }


def test_a_rate_is_checked_against_the_country_of_taxation_oss() -> None:
    """A German seller's sale to a French consumer is taxed in France: 20 %, not 19 %."""
    world = World()
    good = amazon_order(FR, [("120.00", 1, "20.00")])
    issue(world, "ref-fr-20", good, consumer("FR"))
    assert rates_printed(world.pdf_text("ref-fr-20")) == {"20"}
    wrong = amazon_order(FR, [("119.00", 1, "19.00")])  # German VAT on a French sale
    assert issue(world, "ref-fr-19", wrong, consumer("FR")) == {
        "skipped": {"invoice": "invoice_rate_unrecognised"}
    }


def test_a_reverse_charge_is_stated_only_for_a_business_buyer_amazon_charged_no_vat() -> None:
    world = World()
    buyer = OrderPii(
        "403-2222222-2222222",
        Buyer(name=Pii("É D"), company=Pii("Atelier SARL"), vat_id=Pii("FR12345678901")),
        address("É D", "12 rue de la Paix", "75002", "Paris", "FR"),
    )
    raw = amazon_order(FR, [("42.00", 3, "0.00")])
    issue(world, "ref-rc", raw, buyer, business=True)
    assert REVERSE_CHARGE_NOTE[:40] in normalise(world.pdf_text("ref-rc"))
    # Without the buyer's VAT registration there is no ground: a person decides.
    plain = OrderPii("403-3333333-3333333", Buyer(name=Pii("É D")), buyer.ship_to)
    assert issue(world, "ref-no-rc", raw, plain, business=True) == {
        "skipped": {"invoice": "invoice_rate_unrecognised"}
    }


# -- UK and US, as docs/invoices.md reads them ---------------------------------------------


def test_a_uk_order_has_vat_inclusive_prices_at_the_uk_rate() -> None:
    world = World()
    raw = amazon_order(
        UK, [("24.00", 1, "4.00"), ("36.00", 1, "6.00")], currency="GBP", shipping=("6.00", "1.00")
    )
    doc = issue(world, "ref-uk", raw, consumer("GB"))["invoice"]
    assert doc["totalAmount"] == raw["proceeds"]["grandTotal"]["amount"] == "66.00"
    text = world.pdf_text("ref-uk")
    assert_has(
        text, "Taxable amount at 20 % 55.00 GBP", "VAT amount at 20 % 11.00 GBP", "VAT ID: GB123456789"
    )


def test_amazons_uk_example_adds_tax_on_top_so_its_tax_is_not_read_as_vat(amazon_model: Any) -> None:
    """Amazon's getOrder example (Amazon.co.uk): 103.97 = ITEM 89.97 + SHIPPING 10.00 + TAX
    4.00. Under VAT-inclusive UK prices it does not add up (ITEM + SHIPPING = 99.97), and its
    TAX is 3.3 % of the item, no UK rate: no invoice states it."""
    model = amazon_model("orders_2026-01-01.json")
    raw = copy.deepcopy(
        model["paths"]["/orders/2026-01-01/orders/{orderId}"]["get"]["responses"]["200"]["examples"][
            "application/json"
        ]["order"]
    )
    order = order_from_api(raw, "A1SELLER")
    assert [i.item_tax for i in order.items] == [None]
    world = World()
    world.add_order("ref-uk-example", marketplace=UK, items=order.items, pii=OrderPii.of(order))
    assert world.issue("ref-uk-example") == {"skipped": {"invoice": "invoice_tax_unknown"}}
    # Even read as added on top, 3.00 on 89.97 and 1.00 on 10.00 are 3.3 % and 10 %: no UK rate.
    (item,) = order_from_api({**raw, "salesChannel": {"marketplaceId": US}}, "A1SELLER").items
    assert item.item_tax is not None and item.item_tax.amount == Decimal("3.00")
    assert statutory_rates("GB", SUPPLY) == (Decimal(20), Decimal(5), Decimal(0))


def test_amazons_us_example_adds_sales_tax_on_top_and_the_invoice_totals_what_the_buyer_paid(
    amazon_model: Any,
) -> None:
    """Amazon's searchOrders example (Amazon.com, an Amazon Business order to the US): item
    99.98 + TAX 0.02 = 100.00, item 49.99, DELIVERY_TIP 5.00, grandTotal 154.99. The seller's
    invoice is an export with no VAT; the sales tax Amazon added is shown as such, not as VAT;
    the tip is not a supply of the seller."""
    model = amazon_model("orders_2026-01-01.json")
    raw = copy.deepcopy(
        model["paths"]["/orders/2026-01-01/orders"]["get"]["responses"]["200"]["examples"][
            "application/json"
        ]["orders"][0]
    )
    order = order_from_api(raw, "A1SELLER")
    assert [i.item_tax.amount if i.item_tax else None for i in order.items] == [Decimal("0.02"), None]
    world = World()
    world.add_order(
        "ref-us-example", marketplace=US, items=order.items, pii=OrderPii.of(order), business=True
    )
    doc = world.issue("ref-us-example")["invoice"]
    assert (doc["totalAmount"], doc["totalVat"]) == ("149.99", "0.00")
    tip = Decimal("5.00")
    assert Decimal(doc["totalAmount"]) + tip == Decimal(raw["proceeds"]["grandTotal"]["amount"])
    text = world.pdf_text("ref-us-example")
    assert_has(
        text, "Sales tax added by Amazon (not VAT) 0.02 USD", EXPORT_NOTE, "Total amount due 149.99 USD"
    )
    assert rates_printed(text) == {"0"}


def test_a_us_order_whose_total_omits_its_tax_does_not_add_up_and_is_not_invoiced() -> None:
    raw = amazon_order(US, [("100.00", 1, "7.25")], currency="USD")  # total without the added tax
    assert [i.item_tax for i in mapped_items(raw)] == [None]
    added = amazon_order(US, [("100.00", 1, "7.25")], currency="USD", tax_added=True)
    assert [i.item_tax.amount for i in mapped_items(added) if i.item_tax] == [Decimal("7.25")]


def test_a_grand_total_that_is_not_the_items_total_makes_every_items_tax_unknown() -> None:
    raw = amazon_order(DE, [("59.50", 1, "9.50"), ("10.70", 2, "1.40")])
    raw["proceeds"]["grandTotal"]["amount"] = "90.00"
    assert [i.item_tax for i in mapped_items(raw)] == [None, None]


# -- the stand-in and the rate table --------------------------------------------------------


def _stand_in_invoices() -> list[tuple[dict[str, Any], Any]]:
    profile = parse_profile({**PROFILE, "vatIds": {"DE": "DE1", "GB": "GB1", "FR": "FR1", "IT": "IT1"}})
    out = []
    for raw in generate(400, seed=7, statuses={"SHIPPED": 1.0}, afn_share=0.0):
        order = order_from_api(raw, "A1SELLER")
        record = order_record(
            at=NOW,
            marketplace_id=order.marketplace_id,
            ship_country=order.ship_to.country_code if order.ship_to else None,
            is_business=order.is_business,
            items=order.items,
            shipment={"shippedAt": "2026-10-20T10:00:00+00:00"},
        )
        data = build_invoice(
            record, OrderPii.of(order), profile, kind="invoice", number_text="X", issued_on=NOW.date()
        )
        out.append((raw, data))
    return out


def test_every_invoice_of_the_stand_ins_orders_has_statutory_rates_and_totals_what_the_buyer_paid() -> None:
    invoices = _stand_in_invoices()
    assert len(invoices) == 400
    for raw, data in invoices:
        country = data.buyer.country_code
        assert data.total_gross == Decimal(raw["proceeds"]["grandTotal"]["amount"])  # no tips here
        for line in data.lines:
            assert (line.rate == 0 and data.notes) or line.rate in statutory_rates(
                country, date(2026, 10, 20)
            )
    kinds = {(d.buyer.country_code, bool(d.notes), bool(d.sales_tax)) for _, d in invoices}
    assert ("DE", False, False) in kinds and ("FR", True, False) in kinds and ("US", True, True) in kinds


def test_the_rate_table_is_dated_and_sourced() -> None:
    doc = json.loads(TABLE.read_text(encoding="utf-8"))
    entries = table()
    assert {e.country for e in entries} >= {"DE", "FR", "IT", "ES", "NL", "PL", "SE", "GB", "AT", "BE"}
    assert all(
        e.source in doc["sources"] and doc["sources"][e.source]["url"].startswith("https://") for e in entries
    )
    assert statutory_rates("DE", SUPPLY) == (Decimal(19), Decimal(7))
    assert statutory_rates("FI", SUPPLY) == (Decimal("25.5"), Decimal("13.5"), Decimal(10))
    assert statutory_rates("DE", date(2020, 12, 1)) == ()  # before the table's date: a person checks
    broken = {
        **doc,
        "rates": {"DE": [{"rate": "19", "kind": "standard", "since": "2021-01-01", "source": "?"}]},
    }
    with pytest.raises(ValueError):
        parse_table(broken)


def test_a_supply_before_the_tables_dates_is_not_guessed() -> None:
    raw = amazon_order(DE, [("119.00", 1, "19.00")])
    order = order_from_api(raw, "A1SELLER")
    record = order_record(
        at=NOW,
        marketplace_id=DE,
        ship_country="DE",
        items=order.items,
        shipment={"shippedAt": "2020-12-01T10:00:00+00:00"},
    )
    with pytest.raises(RateUnrecognised):
        build_invoice(
            record, consumer("DE"), parse_profile(PROFILE), kind="invoice", number_text="X", issued_on=SUPPLY
        )
    later = record.evolve(shipment={"shippedAt": "2026-11-01T10:00:00+00:00"})
    data = build_invoice(
        later, consumer("DE"), parse_profile(PROFILE), kind="invoice", number_text="X", issued_on=SUPPLY
    )
    assert data.lines[0].rate == 19


def test_a_marketplace_without_a_known_convention_never_has_its_tax_read_as_vat() -> None:
    raw = amazon_order("A1VC38T7YXB528", [("1000", 1, "91")], currency="JPY")  # Amazon.co.jp
    order = order_from_api(raw, "A1SELLER")
    record = order_record(at=NOW, marketplace_id="A1VC38T7YXB528", ship_country="DE", items=order.items)
    with pytest.raises(TaxUnknown):
        build_invoice(
            record, consumer("DE"), parse_profile(PROFILE), kind="invoice", number_text="X", issued_on=SUPPLY
        )


def test_reason_codes_are_documented_with_invoices() -> None:
    docs = (ROOT / "docs" / "invoices.md").read_text(encoding="utf-8")
    assert "`invoice_rate_unrecognised`" in docs and "`invoice_tax_unknown`" in docs
