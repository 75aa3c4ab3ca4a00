"""Test doubles for the retention and privacy Protocols (cipher, signals, blobs, shredder), shared
by the unit and integration tests, and a check that the doubles themselves keep their contract."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.crypto.pii import Pii
from shared.errors import TransientError
from shared.orders.domain import Address, Buyer, OrderItem
from shared.orders.record import OrderPii, OrderRecord, Stage
from tests.builders import order_record

EPOCH0 = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
EPOCH_LENGTH = timedelta(days=7)


def epoch_of(at: datetime) -> str:
    return f"e{(at - EPOCH0) // EPOCH_LENGTH}"


def epoch_closes(epoch: str) -> datetime:
    return EPOCH0 + EPOCH_LENGTH * (int(epoch[1:]) + 1)


def token(n: int, field: str) -> str:
    """A synthetic personal value that is easy to find in anything that leaks it."""
    return f"SYNTHPII{field.upper()}{n:05d}"


def order_pii(n: int) -> OrderPii:
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


class FakeCipher:
    """Seals PII in the clear under a weekly epoch id: tests can then prove where it went."""

    def seal(self, ref: str, pii: OrderPii, now: datetime) -> dict[str, Any]:
        return {"epoch": epoch_of(now), "ref": ref, "plain": pii.to_plain()}

    def open(self, ref: str, envelope: Mapping[str, Any]) -> OrderPii:
        assert envelope["ref"] == ref
        return OrderPii.from_plain(envelope["plain"])


def shipped_record(
    n: int,
    ref: str,
    shipped_at: datetime,
    *,
    latest_delivery_at: datetime | None,
    cipher: FakeCipher | None = None,
) -> OrderRecord:
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
        pii=(cipher or FakeCipher()).seal(ref, order_pii(n), shipped_at),
        shipment={"carrier": "dhl", "trackingNumber": f"TRK{n:08d}", "shippedAt": shipped_at.isoformat()},
        due_at=shipped_at,
    )


class FakeSignal:
    """Amazon's DELIVERED status or a carrier's tracking: reports a delivery once it happened."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self.deliveries: dict[str, datetime] = {}
        self.failing: set[str] = set()
        self.asked: list[str] = []

    def delivered_at(self, record: OrderRecord) -> datetime | None:
        self.asked.append(record.ref)
        if record.ref in self.failing:
            raise TransientError("tracking down", code="tracking_unavailable")
        at = self.deliveries.get(record.ref)
        return at if at is not None and at <= self.clock() else None


class MemoryBlobs:
    def __init__(self) -> None:
        self.blobs: dict[tuple[str, str], bytes] = {}
        self.fail_next_delete = False

    def put(self, container: str, name: str, data: bytes) -> None:
        self.blobs[(container, name)] = data

    def list_names(self, container: str, prefix: str) -> list[str]:
        return [name for c, name in self.blobs if c == container and name.startswith(prefix)]

    def delete_prefix(self, container: str, prefix: str) -> list[str]:
        if self.fail_next_delete:
            self.fail_next_delete = False
            raise TransientError("blob service down", code="blob_unavailable")
        doomed = [k for k in self.blobs if k[0] == container and k[1].startswith(prefix)]
        for key in doomed:
            del self.blobs[key]
        return [name for _, name in doomed]

    def names(self, prefix: str) -> list[tuple[str, str]]:
        return [k for k in self.blobs if k[1].startswith(prefix)]


class FakeShredder:
    """Shreds a closed epoch once `epoch_in_use` says no order uses it."""

    def __init__(self) -> None:
        self.epochs: set[str] = set()
        self.shredded: dict[str, datetime] = {}
        self.asked: list[str] = []

    def shred_unused(self, now: datetime, epoch_in_use: Callable[[str], bool]) -> list[str]:
        done = []
        for epoch in sorted(self.epochs - set(self.shredded)):
            if epoch_closes(epoch) > now:
                continue
            self.asked.append(epoch)
            if not epoch_in_use(epoch):
                self.shredded[epoch] = now
                done.append(epoch)
        return done


def test_fake_shredder_keeps_open_and_used_epochs() -> None:
    shredder = FakeShredder()
    now = EPOCH0 + timedelta(days=15)
    shredder.epochs = {"e0", "e1", "e2"}
    assert shredder.shred_unused(now, lambda e: e == "e1") == ["e0"]  # e2 still open
    assert set(shredder.shredded) == {"e0"} and shredder.asked == ["e0", "e1"]


def test_fake_cipher_round_trips() -> None:
    cipher = FakeCipher()
    sealed = cipher.seal("ref0000001", order_pii(1), EPOCH0)
    assert sealed["epoch"] == "e0"
    assert cipher.open("ref0000001", sealed) == order_pii(1)
