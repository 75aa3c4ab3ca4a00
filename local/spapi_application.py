"""A stand-in for the Application Management API and Amazon's LWA secret notifications.

An independent imitation (it imports nothing from the app). The SP-API stand-in
(local/spapi_server.py) mounts `ApplicationStandIn.handle`, which answers
`POST /applications/2023-11-30/clientSecret` (rotateApplicationClientSecret) as Amazon's model
`application_2023-11-30.json` says: grantless, so only an LWA client_credentials token of scope
`sellingpartnerapi::client_credential:rotation` is accepted (403 otherwise); 400 when no
destination is registered for the application's notifications; 204 with no body on success.
A success makes a new client secret that LWA accepts at once, keeps the old one until
`retire_old()` (Amazon: 7 days), and sends `APPLICATION_OAUTH_CLIENT_NEW_SECRET` to the
registered queue through `deliver(body)`. `warn_expiry()` sends
`APPLICATION_OAUTH_CLIENT_SECRET_EXPIRY` for the secret in use, as Amazon does before it expires.
The notifications follow the payloads of Amazon's Application Management use-case guide (Amazon
publishes no JSON schema for them); the exchange is judged when the model is beside the repository.
"""

from __future__ import annotations

import json
import secrets
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from local.amazon_models import ModelJudge
from local.spapi_server import SpApiStandIn

Response = tuple[int, dict[str, str], bytes]

ROTATE_PATH = "/applications/2023-11-30/clientSecret"
ROTATION_SCOPE = "sellingpartnerapi::client_credential:rotation"
APPLICATION_ID = "amzn1.sp.solution.00000000-0000-4000-8000-00000000c0c0"
SECRET_LIFETIME = timedelta(days=180)
OLD_SECRET_GRACE = timedelta(days=7)
RATE_LIMIT = "0.0167"


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _errors(status: int, code: str, message: str) -> Response:
    body = {"errors": [{"code": code, "message": message}]}
    return (
        status,
        {"content-type": "application/json", "x-amzn-RequestId": str(uuid.uuid4())},
        json.dumps(body).encode(),
    )


class ApplicationStandIn:
    def __init__(
        self,
        spapi: SpApiStandIn,
        client_id: str,
        secret: str,
        *,
        deliver: Callable[[str], None] | None,
        judge: ModelJudge | None = None,
    ) -> None:
        """`secret` is the one LWA accepts now; `deliver` None: no destination registered."""
        self.spapi = spapi
        self.client_id = client_id
        self.secret = secret
        self.deliver = deliver
        self.judge = judge if judge is not None else spapi.judge
        self.secret_expires_at = spapi.now() + SECRET_LIFETIME
        self.old_secrets: list[tuple[str, datetime]] = []
        #: rotateApplicationClientSecret answered 204, and notifications sent, by type.
        self.rotations = 0
        self.sent: list[str] = []
        self._failures: list[int] = []
        self._lock = threading.Lock()

    def fail_next(self, status: int) -> None:
        """Answer the next rotation request with `status` (429, 500 or 503)."""
        with self._lock:
            self._failures.append(status)

    def handle(  # noqa: PLR0917 - the SP-API stand-in calls it positionally
        self,
        method: str,
        path: str,
        query: Mapping[str, list[str]],
        headers: Mapping[str, str],
        body: bytes,
        base_url: str,
    ) -> Response | None:
        if path != ROTATE_PATH or method != "POST":
            return None
        answer = self._rotate(headers.get("x-amz-access-token", ""))
        self.judge.judge(
            method, path, query=query, headers=headers, body=body, status=answer[0], response=answer[2]
        )
        return answer

    def _rotate(self, token: str) -> Response:
        expected = SpApiStandIn._grantless_token(self.client_id, ROTATION_SCOPE)
        if not SpApiStandIn.grantless_token_valid(token) or not secrets.compare_digest(token, expected):
            return _errors(403, "Unauthorized", "Access to requested resource is denied.")
        with self._lock:
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            return _errors(failure, "InternalFailure", "We encountered an internal error.")
        if self.deliver is None:
            return _errors(
                400,
                "InvalidInput",
                "Application is not enrolled for rotation notification. Please update application "
                "notification preference in Developer console.",
            )
        now = self.spapi.now()
        new = f"amzn1.oa2-cs.v1.{secrets.token_hex(32)}"
        with self._lock:
            old, old_expiry = self.secret, now + OLD_SECRET_GRACE
            self.old_secrets.append((old, old_expiry))
            self.secret, self.secret_expires_at = new, now + SECRET_LIFETIME
            self.rotations += 1
        self.spapi.accept_secret(self.client_id, new)
        self._send(
            "APPLICATION_OAUTH_CLIENT_NEW_SECRET",
            {
                "applicationOAuthClientNewSecret": {
                    "clientId": self.client_id,
                    "newClientSecret": new,
                    "newClientSecretExpiryTime": _iso(now + SECRET_LIFETIME),
                    "oldClientSecretExpiryTime": _iso(old_expiry),
                }
            },
        )
        return 204, {"x-amzn-RequestId": str(uuid.uuid4()), "x-amzn-RateLimit-Limit": RATE_LIMIT}, b""

    def warn_expiry(self) -> None:
        """Amazon's warning that the secret in use expires (`secret_expires_at`)."""
        self._send(
            "APPLICATION_OAUTH_CLIENT_SECRET_EXPIRY",
            {
                "applicationOAuthClientSecretExpiry": {
                    "clientId": self.client_id,
                    "clientSecretExpiryTime": _iso(self.secret_expires_at),
                    "clientSecretExpiryReason": "PERIODIC_ROTATION",  # pragma: allowlist secret
                }
            },
        )

    def retire_old(self) -> int:
        """The rotated-out secrets expire: LWA refuses them from now on. Returns how many."""
        with self._lock:
            old, self.old_secrets = self.old_secrets, []
        for secret, _ in old:
            self.spapi.retire_secret(self.client_id, secret)
        return len(old)

    def _send(self, kind: str, payload: dict[str, Any]) -> None:
        if self.deliver is None:
            return
        now = self.spapi.now()
        body = {
            "notificationVersion": "1.0",
            "notificationType": kind,
            "payloadVersion": "2023-11-30",
            "eventTime": _iso(now),
            "payload": payload,
            "notificationMetadata": {
                "applicationId": APPLICATION_ID,
                "subscriptionId": str(uuid.uuid4()),
                "publishTime": _iso(now),
                "notificationId": str(uuid.uuid4()),
            },
        }
        self.deliver(json.dumps(body))
        self.sent.append(kind)
