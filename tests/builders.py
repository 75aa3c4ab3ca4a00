"""Test data built in one place: an order as the store holds it (every field a test does not
care about filled in, no buyer data unless the test gives some), synthetic buyer data that is
easy to find wherever it leaks, and the smallest app settings that load."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from local import sample_orders
from shared.crypto.pii import Pii
from shared.orders.domain import Address, Buyer, OrderItem
from shared.orders.record import OrderPii, OrderRecord, PiiCipher, Stage
from shared.settings import Settings, load_settings
from tests.fakes import FakeCipher

#: The settings every app needs, and nothing else (one seller, one marketplace).
BASE_SETTINGS = {
    "STORAGE": "UseDevelopmentStorage=true",
    "COSMOS_ENDPOINT": "https://127.0.0.1:1",
    "KEY_VAULT_URL": "https://vault.example/",
    "SELLERS": (
        '[{"sellerId": "S1", "marketplaceIds": ["M1"], '
        '"refreshTokenSecret": "rt-s1"}]'  # pragma: allowlist secret - a Key Vault secret's name
    ),
}


def amazon_seller_settings(marketplace_id: str = "ATVPDKIKX0DER", **extra: str) -> Settings:
    """BASE_SETTINGS with its seller in one of Amazon's marketplaces (what the SP-API clients
    need), and any `extra` settings."""
    # pragma: allowlist nextline secret
    seller = {"sellerId": "S1", "marketplaceIds": [marketplace_id], "refreshTokenSecret": "rt-s1"}
    return load_settings({**BASE_SETTINGS, "SELLERS": json.dumps([seller]), **extra})


def order_record(*, at: datetime, **fields: Any) -> OrderRecord:
    """A ready, unshipped order created and last updated by Amazon `at`; `fields` override."""
    defaults: dict[str, Any] = {
        "ref": "ref-000000001",
        "seller_id": "S",
        "marketplace_id": "M",
        "stage": Stage.READY,
        "amazon_status": "UNSHIPPED",
        "amazon_updated_at": at,
        "created_at": at,
        "ship_country": "DE",
        "service_level": None,
        "is_business": False,
        "latest_ship_at": None,
        "latest_delivery_at": None,
        "items": (),
        "pii": None,
    }
    return OrderRecord(**{**defaults, **fields})


def token(n: int, field: str) -> str:
    """A synthetic personal value that is easy to find in anything that leaks it."""
    return f"SYNTHPII{field.upper()}{n:05d}"


def order_pii(n: int) -> OrderPii:
    """Order `n`'s buyer data, every value a `token`."""
    return OrderPii(
        order_id=f"306-{n:07d}-0000000",
        buyer=Buyer(name=Pii(token(n, "name")), email=Pii(token(n, "mail"))),
        ship_to=Address(
            name=Pii(token(n, "name")),
            line1=Pii(token(n, "street")),
            city=Pii(token(n, "city")),
            postal_code=Pii(token(n, "zip")),
            country_code="DE",
        ),
    )


def flipped(envelope: Mapping[str, Any], byte: int = 0) -> dict[str, Any]:
    """`envelope` (shared.crypto.envelope) with one byte of its ciphertext flipped."""
    ct = bytearray(base64.b64decode(envelope["ct"]))
    ct[byte] ^= 0x01
    return {**envelope, "ct": base64.b64encode(bytes(ct)).decode("ascii")}


def portuguese_pii(order_id: str) -> OrderPii:
    """A short buyer and address in Porto."""
    address = Address(Pii("Ana"), Pii("Rua 1"), Pii("Porto"), Pii("4000"), "PT")
    return OrderPii(order_id, Buyer(name=Pii("Ana")), address)


def shipped_record(
    n: int,
    ref: str,
    shipped_at: datetime,
    *,
    latest_delivery_at: datetime | None,
    cipher: PiiCipher | None = None,
) -> OrderRecord:
    """Order `n`, shipped by DHL at `shipped_at`, due then; its `order_pii` sealed readable."""
    return order_record(
        at=shipped_at,
        ref=ref,
        seller_id="A1SELLER",
        marketplace_id="A1PA6795UKMFR9",
        stage=Stage.SHIPPED,
        amazon_status="SHIPPED",
        created_at=shipped_at - timedelta(days=1),
        service_level="Standard",
        latest_ship_at=shipped_at,
        latest_delivery_at=latest_delivery_at,
        items=(OrderItem("1", "B000TEST01", "SKU-1", "Widget", 1, None),),
        pii=(cipher or FakeCipher(readable=True)).seal(ref, order_pii(n), shipped_at),
        shipment={"carrier": "dhl", "trackingNumber": f"TRK{n:08d}", "shippedAt": shipped_at.isoformat()},
        due_at=shipped_at,
    )


def unshipped_orders(count: int, seed: int, marketplaces: Sequence[str]) -> list[dict[str, Any]]:
    """`count` merchant-fulfilled orders ready to ship (searchOrders bodies), created within six
    hours of 2026-10-01 in `marketplaces`."""
    return sample_orders.generate(
        count,
        seed=seed,
        start=datetime(2026, 10, 1, tzinfo=UTC),
        span=timedelta(hours=6),
        marketplaces=list(marketplaces),
        afn_share=0.0,
        statuses={"UNSHIPPED": 1.0},
    )
