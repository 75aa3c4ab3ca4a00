"""Key epochs: ids from time, KEK on first use, short cache, shredding, recoverability bound."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.crypto.envelope import EnvelopeCipher, EnvelopeShredded
from shared.crypto.key_epochs import Epoch, EpochShredded, KeyEpochs, UnknownEpoch, recoverability_report
from shared.crypto.key_vault import Destroyed
from shared.orders.domain import OrderItem
from shared.orders.record import OrderRecord, Stage
from shared.settings import load_settings
from tests.builders import order_record, portuguese_pii
from tests.fakes import MemorySecretStore

START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_epoch_ids_come_from_time() -> None:
    assert Epoch.at(START, 7).id == "2026-03-02P7D"
    assert Epoch.at(START + timedelta(days=6, hours=23), 7).id == "2026-03-02P7D"
    assert Epoch.at(START + timedelta(days=7), 7).id == "2026-03-09P7D"
    assert Epoch.at(START - timedelta(microseconds=1), 7).id == "2026-02-23P7D"
    assert Epoch.at(START, 1).id == "2026-03-02P1D"
    epoch = Epoch.parse("2026-03-02P7D")
    assert (epoch.start, epoch.end) == (START, START + timedelta(days=7))
    assert epoch.secret_name == "kek-2026-03-02P7D"


@pytest.mark.parametrize("text", ["", "2026-03-02", "2026-13-01P7D", "2026-03-02P0D", "x2026-03-02P7D"])
def test_bad_epoch_ids(text: str) -> None:
    with pytest.raises(UnknownEpoch):
        Epoch.parse(text)


def test_kek_is_created_once_per_epoch_and_cached_briefly() -> None:
    store, clock = MemorySecretStore(), Clock(START + timedelta(hours=1))
    epochs = KeyEpochs(store, clock, cache_seconds=300)
    first = epochs.current(clock.now)
    assert store.names("kek-") == ["kek-2026-03-02P7D"]
    secret = store.get("kek-2026-03-02P7D")
    assert secret is not None and len(first.key) == 32
    assert secret.value not in repr(secret) and str(first.key) not in repr(first)
    calls = len(store.calls)
    for _ in range(100):
        assert epochs.current(clock.now) == first
    assert len(store.calls) == calls  # cached
    clock.now += timedelta(seconds=301)
    assert epochs.current(clock.now) == first  # re-read after the cache time, not re-created
    assert [c for c in store.calls if c[0] == "set"] == [("set", "kek-2026-03-02P7D")]
    clock.now = START + timedelta(days=7)
    assert epochs.current(clock.now).epoch == "2026-03-09P7D"
    assert store.names("kek-") == ["kek-2026-03-02P7D", "kek-2026-03-09P7D"]


def test_two_instances_creating_at_once_both_stay_readable() -> None:
    store = MemorySecretStore()
    clock = Clock(START)
    a, b = KeyEpochs(store, clock), KeyEpochs(store, clock)
    sealed_a = EnvelopeCipher(a).seal("ref-AAAAAAAAAA", portuguese_pii("1"), START)
    # b finds a's key; to force the race, give b its own version as if both wrote at once.
    store.set("kek-2026-03-02P7D", "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=")
    sealed_b = EnvelopeCipher(b).seal("ref-BBBBBBBBBB", portuguese_pii("2"), START)
    assert sealed_a["kek"] != sealed_b["kek"]
    reader = EnvelopeCipher(KeyEpochs(store, clock))
    assert reader.open("ref-AAAAAAAAAA", sealed_a).order_id == "1"
    assert reader.open("ref-BBBBBBBBBB", sealed_b).order_id == "2"


def test_reading_never_creates_a_kek() -> None:
    store = MemorySecretStore()
    epochs = KeyEpochs(store, Clock(START))
    with pytest.raises(EpochShredded):
        epochs.key("2026-02-23P7D", "abc")
    assert store.names() == []


def test_shreddable_skips_current_recent_and_used_epochs() -> None:
    store, clock = MemorySecretStore(), Clock(START)
    epochs = KeyEpochs(store, clock)
    for week in range(4):
        epochs.current(START + timedelta(days=7 * week))
    now = START + timedelta(days=21, hours=12)  # in the 4th epoch
    in_use = {"2026-03-09P7D"}
    assert epochs.shreddable(now, in_use.__contains__) == ["2026-03-02P7D", "2026-03-16P7D"]
    # Within the clock-skew margin after an epoch's end it is kept.
    assert epochs.shreddable(START + timedelta(days=7, minutes=30), lambda _: False) == []
    assert epochs.shreddable(START + timedelta(days=7, hours=2), lambda _: False) == ["2026-03-02P7D"]
    # The current epoch is never shreddable, even unused.
    assert "2026-03-23P7D" not in epochs.shreddable(now, lambda _: False)


def test_after_shredding_nothing_decrypts_and_the_document_still_parses() -> None:
    store, clock = MemorySecretStore(), Clock(START + timedelta(days=1))
    epochs = KeyEpochs(store, clock)
    cipher = EnvelopeCipher(epochs)
    other_instance = EnvelopeCipher(KeyEpochs(store, clock))
    refs = [f"ref-{i:012d}" for i in range(5)]
    records = [_record(ref, cipher.seal(ref, portuguese_pii(f"order-{ref}"), clock.now)) for ref in refs]
    docs = [r.to_doc() for r in records]
    assert other_instance.open(refs[0], docs[0]["pii"]).order_id == f"order-{refs[0]}"  # caches the KEK

    clock.now = START + timedelta(days=9)
    assert epochs.shred_unused(clock.now, lambda _: False) == {"2026-03-02P7D": Destroyed.PURGED}
    assert store.names() == []

    for ref, doc in zip(refs, docs, strict=True):
        with pytest.raises(EnvelopeShredded):
            cipher.open(ref, doc["pii"])
        parsed = OrderRecord.from_doc(doc)  # non-PII fields intact
        assert (parsed.ref, parsed.stage, parsed.ship_country, parsed.items) == (
            ref,
            Stage.DELIVERED,
            "PT",
            (OrderItem("1", "B0ASIN", "SKU-1", "Mug", 2, None),),
        )
    # Another instance's cached copy of the KEK lapses within the cache time.
    clock.now += timedelta(seconds=301)
    with pytest.raises(EnvelopeShredded):
        other_instance.open(refs[0], docs[0]["pii"])
    # A fresh instance cannot bring the epoch back by reading.
    with pytest.raises(EnvelopeShredded):
        EnvelopeCipher(KeyEpochs(store, clock)).open(refs[1], docs[1]["pii"])
    assert store.names() == []


def test_shred_with_purge_protection_reports_soft_delete() -> None:
    store = MemorySecretStore(purge_protection=True)
    epochs = KeyEpochs(store, Clock(START))
    sealed = EnvelopeCipher(epochs).seal("ref-AAAAAAAAAA", portuguese_pii("1"), START)
    assert epochs.shred("2026-03-02P7D") is Destroyed.SOFT_DELETED
    with pytest.raises(EnvelopeShredded):
        EnvelopeCipher(epochs).open("ref-AAAAAAAAAA", sealed)
    assert epochs.shred("2020-01-06P7D") is Destroyed.ABSENT


def _record(ref: str, envelope: dict[str, object]) -> OrderRecord:
    at = START + timedelta(days=1)
    return order_record(
        at=at,
        ref=ref,
        seller_id="A1SELLER",
        marketplace_id="A1PA6795UKMFR9",
        stage=Stage.DELIVERED,
        amazon_status="SHIPPED",
        ship_country="PT",
        items=(OrderItem("1", "B0ASIN", "SKU-1", "Mug", 2, None),),
        pii=envelope,
    )


def _env(**extra: str) -> dict[str, str]:
    env = {
        "STORAGE": "UseDevelopmentStorage=true",
        "COSMOS_ENDPOINT": "https://127.0.0.1:1/",
        "KEY_VAULT_URL": "https://127.0.0.1:2/",
        "SELLERS": '[{"sellerId": "S", "marketplaceIds": ["M"], "refreshTokenSecret": "rt"}]',
    }
    env.update(extra)
    return env


def test_recoverability_report_defaults_to_28_days() -> None:
    report = recoverability_report(load_settings(_env()))
    assert report == {
        "retention_days": 7,
        "key_epoch_days": 7,
        "cosmos_backup_retention_days": 7,
        "key_vault_soft_delete_days": 7,
        "poison_message_days": 7,
        "recoverability_days": 28,
        "limit_days": 30,
        "within_limit": True,
    }
    assert recoverability_report(load_settings(_env(KEY_EPOCH_DAYS="1")))["recoverability_days"] == 22
