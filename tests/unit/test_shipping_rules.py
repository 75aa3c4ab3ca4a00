"""Shipping rules: Buy Shipping preferred where offered, else the first matching rule."""

from decimal import Decimal
from typing import Any

import pytest

from shared.errors import SettingsError
from shared.orders.domain import OrderItem
from shared.shipping.rules import NoRoute, ShippingRules

US = "ATVPDKIKX0DER"
UK = "A1F83G8C2ARO7P"


def config() -> dict[str, Any]:
    return {
        "shipFrom": {
            "name": "Dock",
            "line1": "1 Dock St",
            "city": "Seattle",
            "postalCode": "98101",
            "countryCode": "US",
        },
        "packages": {
            "small": {"lengthCm": 20, "widthCm": 15, "heightCm": 10, "tareKg": 0.1},
            "large": {"lengthCm": 40, "widthCm": 30, "heightCm": 20, "tareKg": 0.4},
        },
        "skus": {
            "MUG": {"weightKg": 0.45, "package": "small"},
            "LAMP": {"weightKg": 2.0, "package": "large"},
        },
        "buyShipping": {"marketplaces": [UK], "services": {"Standard": "std-uk"}},
        "rules": [
            {
                "name": "light",
                "countries": ["US"],
                "serviceLevels": ["Standard"],
                "maxWeightKg": 1,
                "carrier": "usps",
                "service": "usps_ground_advantage",
            },
            {"name": "heavy", "countries": ["US"], "carrier": "ups", "service": "ups_ground"},
            {
                "name": "fast",
                "countries": ["US", "CA"],
                "serviceLevels": ["NextDay"],
                "carrier": "fedex",
                "service": "fedex_standard_overnight",
            },
        ],
    }


def item(sku: str, qty: int = 1) -> OrderItem:
    return OrderItem(
        order_item_id=f"OI-{sku}", asin="B000", sku=sku, title="t", quantity=qty, unit_price=None
    )


ALL = {"usps", "ups", "fedex", "amazon"}


def test_parcel_is_largest_box_and_total_weight() -> None:
    parcel = ShippingRules(config()).parcel([item("MUG", 2), item("LAMP")])
    assert parcel.length_cm == 40
    assert parcel.weight_kg == Decimal("0.4") + Decimal("0.90") + Decimal("2.0")


def test_first_matching_rule_wins_and_weight_limits_apply() -> None:
    rules = ShippingRules(config())
    assert rules.choose(US, "US", "Standard", [item("MUG")], ALL).carrier == "usps"
    assert rules.choose(US, "US", "Standard", [item("LAMP")], ALL).rule == "heavy"


def test_buy_shipping_preferred_where_offered_and_configured() -> None:
    rules = ShippingRules(config())
    choice = rules.choose(UK, "GB", "Standard", [item("MUG")], ALL)
    assert (choice.carrier, choice.service) == ("amazon", "std-uk")
    with pytest.raises(NoRoute) as err:
        rules.choose(UK, "GB", "Standard", [item("MUG")], ALL - {"amazon"})
    assert err.value.code == "country_unsupported"


def test_unavailable_carrier_rules_are_skipped() -> None:
    rules = ShippingRules(config())
    assert rules.choose(US, "US", "Standard", [item("MUG")], {"ups"}).carrier == "ups"


@pytest.mark.parametrize(
    ("country", "level", "sku", "code"),
    [
        ("DE", "Standard", "MUG", "country_unsupported"),
        ("US", "Standard", "UNKNOWN", "sku_unconfigured"),
        ("CA", "Standard", "MUG", "no_shipping_rule"),
        (None, "Standard", "MUG", "country_unsupported"),
    ],
)
def test_reason_codes(country: str | None, level: str, sku: str, code: str) -> None:
    with pytest.raises(NoRoute) as err:
        ShippingRules(config()).choose(US, country, level, [item(sku)], ALL)
    assert err.value.code == code


def test_invalid_configuration_names_the_setting_not_values() -> None:
    bad = config()
    bad["skus"]["MUG"]["package"] = "missing"
    with pytest.raises(SettingsError, match="SHIPPING_RULES"):
        ShippingRules(bad)
    bad = config()
    bad["rules"][0]["maxWeightKg"] = "heavy"
    with pytest.raises(SettingsError, match=r"rules\[0\]\.maxWeightKg"):
        ShippingRules(bad)
    with pytest.raises(SettingsError, match="shipFrom"):
        ShippingRules({})
