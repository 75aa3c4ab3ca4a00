"""Each seller's carriers: only those the shipping rules can choose, each built on first use.

A carrier is *configured* when the app settings say how to reach it: a karrio carrier (USPS,
FedEx, UPS) by its CARRIERS entry (the Key Vault secret with its credentials, and its sandbox
switch); Amazon Buy Shipping by the seller's own SP-API authorisation (SELLERS and the LWA
secrets). `check_carriers` runs at start and refuses rules that name an unconfigured carrier,
or send to Buy Shipping a seller marketplace that has no Amazon shipping business, with a
`SettingsError` naming the setting. No secret is read until a carrier is first used, so a
seller shipping only with Buy Shipping needs no karrio secret at all.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from shared.crypto.secrets import CREDENTIALS_MAX_AGE_S, RenewedClients, SecretValues, json_secret
from shared.errors import SettingsError
from shared.settings import KARRIO_CARRIERS, Settings
from shared.shipping.carriers import Carrier
from shared.shipping.carriers.amazon_business import business_id
from shared.shipping.carriers.base import Label, LabelRequest, ShipmentRef, TrackingInfo
from shared.shipping.rules import AMAZON, ShippingRules

if TYPE_CHECKING:  # the adapters are imported when first used
    from shared.shipping.carriers.amazon import ShippingV2Api
    from shared.shipping.carriers.karrio_adapter import KarrioCarrier

#: (seller id, shipping business id) -> the Shipping API v2 client for them.
AmazonApiFactory = Callable[[str, str], Any]


def check_carriers(settings: Settings, rules: ShippingRules) -> None:
    """Refuse, at start, rules that name a carrier the settings do not configure."""
    for index, rule in enumerate(rules.rules):
        if rule.carrier == AMAZON:
            if not rule.marketplaces:
                _check_sellers_have_businesses(settings, f"SHIPPING_RULES rules[{index}]")
            continue
        if rule.carrier not in KARRIO_CARRIERS:
            raise SettingsError(
                f"SHIPPING_RULES rules[{index}] names carrier {rule.carrier}; "
                f"the carriers are {', '.join((*KARRIO_CARRIERS, AMAZON))}"
            )
        if rule.carrier not in settings.carriers:
            raise SettingsError(
                f"SHIPPING_RULES rules[{index}] names carrier {rule.carrier}, "
                "which CARRIERS does not configure"
            )


def _check_sellers_have_businesses(settings: Settings, where: str) -> None:
    for seller in settings.sellers:
        for marketplace in seller.marketplace_ids:
            if business_id(marketplace) is None:
                raise SettingsError(
                    f"{where} sends every marketplace to Buy Shipping, and SELLERS lists "
                    f"{marketplace}, a marketplace with no Amazon Buy Shipping business "
                    "(name the rule's marketplaces)"
                )


class SellerCarriers(Mapping[str, Carrier]):
    """One seller's carriers by name. The names are known at start; each carrier (and its
    secret) is made when first looked up, then kept for the process."""

    def __init__(self, names: frozenset[str], make: Callable[[str], Carrier]) -> None:
        self._names = names
        self._make = make
        self._made: dict[str, Carrier] = {}
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> Carrier:
        if name not in self._names:
            raise KeyError(name)
        with self._lock:
            if name not in self._made:
                self._made[name] = self._make(name)
            return self._made[name]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._names))

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._names


class _UnavailableBuyShipping:
    """Buy Shipping for a seller none of whose marketplaces has a shipping business: never
    chosen by rules that passed `check_carriers`, so reaching it is a configuration slip."""

    name = AMAZON
    replay_safe = True
    requires_phone = False

    def _refuse(self) -> Any:
        raise SettingsError("SELLERS: the seller has no marketplace with an Amazon Buy Shipping business")

    def create_label(self, request: LabelRequest) -> Label:
        return self._refuse()  # type: ignore[no-any-return]

    def cancel_label(self, shipment: ShipmentRef) -> bool:
        return self._refuse()  # type: ignore[no-any-return]

    def track(self, shipment: ShipmentRef) -> TrackingInfo:
        return self._refuse()  # type: ignore[no-any-return]


def carrier_directory(
    settings: Settings,
    rules: ShippingRules,
    values: SecretValues,
    *,
    replay_safe: bool = False,
    amazon_api: AmazonApiFactory | None = None,
) -> Callable[[str], Mapping[str, Carrier]]:
    """seller id -> that seller's carriers: those the rules name, plus any CARRIERS configures
    (so a shipment bought before a rule changed can still be tracked). Checks at once."""
    check_carriers(settings, rules)
    names = frozenset(rules.carriers | set(settings.carriers))
    api = amazon_api or _sp_api_shipping(settings, values)
    sellers: dict[str, SellerCarriers] = {}
    lock = threading.Lock()

    def make(seller_id: str, name: str) -> Carrier:
        if name == AMAZON:
            return _buy_shipping(settings, seller_id, api)
        return karrio_carrier(settings, values, name, replay_safe=replay_safe)

    def directory(seller_id: str) -> Mapping[str, Carrier]:
        with lock:
            if seller_id not in sellers:
                known = settings.seller(seller_id) is not None
                sellers[seller_id] = SellerCarriers(
                    names if known else names - {AMAZON}, lambda name: make(seller_id, name)
                )
            return sellers[seller_id]

    return directory


def _buy_shipping(settings: Settings, seller_id: str, api: AmazonApiFactory) -> Carrier:
    from shared.shipping.carriers.amazon import MarketplaceBuyShipping

    seller = settings.seller(seller_id)
    marketplaces = [m for m in (seller.marketplace_ids if seller else ()) if business_id(m)]
    if not marketplaces:
        return _UnavailableBuyShipping()
    return MarketplaceBuyShipping(lambda business: api(seller_id, business), marketplaces[0])


def karrio_carrier(
    settings: Settings, values: SecretValues, name: str, *, replay_safe: bool = False
) -> KarrioCarrier:
    """The karrio carrier CARRIERS configures under `name`, its secret read now."""
    from shared.shipping.carriers.karrio_adapter import KarrioCarrier

    account = settings.carriers[name]
    credentials = {k: str(v) for k, v in json_secret(values, account.secret).items()}
    return KarrioCarrier(
        name,
        credentials,
        base_url=settings.carrier_endpoints.get(name),
        test_mode=account.sandbox,
        replay_safe=replay_safe,
    )


class RenewedShippingApi:
    """One seller's Shipping v2 client for one business, made again with credentials read
    afresh at least every `CREDENTIALS_MAX_AGE_S` (a rotated LWA secret, no restart)."""

    def __init__(
        self, make: Callable[[], ShippingV2Api], *, max_age_s: float = CREDENTIALS_MAX_AGE_S
    ) -> None:
        self._clients: RenewedClients[None, ShippingV2Api] = RenewedClients(
            lambda _: make(), max_age_s=max_age_s
        )

    def client(self) -> ShippingV2Api:
        """The client, made again (credentials read again) once older than the maximum age."""
        return self._clients(None)

    def get_rates(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        return self.client().get_rates(body)

    def purchase_shipment(self, body: Mapping[str, Any], idempotency_key: str) -> Mapping[str, Any]:
        return self.client().purchase_shipment(body, idempotency_key)

    def cancel_shipment(self, shipment_id: str) -> Mapping[str, Any]:
        return self.client().cancel_shipment(shipment_id)

    def get_tracking(self, tracking_id: str, carrier_id: str) -> Mapping[str, Any]:
        return self.client().get_tracking(tracking_id, carrier_id)


def _sp_api_shipping(
    settings: Settings, values: SecretValues, *, max_age_s: float = CREDENTIALS_MAX_AGE_S
) -> AmazonApiFactory:
    """The production factory: python-amazon-sp-api's Shipping v2 client for the seller's
    authorisation and the given business; the secrets are read when it is made, and again at
    least every `max_age_s`."""

    def make(seller_id: str, business: str) -> Any:
        seller = settings.seller(seller_id)
        if seller is None:
            raise KeyError(seller_id)
        marketplace = next(m for m in seller.marketplace_ids if business_id(m) == business)
        return RenewedShippingApi(
            lambda: _shipping_client(settings, values, seller.refresh_token_secret, marketplace, business),
            max_age_s=max_age_s,
        )

    return make


def _shipping_client(
    settings: Settings, values: SecretValues, refresh_token_secret: str, marketplace: str, business: str
) -> ShippingV2Api:
    from shared.shipping.carriers.amazon import SpApiShippingV2

    return SpApiShippingV2(
        refresh_token=values(refresh_token_secret),
        lwa_client_id=values(settings.lwa_client_id_secret),
        lwa_client_secret=values(settings.lwa_client_secret_secret),
        marketplace_id=marketplace,
        business_id=business,
        endpoint=settings.carrier_endpoints.get(AMAZON) or settings.spapi_endpoint,
        lwa_endpoint=settings.lwa_endpoint,
        verify=settings.spapi_verify_tls,
    )
