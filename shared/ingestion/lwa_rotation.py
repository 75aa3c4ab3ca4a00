"""The LWA client secret rotated with no person: Amazon's two application notifications.

`APPLICATION_OAUTH_CLIENT_SECRET_EXPIRY` warns that the secret expires; the app then calls the
Application Management API's `rotateApplicationClientSecret`, unless a secret expiring later
was already stored. `APPLICATION_OAUTH_CLIENT_NEW_SECRET` carries the new secret; the app stores
it as a new version of the LWA secret in Key Vault, where every SP-API client reads it at its
next token refresh. Both arrive like ORDER_CHANGE (SQS bridge, `order-notifications`).

Each step is an audit record under the reference `lwa-client-secret` (the notification id, the
expiry times, never the secret); the newest stored expiry is read back from that trail. Design
notes, and what the Sentinel rule `lwa-secret-rotation` watches: docs/security.md.
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
from shared.storage.audit import AuditLog

SECRET_EXPIRY = "APPLICATION_OAUTH_CLIENT_SECRET_EXPIRY"  # noqa: S105 - a notification type  # pragma: allowlist secret
NEW_SECRET = "APPLICATION_OAUTH_CLIENT_NEW_SECRET"  # noqa: S105 - a notification type  # pragma: allowlist secret
APPLICATION_TYPES = frozenset({SECRET_EXPIRY, NEW_SECRET})
#: The audit reference of the application's LWA credentials (no order, no person).
AUDIT_REF = "lwa-client-secret"
REQUESTED = "lwa_rotation_requested"
NOT_NEEDED = "lwa_rotation_not_needed"
#: Manual mode (LWA_ROTATION=manual): a warning a person must act on (docs/security.md runbook).
MANUAL = "lwa_rotation_manual"
STORED = "lwa_secret_stored"
FUNCTION = "ingest_notification"
#: Less than this left before the secret expires, with no newer secret stored: an alert.
ALERT_WINDOW = timedelta(days=7)

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


class SecretNotWritable(AppError):
    """Auto rotation, but Key Vault refuses this identity Set Secret on the LWA secret: Amazon is
    not asked for a secret the app could not store; a person grants the role or rotates by hand."""

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


@dataclass(frozen=True, slots=True)
class RotationOutcome:
    """What one notification did, as counts (telemetry) and the days the warned secret had left."""

    requested: int = 0
    stored: int = 0
    manual: int = 0
    days_left: int | None = None


class SecretRotator(Protocol):
    def rotate(self) -> None:
        """Ask Amazon for a new client secret (it arrives as `NEW_SECRET`)."""
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
    )


class LwaSecretRotation:
    """Handles the two notifications; `secrets` is the vault, `names` the settings' secret names
    (client id, client secret). `rotator` None is manual mode (LWA_ROTATION=manual): a warning
    is audited and counted for a person to rotate by hand, and Amazon is never asked."""

    def __init__(
        self,
        secrets: SecretStore,
        names: tuple[str, str],
        rotator: SecretRotator | None,
        audit: AuditLog,
    ) -> None:
        self._secrets = secrets
        self._client_id_name, self._secret_name = names
        self._rotator = rotator
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
        if any(e.id.endswith(f":{key}") for e in trail):
            return RotationOutcome()  # a repeated delivery of a warning already acted on
        details = {"notification_id": warning.notification_id, "expires_at": warning.expires_at.isoformat()}
        stored = [datetime.fromisoformat(str(e.details["expires_at"])) for e in trail if e.action == STORED]
        if stored and max(stored) > warning.expires_at:
            # The warning is about a secret already replaced (Amazon warns about the old one too).
            self._audit.record(AUDIT_REF, NOT_NEEDED, now, FUNCTION, details, once_key=key)
            return RotationOutcome()
        days_left = max(0, (warning.expires_at - now).days)
        if self._rotator is None:
            self._audit.record(AUDIT_REF, MANUAL, now, FUNCTION, details, once_key=key)
            return RotationOutcome(manual=1, days_left=days_left)
        prove_writable(self._secrets, self._secret_name)
        self._rotator.rotate()
        self._audit.record(AUDIT_REF, REQUESTED, now, FUNCTION, details, once_key=key)
        return RotationOutcome(requested=1, days_left=days_left)

    def _on_new_secret(self, new: NewSecret, now: datetime) -> RotationOutcome:
        current = self._secrets.get(self._secret_name)
        try:
            if current is None or current.value != new.secret:
                self._secrets.set(self._secret_name, new.secret)
        except AppError as exc:
            raise SecretNotStored(f"the new LWA secret was not stored: {exc.code}") from None
        self._audit.record(
            AUDIT_REF,
            STORED,
            now,
            FUNCTION,
            {
                "notification_id": new.notification_id,
                "expires_at": new.expires_at.isoformat(),
                "old_expires_at": new.old_expires_at.isoformat(),
            },
            once_key=_once_key(new.notification_id),
        )
        return RotationOutcome(stored=1)


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
        except httpx.HTTPError as exc:
            raise RotationFailed(f"rotateApplicationClientSecret transport: {type(exc).__name__}") from None
