"""The LWA client secret rotated with no person: Amazon's two application notifications.

`APPLICATION_OAUTH_CLIENT_SECRET_EXPIRY` warns that the secret expires; the app then calls the
Application Management API's `rotateApplicationClientSecret` once per warning, unless a secret
expiring later was already stored. `APPLICATION_OAUTH_CLIENT_NEW_SECRET` carries the new secret:
stored as a new version of the LWA secret in Key Vault only when it expires later than every
secret stored before and LWA grants a client-credentials token with it; refused otherwise. The
SQS bridge hands it here straight from SQS (it never crosses an Azure queue).

Each step is an audit record under the reference `lwa-client-secret` (the notification id, the
expiry times, never the secret); what was stored and asked for is read back from that trail.
Design notes, and what the Sentinel rule `lwa-secret-rotation` watches: docs/security.md.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from shared.crypto.key_vault import SecretStore, SecretStoreDenied
from shared.errors import AppError, InvalidInput, TransientError
from shared.ingestion.notifications import MAX_NOTIFICATION_BYTES, NotificationRejected, validate
from shared.storage.audit import AuditEvent, AuditLog

SECRET_EXPIRY = "APPLICATION_OAUTH_CLIENT_SECRET_EXPIRY"  # noqa: S105 - a notification type  # pragma: allowlist secret
NEW_SECRET = "APPLICATION_OAUTH_CLIENT_NEW_SECRET"  # noqa: S105 - a notification type  # pragma: allowlist secret
APPLICATION_TYPES = frozenset({SECRET_EXPIRY, NEW_SECRET})
#: The audit reference of the application's LWA credentials (no order, no person).
AUDIT_REF = "lwa-client-secret"
STARTED = "lwa_rotation_started"
REQUESTED = "lwa_rotation_requested"
ROTATE_FAILED = "lwa_rotation_failed"
NOT_NEEDED = "lwa_rotation_not_needed"
#: Manual mode (LWA_ROTATION=manual): a warning a person must act on (docs/security.md runbook).
MANUAL = "lwa_rotation_manual"
STORED = "lwa_secret_stored"
REFUSED = "lwa_secret_refused"
#: Why a new secret was refused (the REFUSED record's `reason`): it expires no later than one
#: stored before (an old notification delivered late, or a forged one); LWA refused it; Key
#: Vault refuses the app Set Secret on it (manual mode, or the role taken away).
STALE = "lwa_secret_stale"
INVALID = "lwa_secret_invalid"
NOT_WRITABLE = "lwa_secret_not_writable"  # pragma: allowlist secret
#: The grantless scope the rotation uses; the new secret must obtain a token for it.
ROTATION_SCOPE = "sellingpartnerapi::client_credential:rotation"
FUNCTION = "ingest_notification"
#: Less than this left before the secret expires, with no newer secret stored: an alert.
ALERT_WINDOW = timedelta(days=7)
#: LWA may refuse a genuine new secret for a while after Amazon rotates (it lags): a refusal
#: this close to the notification's eventTime is retried, and only later refused as invalid.
LWA_LAG = timedelta(hours=1)

_STR: dict[str, Any] = {"type": "string"}
_ENVELOPE: dict[str, Any] = {
    "type": "object",
    "required": ["notificationVersion", "notificationType", "payloadVersion", "eventTime", "payload"],
    "properties": {
        "notificationType": {"type": "string", "enum": sorted(APPLICATION_TYPES)},
        "eventTime": _STR,
        "payload": {"type": "object"},
        "notificationMetadata": {
            "type": "object",
            "required": ["notificationId"],
            "properties": {"notificationId": _STR},
        },
    },
}
#: Amazon's payloads (the Application Management use-case guide, v2023-11-30).
PAYLOADS: dict[str, tuple[str, dict[str, Any]]] = {
    SECRET_EXPIRY: (
        "applicationOAuthClientSecretExpiry",
        {
            "type": "object",
            "required": ["clientId", "clientSecretExpiryTime"],
            "properties": {
                "clientId": _STR,
                "clientSecretExpiryTime": _STR,
                "clientSecretExpiryReason": _STR,
            },
        },
    ),
    NEW_SECRET: (
        "applicationOAuthClientNewSecret",
        {
            "type": "object",
            "required": [
                "clientId",
                "newClientSecret",
                "newClientSecretExpiryTime",
                "oldClientSecretExpiryTime",
            ],
            "properties": {
                "clientId": _STR,
                "newClientSecret": _STR,
                "newClientSecretExpiryTime": _STR,
                "oldClientSecretExpiryTime": _STR,
            },
        },
    ),
}


class RotationFailed(TransientError):
    """`rotateApplicationClientSecret` was refused or did not answer: the warning is retried."""

    code = "lwa_rotation_failed"


class SecretNotStored(TransientError):
    """Key Vault did not take the new secret: the notification is retried."""

    code = "lwa_secret_not_stored"


class SecretUnverified(TransientError):
    """LWA did not answer whether it accepts the new secret, or refused it less than `LWA_LAG`
    after it was sent: the notification is retried."""

    code = "lwa_secret_unverified"


class SecretNotWritable(InvalidInput):
    """Auto rotation, but Key Vault refuses this identity Set Secret on the LWA secret: Amazon is
    not asked for a secret the app could not store; a person grants the role or rotates by hand.
    Retrying cannot help, so the warning is poisoned at once."""

    code = "lwa_secret_not_writable"


class ForeignClient(InvalidInput):
    code = "lwa_client_mismatch"


@dataclass(frozen=True, slots=True)
class SecretExpiry:
    notification_id: str
    client_id: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class NewSecret:
    notification_id: str
    client_id: str
    secret: str = field(repr=False)
    expires_at: datetime
    old_expires_at: datetime
    sent_at: datetime


@dataclass(frozen=True, slots=True)
class RotationOutcome:
    """What one notification did, as counts (telemetry) and the days the warned secret had left."""

    requested: int = 0
    stored: int = 0
    refused: int = 0
    repeated: int = 0
    manual: int = 0
    days_left: int | None = None


class SecretRotator(Protocol):
    def rotate(self) -> None:
        """Ask Amazon for a new client secret (it arrives as `NEW_SECRET`)."""
        ...


class SecretCheck(Protocol):
    def accepts(self, client_id: str, secret: str) -> bool:
        """Whether LWA grants a token to `client_id` with `secret`; raises `SecretUnverified`
        when it does not say."""
        ...


def application_type(body: bytes | str) -> str | None:
    """The notification's type when it is one of the two LWA secret notifications."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    kind = data.get("notificationType") if isinstance(data, dict) else None
    return kind if kind in APPLICATION_TYPES else None


def _once_key(notification_id: str) -> str:
    """A fixed-length id part safe in a Cosmos id and a blob name, whatever Amazon's id holds."""
    return hashlib.sha256(notification_id.encode("utf-8", errors="surrogatepass")).hexdigest()[:40]


def _time(value: str, path: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise NotificationRejected(f"{path} is not ISO 8601", code="notification_malformed") from None
    if parsed.tzinfo is None:
        raise NotificationRejected(f"{path} has no time zone", code="notification_malformed")
    return parsed


def parse_application_notification(body: bytes | str) -> SecretExpiry | NewSecret:
    """Checked against the shape Amazon documents; errors name a path, never a value."""
    if len(body) > MAX_NOTIFICATION_BYTES:
        raise NotificationRejected("notification too large", code="notification_too_large")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise NotificationRejected("notification is not JSON", code="notification_not_json") from None
    validate(data, _ENVELOPE)
    kind = data["notificationType"]
    name, schema = PAYLOADS[kind]
    if name not in data["payload"]:
        raise NotificationRejected(f"$.payload.{name} is missing", code="notification_malformed")
    payload = data["payload"][name]
    validate(payload, schema, f"$.payload.{name}")
    notification_id = str((data.get("notificationMetadata") or {}).get("notificationId") or data["eventTime"])
    if kind == SECRET_EXPIRY:
        return SecretExpiry(
            notification_id,
            payload["clientId"],
            _time(payload["clientSecretExpiryTime"], "clientSecretExpiryTime"),
        )
    if not payload["newClientSecret"].strip():
        raise NotificationRejected("newClientSecret is empty", code="notification_malformed")
    return NewSecret(
        notification_id,
        payload["clientId"],
        payload["newClientSecret"],
        _time(payload["newClientSecretExpiryTime"], "newClientSecretExpiryTime"),
        _time(payload["oldClientSecretExpiryTime"], "oldClientSecretExpiryTime"),
        _time(data["eventTime"], "eventTime"),
    )


class LwaSecretRotation:
    """Handles the two notifications; `secrets` is the vault, `names` the settings' secret names
    (client id, client secret), `check` asks LWA whether a new secret works. `rotator` None is
    manual mode (LWA_ROTATION=manual): a warning is audited and counted for a person to rotate
    by hand, and Amazon is never asked."""

    def __init__(
        self,
        secrets: SecretStore,
        names: tuple[str, str],
        rotator: SecretRotator | None,
        check: SecretCheck,
        audit: AuditLog,
    ) -> None:
        self._secrets = secrets
        self._client_id_name, self._secret_name = names
        self._rotator = rotator
        self._check = check
        self._audit = audit

    def handles(self, body: bytes | str) -> bool:
        """Whether `body` is one of the two LWA secret notifications (else: ORDER_CHANGE's path)."""
        return application_type(body) is not None

    def handle(self, body: bytes | str, now: datetime) -> RotationOutcome:
        notification = parse_application_notification(body)
        self._check_client(notification.client_id)
        if isinstance(notification, SecretExpiry):
            return self._on_expiry(notification, now)
        return self._on_new_secret(notification, now)

    def _check_client(self, client_id: str) -> None:
        ours = self._secrets.get(self._client_id_name)
        if ours is None or ours.value != client_id:
            raise ForeignClient("the notification names another LWA client")

    def _on_expiry(self, warning: SecretExpiry, now: datetime) -> RotationOutcome:
        key = _once_key(warning.notification_id)
        trail = self._audit.trail(AUDIT_REF)
        if any(e.id in (f"{REQUESTED}:{key}", f"{NOT_NEEDED}:{key}", f"{MANUAL}:{key}") for e in trail):
            return RotationOutcome()  # a repeated delivery of a warning already acted on
        details = {"notification_id": warning.notification_id, "expires_at": warning.expires_at.isoformat()}
        newest = _newest_stored(trail)
        if newest is not None and newest > warning.expires_at:
            # The warning is about a secret already replaced (Amazon warns about the old one too).
            self._note(NOT_NEEDED, now, details, key)
            return RotationOutcome()
        days_left = max(0, (warning.expires_at - now).days)
        if self._rotator is None:
            self._note(MANUAL, now, details, key)
            return RotationOutcome(manual=1, days_left=days_left)
        if not self._rotate_once(self._rotator, trail, key, details, now):
            return RotationOutcome(days_left=days_left)
        return RotationOutcome(requested=1, days_left=days_left)

    def _rotate_once(
        self,
        rotator: SecretRotator,
        trail: list[AuditEvent],
        key: str,
        details: Mapping[str, object],
        now: datetime,
    ) -> bool:
        """Asks Amazon for a new secret unless an earlier attempt for this warning may have; each
        attempt is claimed in the trail before the call, and its failure recorded after it: of
        two deliveries racing for one attempt only the claim's winner asks. False: not asked.
        Before the first attempt the app proves it may store what Amazon will send."""
        attempts = sum(e.id.startswith(f"{STARTED}:{key}.") for e in trail)
        failures = sum(e.id.startswith(f"{ROTATE_FAILED}:{key}.") for e in trail)
        if attempts > failures:
            # An attempt started and never recorded its end (a crash, or the audit failed after
            # the call): Amazon may have rotated, so it is not asked again for this warning.
            self._note(REQUESTED, now, {**details, "unconfirmed": True}, key)
            return False
        prove_writable(self._secrets, self._secret_name)
        attempt = f"{key}.{attempts + 1}"
        if not self._audit.claim(AUDIT_REF, STARTED, now, FUNCTION, details, once_key=attempt):
            return False  # another delivery of this warning claimed the attempt and asks Amazon
        try:
            rotator.rotate()
        except AppError as exc:
            self._note(ROTATE_FAILED, now, {**details, "reason": exc.code}, attempt)
            raise
        self._note(REQUESTED, now, details, key)
        return True

    def _note(self, action: str, now: datetime, details: Mapping[str, object], once_key: str) -> None:
        self._audit.record(AUDIT_REF, action, now, FUNCTION, details, once_key=once_key)

    def _on_new_secret(self, new: NewSecret, now: datetime) -> RotationOutcome:
        key = _once_key(new.notification_id)
        trail = self._audit.trail(AUDIT_REF)
        if any(e.id == f"{STORED}:{key}" for e in trail):
            return RotationOutcome(repeated=1)
        newest = _newest_stored(trail)
        if newest is not None and newest >= new.expires_at:
            return self._refuse(new, STALE, now)
        if not self._check.accepts(new.client_id, new.secret):
            if abs(now - new.sent_at) < LWA_LAG:
                raise SecretUnverified("LWA refused the new secret within the hour after it was sent")
            return self._refuse(new, INVALID, now)
        current = self._secrets.get(self._secret_name)
        try:
            if current is None or current.value != new.secret:
                self._secrets.set(self._secret_name, new.secret)
        except SecretStoreDenied:
            # No write role (LWA_ROTATION=manual, or the role was taken away): retrying cannot
            # help; a person stores it by hand (docs/security.md runbook), and the rule fires.
            return self._refuse(new, NOT_WRITABLE, now)
        except AppError as exc:
            raise SecretNotStored(f"the new LWA secret was not stored: {exc.code}") from None
        self._note(STORED, now, _new_secret_details(new), key)
        return RotationOutcome(stored=1)

    def _refuse(self, new: NewSecret, reason: str, now: datetime) -> RotationOutcome:
        self._note(
            REFUSED, now, {**_new_secret_details(new), "reason": reason}, _once_key(new.notification_id)
        )
        return RotationOutcome(refused=1)


def _newest_stored(trail: list[AuditEvent]) -> datetime | None:
    """The latest expiry of the secrets stored so far (None: none stored by the app)."""
    stored = [datetime.fromisoformat(str(e.details["expires_at"])) for e in trail if e.action == STORED]
    return max(stored, default=None)


def _new_secret_details(new: NewSecret) -> dict[str, object]:
    return {
        "notification_id": new.notification_id,
        "expires_at": new.expires_at.isoformat(),
        "old_expires_at": new.old_expires_at.isoformat(),
    }


class LwaSecretCheck:
    """Asks LWA's token endpoint for a client-credentials token (scope `ROTATION_SCOPE`) with the
    client id and a candidate secret, on every call (no cached token can answer for it).
    `post(url, form)` returns (status, JSON body); composition gives it httpx and the TLS."""

    def __init__(self, token_url: str, post: Callable[[str, Mapping[str, str]], tuple[int, Any]]) -> None:
        self._url = token_url
        self._post = post

    def accepts(self, client_id: str, secret: str) -> bool:
        form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            "scope": ROTATION_SCOPE,
        }
        status, answer = self._post(self._url, form)
        if status == 200:
            return True
        if status in (400, 401) and isinstance(answer, dict) and answer.get("error") == "invalid_client":
            return False
        raise SecretUnverified(f"LWA token status {status}")


def prove_writable(secrets: SecretStore, name: str) -> None:
    """Proves Set Secret on `name` without changing its value: a new version holding the value
    read just before (a property update would prove another permission, update/action). Raises
    `SecretNotWritable` when Key Vault refuses; other Key Vault errors pass through."""
    current = secrets.get(name)
    if current is None or not current.value.strip():
        raise SecretNotWritable(f"Key Vault secret {name} is missing")
    try:
        secrets.set(name, current.value)
    except SecretStoreDenied:
        raise SecretNotWritable(f"Key Vault refused Set Secret on {name}") from None


class SpApiSecretRotator:
    """`rotateApplicationClientSecret` through python-amazon-sp-api's `ApplicationManagement`
    (grantless: LWA client credentials, scope `sellingpartnerapi::client_credential:rotation`);
    the credentials are read from Key Vault for each call. `client_for(credentials)` builds the
    library's client (composition sets the endpoints and TLS)."""

    def __init__(
        self, credentials: Callable[[], Mapping[str, str]], client_for: Callable[[Mapping[str, str]], Any]
    ) -> None:
        self._credentials = credentials
        self._client_for = client_for

    def rotate(self) -> None:
        import httpx
        from sp_api.auth.exceptions import AuthorizationError
        from sp_api.base import exceptions as sp_errors

        try:
            self._client_for(self._credentials()).rotate_application_client_secret()
        except AuthorizationError:
            raise RotationFailed("LWA refused the client credentials") from None
        except sp_errors.SellingApiException as exc:
            raise RotationFailed(f"rotateApplicationClientSecret status {getattr(exc, 'code', 0)}") from None
        except httpx.HTTPError:
            raise RotationFailed("rotateApplicationClientSecret unreachable") from None
