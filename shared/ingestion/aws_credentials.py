"""AWS credentials without a stored AWS secret: the Function App's managed identity asks Entra ID
for a token whose audience the seller's IAM OIDC provider trusts, and AWS STS
`AssumeRoleWithWebIdentity` exchanges it for short-lived credentials of one role (the role may
only receive and delete messages on the seller's notification queue: infra/aws/notifications.yaml).

The trust (docs/deploy.md "Amazon's notifications"): issuer `https://sts.windows.net/<tenant id>/`
(Entra ID's v1 access tokens), audience the configured Application ID URI
(`AWS_WEB_IDENTITY_AUDIENCE`), subject the managed identity's object id. Nothing here is a secret
at rest: the Entra token lives for about an hour in memory, the AWS credentials for at most
`DURATION_S`, and both are refreshed `REFRESH_BEFORE` ahead of their expiry.

Failures are typed and transient (the timer runs again in a minute): STS or Entra unreachable or
answering 5xx (`sts_unavailable`, `entra_token_unavailable`), STS refusing the token or the role
(`sts_refused`: a trust or a role to fix outside the app). Neither a token nor a credential ever
appears in an error, a log line or telemetry.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.errors import TransientError

#: How long the assumed role's credentials live (STS's minimum is 900 s, the role's maximum 1 h).
DURATION_S = 3600
#: Credentials are replaced this long before they expire, so no SQS call carries an expired one.
REFRESH_BEFORE = timedelta(minutes=5)
SESSION_NAME = "mfn-fulfilment-drain"
#: botocore's error codes for a refused web identity or role (AssumeRoleWithWebIdentity errors).
REFUSALS = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "ExpiredTokenException",
        "IDPCommunicationError",
        "IDPRejectedClaim",
        "InvalidIdentityToken",
        "MalformedPolicyDocument",
        "PackedPolicyTooLarge",
        "RegionDisabledException",
    }
)


class StsUnavailable(TransientError):
    code = "sts_unavailable"


class StsRefused(TransientError):
    """STS refused the web identity or the role: transient for the timer (the next run tries
    again), fixed outside the app (the IAM OIDC provider, the role's trust, the audience)."""

    code = "sts_refused"


class EntraTokenUnavailable(TransientError):
    code = "entra_token_unavailable"


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    """Short-lived credentials of the assumed role. `repr` shows the expiry only."""

    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: datetime

    def __repr__(self) -> str:
        return f"AwsCredentials(expiration={self.expiration.isoformat()})"


def entra_token_source(credential: Any, audience: str) -> Callable[[], str]:
    """A callable that returns an Entra ID access token for `audience` from `credential` (the
    managed identity in Azure: azure-identity caches and refreshes the token itself)."""
    scope = audience if audience.endswith("/.default") else f"{audience.rstrip('/')}/.default"

    def token() -> str:
        from azure.core.exceptions import AzureError

        try:
            return str(credential.get_token(scope).token)
        except AzureError:
            raise EntraTokenUnavailable("the managed identity got no token for the audience") from None

    return token


def _utc_now() -> datetime:
    return datetime.now(UTC)


class WebIdentityCredentials:
    """AssumeRoleWithWebIdentity for one role, cached until `REFRESH_BEFORE` its expiry.

    `sts_client` is a boto3 STS client made without credentials (the call is unsigned);
    `wall` is the wall clock the expiry is compared with (STS dates its answer in real time,
    whatever clock the rest of the app runs on). Thread-safe: one fetch at a time."""

    def __init__(
        self,
        token: Callable[[], str],
        role_arn: str,
        sts_client: Any,
        *,
        wall: Callable[[], datetime] = _utc_now,
        duration_s: int = DURATION_S,
        refresh_before: timedelta = REFRESH_BEFORE,
        session_name: str = SESSION_NAME,
    ) -> None:
        self._token = token
        self._role_arn = role_arn
        self._sts = sts_client
        self._wall = wall
        self._duration_s = duration_s
        self._refresh_before = refresh_before
        self._session_name = session_name
        self._cached: AwsCredentials | None = None
        self._lock = threading.Lock()
        #: AssumeRoleWithWebIdentity calls made (the cache's effect, for tests and the summary).
        self.fetches = 0

    def get(self) -> AwsCredentials:
        with self._lock:
            cached = self._cached
            if cached is not None and self._wall() < cached.expiration - self._refresh_before:
                return cached
            self._cached = self._fetch()
            return self._cached

    def invalidate(self) -> None:
        """Forget the cached credentials (SQS said they expired): the next `get` fetches anew."""
        with self._lock:
            self._cached = None

    def _fetch(self) -> AwsCredentials:
        from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

        web_token = self._token()
        try:
            answer = self._sts.assume_role_with_web_identity(
                RoleArn=self._role_arn,
                RoleSessionName=self._session_name,
                WebIdentityToken=web_token,
                DurationSeconds=self._duration_s,
            )
        except ClientError as exc:
            error = exc.response.get("Error", {}) if isinstance(exc.response, dict) else {}
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if str(error.get("Code", "")) in REFUSALS or status in (401, 403):
                raise StsRefused(f"AssumeRoleWithWebIdentity refused (status {status})") from None
            raise StsUnavailable(f"AssumeRoleWithWebIdentity failed (status {status})") from None
        except BotoCoreError:
            raise StsUnavailable("AssumeRoleWithWebIdentity unreachable") from None
        self.fetches += 1
        try:
            raw = answer["Credentials"]
            expiration = raw["Expiration"]
            if not isinstance(expiration, datetime):
                expiration = datetime.fromisoformat(str(expiration).replace("Z", "+00:00"))
            return AwsCredentials(
                access_key_id=str(raw["AccessKeyId"]),
                secret_access_key=str(raw["SecretAccessKey"]),
                session_token=str(raw["SessionToken"]),
                expiration=expiration if expiration.tzinfo else expiration.replace(tzinfo=UTC),
            )
        except (KeyError, TypeError, ValueError):
            raise StsUnavailable("AssumeRoleWithWebIdentity answered without credentials") from None
