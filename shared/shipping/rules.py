"""Which carrier and service ship an order, from the SHIPPING_RULES setting (docs/shipping.md).

The configuration names the dispatch address, the package each SKU ships in and its weight,
Amazon Buy Shipping services per promised service level (preferred where the marketplace
offers Buy Shipping), and an ordered list of carrier rules matched on marketplace,
destination country, promised service level and parcel weight. The first match wins.

Only plain, non-personal order facts are read here (marketplace, country, service level,
SKUs and quantities), so rules can run before anything is decrypted.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from shared.errors import AppError, SettingsError
from shared.orders.domain import OrderItem
from shared.shipping.carriers.amazon_business import business_id
from shared.shipping.carriers.base import Parcel, ShipFrom

AMAZON = "amazon"


class NoRoute(AppError):
    """No configured way to ship this order: a person must extend the rules or ship by hand.

    Codes: sku_unconfigured, country_unsupported, no_shipping_rule."""

    code = "no_shipping_rule"


@dataclass(frozen=True, slots=True)
class PackageSpec:
    length_cm: Decimal
    width_cm: Decimal
    height_cm: Decimal
    tare_kg: Decimal

    @property
    def volume(self) -> Decimal:
        return self.length_cm * self.width_cm * self.height_cm


@dataclass(frozen=True, slots=True)
class SkuSpec:
    weight_kg: Decimal
    package: str


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    carrier: str
    service: str
    marketplaces: frozenset[str]
    countries: frozenset[str]
    service_levels: frozenset[str]
    min_weight_kg: Decimal | None
    max_weight_kg: Decimal | None

    def matches(self, marketplace: str, country: str, level: str | None, weight: Decimal) -> bool:
        return (
            (not self.marketplaces or marketplace in self.marketplaces)
            and (not self.countries or country in self.countries)
            and (not self.service_levels or (level or "") in self.service_levels)
            and (self.min_weight_kg is None or weight >= self.min_weight_kg)
            and (self.max_weight_kg is None or weight <= self.max_weight_kg)
        )


@dataclass(frozen=True, slots=True)
class Choice:
    """The carrier, service and parcel for one order; `rule` names the rule for telemetry."""

    carrier: str
    service: str
    parcel: Parcel
    rule: str


def _dec(value: object, where: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise SettingsError(f"SHIPPING_RULES {where} must be a number") from None
    if not number.is_finite() or number < 0:
        raise SettingsError(f"SHIPPING_RULES {where} must be a non-negative number")
    return number


def _opt_dec(value: object, where: str) -> Decimal | None:
    return None if value is None else _dec(value, where)


def _strings(value: object, where: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SettingsError(f"SHIPPING_RULES {where} must be a list of strings")
    return frozenset(value)


def _object(config: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = config.get(key)
    if not isinstance(value, dict):
        raise SettingsError(f"SHIPPING_RULES needs a {key} object")
    return value


def _ship_from(raw: Mapping[str, Any]) -> ShipFrom:
    try:
        return ShipFrom(
            name=str(raw["name"]),
            line1=str(raw["line1"]),
            city=str(raw["city"]),
            postal_code=str(raw["postalCode"]),
            country_code=str(raw["countryCode"]),
            state_or_region=raw.get("stateOrRegion"),
            line2=raw.get("line2"),
            phone=raw.get("phone"),
            company=raw.get("company"),
        )
    except KeyError:
        raise SettingsError(
            "SHIPPING_RULES shipFrom needs name, line1, city, postalCode, countryCode"
        ) from None


def _rule(index: int, raw: object) -> Rule:
    if (
        not isinstance(raw, dict)
        or not isinstance(raw.get("carrier"), str)
        or not isinstance(raw.get("service"), str)
    ):
        raise SettingsError(f"SHIPPING_RULES rules[{index}] needs carrier and service")
    where = f"rules[{index}]"
    return Rule(
        name=str(raw.get("name") or f"rule-{index}"),
        carrier=raw["carrier"],
        service=raw["service"],
        marketplaces=_strings(raw.get("marketplaces"), f"{where}.marketplaces"),
        countries=_strings(raw.get("countries"), f"{where}.countries"),
        service_levels=_strings(raw.get("serviceLevels"), f"{where}.serviceLevels"),
        min_weight_kg=_opt_dec(raw.get("minWeightKg"), f"{where}.minWeightKg"),
        max_weight_kg=_opt_dec(raw.get("maxWeightKg"), f"{where}.maxWeightKg"),
    )


class ShippingRules:
    """Validated rules; `choose` picks one carrier and service per order."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.ship_from = _ship_from(_object(config, "shipFrom"))
        self.packages = {
            str(name): PackageSpec(
                _dec(p.get("lengthCm"), f"packages.{name}.lengthCm"),
                _dec(p.get("widthCm"), f"packages.{name}.widthCm"),
                _dec(p.get("heightCm"), f"packages.{name}.heightCm"),
                _dec(p.get("tareKg", 0), f"packages.{name}.tareKg"),
            )
            for name, p in _object(config, "packages").items()
        }
        self.skus = {
            str(sku): SkuSpec(_dec(s.get("weightKg"), f"skus.{sku}.weightKg"), str(s.get("package")))
            for sku, s in _object(config, "skus").items()
        }
        unknown = {s.package for s in self.skus.values()} - set(self.packages)
        if unknown:
            raise SettingsError("SHIPPING_RULES skus name a package that packages does not define")
        buy = config.get("buyShipping") or {}
        if not isinstance(buy, dict):
            raise SettingsError("SHIPPING_RULES buyShipping must be an object")
        self.buy_marketplaces = _strings(buy.get("marketplaces"), "buyShipping.marketplaces")
        services = buy.get("services") or {}
        if not isinstance(services, dict):
            raise SettingsError("SHIPPING_RULES buyShipping.services must map service levels to service ids")
        self.buy_services: Mapping[str, str] = {str(k): str(v) for k, v in services.items()}
        rules = config.get("rules") or []
        if not isinstance(rules, list):
            raise SettingsError("SHIPPING_RULES rules must be a list")
        self.rules: tuple[Rule, ...] = tuple(_rule(i, r) for i, r in enumerate(rules))
        self._check_buy_shipping_businesses()

    def _check_buy_shipping_businesses(self) -> None:
        """Every marketplace the rules send to Buy Shipping has an Amazon shipping business
        (`x-amzn-shipping-business-id`): refused here, at start, not at the first label."""
        for marketplace in sorted(self.buy_marketplaces):
            if business_id(marketplace) is None:
                raise SettingsError(
                    f"SHIPPING_RULES buyShipping.marketplaces lists {marketplace}, "
                    "a marketplace with no Amazon Buy Shipping business"
                )
        for index, rule in enumerate(self.rules):
            for marketplace in sorted(rule.marketplaces if rule.carrier == AMAZON else ()):
                if business_id(marketplace) is None:
                    raise SettingsError(
                        f"SHIPPING_RULES rules[{index}].marketplaces lists {marketplace}, "
                        "a marketplace with no Amazon Buy Shipping business"
                    )

    @property
    def carriers(self) -> frozenset[str]:
        """The carriers the rules can choose: the rules' carriers, and Amazon when Buy
        Shipping is preferred anywhere."""
        named = {rule.carrier for rule in self.rules}
        return frozenset(named | ({AMAZON} if self.buy_marketplaces and self.buy_services else set()))

    def parcel(self, items: Sequence[OrderItem]) -> Parcel:
        """The largest package any line needs, and the weight of everything in it."""
        specs = []
        for item in items:
            spec = self.skus.get(item.sku)
            if spec is None:
                raise NoRoute("a SKU has no weight or package", code="sku_unconfigured")
            specs.append((spec, item.quantity))
        if not specs:
            raise NoRoute("the order has no items", code="sku_unconfigured")
        box = max((self.packages[s.package] for s, _ in specs), key=lambda p: p.volume)
        weight = box.tare_kg + sum((s.weight_kg * qty for s, qty in specs), Decimal(0))
        return Parcel(weight, box.length_cm, box.width_cm, box.height_cm)

    def choose(
        self,
        marketplace_id: str,
        country: str | None,
        service_level: str | None,
        items: Sequence[OrderItem],
        available: Collection[str],
    ) -> Choice:
        """Buy Shipping when the marketplace offers it for the promised level and an Amazon
        carrier is configured; else the first rule whose carrier is available and that
        matches. Raises `NoRoute` with a reason code."""
        parcel = self.parcel(items)
        if not country:
            raise NoRoute("the order has no destination country", code="country_unsupported")
        level = service_level or ""
        if AMAZON in available and marketplace_id in self.buy_marketplaces and level in self.buy_services:
            return Choice(AMAZON, self.buy_services[level], parcel, "buy-shipping")
        candidates = [r for r in self.rules if r.carrier in available]
        for rule in candidates:
            if rule.matches(marketplace_id, country, service_level, parcel.weight_kg):
                return Choice(rule.carrier, rule.service, parcel, rule.name)
        if not any(not r.countries or country in r.countries for r in candidates):
            raise NoRoute("no rule ships to the destination country", code="country_unsupported")
        raise NoRoute("no rule matches the order", code="no_shipping_rule")
