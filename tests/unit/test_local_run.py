"""`make run`'s local shipping rules cover the orders it is given, whatever their marketplace."""

from local.pipeline import MARKETPLACE_COUNTRIES, shipping_rules


def _order(country: str) -> dict[str, object]:
    return {
        "recipient": {"deliveryAddress": {"countryCode": country}},
        "orderItems": [{"product": {"sellerSku": "SKU-1"}}],
    }


def test_every_ship_to_country_of_the_given_orders_has_a_rule() -> None:
    assert "AT" not in MARKETPLACE_COUNTRIES.values()
    rules = shipping_rules([_order("AT"), _order("SE"), _order("DE")])
    for rule in rules["rules"]:
        assert {"AT", "SE", "DE"} <= set(rule["countries"]), rule["name"]
    assert set(rules["skus"]) == {"SKU-1"}
