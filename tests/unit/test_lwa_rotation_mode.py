"""LWA_ROTATION (issue 20 review): where the deployment did not give the app the write role on
the LWA secret (`lwaSecretWriter=false`, LWA_ROTATION=manual), an expiry warning never asks
Amazon for a new secret the app could not store; it is audited and counted, and the Sentinel
rule `lwa-secret-rotation` pages a person to rotate by hand (docs/security.md). In auto mode the
app asks Amazon, as before. The deployment sets the mode from the parameter that gives the role."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.functions.queue import QueueMessage

from local.memory_stores import MemoryDocumentStore, MemorySecretStore
from shared.app import composition
from shared.crypto.key_vault import Secret, SecretStoreDenied
from shared.crypto.secrets import SecretValues
from shared.errors import never_succeeds
from shared.ingestion.lwa_rotation import AUDIT_REF, SECRET_EXPIRY, LwaSecretRotation, SecretNotWritable
from shared.settings import load_settings
from shared.telemetry.invocations import AppTelemetry
from shared.telemetry.message_failures import MessageFailures
from tests.bicep import parse_bicep
from tests.builders import BASE_SETTINGS
from tests.fakes import FakeSender, audit_trail
from tests.registry import run_function

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2027, 4, 24, 10, 0, tzinfo=UTC)
CLIENT_ID = "amzn1.application-oa2-client.ours"
OLD = "amzn1.oa2-cs.v1.old"  # pragma: allowlist secret


def expiry(days: float, notification_id: str = "w-1") -> bytes:
    """Amazon's APPLICATION_OAUTH_CLIENT_SECRET_EXPIRY (Application Management, v2023-11-30)."""
    at = (NOW + timedelta(days=days)).isoformat().replace("+00:00", "Z")
    return json.dumps(
        {
            "notificationVersion": "1.0",
            "notificationType": SECRET_EXPIRY,
            "payloadVersion": "2023-11-30",
            "eventTime": "2027-04-24T10:00:00.000Z",
            "payload": {
                "applicationOAuthClientSecretExpiry": {
                    "clientId": CLIENT_ID,
                    "clientSecretExpiryTime": at,
                    "clientSecretExpiryReason": "PERIODIC_ROTATION",  # pragma: allowlist secret
                }
            },
            "notificationMetadata": {"notificationId": notification_id},
        }
    ).encode()


class Rotator:
    def __init__(self) -> None:
        self.calls = 0

    def rotate(self) -> None:
        self.calls += 1


class World:
    """The rotation as composition builds it for LWA_ROTATION=`mode`, Amazon's rotate recorded."""

    def __init__(
        self, mode: str | None, monkeypatch: pytest.MonkeyPatch, vault: MemorySecretStore | None = None
    ) -> None:
        self.vault = vault or MemorySecretStore()
        self.vault.set("lwa-client-id", CLIENT_ID)
        self.vault.set("lwa-client-secret", OLD)
        self.rotator = Rotator()
        monkeypatch.setattr(composition, "secret_rotator", lambda settings, values: self.rotator)
        env = dict(BASE_SETTINGS) | ({"LWA_ROTATION": mode} if mode is not None else {})
        self.audit = audit_trail(MemoryDocumentStore())
        self.rotation: LwaSecretRotation = composition.lwa_rotation(
            load_settings(env), self.vault, SecretValues(self.vault), self.audit
        )

    def actions(self) -> list[str]:
        return [e.action for e in self.audit.trail(AUDIT_REF)]


@pytest.mark.parametrize("mode", ["manual", None])
def test_in_manual_mode_a_warning_never_asks_amazon_and_is_audited_for_a_person(
    mode: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World(mode, monkeypatch)
    outcome = world.rotation.handle(expiry(6.5), NOW)
    assert (outcome.requested, outcome.manual, outcome.days_left) == (0, 1, 6)
    assert world.rotation.handle(expiry(6.5), NOW).manual == 0  # the same warning delivered again
    assert world.rotator.calls == 0
    assert world.actions() == ["lwa_rotation_manual"]
    secret = world.vault.get("lwa-client-secret")
    assert secret is not None and secret.value == OLD


def test_in_auto_mode_a_warning_asks_amazon_for_a_new_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World("auto", monkeypatch)
    outcome = world.rotation.handle(expiry(30), NOW)
    assert (outcome.requested, outcome.manual, outcome.days_left) == (1, 0, 30)
    assert world.rotator.calls == 1
    assert world.actions() == ["lwa_rotation_started", "lwa_rotation_requested"]


class NoOrders:
    def handle_notification(self, body: bytes, dequeue_count: int, now: datetime) -> list[Any]:
        raise AssertionError("an LWA secret notification reached the order ingestion")


class Sender:
    def send(self, queue: str, body: str, visibility_timeout_s: int = 0) -> None:
        raise AssertionError("a manual-mode warning is not a failure")


class OutStub:
    def set(self, value: object) -> None:
        self.value = value


def test_ingest_notification_counts_a_manual_warning_for_the_sentinel_rule(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    world = World("manual", monkeypatch)
    parts = {
        "settings": load_settings(BASE_SETTINGS),
        "clock": lambda: NOW,
        "telemetry": AppTelemetry(),
        "failures": MessageFailures(Sender()),
        "ingestion": NoOrders(),
        "lwa_rotation": world.rotation,
    }
    with caplog.at_level(logging.INFO):
        run_function(
            "ingest_notification",
            parts,
            (QueueMessage(id="m-1", body=expiry(20), dequeue_count=1), OutStub()),
        )
    [dims] = [
        r.custom_dimensions  # type: ignore[attr-defined]
        for r in caplog.records
        if getattr(r, "custom_dimensions", {}).get("event") == "invocation"
    ]
    assert dims["outcome"] == "success"
    assert (dims["count_lwa_rotation_manual"], dims["count_lwa_rotation_requested"]) == (1, 0)
    assert dims["count_lwa_secret_days_left"] == 20


def test_the_sentinel_rule_pages_on_a_manual_warning() -> None:
    rule = (ROOT / "infra" / "rules" / "lwa-secret-rotation.kql").read_text(encoding="utf-8")
    query = "\n".join(line for line in rule.splitlines() if not line.lstrip().startswith("//"))
    assert "Manual = toint(Properties.count_lwa_rotation_manual)" in query
    assert "ManualWarnings = countif(Manual > 0)" in query
    assert "or ManualWarnings > 0" in query


def test_the_deployment_sets_the_mode_from_the_parameter_that_gives_the_write_role() -> None:
    main = parse_bicep(ROOT / "infra" / "main.bicep")
    setting = main["modules"]["functionApp"]["config"]["params"]["appSettings"]["LWA_ROTATION"]
    assert setting == {
        "operator": {
            "type": "conditional",
            "operands": {"condition": "lwaSecretWriter", "true_value": "auto", "false_value": "manual"},
        }
    }
    rbac = main["modules"]["rbac"]["config"]["params"]
    assert rbac["lwaSecretWriter"] == "lwaSecretWriter"  # pragma: allowlist secret
    assert main["parameters"]["lwaSecretWriter"]["default"] is False
    sample = json.loads((ROOT / "local.settings.sample.json").read_text(encoding="utf-8"))["Values"]
    assert sample["LWA_ROTATION"] == "manual"


class ReadOnlyVault(MemorySecretStore):
    """The credentials vault as Secrets User alone sees it: Key Vault refuses Set Secret (403)."""

    def set(self, name: str, value: str) -> Secret:
        if name == "lwa-client-secret" and self.get(name) is not None:
            raise SecretStoreDenied(f"set {name}: HTTP 403")
        return super().set(name, value)


def test_in_auto_mode_without_the_write_role_amazon_is_never_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World("auto", monkeypatch, ReadOnlyVault())
    with pytest.raises(SecretNotWritable) as refused:
        world.rotation.handle(expiry(10), NOW)
    assert refused.value.code == "lwa_secret_not_writable" and not refused.value.transient
    assert world.rotator.calls == 0 and world.actions() == []
    secret = world.vault.get("lwa-client-secret")
    assert secret is not None and secret.value == OLD


def test_a_warning_the_app_may_not_store_for_is_poisoned_at_once_never_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Retrying cannot give the app the role: the first failure is the last (docs/security.md)."""
    world = World("auto", monkeypatch, ReadOnlyVault())
    sender = FakeSender()
    msg = QueueMessage(id="m-1", body=expiry(10), dequeue_count=1)
    with MessageFailures(sender).guard("order-notifications", msg):
        world.rotation.handle(msg.get_body(), NOW)
    ((queue, record, _),) = sender.sent
    assert queue == "order-notifications-poison"
    assert json.loads(record)["reason"] == "lwa_secret_not_writable"
    assert never_succeeds(SecretNotWritable("Key Vault refused Set Secret on lwa-client-secret"))
    assert world.rotator.calls == 0


def test_in_auto_mode_the_write_is_proven_with_the_value_the_secret_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = World("auto", monkeypatch)
    before = world.vault.get("lwa-client-secret")
    world.rotation.handle(expiry(10), NOW)
    after = world.vault.get("lwa-client-secret")
    assert before is not None and after is not None
    assert after.value == OLD and after.version != before.version
