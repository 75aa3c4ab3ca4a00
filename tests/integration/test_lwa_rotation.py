"""The LWA client secret rotated end to end over the wire (issue 20): Amazon's stand-in warns,
the app calls rotateApplicationClientSecret, Amazon's new secret lands in Key Vault (its stand-in,
through the SDK) as a new version once LWA's stand-in took it, and the SP-API calls running all
along never fail, before, across and after the switch, nor once the old secret is refused. Over
the SQS bridge (moto), the new secret's bytes reach no Azure queue message, log, telemetry or
audit record, and a forged one is refused."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from sp_api.auth import access_token_client

from local.aws_emulator import AwsEmulator
from local.memory_stores import MemoryDocumentStore
from local.spapi_application import ApplicationStandIn
from local.spapi_server import SpApiStandIn
from shared.app.composition import lwa_secret_check, secret_rotator
from shared.crypto.key_vault import AzureSecretStore
from shared.crypto.secrets import SecretValues
from shared.ingestion import spapi_gateway
from shared.ingestion.lwa_rotation import AUDIT_REF, LwaSecretRotation, RotationFailed
from shared.ingestion.spapi_gateway import SpApiGateway
from shared.ingestion.sqs_bridge import build_drain
from shared.settings import Settings
from shared.telemetry.invocations import AppTelemetry
from tests.fakes import audit_trail
from tests.registry import run_function
from tests.worlds.rotation import (
    amazon_stand_in,
    orders_found,
    rotation_settings,
    seller_credentials,
    vault_stand_in,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[AzureSecretStore]:
    with vault_stand_in(tmp_path / "kv") as (_server, store):
        yield store


@pytest.fixture
def amazon(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SpApiStandIn, ApplicationStandIn, list[str]]]:
    with amazon_stand_in(monkeypatch, orders=20, seed=3) as stand_ins:
        yield stand_ins


def _app(
    settings: Settings, vault: AzureSecretStore
) -> tuple[SpApiGateway, LwaSecretRotation, MemoryDocumentStore]:
    values = SecretValues(vault)
    audit_store = MemoryDocumentStore()
    rotation = LwaSecretRotation(
        vault,
        ("lwa-client-id", "lwa-client-secret"),
        secret_rotator(settings, values),
        lwa_secret_check(settings),
        audit_trail(audit_store),
    )
    return SpApiGateway(settings, seller_credentials(values)), rotation, audit_store


def test_a_rotation_through_the_stand_in_never_fails_a_call(
    vault: AzureSecretStore,
    amazon: tuple[SpApiStandIn, ApplicationStandIn, list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spapi, application, queue = amazon
    # Every call on a client made afresh: each token refresh reads Key Vault (in production
    # the client and the library's token live under an hour).
    monkeypatch.setattr(spapi_gateway, "CREDENTIALS_MAX_AGE_S", 0)
    gateway, rotation, _ = _app(rotation_settings(spapi), vault)
    first_version = vault.get("lwa-client-secret")
    assert first_version is not None
    found = orders_found(gateway)
    assert found > 0

    application.warn_expiry()  # 180 days ahead
    outcome = rotation.handle(queue.pop(0), spapi.now())
    assert (outcome.requested, outcome.days_left) == (1, 180)
    assert application.rotations == 1
    assert orders_found(gateway) == found  # old and new both accepted now

    new_secret_body = queue.pop(0)
    assert json.loads(new_secret_body)["notificationType"] == "APPLICATION_OAUTH_CLIENT_NEW_SECRET"
    assert rotation.handle(new_secret_body, spapi.now()).stored == 1
    stored = vault.get("lwa-client-secret")
    assert stored is not None and stored.value == application.secret
    assert stored.version != first_version.version
    assert vault.get("lwa-client-secret", first_version.version) == first_version  # a new version

    access_token_client.cache.clear()  # the access token got with the old secret expires
    assert orders_found(gateway) == found
    assert application.retire_old() == 1
    access_token_client.cache.clear()
    assert orders_found(gateway) == found
    assert spapi.token_refusals == 0  # no token refresh ever ran on the old secret after the switch
    assert queue == []


def test_a_client_kept_from_before_the_switch_recovers_on_its_first_refusal(
    vault: AzureSecretStore, amazon: tuple[SpApiStandIn, ApplicationStandIn, list[str]]
) -> None:
    spapi, application, queue = amazon
    gateway, rotation, _ = _app(rotation_settings(spapi), vault)
    found = orders_found(gateway)
    application.warn_expiry()
    rotation.handle(queue.pop(0), spapi.now())
    rotation.handle(queue.pop(0), spapi.now())
    application.retire_old()
    access_token_client.cache.clear()
    assert orders_found(gateway) == found  # refused once with the kept secret, read again, retried
    assert spapi.token_refusals == 1


def test_a_warning_about_a_replaced_secret_rotates_nothing_and_each_step_is_audited(
    vault: AzureSecretStore, amazon: tuple[SpApiStandIn, ApplicationStandIn, list[str]]
) -> None:
    spapi, application, queue = amazon
    _, rotation, audit_store = _app(rotation_settings(spapi), vault)
    old_expiry = application.secret_expires_at
    application.warn_expiry()
    spapi.advance(175 * 86400)  # Amazon warns again and again; the app rotates on the first it reads
    old_warning = queue.pop(0)
    assert rotation.handle(old_warning, spapi.now()).days_left == 5
    rotation.handle(queue.pop(0), spapi.now())
    application.secret_expires_at = old_expiry  # Amazon warns again about the replaced secret
    application.warn_expiry()
    assert rotation.handle(queue.pop(0), spapi.now()).requested == 0
    assert rotation.handle(old_warning, spapi.now()).requested == 0  # a repeated delivery
    assert application.rotations == 1
    trail = audit_trail(audit_store).trail(AUDIT_REF)
    assert [e.action for e in trail] == [
        "lwa_rotation_started",
        "lwa_rotation_requested",
        "lwa_secret_stored",
        "lwa_rotation_not_needed",
    ]
    assert application.secret not in json.dumps([dict(e.details) for e in trail])


def test_a_refused_rotation_fails_as_lwa_rotation_failed_and_rotates_on_retry(
    vault: AzureSecretStore, amazon: tuple[SpApiStandIn, ApplicationStandIn, list[str]]
) -> None:
    spapi, application, queue = amazon
    _, rotation, _ = _app(rotation_settings(spapi), vault)
    application.fail_next(503)
    application.warn_expiry()
    warning = queue.pop(0)
    with pytest.raises(RotationFailed) as failed:
        rotation.handle(warning, spapi.now())
    assert failed.value.code == "lwa_rotation_failed" and failed.value.transient
    assert rotation.handle(warning, spapi.now()).requested == 1
    assert application.rotations == 1


class _Token:
    """The managed identity's Entra ID token for the AWS audience."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("header.payload.sig", int(time.time()) + 3600)


class _AzureQueue:
    """The Azure queue sender: every message any queue was sent (`order-notifications`, poison)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(
        self, queue: str, body: str, visibility_timeout_s: int = 0, time_to_live_s: int | None = None
    ) -> None:
        self.sent.append((queue, body))


def _drain_function(drain: Any, rotation: LwaSecretRotation, now: datetime, logger: logging.Logger) -> None:
    """drain_notifications as the host runs it, its telemetry written to `logger`."""
    parts = {
        "clock": lambda: now,
        "telemetry": AppTelemetry(logger=logger),
        "notifications": drain,
        "lwa_rotation": rotation,
    }
    run_function("drain_notifications", parts, (None,))


FORGED = "amzn1.oa2-cs.v1.forged"  # pragma: allowlist secret


def _forged_new_secret(application: ApplicationStandIn, expires: datetime) -> str:
    """Amazon's new-secret notification as anyone able to send to the queue could write it."""
    at = expires.isoformat().replace("+00:00", "Z")
    return json.dumps(
        {
            "notificationVersion": "1.0",
            "notificationType": "APPLICATION_OAUTH_CLIENT_NEW_SECRET",
            "payloadVersion": "2023-11-30",
            "eventTime": at,
            "payload": {
                "applicationOAuthClientNewSecret": {
                    "clientId": application.client_id,
                    "newClientSecret": FORGED,
                    "newClientSecretExpiryTime": at,
                    "oldClientSecretExpiryTime": at,
                }
            },
            "notificationMetadata": {"notificationId": "forged-1"},
        }
    )


def test_over_the_sqs_bridge_the_new_secret_reaches_key_vault_and_nothing_else(
    vault: AzureSecretStore,
    amazon: tuple[SpApiStandIn, ApplicationStandIn, list[str]],
    aws: AwsEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    spapi, application, _ = amazon
    outputs = aws.deploy_notifications("A1ROTATION")
    application.deliver = lambda body: aws.send(outputs["QueueArn"], body)  # the registered queue
    azure_queue = _AzureQueue()
    _, rotation, audit_store = _app(rotation_settings(spapi), vault)
    drain = build_drain(
        aws.app_settings({"A1ROTATION": outputs}),
        ["A1ROTATION"],
        _Token(),
        azure_queue,
        secrets=rotation,
        clock=spapi.now,
    )
    telemetry = logging.getLogger("test.lwa_rotation.telemetry")
    caplog.set_level(logging.DEBUG)  # every logger, the SDKs' too

    application.warn_expiry()
    report = drain.drain()
    assert (report.moved, report.deleted, report.not_order_change) == (1, 1, 0)
    ((queue, warning),) = azure_queue.sent
    assert queue == "order-notifications"
    assert rotation.handle(warning, spapi.now()).requested == 1  # ingest_notification's part
    _drain_function(drain, rotation, spapi.now(), telemetry)  # Amazon sent the new secret to SQS
    secret = application.secret
    stored = vault.get("lwa-client-secret")
    assert stored is not None and stored.value == secret
    assert aws.queue_depth(outputs["QueueArn"]) == {"visible": 0, "inFlight": 0}
    assert len(azure_queue.sent) == 1  # the warning only

    # A forged secret sent to the same queue: LWA's stand-in refuses it, nothing is stored.
    aws.send(outputs["QueueArn"], _forged_new_secret(application, spapi.now() + timedelta(days=400)))
    _drain_function(drain, rotation, spapi.now(), telemetry)
    still = vault.get("lwa-client-secret")
    assert still is not None and still.value == secret
    trail = audit_trail(audit_store).trail(AUDIT_REF)
    assert [(e.action, e.details.get("reason")) for e in trail][-2:] == [
        ("lwa_secret_stored", None),
        ("lwa_secret_refused", "lwa_secret_invalid"),
    ]
    records = [r for r in caplog.records if getattr(r, "custom_dimensions", {}).get("event") == "invocation"]
    dims = [r.custom_dimensions for r in records]  # type: ignore[attr-defined]
    assert [(d["count_lwa_secret_stored"], d["count_lwa_secret_refused"]) for d in dims] == [(1, 0), (0, 1)]

    everything = json.dumps(
        {
            "azure": azure_queue.sent,
            "logs": [f"{r.getMessage()} {vars(r)}" for r in caplog.records],
            "audit": [e.to_doc() for e in trail],
            "audit_documents": list(audit_store.in_partition("audit", AUDIT_REF)),
        },
        default=str,
    )
    for value in (secret, FORGED):
        assert value not in everything and value.encode() not in everything.encode()
    assert spapi.token_refusals == 1  # the forged secret's check, and nothing else
