"""Key epochs: one key-encryption key (KEK) per period of `key_epoch_days`, and its shredding.

Every order's data key is wrapped with the KEK of the epoch in which the order was first
written. An epoch's id is derived from time alone (its UTC start date and its length, e.g.
`2026-01-05P7D`), so every instance agrees on it without coordination; its KEK is the Key Vault
secret `kek-<id>`, created on first use. Once no stored order is wrapped under an epoch that has
ended, `shred` deletes and purges its KEK: from then on no copy of those orders' PII, in Cosmos
or in any backup, can be decrypted (crypto-shredding, docs/encryption.md).

KEKs are cached per instance for `cache_seconds` only, so a shredded KEK leaves every other
instance's memory within that time, and a KEK value never reaches a log or an error text.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from shared.crypto.key_vault import Destroyed, SecretStore
from shared.errors import AppError
from shared.settings import MAX_RECOVERABLE_DAYS, POISON_MESSAGE_DAYS, Settings

Clock = Callable[[], datetime]

KEK_PREFIX = "kek-"
KEK_BYTES = 32  # AES-256
# Epochs are counted from a Monday, so weekly epochs start on Mondays 00:00 UTC.
EPOCH_ORIGIN = datetime(1970, 1, 5, tzinfo=UTC)
_EPOCH_ID = re.compile(r"^(\d{4}-\d{2}-\d{2})P([1-9]\d{0,2})D$")


class UnknownEpoch(AppError):
    """The text is not an epoch id, or the epoch's KEK has no such version."""

    code = "epoch_unknown"


class EpochShredded(AppError):
    """The epoch's KEK is gone from the vault (shredded, or never created in this vault)."""

    code = "epoch_shredded"


class KekCorrupt(AppError):
    """The KEK secret does not hold a 256-bit key: the vault was edited by hand."""

    code = "kek_corrupt"


@dataclass(frozen=True, slots=True)
class Epoch:
    start: datetime
    days: int

    @property
    def id(self) -> str:
        return f"{self.start:%Y-%m-%d}P{self.days}D"

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=self.days)

    @property
    def secret_name(self) -> str:
        return KEK_PREFIX + self.id

    @classmethod
    def at(cls, now: datetime, days: int) -> Epoch:
        """The epoch of length `days` that contains `now`."""
        if now.tzinfo is None:
            raise ValueError("epochs need an aware datetime")
        index = (now - EPOCH_ORIGIN) // timedelta(days=days)
        return cls(EPOCH_ORIGIN + index * timedelta(days=days), days)

    @classmethod
    def parse(cls, epoch_id: str) -> Epoch:
        """The epoch an id names; its own length counts, so ids survive a change of setting."""
        match = _EPOCH_ID.match(epoch_id)
        if match is None:
            raise UnknownEpoch("not an epoch id")
        try:
            start = date.fromisoformat(match.group(1))
        except ValueError:
            raise UnknownEpoch("not an epoch id") from None
        return cls(datetime(start.year, start.month, start.day, tzinfo=UTC), int(match.group(2)))


@dataclass(frozen=True, slots=True)
class Kek:
    epoch: str
    version: str
    key: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class _Hot:
    kek: Kek
    start: datetime
    end: datetime
    expiry: datetime


def _decode_kek(value: str) -> bytes:
    try:
        key = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise KekCorrupt("KEK secret is not base64") from None
    if len(key) != KEK_BYTES:
        raise KekCorrupt("KEK secret is not a 256-bit key")
    return key


class KeyEpochs:
    """KEKs per epoch in a `SecretStore`, cached for `cache_seconds` of the injected clock."""

    def __init__(
        self,
        store: SecretStore,
        clock: Clock,
        *,
        epoch_days: int = 7,
        cache_seconds: float = 300.0,
        shred_margin: timedelta = timedelta(hours=1),
    ) -> None:
        if epoch_days < 1:
            raise ValueError("epoch_days must be at least 1")
        self._store = store
        self._clock = clock
        self._epoch_days = epoch_days
        self._ttl = timedelta(seconds=cache_seconds)
        self._shred_margin = shred_margin
        self._hot: _Hot | None = None  # the current epoch's KEK: one comparison per seal
        self._by_version: dict[tuple[str, str], tuple[Kek, datetime]] = {}
        self._lock = threading.Lock()

    def epoch_at(self, now: datetime) -> Epoch:
        return Epoch.at(now, self._epoch_days)

    def current(self, now: datetime) -> Kek:
        """The KEK of the epoch containing `now`, created when the epoch is first used."""
        hot = self._hot
        if hot is not None and hot.start <= now < hot.end and hot.expiry > self._clock():
            return hot.kek
        epoch = self.epoch_at(now)
        with self._lock:
            hot = self._hot
            if hot is not None and hot.start <= now < hot.end and hot.expiry > self._clock():
                return hot.kek  # another thread fetched it while this one waited
            secret = self._store.get(epoch.secret_name)
            if secret is None:
                value = base64.b64encode(secrets.token_bytes(KEK_BYTES)).decode("ascii")
                # Two instances may both create one at an epoch's start: each then wraps under
                # its own version, which the envelope records, so both stay decryptable.
                secret = self._store.set(epoch.secret_name, value)
            kek = Kek(epoch.id, secret.version, _decode_kek(secret.value))
            self._hot = _Hot(kek, epoch.start, epoch.end, self._remember(kek))
            return kek

    def key(self, epoch_id: str, version: str) -> Kek:
        """The KEK an envelope names; never creates one."""
        cached = self._by_version.get((epoch_id, version))
        if cached is not None and cached[1] > self._clock():
            return cached[0]
        epoch = Epoch.parse(epoch_id)
        secret = self._store.get(epoch.secret_name, version)
        if secret is None:
            if self._store.get(epoch.secret_name) is not None:
                raise UnknownEpoch("the epoch's KEK has no such version")
            raise EpochShredded("the epoch's KEK is not in the vault")
        kek = Kek(epoch.id, secret.version, _decode_kek(secret.value))
        self._remember(kek)
        return kek

    def _remember(self, kek: Kek) -> datetime:
        """Cache `kek` and forget expired ones, so no key outlives its cache time in memory."""
        now = self._clock()
        self._by_version = {k: v for k, v in self._by_version.items() if v[1] > now}
        expiry = now + self._ttl
        self._by_version[(kek.epoch, kek.version)] = (kek, expiry)
        return expiry

    def epochs(self) -> list[Epoch]:
        """The epochs whose KEK is in the vault, oldest first."""
        found = []
        for name in self._store.names(KEK_PREFIX):
            try:
                found.append(Epoch.parse(name.removeprefix(KEK_PREFIX)))
            except UnknownEpoch:
                continue  # another secret that happens to start with the prefix
        return sorted(found, key=lambda e: e.start)

    def shreddable(self, now: datetime, epoch_in_use: Callable[[str], bool]) -> list[str]:
        """Epochs that ended (by more than the clock-skew margin) and wrap no stored order.

        The current epoch is never among them: an instance whose clock lags could still be
        sealing orders under it. `epoch_in_use(epoch_id)` is the caller's query of the store.
        """
        cutoff = now - self._shred_margin
        return [e.id for e in self.epochs() if e.end <= cutoff and not epoch_in_use(e.id)]

    def shred(self, epoch_id: str) -> Destroyed:
        """Delete and purge the epoch's KEK. Irreversible: every order wrapped under it is lost."""
        epoch = Epoch.parse(epoch_id)
        with self._lock:
            if self._hot is not None and self._hot.kek.epoch == epoch.id:
                self._hot = None
            for cached in [k for k in self._by_version if k[0] == epoch.id]:
                del self._by_version[cached]
        return self._store.destroy(epoch.secret_name)

    def shred_unused(self, now: datetime, epoch_in_use: Callable[[str], bool]) -> dict[str, Destroyed]:
        return {epoch_id: self.shred(epoch_id) for epoch_id in self.shreddable(now, epoch_in_use)}


def recoverability_report(settings: Settings) -> dict[str, int | bool]:
    """The worst case for how long any copy of an order's PII stays readable, term by term,
    for the ops command and telemetry (`load_settings` refuses to start above the limit): the
    retention, then the longer of the sum of the next three and the poison messages' term."""
    return {
        "retention_days": settings.retention_days,
        "key_epoch_days": settings.key_epoch_days,
        "cosmos_backup_retention_days": settings.cosmos_backup_retention_days,
        "key_vault_soft_delete_days": settings.key_vault_soft_delete_days,
        "poison_message_days": POISON_MESSAGE_DAYS,
        "recoverability_days": settings.recoverability_days,
        "limit_days": MAX_RECOVERABLE_DAYS,
        "within_limit": settings.recoverability_days <= MAX_RECOVERABLE_DAYS,
    }


class EpochShredder:
    """The retention `KeyShredder` over `KeyEpochs`."""

    def __init__(self, epochs: KeyEpochs) -> None:
        self._epochs = epochs

    def shred_unused(self, now: datetime, epoch_in_use: Callable[[str], bool]) -> list[str]:
        return sorted(self._epochs.shred_unused(now, epoch_in_use))
