"""The LWA client secret rotated by the app (issue 20, docs/security.md "Rotating credentials"):
Amazon's expiry warning asks for a new secret once, even when retried after the call; the new
secret becomes a new Key Vault version only when it is newer than every one stored and LWA takes
it; every step is audited without the secret, and the Buy Shipping and VAT upload clients read
the secret again as the order clients do."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.functions.queue import QueueMessage

from local.memory_stores import MemoryDocumentStore, MemorySecretStore
from shared.app.carriers import _sp_api_shipping
from shared.crypto.key_vault import Secret, SecretStoreDenied, SecretStoreError
from shared.crypto.secrets import CREDENTIALS_MAX_AGE_S, RenewedClients, SecretValues
from shared.errors import TransientError
from shared.ingestion.lwa_rotation import (
    AUDIT_REF,
    NEW_SECRET,
    SECRET_EXPIRY,
    ForeignClient,
    LwaSecretCheck,
    LwaSecretRotation,
    NewSecret,
    RotationFailed,
    SecretNotStored,
    SecretUnverified,
    parse_application_notification,
)
from shared.ingestion.notifications import NotificationRejected
from shared.invoices.feeds import sp_api_feeds_factory
from shared.orders.messages import ORDER_NOTIFICATIONS
from shared.settings import load_settings
from shared.storage.audit import AuditEvent, AuditLog
from shared.telemetry.invocations import AppTelemetry
from shared.telemetry.message_failures import MessageFailures, scrubbed_body
from tests.builders import BASE_SETTINGS, amazon_seller_settings
from tests.fakes import FakeSecretCheck, FakeSender, MemoryBlobStore, audit_trail
from tests.registry import run_function

NOW = datetime(2027, 4, 24, 10, 0, tzinfo=UTC)
CLIENT_ID = "amzn1.application-oa2-client.ours"
NEW = "amzn1.oa2-cs.v1.the-new-one"  # pragma: allowlist secret


def _body(kind: str, payload: dict[str, Any], notification_id: str = "n-1") -> str:
    return json.dumps(
        {
            "notificationVersion": "1.0",
            "notificationType": kind,
            "payloadVersion": "2023-11-30",
            "eventTime": "2027-04-24T10:00:00.000Z",
            "payload": payload,
            "notificationMetadata": {
                "applicationId": "amzn1.sp.solution.x",
                "subscriptionId": "s-1",
                "publishTime": "2027-04-24T10:00:01.000Z",
                "notificationId": notification_id,
            },
        }
    )


def expiry(days: float, *, notification_id: str = "w-1", client_id: str = CLIENT_ID) -> str:
    at = (NOW + timedelta(days=days)).isoformat().replace("+00:00", "Z")
    return _body(
        SECRET_EXPIRY,
        {
            "applicationOAuthClientSecretExpiry": {
                "clientId": client_id,
                "clientSecretExpiryTime": at,
                "clientSecretExpiryReason": "PERIODIC_ROTATION",  # pragma: allowlist secret
            }
        },
        notification_id,
    )


def new_secret(secret: str = NEW, *, days: float = 180, notification_id: str = "s-1") -> str:
    return _body(
        NEW_SECRET,
        {
            "applicationOAuthClientNewSecret": {
                "clientId": CLIENT_ID,
                "newClientSecret": secret,
                "newClientSecretExpiryTime": (NOW + timedelta(days=days)).isoformat(),
                "oldClientSecretExpiryTime": (NOW + timedelta(days=7)).isoformat(),
            }
        },
        notification_id,
    )


class Rotator:
    def __init__(self, failure: Exception | None = None) -> None:
        self.calls = 0
        self.failure = failure

    def rotate(self) -> None:
        self.calls += 1
        if self.failure is not None:
            raise self.failure


OLDER = "amzn1.oa2-cs.v1.an-older-one"  # pragma: allowlist secret
FORGED = "amzn1.oa2-cs.v1.forged"  # pragma: allowlist secret


NAMES = ("lwa-client-id", "lwa-client-secret")


class World:
    def __init__(self, rotator: Rotator | None = None, check: FakeSecretCheck | None = None) -> None:
        self.vault = MemorySecretStore()
        self.vault.set("lwa-client-id", CLIENT_ID)
        self.vault.set("lwa-client-secret", "amzn1.oa2-cs.v1.old")  # pragma: allowlist secret
        self.rotator = rotator or Rotator()
        self.check = check or FakeSecretCheck(NEW, OLDER)
        self.audit_store = MemoryDocumentStore()
        self.audit = audit_trail(self.audit_store)
        self.rotation = LwaSecretRotation(
            self.vault, ("lwa-client-id", "lwa-client-secret"), self.rotator, self.check, self.audit
        )

    def actions(self) -> list[str]:
        return [e.action for e in self.audit.trail(AUDIT_REF)]

    def secret(self) -> str:
        stored = self.vault.get("lwa-client-secret")
        assert stored is not None
        return stored.value


def test_an_expiry_warning_asks_amazon_for_a_new_secret_once() -> None:
    world = World()
    outcome = world.rotation.handle(expiry(6.5), NOW)
    assert (outcome.requested, outcome.stored, outcome.days_left) == (1, 0, 6)
    assert world.rotation.handle(expiry(6.5), NOW).requested == 0  # the same warning again
    assert world.rotator.calls == 1
    assert world.actions() == ["lwa_rotation_started", "lwa_rotation_requested"]


def test_the_new_secret_becomes_a_new_version_of_the_lwa_secret() -> None:
    world = World()
    before = world.vault.get("lwa-client-secret")
    assert world.rotation.handle(new_secret(), NOW).stored == 1
    repeat = world.rotation.handle(new_secret(), NOW)  # a redelivery stores no second version
    assert (repeat.stored, repeat.refused, repeat.repeated) == (0, 0, 1)
    after = world.vault.get("lwa-client-secret")
    assert after is not None and before is not None
    assert after.value == NEW and after.version != before.version
    assert world.vault.get("lwa-client-secret", before.version) == before
    assert [op for op in world.vault.calls if op == ("set", "lwa-client-secret")] == [
        ("set", "lwa-client-secret")
    ] * 2  # the fixture's first version and the new one
    assert world.actions() == ["lwa_secret_stored"]


def test_a_warning_about_a_secret_already_replaced_rotates_nothing() -> None:
    world = World()
    world.rotation.handle(new_secret(days=180), NOW)
    assert world.rotation.handle(expiry(7, notification_id="w-2"), NOW).requested == 0
    assert world.rotator.calls == 0
    assert world.actions() == ["lwa_secret_stored", "lwa_rotation_not_needed"]


def test_no_audit_record_exception_or_repr_holds_the_secret() -> None:
    world = World()
    world.rotation.handle(new_secret(), NOW)
    records = [e.to_doc() for e in world.audit.trail(AUDIT_REF)]
    assert records and NEW not in json.dumps(records)
    parsed = parse_application_notification(new_secret())
    assert isinstance(parsed, NewSecret) and NEW not in repr(parsed)
    failing = World()
    failing.vault.set = _refuse  # type: ignore[method-assign]
    with pytest.raises(SecretNotStored) as failed:
        failing.rotation.handle(new_secret(), NOW)
    assert failed.value.code == "lwa_secret_not_stored" and NEW not in str(failed.value)
    assert NEW not in scrubbed_body(new_secret().encode())  # what a poison record keeps


@pytest.mark.parametrize(
    ("dequeue_count", "reason"),
    [(1, "lwa_client_mismatch"), (5, "retries_exhausted:lwa_secret_unverified")],
)
def test_a_new_secret_poisoned_from_order_notifications_leaves_no_secret_in_its_record(
    dequeue_count: int, reason: str
) -> None:
    """The path before the bridge: Amazon's body on the Azure queue, failing for good."""
    world = World(check=FakeSecretCheck(failure=SecretUnverified("LWA token status 503")))
    if reason == "lwa_client_mismatch":
        world.vault.set("lwa-client-id", "amzn1.application-oa2-client.another")
    sender = FakeSender()
    msg = QueueMessage(id="m-1", body=new_secret().encode(), dequeue_count=dequeue_count)
    with MessageFailures(sender).guard(ORDER_NOTIFICATIONS, msg):
        world.rotation.handle(msg.get_body(), NOW)
    ((queue, record, _),) = sender.sent
    assert queue == f"{ORDER_NOTIFICATIONS}-poison" and json.loads(record)["reason"] == reason
    kept = json.loads(json.loads(record)["body"])["payload"]["applicationOAuthClientNewSecret"]
    assert kept["newClientSecret"].startswith("<") and NEW not in record


def _refuse(name: str, value: str) -> Any:
    raise SecretStoreError(f"set {name}: HTTP 503")


def test_a_refused_rotation_is_the_transient_lwa_rotation_failed_and_its_retry_asks_again() -> None:
    world = World(Rotator(RotationFailed("rotateApplicationClientSecret status 503")))
    with pytest.raises(RotationFailed) as failed:
        world.rotation.handle(expiry(3), NOW)
    assert failed.value.code == "lwa_rotation_failed" and failed.value.transient
    assert world.actions() == ["lwa_rotation_started", "lwa_rotation_failed"]
    with pytest.raises(RotationFailed):
        world.rotation.handle(expiry(3), NOW)  # the queue's retry: refused again, asked again
    world.rotator.failure = None
    assert world.rotation.handle(expiry(3), NOW).requested == 1
    assert world.rotator.calls == 3
    assert world.rotation.handle(expiry(3), NOW).requested == 0
    assert world.rotator.calls == 3
    assert world.actions().count("lwa_rotation_failed") == 2


class AuditDown(TransientError):
    code = "store_unavailable"


def test_a_warning_retried_after_amazon_answered_never_rotates_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World()
    record = world.audit.record

    def audit_fails_after_the_call(*args: Any, **kwargs: Any) -> Any:
        if args[1] == "lwa_rotation_requested":
            raise AuditDown("audit index unavailable")
        return record(*args, **kwargs)

    monkeypatch.setattr(world.audit, "record", audit_fails_after_the_call)
    with pytest.raises(AuditDown):
        world.rotation.handle(expiry(5), NOW)  # Amazon rotated; the record of it failed
    monkeypatch.setattr(world.audit, "record", record)
    retried = world.rotation.handle(expiry(5), NOW)
    assert (retried.requested, retried.days_left) == (0, 5)  # still counted for the alert window
    assert world.rotator.calls == 1
    assert world.actions() == ["lwa_rotation_started", "lwa_rotation_requested"]
    (requested,) = [e for e in world.audit.trail(AUDIT_REF) if e.action == "lwa_rotation_requested"]
    assert requested.details["unconfirmed"] is True
    assert world.rotation.handle(expiry(5), NOW).requested == 0 and world.rotator.calls == 1


class ReadsBeforeTheOther(AuditLog):
    """One instance's audit log: the other delivery runs whole just after this one reads the trail."""

    def __init__(self, world: World, blobs: MemoryBlobStore, meanwhile: LwaSecretRotation) -> None:
        super().__init__(world.audit_store, blobs)
        self.meanwhile: LwaSecretRotation | None = meanwhile
        self.outcomes: list[Any] = []

    def trail(self, ref: str) -> list[AuditEvent]:
        read = super().trail(ref)
        if self.meanwhile is not None:
            other, self.meanwhile = self.meanwhile, None
            self.outcomes.append(other.handle(expiry(5), NOW))
        return read


def test_two_deliveries_of_one_warning_racing_ask_amazon_once() -> None:
    """SQS and the Azure queue deliver at least once: two instances may hold the same warning."""
    world = World()
    blobs = MemoryBlobStore()  # both instances' audit trail: one Cosmos container, one blob container
    second = LwaSecretRotation(
        world.vault, NAMES, world.rotator, world.check, audit_trail(world.audit_store, blobs)
    )
    first_audit = ReadsBeforeTheOther(world, blobs, second)
    first = LwaSecretRotation(world.vault, NAMES, world.rotator, world.check, first_audit)
    outcome = first.handle(expiry(5), NOW)  # read an empty trail, then lost the claim
    assert [o.requested for o in first_audit.outcomes] == [1]
    assert (outcome.requested, outcome.days_left) == (0, 5)
    assert world.rotator.calls == 1
    assert world.actions() == ["lwa_rotation_started", "lwa_rotation_requested"]


def test_an_older_secret_delivered_late_is_refused_and_the_newer_one_kept() -> None:
    world = World()
    assert world.rotation.handle(new_secret(NEW, days=180, notification_id="s-2"), NOW).stored == 1
    late = world.rotation.handle(new_secret(OLDER, days=170, notification_id="s-1"), NOW)
    assert (late.stored, late.refused) == (0, 1)
    same = world.rotation.handle(new_secret(OLDER, days=180, notification_id="s-3"), NOW)
    assert same.refused == 1  # "not later" includes the same expiry
    assert world.secret() == NEW
    refused = [e for e in world.audit.trail(AUDIT_REF) if e.action == "lwa_secret_refused"]
    assert [e.details["reason"] for e in refused] == ["lwa_secret_stale"] * 2
    assert OLDER not in json.dumps([e.to_doc() for e in world.audit.trail(AUDIT_REF)])
    assert world.check.asked == [(CLIENT_ID, NEW)]  # a stale secret is not even tried


AN_HOUR_ON = NOW + timedelta(hours=1)  # the bodies' eventTime is NOW


def test_a_secret_lwa_does_not_take_is_refused_and_never_stored() -> None:
    world = World()
    forged = world.rotation.handle(new_secret(FORGED, days=400, notification_id="f-1"), AN_HOUR_ON)
    assert (forged.stored, forged.refused) == (0, 1)
    assert world.check.asked == [(CLIENT_ID, FORGED)]
    assert world.secret() == "amzn1.oa2-cs.v1.old"  # pragma: allowlist secret
    (refused,) = world.audit.trail(AUDIT_REF)
    assert (refused.action, refused.details["reason"]) == ("lwa_secret_refused", "lwa_secret_invalid")
    assert FORGED not in json.dumps(refused.to_doc())
    # The refusal is no stored secret: the genuine one, expiring earlier, is still taken.
    assert world.rotation.handle(new_secret(NEW, days=180), NOW).stored == 1
    assert world.secret() == NEW


def test_a_new_secret_lwa_refuses_within_the_hour_after_it_was_sent_is_retried_not_refused() -> None:
    """LWA lags right after Amazon rotates: a genuine new secret may be refused for a while."""
    world = World(check=FakeSecretCheck())  # LWA does not take the new secret yet
    for now in (NOW, AN_HOUR_ON - timedelta(seconds=1), NOW - timedelta(minutes=5)):  # clock skew too
        with pytest.raises(SecretUnverified) as lagging:
            world.rotation.handle(new_secret(), now)
        assert lagging.value.transient and NEW not in str(lagging.value)
    assert world.actions() == [] and world.secret() == "amzn1.oa2-cs.v1.old"  # pragma: allowlist secret
    world.check.valid.add(NEW)  # LWA caught up: the retry stores it
    assert world.rotation.handle(new_secret(), NOW + timedelta(minutes=30)).stored == 1
    assert world.secret() == NEW


def test_a_new_secret_lwa_still_refuses_an_hour_after_it_was_sent_is_refused_as_invalid() -> None:
    world = World(check=FakeSecretCheck())
    assert world.rotation.handle(new_secret(), AN_HOUR_ON).refused == 1
    # An eventTime an hour or more ahead of the app's clock is no lag to wait for either.
    assert world.rotation.handle(new_secret(notification_id="s-2"), NOW - timedelta(hours=1)).refused == 1
    assert [e.details["reason"] for e in world.audit.trail(AUDIT_REF)] == ["lwa_secret_invalid"] * 2
    assert world.secret() == "amzn1.oa2-cs.v1.old"  # pragma: allowlist secret


@pytest.mark.parametrize(
    ("status", "answer", "accepted"),
    [
        (200, {"access_token": "Atc|x", "token_type": "bearer"}, True),
        (401, {"error": "invalid_client"}, False),
        (400, {"error": "invalid_client"}, False),
        (400, {"error": "invalid_scope"}, None),
        (503, None, None),
    ],
)
def test_the_secret_check_asks_lwa_for_a_client_credentials_token_with_the_new_secret(
    status: int, answer: Any, accepted: bool | None
) -> None:
    posted: list[tuple[str, dict[str, str]]] = []

    def post(url: str, form: Any) -> tuple[int, Any]:
        posted.append((url, dict(form)))
        return status, answer

    check = LwaSecretCheck("https://api.amazon.com/auth/o2/token", post)
    if accepted is None:
        with pytest.raises(SecretUnverified) as unverified:
            check.accepts(CLIENT_ID, NEW)
        assert unverified.value.transient and NEW not in str(unverified.value)
    else:
        assert check.accepts(CLIENT_ID, NEW) is accepted
    assert posted == [
        (
            "https://api.amazon.com/auth/o2/token",
            {
                "grant_type": "client_credentials",
                "client_id": CLIENT_ID,
                "client_secret": NEW,
                "scope": "sellingpartnerapi::client_credential:rotation",
            },
        )
    ]


def test_lwa_not_answering_leaves_the_new_secret_for_a_retry() -> None:
    world = World(check=FakeSecretCheck(NEW, failure=SecretUnverified("LWA token status 503")))
    with pytest.raises(SecretUnverified) as failed:
        world.rotation.handle(new_secret(), NOW)
    assert failed.value.transient and failed.value.code == "lwa_secret_unverified"
    assert NEW not in str(failed.value)
    assert world.actions() == [] and world.secret() == "amzn1.oa2-cs.v1.old"  # pragma: allowlist secret
    world.check.failure = None
    assert world.rotation.handle(new_secret(), NOW).stored == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (expiry(3, client_id="amzn1.application-oa2-client.other"), "lwa_client_mismatch"),
        ("{not json", "notification_not_json"),
        (json.dumps({"notificationType": SECRET_EXPIRY}), "notification_malformed"),
        (
            _body(NEW_SECRET, {"applicationOAuthClientNewSecret": {"clientId": CLIENT_ID}}),
            "notification_malformed",
        ),
        (new_secret(" "), "notification_malformed"),
    ],
)
def test_bad_notifications_are_refused_by_reason_code(body: str, code: str) -> None:
    world = World()
    with pytest.raises((NotificationRejected, ForeignClient)) as refused:
        world.rotation.handle(body, NOW)
    assert refused.value.code == code
    assert not world.rotator.calls and CLIENT_ID not in str(refused.value)


def test_renewed_clients_are_made_again_once_older_than_the_maximum_age() -> None:
    clock = [0.0]
    made: list[str] = []
    clients: RenewedClients[str, str] = RenewedClients(
        lambda key: made.append(key) or f"{key}-{len(made)}", monotonic=lambda: clock[0]
    )
    assert clients("S1") == clients("S1") == "S1-1"
    clock[0] = CREDENTIALS_MAX_AGE_S - 1
    assert clients("S1") == "S1-1"
    clock[0] = CREDENTIALS_MAX_AGE_S
    assert clients("S1") == "S1-2"
    assert CREDENTIALS_MAX_AGE_S < 3600  # under the hour an LWA access token lives


def test_renewed_clients_close_what_they_replace_or_forget() -> None:
    clock = [0.0]
    closed: list[str] = []
    clients: RenewedClients[tuple[str, str], str] = RenewedClients(
        lambda key: f"{key[0]}@{clock[0]:g}", monotonic=lambda: clock[0], on_drop=closed.append
    )
    clients(("S1", "v0"))
    clients(("S2", "v0"))
    clock[0] = CREDENTIALS_MAX_AGE_S
    assert clients(("S1", "v0")) == f"S1@{CREDENTIALS_MAX_AGE_S:g}"
    clients.forget(lambda key: key[0] == "S2")
    assert closed == ["S1@0", "S2@0"]
    clients.forget()
    assert closed[-1] == f"S1@{CREDENTIALS_MAX_AGE_S:g}"


LWA = {
    "lwa-client-id": CLIENT_ID,
    "lwa-client-secret": "old",  # pragma: allowlist secret
    "rt-s1": "Atzr|token",
}


def _vault() -> MemorySecretStore:
    vault = MemorySecretStore()
    for name, value in LWA.items():
        vault.set(name, value)
    return vault


def test_the_vat_upload_clients_read_the_rotated_secret_again() -> None:
    vault = _vault()
    values = SecretValues(vault)
    read: list[str] = []

    def credentials(seller_id: str) -> dict[str, str]:
        read.append(values("lwa-client-secret"))
        return {"lwa_app_id": CLIENT_ID, "lwa_client_secret": read[-1], "refresh_token": "Atzr|token"}

    kept = sp_api_feeds_factory(credentials)
    kept("S1", "A1PA6795UKMFR9")
    vault.set("lwa-client-secret", NEW)
    kept("S1", "A1PA6795UKMFR9")
    assert read == ["old"]  # within the maximum age: the same client
    renewed = sp_api_feeds_factory(credentials, max_age_s=0)
    renewed("S1", "A1PA6795UKMFR9")
    assert read[-1] == NEW


def test_the_buy_shipping_clients_read_the_rotated_secret_again() -> None:
    config = amazon_seller_settings()
    vault = _vault()
    api = _sp_api_shipping(config, SecretValues(vault), max_age_s=0)("S1", "AmazonShipping_US")
    first = api.client()
    vault.set("lwa-client-secret", NEW)
    second = api.client()
    assert first is not second
    assert [name for op, name in vault.calls if op == "get"].count("lwa-client-secret") == 2
    kept = _sp_api_shipping(config, SecretValues(vault))("S1", "AmazonShipping_US")
    assert kept.client() is kept.client()


class NoOrders:
    """The order ingestion, which an LWA secret notification must never reach."""

    def poll(self, now: datetime) -> list[Any]:
        raise AssertionError("not a poll")

    def handle_notification(self, body: bytes, dequeue_count: int, now: datetime) -> list[Any]:
        raise AssertionError("an LWA secret notification reached the order ingestion")


def test_ingest_notification_hands_the_secret_notifications_to_the_rotation_and_counts_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = World()
    parts = {
        "settings": load_settings(BASE_SETTINGS),
        "clock": lambda: NOW,
        "telemetry": AppTelemetry(),
        "failures": MessageFailures(RecordingSender()),
        "ingestion": NoOrders(),
        "lwa_rotation": world.rotation,
    }
    with caplog.at_level(logging.INFO):
        run_function(
            "ingest_notification",
            parts,
            (QueueMessage(id="m-1", body=expiry(5).encode(), dequeue_count=1), OutStub()),
            (QueueMessage(id="m-2", body=new_secret().encode(), dequeue_count=1), OutStub()),
        )
    dims = [
        r.custom_dimensions  # type: ignore[attr-defined]
        for r in caplog.records
        if getattr(r, "custom_dimensions", {}).get("event") == "invocation"
    ]
    assert [
        (d["outcome"], d["count_lwa_rotation_requested"], d["count_lwa_secret_stored"]) for d in dims
    ] == [
        ("success", 1, 0),
        ("success", 0, 1),
    ]
    assert dims[0]["count_lwa_secret_days_left"] == 5 and "count_lwa_secret_days_left" not in dims[1]
    assert world.rotator.calls == 1
    stored = world.vault.get("lwa-client-secret")
    assert stored is not None and stored.value == NEW
    assert NEW not in "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)


class OutStub:
    def set(self, value: object) -> None:
        self.value = value


class RecordingSender:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, int]] = []

    def send(self, queue: str, body: str, visibility_timeout_s: int = 0) -> None:
        self.sent.append((queue, body, visibility_timeout_s))


def test_the_sentinel_rule_sees_refused_secrets_and_both_functions_failures() -> None:
    rule = (Path(__file__).resolve().parents[2] / "infra" / "rules" / "lwa-secret-rotation.kql").read_text(
        encoding="utf-8"
    )
    query = "\n".join(line for line in rule.splitlines() if not line.lstrip().startswith("//"))
    assert 'in ("ingest_notification", "drain_notifications")' in query
    assert "Properties.count_lwa_secret_refused" in query and "RefusedSecrets > 0" in query


def test_the_security_docs_say_what_the_code_does() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text(encoding="utf-8")
    start = text.index("### Rotating credentials")
    section = text[start : text.index("\n## ", start)]
    assert f"at least every {CREDENTIALS_MAX_AGE_S // 60} minutes" in section
    for name in (
        "SpApiGateway",
        "RenewedShippingApi",
        "sp_api_feeds_factory",
        "rotateApplicationClientSecret",
    ):
        assert name in section, name
    for reason in (
        "lwa_rotation_failed",
        "lwa_secret_not_stored",
        "lwa_client_mismatch",
        "lwa_secret_unverified",
        "lwa_secret_stale",
        "lwa_secret_invalid",
        "lwa_secret_repeated",
    ):
        assert reason in section, reason
    assert "order-notifications` (Storage encryption" not in section  # the secret no longer goes there
    assert "once per process" not in section  # what the VAT uploads and Buy Shipping did before


def test_a_new_secret_the_app_may_not_write_is_refused_for_a_person_to_store_by_hand() -> None:
    """LWA_ROTATION=manual (Secrets User alone) and a person rotated in the Developer Console:
    Key Vault refuses the write. Retrying cannot help, so the secret is refused (the rule fires
    and the runbook stores it by hand), never retried into the dead-letter queue."""

    class ReadOnlyVault(MemorySecretStore):
        def set(self, name: str, value: str) -> Secret:
            if name == "lwa-client-secret" and self.get(name) is not None:
                raise SecretStoreDenied(f"set {name}: HTTP 403")
            return super().set(name, value)

    world = World()
    world.vault = ReadOnlyVault()
    world.vault.set("lwa-client-id", CLIENT_ID)
    world.vault.set("lwa-client-secret", "amzn1.oa2-cs.v1.old")  # pragma: allowlist secret
    world.rotation = LwaSecretRotation(
        world.vault, ("lwa-client-id", "lwa-client-secret"), None, world.check, world.audit
    )
    outcome = world.rotation.handle(new_secret(), NOW)
    assert (outcome.stored, outcome.refused) == (0, 1)
    [refusal] = world.audit.trail(AUDIT_REF)
    assert refusal.action == "lwa_secret_refused" and refusal.details["reason"] == "lwa_secret_not_writable"
    assert world.secret() == "amzn1.oa2-cs.v1.old"  # pragma: allowlist secret
    assert NEW not in json.dumps(refusal.details)
