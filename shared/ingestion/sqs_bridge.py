"""Amazon's notifications (ORDER_CHANGE, and the application's LWA secret notifications), from
each seller's Amazon SQS queue onto `order-notifications`.

Amazon delivers ORDER_CHANGE only to SQS (or EventBridge), so the timer `drain_notifications`
(functions/notifications.py) moves them: it long-polls each configured seller's queue in batches
of 10, puts every message body unchanged on the Azure queue `ingest_notification` reads, and
deletes the message from SQS only after that enqueue succeeded. A crash between the two steps
leaves the message in SQS: it comes back after the visibility timeout and is enqueued again,
and `ingest_notification` drops the duplicate by its NotificationId (at least once, never lost).
The one exception is `APPLICATION_OAUTH_CLIENT_NEW_SECRET`, which carries the LWA secret: it is
handed to the rotation (Key Vault) and deleted once handled, never put on an Azure queue.

Design notes: docs/ingestion.md ("Design notes: `shared.ingestion.sqs_bridge`")."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from shared.errors import AppError, SettingsError, TransientError, never_succeeds
from shared.ingestion.aws_credentials import (
    AwsCredentials,
    WebIdentityCredentials,
    entra_token_source,
)
from shared.ingestion.lwa_rotation import APPLICATION_TYPES, NEW_SECRET, RotationOutcome, application_type
from shared.orders.messages import ORDER_NOTIFICATIONS
from shared.telemetry.message_failures import QueueSender
from shared.telemetry.redaction import quiet_loggers

# ---- settings ---------------------------------------------------------------------------------

#: JSON object, seller id -> {"queueArn", "deadLetterQueueArn", "roleArn"} (the CloudFormation
#: stack's outputs, infra/aws/notifications.yaml). Empty or absent: nothing to drain.
QUEUES_SETTING = "NOTIFICATION_QUEUES"
#: The Application ID URI the managed identity asks Entra ID for a token for (the IAM OIDC
#: provider's client id and the role's `aud` condition).
AUDIENCE_SETTING = "AWS_WEB_IDENTITY_AUDIENCE"
#: Local only: the AWS emulator's endpoint (SQS and STS); unset in Azure (AWS's regional ones).
ENDPOINT_SETTING = "AWS_ENDPOINT"
#: Long-poll wait of each ReceiveMessage, 0-20 s (0 is a short poll: the local run's emulator).
WAIT_SETTING = "DRAIN_NOTIFICATIONS_WAIT_SECONDS"
DEFAULT_WAIT_S = 2
SCHEDULE_SETTING = "DRAIN_NOTIFICATIONS_SCHEDULE"

# ---- limits -----------------------------------------------------------------------------------

BATCH_SIZE = 10  # SQS ReceiveMessage's maximum
#: A run stops receiving this long after it started: well inside host.json's 5-minute
#: functionTimeout and the 1-minute schedule (tests/unit/test_sqs_bridge.py checks both).
DRAIN_BUDGET_S = 40.0
#: No receive starts when less than this is left of a seller's share (enqueue and delete need it).
END_MARGIN_S = 5.0
#: Received messages stay invisible this long: longer than a whole run, so none comes back to a
#: later run while this one still holds it.
RECEIVE_VISIBILITY_S = 120
#: The largest body an Azure queue message carries: its base64 text must fit 64 KiB.
MAX_MOVABLE_BYTES = 64 * 1024 // 4 * 3

_ARN = re.compile(r"^arn:(aws[a-z-]*):sqs:([a-z0-9-]+):(\d{12}):([A-Za-z0-9_-]{1,80})$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")


@dataclass(frozen=True, slots=True)
class QueueArn:
    partition: str
    region: str
    account: str
    name: str

    @classmethod
    def parse(cls, text: object, setting: str) -> QueueArn:
        match = _ARN.match(str(text)) if isinstance(text, str) else None
        if match is None:
            raise SettingsError(f"{setting} holds a value that is not an SQS queue ARN")
        return cls(*match.groups())

    @property
    def arn(self) -> str:
        return f"arn:{self.partition}:sqs:{self.region}:{self.account}:{self.name}"

    def url(self, endpoint: str | None) -> str:
        base = endpoint.rstrip("/") if endpoint else f"https://sqs.{self.region}.amazonaws.com"
        return f"{base}/{self.account}/{self.name}"


@dataclass(frozen=True, slots=True)
class NotificationQueue:
    """One seller's SQS queue, its dead-letter queue and the role that may drain it."""

    seller_id: str
    queue: QueueArn
    dead_letter: QueueArn
    role_arn: str


@dataclass(frozen=True, slots=True)
class BridgeSettings:
    queues: tuple[NotificationQueue, ...]
    audience: str | None
    endpoint: str | None
    wait_s: int


def load_bridge_settings(env: Mapping[str, str], seller_ids: Sequence[str]) -> BridgeSettings:
    """The bridge's settings, validated; errors name the setting, never its value."""
    raw = (env.get(QUEUES_SETTING) or "").strip()
    try:
        parsed = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        raise SettingsError(f"{QUEUES_SETTING} must be JSON") from None
    if not isinstance(parsed, dict):
        raise SettingsError(f"{QUEUES_SETTING} must be a JSON object of seller id -> queue")
    queues = []
    for seller_id, entry in parsed.items():
        if seller_id not in seller_ids:
            raise SettingsError(f"{QUEUES_SETTING} names a seller SELLERS does not list")
        if not isinstance(entry, dict):
            raise SettingsError(f"{QUEUES_SETTING} entries must be objects")
        role = entry.get("roleArn")
        if not isinstance(role, str) or not _ROLE_ARN.match(role):
            raise SettingsError(f"{QUEUES_SETTING} entries need roleArn, an IAM role ARN")
        queue = QueueArn.parse(entry.get("queueArn"), f"{QUEUES_SETTING} queueArn")
        dead = QueueArn.parse(entry.get("deadLetterQueueArn"), f"{QUEUES_SETTING} deadLetterQueueArn")
        queues.append(NotificationQueue(str(seller_id), queue, dead, role))
    audience = (env.get(AUDIENCE_SETTING) or "").strip() or None
    if queues and audience is None:
        raise SettingsError(f"{AUDIENCE_SETTING} is required when {QUEUES_SETTING} lists a queue")
    wait_raw = (env.get(WAIT_SETTING) or "").strip()
    try:
        wait_s = int(wait_raw) if wait_raw else DEFAULT_WAIT_S
    except ValueError:
        raise SettingsError(f"{WAIT_SETTING} must be a whole number") from None
    if not 0 <= wait_s <= 20:
        raise SettingsError(f"{WAIT_SETTING} must be between 0 and 20")
    endpoint = (env.get(ENDPOINT_SETTING) or "").strip() or None
    return BridgeSettings(tuple(queues), audience, endpoint, wait_s)


# ---- errors -----------------------------------------------------------------------------------


class SqsUnavailable(TransientError):
    code = "sqs_unavailable"


class SqsRefused(TransientError):
    """SQS refused the call (a role, policy or queue to fix outside the app); the timer tries
    again in a minute."""

    code = "sqs_refused"


class NotificationEnqueueFailed(TransientError):
    code = "notification_enqueue_failed"


# ---- the port and the drain -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SqsMessage:
    """One received message. Its body (order ids, postal codes) and receipt stay out of repr."""

    message_id: str
    receipt: str = field(repr=False)
    body: str = field(repr=False)
    receive_count: int = 1


class SqsQueue(Protocol):
    """One seller's notification queue, as the drain uses it."""

    def receive(self, max_messages: int, wait_s: int, visibility_s: int) -> list[SqsMessage]: ...

    def delete(self, messages: Sequence[SqsMessage]) -> int:
        """Delete the messages; returns how many SQS confirmed."""
        ...

    def dead_letter_depth(self) -> int:
        """Messages in the seller's dead-letter queue (visible and in flight)."""
        ...


class NewSecrets(Protocol):
    """Where the LWA secret notifications go (shared/ingestion/lwa_rotation.py)."""

    def handle(self, body: str, now: datetime) -> RotationOutcome: ...


@dataclass
class DrainReport:
    """Counts only (what telemetry records), and the failures as typed errors."""

    sellers: int = 0
    received: int = 0
    moved: int = 0
    deleted: int = 0
    too_large: int = 0
    not_order_change: int = 0
    dead_letter_messages: int = 0
    #: `APPLICATION_OAUTH_CLIENT_NEW_SECRET` handled from SQS: stored, refused, redelivered.
    secrets_stored: int = 0
    secrets_refused: int = 0
    secrets_repeated: int = 0
    failures: list[AppError] = field(default_factory=list)

    def raise_first_failure(self) -> None:
        if self.failures:
            raise self.failures[0]


def _is_handled(body: str) -> bool:
    """ORDER_CHANGE, or one of the application's LWA secret notifications (lwa_rotation)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return False
    if not isinstance(data, dict):
        return False
    return data.get("NotificationType") == "ORDER_CHANGE" or data.get("notificationType") in APPLICATION_TYPES


class NotificationDrain:
    """Moves every seller's notifications to the Azure queue; see the module docstring."""

    def __init__(
        self,
        queues: Sequence[NotificationQueue],
        connect: Callable[[NotificationQueue], SqsQueue],
        sink: QueueSender,
        *,
        secrets: NewSecrets,
        clock: Callable[[], datetime],
        target: str = ORDER_NOTIFICATIONS,
        wait_s: int = DEFAULT_WAIT_S,
        budget_s: float = DRAIN_BUDGET_S,
        visibility_s: int = RECEIVE_VISIBILITY_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.queues = tuple(queues)
        self._connect = connect
        self._sink = sink
        self._secrets = secrets
        self._clock = clock
        self._target = target
        self._wait_s = wait_s
        self._budget_s = budget_s
        self._visibility_s = visibility_s
        self._monotonic = monotonic

    def drain(self) -> DrainReport:
        report = DrainReport(sellers=len(self.queues))
        deadline = self._monotonic() + self._budget_s
        for index, queue in enumerate(self.queues):
            share_end = self._monotonic() + (deadline - self._monotonic()) / (len(self.queues) - index)
            try:
                sqs = self._connect(queue)
                self._drain_one(sqs, share_end, report)
            except NotificationEnqueueFailed as exc:
                report.failures.append(exc)
                return report  # the Azure queue is down for every seller
            except AppError as exc:
                report.failures.append(exc)
                continue
            try:
                report.dead_letter_messages += sqs.dead_letter_depth()
            except AppError as exc:
                report.failures.append(exc)
        return report

    def _drain_one(self, sqs: SqsQueue, share_end: float, report: DrainReport) -> None:
        while True:
            left = share_end - self._monotonic() - END_MARGIN_S
            if left <= 0:
                return
            wait = max(0, min(self._wait_s, int(left)))
            messages = sqs.receive(BATCH_SIZE, wait, self._visibility_s)
            if not messages:
                return
            report.received += len(messages)
            done, failure = self._move(messages, report)
            if done:
                # Only what is on the Azure queue or handled: a message is never deleted before.
                try:
                    report.deleted += sqs.delete(done)
                except AppError as exc:
                    if failure is None:
                        raise
                    report.failures.append(exc)
            if failure is not None:
                raise failure

    def _move(
        self, messages: Sequence[SqsMessage], report: DrainReport
    ) -> tuple[list[SqsMessage], NotificationEnqueueFailed | None]:
        """Moves or hands on each message of a batch; returns those done with, and the Azure
        queue's failure that stopped the batch."""
        done: list[SqsMessage] = []
        for message in messages:
            if len(message.body.encode("utf-8", errors="surrogatepass")) > MAX_MOVABLE_BYTES:
                report.too_large += 1  # left in SQS: dead-lettered after maxReceiveCount
                continue
            if application_type(message.body) == NEW_SECRET:
                if self._keep_secret(message.body, report):
                    done.append(message)
                continue
            if not _is_handled(message.body):
                report.not_order_change += 1  # moved all the same: ingest poisons it
            try:
                self._sink.send(self._target, message.body)
            except Exception:
                return done, NotificationEnqueueFailed("the Azure queue refused or did not answer")
            report.moved += 1
            done.append(message)
        return done, None

    def _keep_secret(self, body: str, report: DrainReport) -> bool:
        """Hands a new LWA secret to the rotation; True when it is done with it (stored, refused
        or a redelivery), False when it is to stay in SQS for a retry (its redrive policy
        applies)."""
        try:
            outcome = self._secrets.handle(body, self._clock())
        except AppError as exc:
            report.failures.append(exc)
            if never_succeeds(exc):
                report.secrets_refused += 1
                return True
            return False
        report.secrets_stored += outcome.stored
        report.secrets_refused += outcome.refused
        report.secrets_repeated += outcome.repeated
        return True


# ---- SQS over boto3 ---------------------------------------------------------------------------

#: SQS error codes that mean a role, policy, credential or queue to fix outside the app.
_SQS_REFUSALS = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "InvalidSecurity",
        "SignatureDoesNotMatch",
        "KMS.AccessDeniedException",
    }
)
_EXPIRED = frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired"})


class BotoSqsQueue:
    """`SqsQueue` over boto3, with the web identity credentials of the queue's role. The client
    is rebuilt when the credentials are renewed."""

    def __init__(
        self,
        queue: NotificationQueue,
        credentials: WebIdentityCredentials,
        session: Any,
        *,
        endpoint: str | None,
        read_timeout_s: float,
    ) -> None:
        self._queue = queue
        self._credentials = credentials
        self._session = session
        self._endpoint = endpoint
        self._read_timeout_s = read_timeout_s
        self._client: Any = None
        self._client_credentials: AwsCredentials | None = None
        self._lock = threading.Lock()

    def _sqs(self) -> Any:
        from botocore.config import Config  # type: ignore[import-untyped]

        credentials = self._credentials.get()
        with self._lock:
            if self._client is None or credentials is not self._client_credentials:
                self._client = self._session.client(
                    "sqs",
                    region_name=self._queue.queue.region,
                    endpoint_url=self._endpoint,
                    aws_access_key_id=credentials.access_key_id,
                    aws_secret_access_key=credentials.secret_access_key,
                    aws_session_token=credentials.session_token,
                    config=Config(
                        connect_timeout=5,
                        read_timeout=self._read_timeout_s,
                        retries={"max_attempts": 2, "mode": "standard"},
                    ),
                )
                self._client_credentials = credentials
            return self._client

    def _call(self, operation: str, fn: Callable[[Any], Any]) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

        try:
            return fn(self._sqs())
        except ClientError as exc:
            response = exc.response if isinstance(exc.response, dict) else {}
            code = str(response.get("Error", {}).get("Code", ""))
            status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if code in _EXPIRED:
                self._credentials.invalidate()
                raise SqsUnavailable(f"{operation}: credentials expired (status {status})") from None
            if code in _SQS_REFUSALS or status in (401, 403):
                raise SqsRefused(f"{operation} refused (status {status})") from None
            raise SqsUnavailable(f"{operation} failed (status {status})") from None
        except BotoCoreError:
            raise SqsUnavailable(f"{operation} unreachable") from None

    def receive(self, max_messages: int, wait_s: int, visibility_s: int) -> list[SqsMessage]:
        answer = self._call(
            "ReceiveMessage",
            lambda sqs: sqs.receive_message(
                QueueUrl=self._queue.queue.url(self._endpoint),
                MaxNumberOfMessages=max_messages,
                WaitTimeSeconds=wait_s,
                VisibilityTimeout=visibility_s,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            ),
        )
        messages = []
        for raw in answer.get("Messages") or []:
            attributes = raw.get("Attributes") or {}
            messages.append(
                SqsMessage(
                    message_id=str(raw.get("MessageId", "")),
                    receipt=str(raw["ReceiptHandle"]),
                    body=str(raw.get("Body", "")),
                    receive_count=int(attributes.get("ApproximateReceiveCount", 1) or 1),
                )
            )
        return messages

    def delete(self, messages: Sequence[SqsMessage]) -> int:
        answer = self._call(
            "DeleteMessageBatch",
            lambda sqs: sqs.delete_message_batch(
                QueueUrl=self._queue.queue.url(self._endpoint),
                Entries=[{"Id": str(i), "ReceiptHandle": m.receipt} for i, m in enumerate(messages)],
            ),
        )
        return len(answer.get("Successful") or [])

    def dead_letter_depth(self) -> int:
        answer = self._call(
            "GetQueueAttributes",
            lambda sqs: sqs.get_queue_attributes(
                QueueUrl=self._queue.dead_letter.url(self._endpoint),
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            ),
        )
        attributes = answer.get("Attributes") or {}
        return sum(
            int(attributes.get(name, 0) or 0)
            for name in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
        )


#: botocore logs whole requests and answers at DEBUG (message bodies: order ids, postal codes).
QUIET_LOGGERS = ("boto3", "botocore", "s3transfer")


def sts_endpoint(region: str, endpoint: str | None) -> str:
    """The regional STS endpoint (the global one lives in us-east-1 only), or the emulator."""
    return endpoint.rstrip("/") if endpoint else f"https://sts.{region}.amazonaws.com"


def build_drain(
    env: Mapping[str, str],
    seller_ids: Sequence[str],
    credential: Any,
    sink: QueueSender,
    *,
    secrets: NewSecrets,
    clock: Callable[[], datetime],
    visibility_s: int = RECEIVE_VISIBILITY_S,
) -> NotificationDrain:
    """The drain the composition root installs: one STS exchange and one SQS client per seller,
    built on first use (boto3 is imported then, not at the functions' cold start); new LWA
    secrets go to `secrets`. `visibility_s` is for tests that kill a run and wait for its
    messages to come back."""
    bridge = load_bridge_settings(env, seller_ids)
    quiet_loggers(QUIET_LOGGERS)
    connected: dict[str, SqsQueue] = {}
    lock = threading.Lock()
    sessions: list[Any] = []

    def session() -> Any:
        if not sessions:
            import boto3  # type: ignore[import-untyped]

            sessions.append(boto3.session.Session())
        return sessions[0]

    def connect(queue: NotificationQueue) -> SqsQueue:
        from botocore import UNSIGNED  # type: ignore[import-untyped]
        from botocore.config import Config

        with lock:
            found = connected.get(queue.seller_id)
            if found is None:
                region = queue.queue.region
                sts = session().client(
                    "sts",
                    region_name=region,
                    endpoint_url=sts_endpoint(region, bridge.endpoint),
                    # AssumeRoleWithWebIdentity is an unsigned call: the token is the credential.
                    config=Config(signature_version=UNSIGNED, connect_timeout=5, read_timeout=15),
                )
                credentials = WebIdentityCredentials(
                    entra_token_source(credential, str(bridge.audience)), queue.role_arn, sts
                )
                found = BotoSqsQueue(
                    queue,
                    credentials,
                    session(),
                    endpoint=bridge.endpoint,
                    read_timeout_s=bridge.wait_s + 15,
                )
                connected[queue.seller_id] = found
            return found

    return NotificationDrain(
        bridge.queues,
        connect,
        sink,
        secrets=secrets,
        clock=clock,
        wait_s=bridge.wait_s,
        visibility_s=visibility_s,
    )
