"""Keys made once (issue 20): `ops init-keys` makes the order-reference and archive keys and
never overwrites them; the app refuses to start without them and never makes one itself."""

from __future__ import annotations

import io
import json
import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from ops import cli
from shared.app.keys import APP_KEYS, ARCHIVE_KEY_SECRET, app_key_readers, init_keys, require_keys
from shared.crypto.key_vault import Destroyed, Secret
from shared.crypto.secrets import VaultKeySealer
from shared.errors import SettingsError
from shared.orders.reference import ORDER_REF_SECRET, OrderReferencer, ReferenceKeyMissing

ORDER_ID = "303-1234567-7654321"


class Vault:
    """A thread-safe secret store keeping every version; `gate` makes every reader wait until
    `parties` threads are reading at once (the race of two cold instances)."""

    def __init__(self, parties: int = 1) -> None:
        self.versions: dict[str, list[Secret]] = {}
        self.writes: list[str] = []
        self._lock = threading.Lock()
        self._gate = threading.Barrier(parties) if parties > 1 else None

    def get(self, name: str, version: str | None = None) -> Secret | None:
        if self._gate is not None:
            self._gate.wait(timeout=5)
        with self._lock:
            found = self.versions.get(name)
            return found[-1] if found else None

    def set(self, name: str, value: str) -> Secret:
        with self._lock:
            self.writes.append(name)
            secret = Secret(name, f"v{len(self.versions.get(name, [])) + 1}", value)
            self.versions.setdefault(name, []).append(secret)
            return secret

    def names(self, prefix: str = "") -> list[str]:
        return sorted(n for n in self.versions if n.startswith(prefix))

    def destroy(self, name: str) -> Destroyed:
        self.versions.pop(name, None)
        return Destroyed.PURGED


def _start(vault: Vault) -> str:
    """What an instance does at start and on its first order."""
    refs, _ = app_key_readers(vault)
    return refs.ref(ORDER_ID)


def _race(vault: Vault, instances: int = 2) -> list[Any]:
    results: list[Any] = [None] * instances

    def run(i: int) -> None:
        try:
            results[i] = _start(vault)
        except Exception as exc:  # the outcome is what the test compares
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(instances)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    return results


def test_two_instances_racing_at_start_never_create_a_reference_key() -> None:
    vault = Vault(parties=2)  # both read the vault at the same moment
    results = _race(vault)
    assert all(isinstance(r, SettingsError) for r in results)
    assert "order-ref-key" in str(results[0]) and "init-keys" in str(results[0])
    assert vault.writes == []  # the app made no key: there is nothing to disagree on


def test_after_init_keys_racing_instances_agree_and_write_nothing() -> None:
    vault = Vault()
    # pragma: allowlist nextline secret
    assert init_keys(vault) == {ORDER_REF_SECRET: "created", ARCHIVE_KEY_SECRET: "created"}
    writes = list(vault.writes)
    racing = Vault(parties=2)
    racing.versions = vault.versions
    first, second = _race(racing)
    assert isinstance(first, str) and first == second
    assert racing.writes == [] and vault.writes == writes


def test_init_keys_run_twice_changes_nothing() -> None:
    vault = Vault()
    init_keys(vault)
    before = {name: [s.version for s in versions] for name, versions in vault.versions.items()}
    values = {name: versions[-1].value for name, versions in vault.versions.items()}
    assert init_keys(vault) == dict.fromkeys(APP_KEYS, "exists")
    assert {name: [s.version for s in v] for name, v in vault.versions.items()} == before
    assert {name: v[-1].value for name, v in vault.versions.items()} == values
    assert sorted(vault.writes) == sorted(APP_KEYS)  # one write each, ever


def test_init_keys_keeps_an_existing_key_and_makes_only_the_missing_one() -> None:
    vault = Vault()
    vault.set(ORDER_REF_SECRET, "a2V5LWtleS1rZXkta2V5LWtleS1rZXk=")
    # pragma: allowlist nextline secret
    assert init_keys(vault) == {ORDER_REF_SECRET: "exists", ARCHIVE_KEY_SECRET: "created"}
    assert [s.value for s in vault.versions[ORDER_REF_SECRET]] == ["a2V5LWtleS1rZXkta2V5LWtleS1rZXk="]


def test_the_app_refuses_to_start_without_the_archive_key() -> None:
    vault = Vault()
    init_keys(vault)
    vault.destroy(ARCHIVE_KEY_SECRET)
    with pytest.raises(SettingsError, match=ARCHIVE_KEY_SECRET):
        require_keys(vault)


def test_the_apps_readers_never_make_a_key_that_vanished_after_start() -> None:
    vault = Vault()
    init_keys(vault)
    refs, sealer = app_key_readers(vault)
    vault.destroy(ORDER_REF_SECRET)
    vault.destroy(ARCHIVE_KEY_SECRET)
    with pytest.raises(ReferenceKeyMissing):
        refs.ref(ORDER_ID)
    with pytest.raises(SettingsError, match=ARCHIVE_KEY_SECRET):
        sealer.seal_bytes("INV-1", b"%PDF", datetime(2026, 3, 2, tzinfo=UTC))
    assert sorted(vault.writes) == sorted(APP_KEYS)  # only init-keys wrote
    # The fail-closed switches themselves:
    with pytest.raises(ReferenceKeyMissing):
        OrderReferencer(Vault(), create_missing=False).ref(ORDER_ID)
    with pytest.raises(SettingsError):
        VaultKeySealer(Vault(), ARCHIVE_KEY_SECRET, create_missing=False).open_bytes("INV-1", b"0" * 40)


def test_ops_init_keys_prints_names_and_outcomes_never_a_value(monkeypatch: pytest.MonkeyPatch) -> None:
    vault = Vault()
    monkeypatch.setattr(cli, "_clients", lambda env: (vault, None))
    out = io.StringIO()
    assert cli.main(["init-keys"], env={}, out=out) == 0
    assert json.loads(out.getvalue()) == dict.fromkeys(APP_KEYS, "created")
    again = io.StringIO()
    assert cli.main(["init-keys"], env={}, out=again) == 0
    assert json.loads(again.getvalue()) == dict.fromkeys(APP_KEYS, "exists")
    for versions in vault.versions.values():
        assert versions[-1].value not in out.getvalue() + again.getvalue()
    assert len(vault.writes) == len(APP_KEYS)
