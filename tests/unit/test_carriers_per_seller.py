"""Carriers per seller (issue 20): only the carriers the rules name, credentials on first use,
an unconfigured carrier refused at start, Buy Shipping's business from the marketplace, and a
sandbox switch per karrio carrier."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from shared.app.carriers import carrier_directory
from shared.crypto.key_vault import Destroyed, Secret
from shared.crypto.secrets import SecretValues
from shared.errors import SettingsError
from shared.orders.domain import OrderItem
from shared.settings import Settings, load_settings
from shared.shipping.carriers.amazon_business import BUSINESS_IDS
from shared.shipping.carriers.base import LabelItem, LabelRequest, Parcel, ShipFrom, ShipmentRef
from shared.shipping.rules import ShippingRules

US, UK, FR, IT, DE = "ATVPDKIKX0DER", "A1F83G8C2ARO7P", "A13V1IB3VIYZZH", "APJ6JRA9NG5V4", "A1PA6795UKMFR9"
SHIP_FROM = {
    "name": "Dock",
    "line1": "1 Dock St",
    "city": "Paris",
    "postalCode": "75001",
    "countryCode": "FR",
}


def rules_config(**extra: Any) -> dict[str, Any]:
    return {
        "shipFrom": SHIP_FROM,
        "packages": {"small": {"lengthCm": 20, "widthCm": 15, "heightCm": 10}},
        "skus": {"MUG": {"weightKg": 0.5, "package": "small"}},
        **extra,
    }


def settings(marketplaces: list[str], rules: Mapping[str, Any], **env: str) -> Settings:
    # pragma: allowlist nextline secret
    seller = {"sellerId": "S1", "marketplaceIds": marketplaces, "refreshTokenSecret": "rt-s1"}
    return load_settings(
        {
            "STORAGE": "UseDevelopmentStorage=true",
            "COSMOS_ENDPOINT": "https://127.0.0.1:1",
            "KEY_VAULT_URL": "https://vault.example/",
            "SELLERS": json.dumps([seller]),
            "SHIPPING_RULES": json.dumps(rules),
            **env,
        }
    )


class Vault:
    """A secret store that records every name read."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = dict(values)
        self.reads: list[str] = []

    def get(self, name: str, version: str | None = None) -> Secret | None:
        self.reads.append(name)
        value = self.values.get(name)
        return None if value is None else Secret(name, "v1", value)

    def set(self, name: str, value: str) -> Secret:
        raise AssertionError("the carriers never write a secret")

    def names(self, prefix: str = "") -> list[str]:
        return sorted(n for n in self.values if n.startswith(prefix))

    def destroy(self, name: str) -> Destroyed:
        raise AssertionError("the carriers never delete a secret")


class FakeShippingV2:
    """A Shipping API v2 that sells one label; `business` is the header it was made for."""

    def __init__(self, business: str) -> None:
        self.business = business
        self.calls: list[tuple[str, ...]] = []

    def get_rates(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        rate = {"rateId": "r1", "serviceId": "std", "carrierId": "AMZN_X", "totalCharge": {"value": 3}}
        return {"requestToken": "rt", "rates": [rate]}

    def purchase_shipment(self, body: Mapping[str, Any], idempotency_key: str) -> Mapping[str, Any]:
        return {
            "shipmentId": "sh-1",
            "packageDocumentDetails": [
                {
                    "trackingId": "TBA1",
                    "packageDocuments": [{"type": "LABEL", "format": "PDF", "contents": "JVBERg=="}],
                }
            ],
            "benefits": {},
            "carrier": {"id": "AMZN", "name": "Amazon Shipping"},
        }

    def cancel_shipment(self, shipment_id: str) -> Mapping[str, Any]:
        self.calls.append(("cancelShipment", shipment_id))
        return {}

    def get_tracking(self, tracking_id: str, carrier_id: str) -> Mapping[str, Any]:
        self.calls.append(("getTracking", tracking_id, carrier_id))
        return {}


class Apis:
    def __init__(self) -> None:
        self.made: list[tuple[str, str]] = []
        self.apis: dict[str, FakeShippingV2] = {}

    def __call__(self, seller_id: str, business: str) -> FakeShippingV2:
        self.made.append((seller_id, business))
        self.apis[business] = FakeShippingV2(business)
        return self.apis[business]


def label_request(marketplace: str) -> LabelRequest:
    return LabelRequest(
        idempotency_key="0" * 24,
        service="*",
        ship_from=ShipFrom("Dock", "1 Dock St", "Paris", "75001", "FR"),
        parcel=Parcel(Decimal("0.5"), Decimal(20), Decimal(15), Decimal(10)),
        ship_date=date(2026, 3, 2),
        amazon_order_id="402-0000000-0000001",
        items=(LabelItem("OI-1", 1),),
        marketplace_id=marketplace,
    )


AMAZON_ONLY = rules_config(buyShipping={"marketplaces": [US], "services": {"Standard": "*"}})
# pragma: allowlist nextline secret
LWA = {"lwa-client-id": "id", "lwa-client-secret": "not-a-secret", "rt-s1": "Atzr|token"}


def test_an_amazon_only_seller_ships_with_no_karrio_secret() -> None:
    config = settings([US], AMAZON_ONLY)
    rules = ShippingRules(config.shipping_rules)
    vault = Vault(LWA)
    apis = Apis()
    carriers = carrier_directory(config, rules, SecretValues(vault), amazon_api=apis)("S1")
    assert set(carriers) == {"amazon"} and vault.reads == []  # nothing read at start
    items = [OrderItem("OI-1", "B0", "MUG", "Mug", 1, None)]
    choice = rules.choose(US, "US", "Standard", items, set(carriers))
    assert choice.carrier == "amazon"
    label = carriers[choice.carrier].create_label(label_request(US))
    assert label.tracking_number == "TBA1" and label.confirmed_by_carrier
    assert apis.made == [("S1", "AmazonShipping_US")]
    assert not [name for name in vault.reads if name.startswith("carrier-")]


def test_the_production_factory_reads_only_the_sellers_sp_api_secrets() -> None:
    config = settings([US], AMAZON_ONLY)
    vault = Vault(LWA)
    carriers = carrier_directory(config, ShippingRules(config.shipping_rules), SecretValues(vault))("S1")
    amazon = carriers["amazon"]
    assert vault.reads == []  # the Shipping v2 client is made with the first label's business
    from shared.shipping.carriers.amazon import MarketplaceBuyShipping

    assert isinstance(amazon, MarketplaceBuyShipping)
    api = amazon._carrier(US)._api
    assert vault.reads == []  # read when the client is first used
    api.client()  # builds the python-amazon-sp-api client, no network call
    assert sorted(vault.reads) == ["lwa-client-id", "lwa-client-secret", "rt-s1"]


def test_a_rule_naming_an_unconfigured_carrier_fails_at_start_naming_the_setting() -> None:
    config = settings([US], rules_config(rules=[{"carrier": "fedex", "service": "fedex_ground"}]))
    with pytest.raises(SettingsError, match=r"SHIPPING_RULES rules\[0\] names carrier fedex.*CARRIERS"):
        carrier_directory(config, ShippingRules(config.shipping_rules), SecretValues(Vault({})))


def test_a_rule_naming_an_unknown_carrier_fails_at_start() -> None:
    config = settings([US], rules_config(rules=[{"carrier": "dhl", "service": "x"}]))
    with pytest.raises(SettingsError, match=r"rules\[0\] names carrier dhl"):
        carrier_directory(config, ShippingRules(config.shipping_rules), SecretValues(Vault({})))


def test_karrio_credentials_are_read_on_first_use_only_for_the_carrier_used() -> None:
    rules = rules_config(
        rules=[
            {"countries": ["US"], "carrier": "usps", "service": "usps_ground_advantage"},
            {"countries": ["CA"], "carrier": "ups", "service": "ups_standard"},
        ]
    )
    creds = {"client_id": "c", "client_secret": "s", "account_number": "1"}  # pragma: allowlist secret
    config = settings(
        [US], rules, CARRIERS=json.dumps({"usps": {"sandbox": True}, "ups": {"secret": "kv-ups"}})
    )
    vault = Vault({"carrier-usps": json.dumps(creds)})
    carriers = carrier_directory(config, ShippingRules(config.shipping_rules), SecretValues(vault))("S1")
    assert set(carriers) == {"usps", "ups"} and vault.reads == []
    usps = carriers["usps"]
    assert vault.reads == ["carrier-usps"]
    assert usps._test_mode is True  # type: ignore[attr-defined]  # karrio's sandbox switch
    with pytest.raises(SettingsError, match="Key Vault secret kv-ups is missing"):
        carriers["ups"]


def test_the_carriers_setting_is_validated() -> None:
    config = settings([US], AMAZON_ONLY, CARRIERS='{"fedex": {}}')
    account = config.carriers["fedex"]
    assert (account.secret, account.sandbox) == ("carrier-fedex", False)
    for bad, where in (
        ('{"dhl": {}}', "CARRIERS names dhl"),
        ('{"ups": {"sandbox": "yes"}}', "CARRIERS.ups"),
        ('{"ups": "carrier-ups"}', "CARRIERS.ups"),
        ("[]", "CARRIERS must be a JSON object"),
    ):
        with pytest.raises(SettingsError, match=where):
            settings([US], AMAZON_ONLY, CARRIERS=bad)


def test_an_eu_marketplace_uses_its_own_buy_shipping_business() -> None:
    rules = rules_config(buyShipping={"marketplaces": [FR, IT], "services": {"Standard": "*"}})
    config = settings([FR, IT], rules)
    apis = Apis()
    carriers = carrier_directory(
        config, ShippingRules(config.shipping_rules), SecretValues(Vault(LWA)), amazon_api=apis
    )("S1")
    carriers["amazon"].create_label(label_request(IT))
    carriers["amazon"].create_label(label_request(FR))
    carriers["amazon"].create_label(label_request(IT))
    assert apis.made == [("S1", "AmazonShipping_IT"), ("S1", "AmazonShipping_FR")]


def test_tracking_and_cancelling_go_through_the_orders_marketplace_with_the_rates_carrier() -> None:
    rules = rules_config(buyShipping={"marketplaces": [FR, IT], "services": {"Standard": "*"}})
    config = settings([FR, IT], rules)
    apis = Apis()
    amazon = carrier_directory(
        config, ShippingRules(config.shipping_rules), SecretValues(Vault(LWA)), amazon_api=apis
    )("S1")["amazon"]
    label = amazon.create_label(label_request(IT))
    shipment = ShipmentRef(label.shipment_id, label.tracking_number, IT, label.carrier_id)
    amazon.track(shipment)
    amazon.cancel_label(shipment)
    # The seller's first marketplace is FR: the Italian order's label is Italy's business's.
    assert apis.made == [("S1", "AmazonShipping_IT")]
    assert apis.apis["AmazonShipping_IT"].calls == [
        ("getTracking", "TBA1", "AMZN_X"),
        ("cancelShipment", "sh-1"),
    ]


def test_a_marketplace_without_a_buy_shipping_business_fails_when_the_rules_load() -> None:
    with pytest.raises(SettingsError, match=f"buyShipping.marketplaces lists {DE}"):
        ShippingRules(rules_config(buyShipping={"marketplaces": [UK, DE], "services": {"Standard": "*"}}))
    with pytest.raises(SettingsError, match=rf"rules\[0\].marketplaces lists {DE}"):
        ShippingRules(rules_config(rules=[{"marketplaces": [DE], "carrier": "amazon", "service": "*"}]))
    # An Amazon rule for every marketplace: checked against the sellers' marketplaces at start.
    config = settings([FR, DE], rules_config(rules=[{"carrier": "amazon", "service": "*"}]))
    with pytest.raises(SettingsError, match=f"SELLERS lists {DE}"):
        carrier_directory(config, ShippingRules(config.shipping_rules), SecretValues(Vault(LWA)))


def test_business_ids_are_amazons_documented_values() -> None:
    model = Path(__file__).resolve().parents[3] / "shared" / "amazon-models" / "shippingV2.json"
    if not model.exists():
        pytest.skip("Amazon's models are not beside the repository")
    spec = json.loads(model.read_text())
    header = next(
        p
        for p in spec["paths"]["/shipping/v2/shipments/rates"]["post"]["parameters"]
        if isinstance(p, dict) and p.get("name") == "x-amzn-shipping-business-id"
    )
    assert set(BUSINESS_IDS.values()) == set(header["enum"])
