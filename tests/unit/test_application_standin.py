"""The Application Management stand-in (local/spapi_application.py) answers as Amazon's model
application_2023-11-30.json says and imitates what a rotation does to LWA."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from local.amazon_models import ModelJudge
from local.spapi_application import ROTATE_PATH, ROTATION_SCOPE, ApplicationStandIn
from local.spapi_server import SimClock, SpApiStandIn

CLIENT = "amzn1.application-oa2-client.s"
OLD = "old-secret"  # pragma: allowlist secret


def _stand_ins(*, registered: bool = True) -> tuple[SpApiStandIn, ApplicationStandIn, list[str]]:
    # No model judge in the unit suite (loading the models takes seconds); the integration
    # tests judge the exchanges.
    spapi = SpApiStandIn(
        clock=SimClock(datetime(2026, 11, 1, tzinfo=UTC)), lwa_clients={CLIENT: OLD}, judge=ModelJudge.off()
    )
    queue: list[str] = []
    return spapi, ApplicationStandIn(spapi, CLIENT, OLD, deliver=queue.append if registered else None), queue


def _rotate(application: ApplicationStandIn, token: str) -> int:
    answer = application.handle("POST", ROTATE_PATH, {}, {"x-amz-access-token": token}, b"{}", "https://x")
    assert answer is not None
    return answer[0]


def _token(spapi: SpApiStandIn, secret: str, scope: str = ROTATION_SCOPE) -> tuple[int, str]:
    form = f"grant_type=client_credentials&client_id={CLIENT}&client_secret={secret}&scope={scope}"
    status, _, body = spapi.dispatch("POST", "/auth/o2/token", {}, form.encode(), "https://x")
    return status, json.loads(body).get("access_token", "")


def test_a_rotation_makes_a_second_secret_lwa_accepts_and_sends_it_to_the_queue() -> None:
    spapi, application, queue = _stand_ins()
    assert _rotate(application, _token(spapi, OLD)[1]) == 204
    sent = json.loads(queue.pop())
    assert sent["notificationType"] == "APPLICATION_OAUTH_CLIENT_NEW_SECRET"
    new = sent["payload"]["applicationOAuthClientNewSecret"]["newClientSecret"]
    assert new == application.secret != OLD
    assert _token(spapi, OLD)[0] == _token(spapi, new)[0] == 200
    assert application.retire_old() == 1
    assert (_token(spapi, OLD)[0], _token(spapi, new)[0]) == (401, 200)
    assert spapi.token_refusals == 1


def test_lwa_refuses_a_client_credentials_grant_with_a_wrong_secret_as_invalid_client() -> None:
    """What the app's check of a new secret (shared/ingestion/lwa_rotation.py) reads as a refusal."""
    spapi, _, _ = _stand_ins()
    form = f"grant_type=client_credentials&client_id={CLIENT}&client_secret=forged&scope={ROTATION_SCOPE}"
    status, _, body = spapi.dispatch("POST", "/auth/o2/token", {}, form.encode(), "https://x")
    assert (status, json.loads(body)["error"]) == (401, "invalid_client")
    assert _token(spapi, OLD)[0] == 200


def test_only_a_grantless_token_of_the_rotation_scope_may_rotate() -> None:
    spapi, application, queue = _stand_ins()
    notifications_token = _token(spapi, OLD, "sellingpartnerapi::notifications")[1]
    assert _rotate(application, notifications_token) == 403
    assert _rotate(application, "Atza|seller-token") == 403
    assert application.rotations == 0 and queue == []


def test_no_registered_queue_is_amazons_400() -> None:
    spapi, application, _ = _stand_ins(registered=False)
    assert _rotate(application, _token(spapi, OLD)[1]) == 400
    assert application.rotations == 0 and application.secret == OLD


def test_the_expiry_warning_names_the_secret_in_use_and_its_expiry() -> None:
    _, application, queue = _stand_ins()
    application.warn_expiry()
    warning = json.loads(queue.pop())["payload"]["applicationOAuthClientSecretExpiry"]
    assert warning["clientId"] == CLIENT
    assert warning["clientSecretExpiryTime"].startswith("2027-04-30")  # 180 days on
