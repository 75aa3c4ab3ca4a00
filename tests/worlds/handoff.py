"""The carrier handoff world: ready US orders (`build`), the rules that send them to USPS,
FedEx and UPS through karrio (or to Buy Shipping in the UK), and the sandbox credentials the
carrier stand-ins accept. Used by tests/integration/test_shipping_handoff.py,
tests/integration/test_carrier_adapters.py and `make bench` (local/bench_shipping.py)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from shared.crypto.envelope import EnvelopeCipher
from shared.crypto.pii import Pii
from shared.orders.domain import Address, Buyer, OrderItem
from shared.orders.record import OrderPii
from shared.orders.repository import OrderRepository
from tests.builders import order_record
from tests.fakes import MemoryDocumentStore

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
US = "ATVPDKIKX0DER"
UK = "A1F83G8C2ARO7P"

RULES: dict[str, Any] = {
    "shipFrom": {
        "name": "Dispatch",
        "company": "Example Seller LLC",
        "line1": "1 Dock St",
        "city": "Seattle",
        "stateOrRegion": "WA",
        "postalCode": "98101",
        "countryCode": "US",
        "phone": "2065550100",
    },
    "packages": {"small": {"lengthCm": 20, "widthCm": 15, "heightCm": 10, "tareKg": 0.1}},
    "skus": {"MUG": {"weightKg": 0.45, "package": "small"}},
    "buyShipping": {"marketplaces": [UK], "services": {"Standard": "std-us-swa-mfn"}},
    "rules": [
        {
            "name": "overnight",
            "countries": ["US"],
            "serviceLevels": ["NextDay"],
            "carrier": "fedex",
            "service": "fedex_standard_overnight",
        },
        {
            "name": "two-day",
            "countries": ["US"],
            "serviceLevels": ["SecondDay"],
            "carrier": "ups",
            "service": "ups_2nd_day_air",
        },
        {"name": "standard", "countries": ["US"], "carrier": "usps", "service": "usps_ground_advantage"},
    ],
}
LEVELS = ("Standard", "NextDay", "SecondDay")
CREDENTIALS: Mapping[str, Mapping[str, str]] = {
    "usps": {
        "client_id": "cid",
        "client_secret": "cs",  # pragma: allowlist secret - the stand-ins accept any
        "account_number": "100",
        "CRID": "1",
        "MID": "2",
        "manifest_MID": "3",
    },
    "fedex": {
        "api_key": "k",
        "secret_key": "s",
        "account_number": "510087",
        "track_api_key": "tk",  # pragma: allowlist secret
        "track_secret_key": "ts",  # pragma: allowlist secret
    },
    "ups": {"client_id": "cid", "client_secret": "cs", "account_number": "A1B2C3"},
}


def email(n: int) -> str:
    return f"buyer{n}@marketplace.example"


def order_pii(n: int) -> OrderPii:
    return OrderPii(
        order_id=f"111-{n:07d}-0000001",
        buyer=Buyer(name=Pii(f"Account Holder {n}"), email=Pii(email(n))),
        ship_to=Address(
            name=Pii(f"Recipient Person{n}"),
            line1=Pii(f"{n} Main St"),
            line2=Pii("Apt 4"),
            city=Pii("Austin"),
            state_or_region=Pii("TX"),
            postal_code=Pii("78701"),
            country_code="US",
            phone=Pii(f"512555{n:04d}"),
            district=Pii(f"District {n}"),
        ),
    )


def build(store: MemoryDocumentStore, cipher: EnvelopeCipher, count: int) -> list[str]:
    orders = OrderRepository(store)
    refs = []
    for n in range(count):
        ref = f"ref-{n:08d}"
        pii = order_pii(n)
        orders.create(
            order_record(
                at=NOW,
                ref=ref,
                seller_id="A1SELLER",
                marketplace_id=US,
                ship_country="US",
                service_level=LEVELS[n % 3],
                items=(OrderItem(f"OI-{n}", "B000TEST", "MUG", "Mug", 1, None),),
                pii=cipher.seal(ref, pii, NOW),
            )
        )
        refs.append(ref)
    return refs
