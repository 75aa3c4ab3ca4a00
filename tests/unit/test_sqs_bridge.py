"""The notification drain (shared/ingestion/sqs_bridge.py) and its web identity credentials
(shared/ingestion/aws_credentials.py), in memory: what is moved, what is deleted and when, the
time budget, several sellers, faults as typed errors, telemetry as counts."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from shared.errors import SettingsError, TransientError
from shared.ingestion import sqs_bridge as bridge
from shared.ingestion.aws_credentials import (
    EntraTokenUnavailable,
    StsRefused,
    StsUnavailable,
    WebIdentityCredentials,
    entra_token_source,
)
from shared.ingestion.lwa_rotation import ForeignClient, RotationOutcome, SecretNotStored
from shared.ingestion.sqs_bridge import (
    NotificationDrain,
    NotificationQueue,
    QueueArn,
    SqsMessage,
    SqsUnavailable,
    load_bridge_settings,
)
from shared.orders.messages import ORDER_NOTIFICATIONS
from tests.fakes import NoNewSecrets

ROOT = Path(__file__).resolve().parents[2]
ROLE = "arn:aws:iam::123456789012:role/mfn-notifications-drain"
SECRET_BODY_MARK = "Zq80331Secret"  # a postal code never to log  # pragma: allowlist secret
NOW = datetime(2026, 11, 1, tzinfo=UTC)


def _notification(n: int) -> str:
    return json.dumps(
        {
            "NotificationType": "ORDER_CHANGE",
            "NotificationMetadata": {"NotificationId": f"n-{n}"},
            "Payload": {"OrderChangeNotification": {"Summary": {"DestinationPostalCode": SECRET_BODY_MARK}}},
        }
    )


def _queue(seller: str) -> NotificationQueue:
    arn = QueueArn.parse(f"arn:aws:sqs:eu-west-1:123456789012:notifications-{seller}", "test")
    dead = QueueArn.parse(f"arn:aws:sqs:eu-west-1:123456789012:notifications-{seller}-dlq", "test")
    return NotificationQueue(seller, arn, dead, ROLE)


@dataclass
class FakeSqs:
    """An SQS queue: received messages are in flight until deleted (no visibility expiry here)."""

    waiting: list[SqsMessage] = field(default_factory=list)
    in_flight: dict[str, SqsMessage] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    receives: list[tuple[int, int, int]] = field(default_factory=list)
    dead_letters: int = 0
    fail_receive: Exception | None = None
    on_receive: Callable[[], None] | None = None

    def put(self, *bodies: str) -> None:
        for body in bodies:
            n = len(self.waiting) + len(self.in_flight) + len(self.deleted)
            self.waiting.append(SqsMessage(f"m{n}", f"receipt-{n}", body))

    def receive(self, max_messages: int, wait_s: int, visibility_s: int) -> list[SqsMessage]:
        self.receives.append((max_messages, wait_s, visibility_s))
        if self.on_receive is not None:
            self.on_receive()
        if self.fail_receive is not None:
            raise self.fail_receive
        batch, self.waiting = self.waiting[:max_messages], self.waiting[max_messages:]
        self.in_flight.update({m.receipt: m for m in batch})
        return batch

    def delete(self, messages: Sequence[SqsMessage]) -> int:
        for m in messages:
            self.in_flight.pop(m.receipt)
            self.deleted.append(m.message_id)
        return len(messages)

    def dead_letter_depth(self) -> int:
        return self.dead_letters


@dataclass
class FakeAzureQueue:
    """The Azure queue sender; records what landed, in order, and which SQS messages were still
    undeleted at that moment (the check that nothing is deleted before it is enqueued)."""

    sqs: dict[str, FakeSqs]
    sent: list[tuple[str, str]] = field(default_factory=list)
    fail_after: int | None = None

    def send(
        self, queue: str, body: str, visibility_timeout_s: int = 0, time_to_live_s: int | None = None
    ) -> None:
        if self.fail_after is not None and len(self.sent) >= self.fail_after:
            raise ConnectionError("azure queue down")
        for fake in self.sqs.values():
            for message in fake.in_flight.values():
                if message.body == body:
                    assert message.message_id not in fake.deleted
        self.sent.append((queue, body))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _drain(
    fakes: dict[str, FakeSqs],
    sink: FakeAzureQueue,
    clock: Clock | None = None,
    secrets: Any = None,
    **kw: Any,
) -> NotificationDrain:
    return NotificationDrain(
        [_queue(seller) for seller in fakes],
        lambda q: fakes[q.seller_id],
        sink,
        secrets=secrets or NoNewSecrets(),
        clock=lambda: NOW,
        monotonic=clock or Clock(),
        **kw,
    )


# ---- moving ---------------------------------------------------------------------------------


def test_every_body_moves_unchanged_in_batches_of_ten_and_is_deleted_after_its_enqueue() -> None:
    sqs = FakeSqs()
    bodies = [_notification(n) for n in range(23)]
    sqs.put(*bodies)
    sink = FakeAzureQueue({"S1": sqs})
    report = _drain({"S1": sqs}, sink, wait_s=20).drain()
    assert sink.sent == [(ORDER_NOTIFICATIONS, b) for b in bodies]
    assert sqs.deleted == [f"m{n}" for n in range(23)] and not sqs.in_flight and not sqs.waiting
    assert [r[0] for r in sqs.receives] == [10, 10, 10, 10]  # the last one finds the queue empty
    assert {r[1] for r in sqs.receives} == {20} and {r[2] for r in sqs.receives} == {120}
    assert (report.received, report.moved, report.deleted, report.failures) == (23, 23, 23, [])


def test_a_body_that_is_no_notification_is_moved_all_the_same_and_counted() -> None:
    sqs = FakeSqs()
    sqs.put("not json at all", json.dumps({"NotificationType": "ANY_OFFER_CHANGED"}), _notification(1))
    sink = FakeAzureQueue({"S1": sqs})
    report = _drain({"S1": sqs}, sink).drain()
    assert [b for _, b in sink.sent] == [
        "not json at all",
        json.dumps({"NotificationType": "ANY_OFFER_CHANGED"}),
        _notification(1),
    ]
    assert report.not_order_change == 2 and report.deleted == 3


def test_a_body_too_large_for_an_azure_queue_message_stays_in_sqs_for_its_dead_letter_queue() -> None:
    sqs = FakeSqs(dead_letters=2)
    big = json.dumps({"NotificationType": "ORDER_CHANGE", "pad": "x" * bridge.MAX_MOVABLE_BYTES})
    sqs.put(big, _notification(1))
    sink = FakeAzureQueue({"S1": sqs})
    report = _drain({"S1": sqs}, sink).drain()
    assert [b for _, b in sink.sent] == [_notification(1)]
    assert "m0" not in sqs.deleted and "receipt-0" in sqs.in_flight
    assert (report.too_large, report.moved, report.dead_letter_messages) == (1, 1, 2)
    # The limit is what base64 lets through an Azure queue message (64 KiB of text).
    assert 4 * ((bridge.MAX_MOVABLE_BYTES + 2) // 3) <= 64 * 1024


def test_an_azure_enqueue_that_fails_deletes_only_what_was_enqueued_and_stops_the_run() -> None:
    s1, s2 = FakeSqs(), FakeSqs()
    s1.put(*[_notification(n) for n in range(5)])
    s2.put(_notification(99))
    sink = FakeAzureQueue({"S1": s1, "S2": s2}, fail_after=3)
    report = _drain({"S1": s1, "S2": s2}, sink).drain()
    assert s1.deleted == ["m0", "m1", "m2"]
    assert set(s1.in_flight) == {"receipt-3", "receipt-4"}  # back in SQS after the visibility timeout
    assert s2.receives == []  # the storage account is shared: no point trying the next seller
    assert [f.code for f in report.failures] == ["notification_enqueue_failed"]
    with pytest.raises(TransientError) as raised:
        report.raise_first_failure()
    assert raised.value.code == "notification_enqueue_failed"
    assert "azure" not in str(raised.value).lower() or "down" not in str(raised.value)


def test_each_seller_has_its_own_queue_and_one_sellers_outage_does_not_stop_the_others() -> None:
    s1, s2, s3 = FakeSqs(), FakeSqs(fail_receive=SqsUnavailable("ReceiveMessage unreachable")), FakeSqs()
    s1.put(_notification(1))
    s3.put(_notification(3), _notification(4))
    sink = FakeAzureQueue({"S1": s1, "S2": s2, "S3": s3})
    report = _drain({"S1": s1, "S2": s2, "S3": s3}, sink).drain()
    assert [b for _, b in sink.sent] == [_notification(1), _notification(3), _notification(4)]
    assert (report.sellers, report.moved, report.deleted) == (3, 3, 3)
    assert [f.code for f in report.failures] == ["sqs_unavailable"]


def test_the_run_stops_when_its_budget_is_spent_and_sellers_share_it() -> None:
    clock = Clock()
    s1, s2 = FakeSqs(), FakeSqs()
    s1.put(*[_notification(n) for n in range(200)])
    s2.put(_notification(500))

    def slow() -> None:
        clock.now += 4.0  # each receive takes 4 s

    s1.on_receive = slow
    sink = FakeAzureQueue({"S1": s1, "S2": s2})
    report = _drain({"S1": s1, "S2": s2}, sink, clock, budget_s=40.0).drain()
    # S1 may use half of 40 s, less the 5 s margin: receives start at 0, 4, 8, 12 s.
    assert len(s1.receives) == 4 and report.moved == 41
    assert s2.receives and (ORDER_NOTIFICATIONS, _notification(500)) in sink.sent
    assert clock.now - 1000.0 <= 40.0


def test_the_wait_never_outlasts_the_share_left() -> None:
    clock = Clock()
    sqs = FakeSqs()
    sqs.put(_notification(1))

    def long_poll() -> None:
        clock.now += sqs.receives[-1][1]  # each receive takes its whole wait

    sqs.on_receive = long_poll
    _drain({"S1": sqs}, FakeAzureQueue({"S1": sqs}), clock, budget_s=40.0, wait_s=20).drain()
    # 35 s of the 40 are usable (5 s margin): the full 20 s, then the 15 s left, then stop.
    assert [r[1] for r in sqs.receives] == [20, 15]
    assert clock.now - 1000.0 <= 40.0


def test_budget_visibility_and_wait_fit_host_json_and_the_schedule() -> None:
    host = json.loads((ROOT / "host.json").read_text())
    hours, minutes, seconds = host["functionTimeout"].split(":")
    timeout = timedelta(hours=int(hours), minutes=int(minutes), seconds=int(seconds)).total_seconds()
    assert timeout / 5 >= bridge.DRAIN_BUDGET_S  # well before the host ends the function
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    assert sample[bridge.SCHEDULE_SETTING] == "0 * * * * *"  # every minute
    assert bridge.DRAIN_BUDGET_S + 20 <= 60 + 1  # a run ends before the next minute's
    assert bridge.RECEIVE_VISIBILITY_S > bridge.DRAIN_BUDGET_S + 20
    assert bridge.BATCH_SIZE == 10


# ---- settings -------------------------------------------------------------------------------


def _entry(**over: str) -> dict[str, str]:
    entry = {
        "queueArn": "arn:aws:sqs:eu-west-1:123456789012:mfn-notifications-S1",
        "deadLetterQueueArn": "arn:aws:sqs:eu-west-1:123456789012:mfn-notifications-S1-dlq",
        "roleArn": ROLE,
    }
    entry.update(over)
    return entry


def test_settings_parse_the_stack_outputs() -> None:
    env = {
        "NOTIFICATION_QUEUES": json.dumps({"S1": _entry()}),
        "AWS_WEB_IDENTITY_AUDIENCE": "api://mfn-fulfilment-aws",
    }
    settings = load_bridge_settings(env, ["S1", "S2"])
    (queue,) = settings.queues
    assert queue.queue.url(None) == "https://sqs.eu-west-1.amazonaws.com/123456789012/mfn-notifications-S1"
    assert (
        queue.queue.url("http://127.0.0.1:5000/") == "http://127.0.0.1:5000/123456789012/mfn-notifications-S1"
    )
    assert queue.dead_letter.name == "mfn-notifications-S1-dlq" and queue.role_arn == ROLE
    assert (settings.wait_s, settings.endpoint) == (bridge.DEFAULT_WAIT_S, None)
    assert load_bridge_settings({}, ["S1"]).queues == ()


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"NOTIFICATION_QUEUES": "{not json"}, "NOTIFICATION_QUEUES"),
        ({"NOTIFICATION_QUEUES": json.dumps({"S9": _entry()})}, "NOTIFICATION_QUEUES"),
        ({"NOTIFICATION_QUEUES": json.dumps({"S1": _entry(queueArn="https://sqs/secret-q")})}, "queueArn"),
        ({"NOTIFICATION_QUEUES": json.dumps({"S1": _entry(roleArn="secret-role")})}, "roleArn"),
        ({"NOTIFICATION_QUEUES": json.dumps({"S1": _entry()})}, "AWS_WEB_IDENTITY_AUDIENCE"),
        ({"DRAIN_NOTIFICATIONS_WAIT_SECONDS": "21"}, "DRAIN_NOTIFICATIONS_WAIT_SECONDS"),
    ],
)
def test_bad_settings_name_the_setting_never_the_value(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_bridge_settings(env, ["S1"])
    assert named in str(raised.value)
    assert "secret" not in str(raised.value)


def test_the_sample_settings_list_the_bridge_settings() -> None:
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    for name in (
        bridge.QUEUES_SETTING,
        bridge.AUDIENCE_SETTING,
        bridge.ENDPOINT_SETTING,
        bridge.WAIT_SETTING,
        bridge.SCHEDULE_SETTING,
    ):
        assert name in sample, name
    load_bridge_settings(sample, ["<seller id>"])


# ---- credentials ----------------------------------------------------------------------------

WEB_TOKEN = "eyJ.web-identity-token.sig"


class FakeSts:
    def __init__(self, now: Callable[[], datetime]) -> None:
        self.now = now
        self.calls: list[dict[str, Any]] = []
        self.error: Exception | None = None

    def assume_role_with_web_identity(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error
        n = len(self.calls)
        return {
            "Credentials": {
                "AccessKeyId": f"ASIA{n:016d}",
                "SecretAccessKey": f"secret-{n}",
                "SessionToken": f"session-{n}",
                "Expiration": self.now() + timedelta(hours=1),
            }
        }


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"token {WEB_TOKEN} refused"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "AssumeRoleWithWebIdentity",
    )


def test_credentials_are_cached_until_shortly_before_they_expire() -> None:
    now = [datetime(2026, 11, 1, tzinfo=UTC)]
    sts = FakeSts(lambda: now[0])
    credentials = WebIdentityCredentials(lambda: WEB_TOKEN, ROLE, sts, wall=lambda: now[0])
    first = credentials.get()
    now[0] += timedelta(minutes=54)
    assert credentials.get() is first and len(sts.calls) == 1
    now[0] += timedelta(minutes=1, seconds=1)  # inside the last five minutes
    second = credentials.get()
    assert second is not first and len(sts.calls) == 2 and credentials.fetches == 2
    (call, _) = sts.calls
    assert call == {
        "RoleArn": ROLE,
        "RoleSessionName": "mfn-fulfilment-drain",
        "WebIdentityToken": WEB_TOKEN,
        "DurationSeconds": 3600,
    }
    assert "secret" not in repr(second) and "ASIA" not in repr(second)
    credentials.invalidate()
    assert credentials.get() is not second


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (_client_error("InvalidIdentityToken", 400), StsRefused),
        (_client_error("AccessDenied", 403), StsRefused),
        (_client_error("InternalFailure", 500), StsUnavailable),
        (EndpointConnectionError(endpoint_url="https://sts.eu-west-1.amazonaws.com"), StsUnavailable),
    ],
)
def test_sts_failures_are_typed_transient_errors_without_the_token(error: Exception, expected: type) -> None:
    sts = FakeSts(lambda: datetime(2026, 11, 1, tzinfo=UTC))
    sts.error = error
    with pytest.raises(expected) as raised:
        WebIdentityCredentials(lambda: WEB_TOKEN, ROLE, sts).get()
    assert raised.value.transient
    assert WEB_TOKEN not in str(raised.value) and raised.value.__cause__ is None
    assert "Error" not in raised.value.code  # a reason code, never a library class name


def test_the_entra_token_is_asked_for_the_audience_and_its_failure_is_typed() -> None:
    from azure.core.credentials import AccessToken
    from azure.core.exceptions import ClientAuthenticationError

    class Credential:
        scopes: list[str] = []  # noqa: RUF012
        fail = False

        def get_token(self, *scopes: str) -> AccessToken:
            self.scopes.extend(scopes)
            if self.fail:
                raise ClientAuthenticationError("no managed identity endpoint")
            return AccessToken(WEB_TOKEN, 0)

    credential = Credential()
    assert entra_token_source(credential, "api://mfn-fulfilment-aws")() == WEB_TOKEN
    assert credential.scopes == ["api://mfn-fulfilment-aws/.default"]
    credential.fail = True
    with pytest.raises(EntraTokenUnavailable):
        entra_token_source(credential, "api://mfn-fulfilment-aws")()


# ---- the function: counts and reason codes only --------------------------------------------


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _run_function(drain: Any) -> list[logging.LogRecord]:
    from shared.telemetry.invocations import AppTelemetry
    from tests.registry import run_function

    capture = _Capture()
    logger = logging.getLogger("test.drain_notifications")
    logger.addHandler(capture)
    logger.propagate = False
    parts = {
        "clock": lambda: datetime(2026, 11, 1, tzinfo=UTC),
        "telemetry": AppTelemetry(logger=logger),
        "notifications": drain,
    }
    try:
        run_function("drain_notifications", parts, (None,))
    finally:
        logger.removeHandler(capture)
    return capture.records


def test_the_function_records_counts_and_a_heartbeat_never_a_body() -> None:
    sqs = FakeSqs(dead_letters=1)
    sqs.put(_notification(1), "plain text " + SECRET_BODY_MARK)
    sink = FakeAzureQueue({"S1": sqs})
    records = _run_function(_drain({"S1": sqs}, sink))
    invocation, heartbeat = (r.custom_dimensions for r in records)  # type: ignore[attr-defined]
    assert invocation["outcome"] == "success" and heartbeat["source"] == "drain_notifications"
    assert {k: v for k, v in invocation.items() if k.startswith("count_")} == {
        "count_sellers": 1,
        "count_received": 2,
        "count_moved": 2,
        "count_deleted": 2,
        "count_too_large": 0,
        "count_not_order_change": 1,
        "count_dead_letter_messages": 1,
        "count_lwa_secret_stored": 0,
        "count_lwa_secret_refused": 0,
        "count_lwa_secret_repeated": 0,
        "count_failed_sellers": 0,
    }
    text = "\n".join(f"{r.getMessage()} {r.custom_dimensions}" for r in records)  # type: ignore[attr-defined]
    assert SECRET_BODY_MARK not in text and "receipt" not in text


def test_the_function_fails_with_the_reason_code_after_recording_its_counts() -> None:
    sqs = FakeSqs(fail_receive=SqsUnavailable("ReceiveMessage unreachable"))
    with pytest.raises(SqsUnavailable):
        _run_function(_drain({"S1": sqs}, FakeAzureQueue({"S1": sqs})))


def test_without_a_bridge_the_function_moves_nothing_and_still_beats() -> None:
    records = _run_function(None)
    assert [r.custom_dimensions["event"] for r in records] == ["invocation", "heartbeat"]  # type: ignore[attr-defined]


NEW_SECRET_VALUE = "amzn1.oa2-cs.v1.bridge-test"  # pragma: allowlist secret


def _new_secret(n: int) -> str:
    payload = {"clientId": "c", "newClientSecret": NEW_SECRET_VALUE, "newClientSecretExpiryTime": f"n{n}"}
    return json.dumps({"notificationType": "APPLICATION_OAUTH_CLIENT_NEW_SECRET", "payload": payload, "n": n})


@dataclass
class Secrets:
    """The LWA rotation: `answers` by notification (an outcome or an error to raise), and the
    SQS message each was handed over from, still undeleted at that moment."""

    sqs: FakeSqs
    answers: dict[int, RotationOutcome | Exception]
    handed: list[int] = field(default_factory=list)

    def handle(self, body: str, now: datetime) -> RotationOutcome:
        n = json.loads(body)["n"]
        assert any(m.body == body for m in self.sqs.in_flight.values()) and now == NOW
        self.handed.append(n)
        answer = self.answers[n]
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_a_new_lwa_secret_is_handed_to_the_rotation_and_never_put_on_an_azure_queue() -> None:
    sqs = FakeSqs()
    warning = json.dumps({"notificationType": "APPLICATION_OAUTH_CLIENT_SECRET_EXPIRY", "payload": {}})
    sqs.put(warning, _new_secret(1), _notification(2), _new_secret(3), _new_secret(4), _new_secret(5))
    secrets = Secrets(
        sqs,
        {
            1: RotationOutcome(stored=1),
            3: RotationOutcome(refused=1),
            4: SecretNotStored("the new LWA secret was not stored: secret_store_unavailable"),
            5: ForeignClient("the notification names another LWA client"),
        },
    )
    sink = FakeAzureQueue({"S1": sqs})
    report = _drain({"S1": sqs}, sink, secrets=secrets).drain()
    assert [b for _, b in sink.sent] == [warning, _notification(2)]  # the warning has no secret
    assert NEW_SECRET_VALUE not in json.dumps(sink.sent)
    assert secrets.handed == [1, 3, 4, 5]
    # Stored, refused, or refused for good: deleted. Key Vault down: left in SQS for a retry.
    assert sqs.deleted == ["m0", "m1", "m2", "m3", "m5"] and set(sqs.in_flight) == {"receipt-4"}
    assert (report.moved, report.deleted, report.not_order_change) == (2, 5, 0)
    assert (report.secrets_stored, report.secrets_refused, report.secrets_repeated) == (1, 2, 0)
    assert [f.code for f in report.failures] == ["lwa_secret_not_stored", "lwa_client_mismatch"]
