"""`ops preflight`'s calls over the wire, each answering None (it works) or a reason code.

- the LWA token exchange of a seller's refresh token (grant_type refresh_token, as every
  SP-API call starts), made directly so no cached access token can hide a refusal;
- the seller's ORDER_CHANGE subscription, read as `ops notifications status` reads it;
- one OAuth token request to a karrio carrier with its account's credentials.

Reason codes are fixed snake_case strings (LWA's own OAuth error codes included), never a value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from shared.crypto.key_vault import SecretStore
from shared.crypto.secrets import SecretValues
from shared.errors import AppError, SettingsError
from shared.settings import Settings

_OAUTH_ERROR = re.compile(r"[a-z_]{1,40}")

#: A seller id or a carrier name -> None when it answers, else why not (a reason code).
Probe = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class Probes:
    access_token: Probe  # seller id
    subscription: Probe  # seller id
    carrier: Probe  # karrio carrier name


def live_probes(env: Mapping[str, str], settings: Settings, store: SecretStore) -> Probes:
    values = SecretValues(store)
    return Probes(
        access_token=lambda seller_id: lwa_access_token(settings, values, seller_id),
        subscription=lambda seller_id: order_change_subscription(env, settings, seller_id),
        carrier=lambda name: carrier_authentication(settings, values, name),
    )


def lwa_access_token(settings: Settings, values: SecretValues, seller_id: str) -> str | None:
    import httpx

    from shared.ingestion.spapi_gateway import lwa_token_url

    seller = settings.seller(seller_id)
    if seller is None:
        return "seller_unknown"
    try:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": values(seller.refresh_token_secret),
            "client_id": values(settings.lwa_client_id_secret),
            "client_secret": values(settings.lwa_client_secret_secret),
        }
    except SettingsError:
        return "secret_missing"
    try:
        answer = httpx.post(
            lwa_token_url(settings.lwa_endpoint), data=form, timeout=30, verify=settings.spapi_verify_tls
        )
    except httpx.HTTPError:
        return "lwa_unreachable"
    body = _json(answer)
    if answer.status_code == 200 and body.get("access_token"):
        return None
    error = str(body.get("error") or "")
    return f"lwa_refused_{error if _OAUTH_ERROR.fullmatch(error) else answer.status_code}"


def _json(answer: object) -> dict[str, object]:
    try:
        body = answer.json()  # type: ignore[attr-defined]
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def order_change_subscription(env: Mapping[str, str], settings: Settings, seller_id: str) -> str | None:
    import httpx
    from sp_api.auth.exceptions import AuthorizationError
    from sp_api.base.exceptions import SellingApiException

    from ops.notifications import _client, status
    from shared.ingestion.sqs_bridge import load_bridge_settings

    try:
        bridge = load_bridge_settings(env, [s.seller_id for s in settings.sellers])
    except SettingsError:
        return "notification_queues_invalid"
    queue = next((q for q in bridge.queues if q.seller_id == seller_id), None)
    seller = settings.seller(seller_id)
    if queue is None or seller is None:
        return "no_notification_queue"
    try:
        row = status(_client(env, seller_id), seller_id, queue.queue.arn, list(seller.marketplace_ids))
    except SettingsError:
        return "secret_missing"
    except (AuthorizationError, SellingApiException):
        return "notifications_api_refused"
    except (OSError, httpx.HTTPError):
        return "notifications_api_unreachable"
    state = str(row["subscription"]["state"])
    return None if state == "exists" else f"subscription_{state}"


def carrier_authentication(settings: Settings, values: SecretValues, name: str) -> str | None:
    from shared.app.carriers import karrio_carrier

    try:
        karrio_carrier(settings, values, name).authenticate()
    except AppError as exc:
        return exc.code
    return None
